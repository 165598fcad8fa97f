"""Fixtures of the GUI tests: the real server with a second client, ann's store loop.

The reference server and bob (the second, posting client) run on one ``StoreLoop``;
ann's ``Chats`` module runs on another, as a GUI application runs it, and her GUI
is the test's main thread.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest

from chats_store import Chats, ChatsConfig, WebSocket, create_chats, create_user, create_websocket
from chats_store.gui.loop import StoreLoop
from chats_store.server import ChatServer, run_server

SECRET = "gui-tests-secret-that-is-long-enough-for-hs256"
CHAT = "lobby"


async def connect(server: ChatServer, user_id: str) -> tuple[Chats, WebSocket]:
    """A connected client of ``server`` that joined ``CHAT`` (run on its own loop)."""
    websocket = create_websocket(open_timeout=5)
    chats = create_chats(
        user_module=create_user(server.session_token(user_id)),
        websocket_module=websocket,
        config=ChatsConfig(host=server.address, request_timeout=5),
    )
    await websocket.connect()
    await chats.join_chat(server.chat_token(user_id, CHAT))
    return chats, websocket


async def disconnect(chats: Chats, websocket: WebSocket) -> None:
    await websocket.disconnect()
    await chats.close()


@attrs.define
class ChatNet:
    """The server and bob on ``server_loop``; ann on ``store``, her store's loop."""

    server_loop: StoreLoop
    server: ChatServer
    bob: Chats
    store: StoreLoop
    ann: Chats

    def bob_says(self, *texts: str, wait: bool = True) -> None:
        """Bob sends ``texts`` one after the other; ``wait``: until the server confirmed."""

        async def say() -> None:
            for text in texts:
                await self.bob.send_message(CHAT, text)

        future = self.server_loop.submit(say())
        if wait:
            future.result(timeout=10)

    def ann_holds(self, count: int, timeout: float = 5.0) -> None:
        """Wait (off every GUI loop) until ann's store holds ``count`` messages."""
        deadline = time.monotonic() + timeout
        while len(self.store.run(_messages(self.ann))) < count:
            assert time.monotonic() < deadline, f"ann's store never held {count} messages"
            time.sleep(0.01)


async def _messages(chats: Chats) -> tuple[Any, ...]:
    return tuple(chats.get_chat_messages(CHAT).value or ())


@pytest.fixture
def net() -> Iterator[ChatNet]:
    server_loop, store = StoreLoop("server"), StoreLoop("chats-store")
    servers = run_server(port=0, db=":memory:", secret=SECRET)
    try:
        server = server_loop.run(servers.__aenter__(), timeout=10)
        bob, bob_socket = server_loop.run(connect(server, "bob"), timeout=10)
        ann, ann_socket = store.run(connect(server, "ann"), timeout=10)
        yield ChatNet(server_loop, server, bob, store, ann)
        store.run(disconnect(ann, ann_socket), timeout=5)
        server_loop.run(disconnect(bob, bob_socket), timeout=5)
        server_loop.run(servers.__aexit__(None, None, None), timeout=10)
    finally:
        store.stop()
        server_loop.stop()


class LagProbe:
    """Measures how late a task on ``store``'s loop wakes up: the loop's lag."""

    PERIOD = 0.01

    def __init__(self, store: StoreLoop) -> None:
        self.worst = 0.0
        self._stopped = threading.Event()
        self._future = store.submit(self._measure())

    async def _measure(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopped.is_set():
            start = loop.time()
            await asyncio.sleep(self.PERIOD)
            self.worst = max(self.worst, loop.time() - start - self.PERIOD)

    def stop(self) -> float:
        """Stop measuring; the worst lag seen, in seconds."""
        self._stopped.set()
        self._future.result(timeout=5)
        return self.worst


Predicate = Callable[[], bool]
