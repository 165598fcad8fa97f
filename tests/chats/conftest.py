"""Fixtures for unit tests of the Chats effects and facade (in-memory transport)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import attrs
import pytest

from chats_store import Chats, ChatsConfig, create_chats, create_user
from chats_store.testing.in_memory import InMemoryChatServer, InMemoryWebSocket


@attrs.define
class Client:
    user_id: str
    chats: Chats
    websocket: InMemoryWebSocket


@attrs.define
class World:
    """An in-memory server and the clients connected to it."""

    server: InMemoryChatServer
    clients: list[Client] = attrs.Factory(list)
    tasks: list[asyncio.Task[Any]] = attrs.Factory(list)

    async def client(
        self,
        user_id: str,
        *,
        connect: bool = True,
        new_message_id: Callable[[], str] | None = None,
        **config: Any,
    ) -> Client:
        """A client of the server; ``config`` goes to ``ChatsConfig``."""
        websocket = self.server.websocket()
        chats = create_chats(
            user_module=create_user(self.server.session_token(user_id)),
            websocket_module=websocket,
            config=ChatsConfig(host="memory", **{"request_timeout": 2.0, **config}),
            **({} if new_message_id is None else {"new_message_id": new_message_id}),
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

    def start(self, call: Awaitable[Any]) -> asyncio.Task[Any]:
        """Run ``call`` in the background (for states with a request in flight)."""
        task = asyncio.ensure_future(call)
        self.tasks.append(task)
        return task


@pytest.fixture
async def world() -> AsyncIterator[World]:
    world = World(InMemoryChatServer())
    yield world
    world.server.release()
    await asyncio.gather(*world.tasks, return_exceptions=True)
    for client in world.clients:
        await client.chats.close()


async def settle() -> None:
    """Let every ready callback and task of the loop run."""
    for _ in range(5):
        await asyncio.sleep(0)


Settle = Callable[[], Awaitable[None]]
