"""The real server with a second client, and a store loop for ann: what the GUI tests,
the examples' tests and the screenshots run against.

The reference server and the other clients (bob, ...) run on one ``StoreLoop``; ann's
``Chats`` module runs on another, as a GUI application runs it, and her GUI is the
caller's main thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import attrs

from chats_store import Chats, ChatsConfig, WebSocket, create_chats, create_user, create_websocket
from chats_store.gui.loop import StoreLoop
from chats_store.server import ChatServer, run_server

SECRET = "gui-tests-secret-that-is-long-enough-for-hs256"
CHAT = "lobby"


async def connect(server: ChatServer, user_id: str, **token: Any) -> tuple[Chats, WebSocket]:
    """A connected client of ``server`` that joined ``CHAT`` (run on its own loop)."""
    websocket = create_websocket(open_timeout=5)
    chats = create_chats(
        user_module=create_user(server.session_token(user_id)),
        websocket_module=websocket,
        config=ChatsConfig(host=server.address, request_timeout=5),
    )
    await websocket.connect()
    await chats.join_chat(server.chat_token(user_id, CHAT, **token))
    return chats, websocket


async def disconnect(chats: Chats, websocket: WebSocket) -> None:
    await websocket.disconnect()
    await chats.close()


@attrs.define
class ChatNet:
    """The server and the others on ``server_loop``; ann's store loop, ``store``."""

    server_loop: StoreLoop
    server: ChatServer
    store: StoreLoop
    ann: Chats
    others: dict[str, tuple[Chats, WebSocket]] = attrs.Factory(dict)

    @property
    def bob(self) -> Chats:
        return self.others["bob"][0]

    def join(self, user_id: str, **token: Any) -> Chats:
        """Another client (on the server's loop) joins ``CHAT``."""
        self.others[user_id] = self.server_loop.run(connect(self.server, user_id, **token), 10)
        return self.others[user_id][0]

    def says(self, user_id: str, *texts: str, wait: bool = True) -> None:
        """``user_id`` sends ``texts`` in turn; ``wait``: until the server confirmed them."""

        async def say() -> None:
            for text in texts:
                await self.others[user_id][0].send_message(CHAT, text)

        future = self.server_loop.submit(say())
        if wait:
            future.result(timeout=10)

    def bob_says(self, *texts: str, wait: bool = True) -> None:
        self.says("bob", *texts, wait=wait)

    def ann_holds(self, count: int, timeout: float = 5.0) -> None:
        """Wait (off every GUI loop) until ann's store holds ``count`` messages."""
        deadline = time.monotonic() + timeout
        while len(self.store.run(_messages(self.ann))) < count:
            assert time.monotonic() < deadline, f"ann's store never held {count} messages"
            time.sleep(0.01)


async def _messages(chats: Chats) -> tuple[Any, ...]:
    return tuple(chats.get_chat_messages(CHAT).value or ())


@contextlib.contextmanager
def chat_net(**ann_token: Any) -> Iterator[ChatNet]:
    """Server, bob and ann connected and in ``CHAT``; everything stopped on exit."""
    server_loop, store = StoreLoop("server"), StoreLoop("chats-store")
    servers = run_server(port=0, db=":memory:", secret=SECRET)
    try:
        server = server_loop.run(servers.__aenter__(), timeout=10)
        ann, ann_socket = store.run(connect(server, "ann", **ann_token), timeout=10)
        net = ChatNet(server_loop, server, store, ann)
        net.join("bob")
        yield net
        store.run(disconnect(ann, ann_socket), timeout=5)
        for chats, websocket in net.others.values():
            server_loop.run(disconnect(chats, websocket), timeout=5)
        server_loop.run(servers.__aexit__(None, None, None), timeout=10)
    finally:
        store.stop()
        server_loop.stop()


class TickProbe:
    """A task on ``store``'s loop that wakes every 10 ms and counts its wake-ups
    (``ticks``): while anything blocks that loop, the count stands still."""

    PERIOD = 0.01

    def __init__(self, store: StoreLoop) -> None:
        self.ticks = 0
        self._stopped = threading.Event()
        self._future = store.submit(self._tick())

    async def _tick(self) -> None:
        while not self._stopped.is_set():
            await asyncio.sleep(self.PERIOD)
            self.ticks += 1

    def stop(self) -> None:
        self._stopped.set()
        self._future.result(timeout=5)
