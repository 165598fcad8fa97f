"""A client process for the kill tests: the public API with a state file, driven by a pipe.

Run as ``python -m tests.soak.kill_client HOST SESSION_TOKEN STATE_FILE``. It creates
the Chats module on the state file, connects, waits until every restored chat has
resumed and what it recovered has gone out, then reads one JSON command per line on
stdin and writes one JSON line per answer on stdout:

* at start: ``{"restored": VIEW, "seconds": S, "recovered": N}`` (``S``: from the
  start of ``create_chats`` to the restored state; ``N``: the operations it recovered),
  then ``{"ready": VIEW}``;
* ``{"op": "join", "token": T}``: ``{"joined": CHAT}``;
* ``{"op": "send", "chat": C, "id": I, "content": S}``, ``{"op": "edit", "chat": C,
  "id": I, "content": S}``, ``{"op": "delete", "chat": C, "id": I}``: the call is
  started, and once its intent is dispatched (so recorded in the file):
  ``{"issued": I}``, or ``{"refused": I, "code": CODE}`` if the call was refused;
* ``{"op": "idle"}``: ``{"idle": VIEW}`` once nothing is in flight;
* ``{"op": "quit"}``: closes the module and exits.

``VIEW`` is ``{chat: [[id, content, status], ...]}``. With the environment variable
``CHATS_STORE_KILL_AT=POINT:KIND:N`` the process kills itself with SIGKILL at the
``N``-th request of ``KIND`` (``post``, ``edit``, ``delete``), at ``POINT``:

* ``before_send``: its record is committed, the request has not left;
* ``before_ack``: the server applied it and its reply arrived, the module has not seen it;
* ``before_record``: the module applied the reply, the state file has not recorded it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from reactivex import Observable

from chats_store import (
    ActionCallError,
    Chats,
    ChatsConfig,
    ReconnectPolicy,
    create_chats,
    create_user,
    create_websocket,
)
from chats_store.chats.actions import (
    Failure,
    MessageDeleted,
    MessageSent,
    MessageUpdated,
    ServerEvent,
)
from chats_store.chats.commands import (
    ChatReply,
    ChatRequest,
    DeleteMessageRequest,
    EditMessageRequest,
    PostMessageRequest,
)
from chats_store.chats.model import ConnectionStatus
from chats_store.chats.persistence import StateFile
from chats_store.chats.transport import ChatsTransport
from chats_store.websocket.module import WebSocket

KILL_AT = "CHATS_STORE_KILL_AT"
POINTS = ("before_send", "before_ack", "before_record")
REQUESTS: dict[str, type] = {
    "post": PostMessageRequest,
    "edit": EditMessageRequest,
    "delete": DeleteMessageRequest,
}
ACKS: dict[str, type] = {"post": MessageSent, "edit": MessageUpdated, "delete": MessageDeleted}


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class KillSwitch:
    """Where and when to die: the ``N``-th request of ``KIND`` at ``POINT``."""

    def __init__(self, spec: str) -> None:
        point, kind, count = spec.split(":")
        assert point in POINTS and kind in REQUESTS, spec
        self.point = point
        self.kind = kind
        self._left = int(count)

    def _due(self, point: str) -> bool:
        if point != self.point:
            return False
        self._left -= 1
        return self._left == 0

    def request(self, point: str, request: ChatRequest) -> None:
        if isinstance(request, REQUESTS[self.kind]) and self._due(point):
            die()

    def action(self, action: Any) -> None:
        if isinstance(action, ACKS[self.kind]) and self._due("before_record"):
            die()


class DyingTransport:
    """The module's transport, through which the kill switch watches every request."""

    def __init__(self, transport: ChatsTransport, switch: KillSwitch) -> None:
        self._transport = transport
        self._switch = switch

    @property
    def status(self) -> Observable[ConnectionStatus]:
        return self._transport.status

    @property
    def events(self) -> Observable[ServerEvent]:
        return self._transport.events

    async def request(self, request: ChatRequest, timeout: float) -> ChatReply | Failure:
        self._switch.request("before_send", request)
        reply = await self._transport.request(request, timeout)
        self._switch.request("before_ack", request)
        return reply


class DyingWebSocket:
    def __init__(self, websocket: WebSocket, switch: KillSwitch) -> None:
        self._websocket = websocket
        self._switch = switch

    def chats_transport(self, url: str, session_token: str) -> DyingTransport:
        return DyingTransport(self._websocket.chats_transport(url, session_token), self._switch)


def emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def view(chats: Chats) -> dict[str, list[list[str]]]:
    shown: dict[str, list[list[str]]] = {}
    for chat_id in chats.chats_ids.value:
        messages = chats.get_chat_messages(chat_id).value or ()
        shown[chat_id] = [[m.id, m.content, m.status] for m in messages]
    return shown


def idle(chats: Chats) -> bool:
    """Every chat ready, nothing in flight, nothing recovered left to send."""
    state = chats.store.state
    return state.connection == "connected" and all(
        chat.status == "ready"
        and not chat.recovered
        and not chat.send_queue
        and not chat.originals
        and all(m.status in ("ready", "interrupted") for m in chat.messages.pending)
        for chat in state.chats.values()
    )


async def until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("still busy")
        await asyncio.sleep(0.002)


async def issue(call: Awaitable[Any], message_id: str) -> None:
    """Start ``call``; say once its intent is dispatched (the facade checked, dispatched,
    and the state file recorded it before the dispatch returned)."""
    task = asyncio.ensure_future(call)
    await asyncio.sleep(0)  # the call runs up to its outcome: checked and dispatched
    if task.done() and isinstance(task.exception(), ActionCallError):
        error = task.exception()
        assert isinstance(error, ActionCallError)
        emit({"refused": message_id, "code": str(error.code)})
        return
    task.add_done_callback(lambda done: done.cancelled() or done.exception())
    emit({"issued": message_id})


async def main(host: str, session_token: str, state_file: str) -> None:
    spec = os.environ.get(KILL_AT)
    switch = KillSwitch(spec) if spec else None
    if switch is not None:
        record = StateFile.record

        def dying_record(self: StateFile, action: Any, state: Any) -> None:
            switch.action(action)
            record(self, action, state)

        StateFile.record = dying_record  # type: ignore[method-assign]
    websocket = create_websocket(
        reconnect=ReconnectPolicy(first_delay=0.05, min_delay=0.05, max_delay=0.2)
    )
    ids: deque[str] = deque()
    started = time.perf_counter()
    chats = create_chats(
        user_module=create_user(session_token),
        websocket_module=websocket if switch is None else DyingWebSocket(websocket, switch),
        config=ChatsConfig(host=host, state_file=state_file, request_timeout=10.0),
        new_message_id=ids.popleft,
    )
    seconds = time.perf_counter() - started
    recovered = sum(len(chat.recovered) for chat in chats.store.state.chats.values())
    emit({"restored": view(chats), "seconds": seconds, "recovered": recovered})
    await websocket.connect()
    await until(lambda: idle(chats))
    emit({"ready": view(chats)})
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        command = json.loads(line)
        op = command["op"]
        if op == "join":
            context = await chats.join_chat(command["token"])
            emit({"joined": context.chat_id})
        elif op == "send":
            ids.append(command["id"])
            await issue(chats.send_message(command["chat"], command["content"]), command["id"])
        elif op == "edit":
            call = chats.update_message(command["chat"], command["id"], command["content"])
            await issue(call, command["id"])
        elif op == "delete":
            await issue(chats.delete_message(command["chat"], command["id"]), command["id"])
        elif op == "idle":
            await until(lambda: idle(chats))
            emit({"idle": view(chats)})
        elif op == "quit":
            break
    await chats.close()
    await websocket.disconnect()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
