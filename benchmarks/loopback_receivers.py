"""Workload 4's receiving processes: COUNT clients of one chat, each message timed.

    python loopback_receivers.py store|raw ADDRESS SECRET FIRST COUNT CHAT COUNTS PROCESSES FD \
        [freeze]

``store``: full clients (``create_chats``), each timing its ``get_chat_messages`` getter's
emissions, as an app's view would. ``raw``: the floor, ``fanout_clients.LeanClient``
connections (``websockets``' sans-I/O handshake, frames parsed by hand) that time each
``message_posted`` frame once ``json.loads`` has read it.

Users ``u<FIRST>`` to ``u<FIRST + COUNT - 1>`` join CHAT; with ``freeze`` the process then
calls ``gc.freeze()``, as ``docs/embedding.md`` suggests to an app that has started; it
prints ``ready``.

A message counts as received by the process once every one of its clients has it: the
process then adds one to the message's slot in COUNTS, a file that every receiving
process maps, under ``flock``; the last of the PROCESSES writes the message's number
to the pipe FD, so the sender is woken once per message, not once per process. On a
line on stdin the process prints ``[[number, monotonic time], ...]`` (every client's
emissions) and ends.
"""

from __future__ import annotations

import asyncio
import fcntl
import gc
import json
import mmap
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanout_clients import LeanClient, open_client

from chats_store import create_chats, create_user, create_websocket
from chats_store.chats.facade import Chats, ChatsConfig
from chats_store.chats.model import Message
from chats_store.server import mint_chat_token, mint_session_token
from chats_store.websocket.module import WebSocket

PREFIX = "loopback "
"""What the timed messages' content starts with (then their number)."""


class Stamps:
    """The emissions of this process's clients, and the count shared with the others."""

    def __init__(self, clients: int, counts_path: str, processes: int, done_fd: int) -> None:
        self.clients, self.processes, self.done_fd = clients, processes, done_fd
        self.emitted: list[tuple[int, float]] = []
        self._seen: dict[int, int] = {}
        self._counts_file = open(counts_path, "r+b")  # noqa: SIM115 (for the process's life)
        self._counts = memoryview(mmap.mmap(self._counts_file.fileno(), 0)).cast("I")

    def received(self, number: int) -> None:
        """One client has message ``number``."""
        self.emitted.append((number, time.monotonic()))
        seen = self._seen[number] = self._seen.get(number, 0) + 1
        if seen < self.clients:
            return
        fcntl.flock(self._counts_file, fcntl.LOCK_EX)
        try:
            self._counts[number] = done = self._counts[number] + 1
        finally:
            fcntl.flock(self._counts_file, fcntl.LOCK_UN)
        if done == self.processes:
            os.write(self.done_fd, b"%d\n" % number)


def _watcher(stamps: Stamps) -> Callable[[Sequence[Message] | None], None]:
    """A getter's subscriber: stamps each new timed message once."""
    last = [-1]

    def on_messages(messages: Sequence[Message] | None) -> None:
        if not messages:
            return
        content = messages[-1].content
        if not content.startswith(PREFIX):
            return
        number = int(content[len(PREFIX) :])
        if number != last[0]:
            last[0] = number
            stamps.received(number)

    return on_messages


async def joined_client(
    address: str, secret: str, user_id: str, chat: str
) -> tuple[Chats, WebSocket]:
    """A full client of ``user_id`` (its own WebSocket module), connected and in ``chat``."""
    websocket = create_websocket(open_timeout=30)
    chats = create_chats(
        user_module=create_user(mint_session_token(secret, user_id)),
        websocket_module=websocket,
        config=ChatsConfig(host=address, request_timeout=30),
    )
    await websocket.connect()
    await chats.join_chat(mint_chat_token(secret, user_id, chat))
    return chats, websocket


async def store_clients(
    address: str, secret: str, users: range, chat: str, stamps: Stamps
) -> Callable[[], Any]:
    """Full clients, joined and watched; returns what closes them."""
    clients = []
    for n in users:
        chats, websocket = await joined_client(address, secret, f"u{n}", chat)
        subscription = chats.get_chat_messages(chat).subscribe(_watcher(stamps))
        clients.append((chats, websocket, subscription))

    async def close() -> None:
        for chats, websocket, subscription in clients:
            subscription.dispose()
            await websocket.disconnect()
            await chats.close()

    return close


class RawReceiver(LeanClient):
    """A lean connection that stamps each timed ``message_posted`` frame it reads."""

    def __init__(self, stamps: Stamps, *args: Any) -> None:
        super().__init__(*args)
        self.stamps = stamps

    def text(self, payload: bytes) -> None:
        if b'"message_posted"' not in payload:
            return
        content = json.loads(payload)["event"]["message"]["content"]
        if content.startswith(PREFIX):
            self.stamps.received(int(content[len(PREFIX) :]))


async def raw_clients(
    address: str, secret: str, users: range, chat: str, stamps: Stamps
) -> Callable[[], Any]:
    """Raw receivers (permessage-deflate offered, as the full clients do), joined;
    returns what closes them."""
    clients = [RawReceiver(stamps, address, secret, f"u{n}", chat, True) for n in users]
    await asyncio.gather(*(open_client(client, address) for client in clients))

    async def close() -> None:
        for client in clients:
            client.transport.close()

    return close


async def main(argv: Sequence[str]) -> None:
    mode, address, secret, first, count, chat, counts_path, processes, done_fd = argv[:9]
    stamps = Stamps(int(count), counts_path, int(processes), int(done_fd))
    users = range(int(first), int(first) + int(count))
    start = store_clients if mode == "store" else raw_clients
    close = await start(address, secret, users, chat, stamps)
    if argv[9:] == ["freeze"]:
        gc.collect()
        gc.freeze()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # until told
    print(json.dumps(stamps.emitted), flush=True)
    await close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
