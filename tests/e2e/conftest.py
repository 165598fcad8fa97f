"""Shared fixtures of the end-to-end tests: the real server and public-API clients.

The server runs on each storage engine in turn (``server_db``): SQLite, then PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import pytest

from chats_store import (
    Chats,
    ChatsConfig,
    Message,
    WebSocket,
    create_chats,
    create_user,
    create_websocket,
)
from chats_store.server import ChatServer, run_server

SECRET = "end-to-end-secret-that-is-long-enough-for-hs256"
WAIT = 3.0


@attrs.define
class Client:
    user_id: str
    chats: Chats
    websocket: WebSocket

    def messages(self, chat_id: str = "c1") -> tuple[Message, ...]:
        value = self.chats.get_chat_messages(chat_id).value
        assert value is not None
        return value


@attrs.define
class Net:
    server: ChatServer
    clients: list[Client] = attrs.Factory(list)

    async def client(
        self,
        user_id: str,
        *,
        connect: bool = True,
        clock: Callable[[], float] = time.time,
        **config: Any,
    ) -> Client:
        """A client of the server; ``clock`` goes to ``create_chats``, ``config`` to
        ``ChatsConfig``."""
        websocket = create_websocket(open_timeout=WAIT)
        chats = create_chats(
            user_module=create_user(self.server.session_token(user_id)),
            websocket_module=websocket,
            config=ChatsConfig(host=self.server.address, request_timeout=WAIT, **config),
            clock=clock,
        )
        client = Client(user_id, chats, websocket)
        self.clients.append(client)
        if connect:
            await websocket.connect()
        return client

    async def joined(self, user_id: str, chat_id: str = "c1", **token: Any) -> Client:
        client = await self.client(user_id)
        await client.chats.join_chat(self.server.chat_token(user_id, chat_id, **token))
        return client

    async def close(self) -> None:
        for client in self.clients:
            await client.websocket.disconnect()
            await client.chats.close()


@contextlib.asynccontextmanager
async def network(db: str = ":memory:", port: int = 0, **options: Any) -> AsyncIterator[Net]:
    async with run_server(port=port, db=db, secret=SECRET, **options) as server:
        net = Net(server)
        try:
            yield net
        finally:
            await net.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def server_db(request: pytest.FixtureRequest) -> str:
    """The server's ``db`` on each storage engine in turn: SQLite in memory, then a
    new PostgreSQL database (for a test whose server restarts, see ``each_db``)."""
    if request.param == "sqlite":
        return ":memory:"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def net(server_db: str) -> AsyncIterator[Net]:
    async with network(server_db) as net:
        yield net


@pytest.fixture
async def bulk_net(server_db: str) -> AsyncIterator[Net]:
    """A network whose server does not rate-limit: for tests that send in bulk."""
    async with network(server_db, rate_limit=None) as net:
        yield net


async def eventually(check: Any, timeout: float = WAIT) -> None:
    """Wait until ``check()`` is true (pushes travel through real sockets)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still false after {timeout} s: {check}")
        await asyncio.sleep(0.005)
