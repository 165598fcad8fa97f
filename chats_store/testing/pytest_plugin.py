"""The ``chats_store`` pytest plugin: a real reference server and connected clients.

Installed with the package as the ``pytest11`` entry point ``chats_store``, so any
project that depends on chats_store gets these fixtures without importing
anything (``-p no:chats_store`` turns it off). They are asyncio fixtures: they
need ``pytest-asyncio`` (without it, the plugin defines nothing).

``chats_server``
    A :class:`~chats_store.server.ChatServer` started for the test on a free
    loopback port, with an in-memory database; stopped after the test. Its
    ``session_token(user)``, ``chat_token(user, chat, ...)`` mint tokens.

``chats_client``
    An async factory: ``await chats_client("ann")`` creates a user, a WebSocket
    module and a Chats module against ``chats_server``, connects it and returns a
    :class:`ChatsClient`; ``await chats_client("ann", chat="c1")`` also joins
    ``c1``. Every client is disconnected and closed after the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from chats_store.chats.facade import Chats, ChatsConfig, create_chats
from chats_store.chats.model import Message
from chats_store.server import ChatServer, run_server
from chats_store.user.module import create_user
from chats_store.websocket.module import WebSocket, create_websocket

__all__ = ["SECRET", "ChatsClient", "ChatsClientFactory"]

SECRET = "chats-store-pytest-plugin-secret-0123456789"
"""The signing secret of the ``chats_server`` fixture (test use only)."""


@attrs.define
class ChatsClient:
    """One connected client of the ``chats_client`` fixture."""

    user_id: str
    chats: Chats
    websocket: WebSocket
    server: ChatServer

    async def join(
        self, chat_id: str, *, permissions: Sequence[str] = ("send",), **claims: Any
    ) -> None:
        """Join ``chat_id`` with a fresh chat token (``claims``: ``metadata``, ``ttl``)."""
        token = self.server.chat_token(self.user_id, chat_id, permissions=permissions, **claims)
        await self.chats.join_chat(token)

    def messages(self, chat_id: str) -> tuple[Message, ...]:
        """The chat's messages now, as a tuple (``()`` for a chat not joined)."""
        return tuple(self.chats.get_chat_messages(chat_id).value or ())

    async def close(self) -> None:
        """Disconnect and close (the fixture does it after the test)."""
        await self.websocket.disconnect()
        await self.chats.close()


ChatsClientFactory = Callable[..., Awaitable[ChatsClient]]
"""``chats_client(user_id, *, chat=None, connect=True, action_log=None, **config)``."""


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the fixtures need pytest-asyncio
    pass
else:

    @pytest_asyncio.fixture
    async def chats_server() -> AsyncIterator[ChatServer]:
        """The reference server on a free loopback port, for one test."""
        async with run_server(port=0, db=":memory:", secret=SECRET) as server:
            yield server

    @pytest_asyncio.fixture
    async def chats_client(chats_server: ChatServer) -> AsyncIterator[ChatsClientFactory]:
        """A factory of connected clients of ``chats_server``, closed after the test."""
        clients: list[ChatsClient] = []

        async def make(
            user_id: str,
            *,
            chat: str | None = None,
            connect: bool = True,
            action_log: str | Path | None = None,
            **config: Any,
        ) -> ChatsClient:
            websocket = create_websocket(open_timeout=config.get("request_timeout", 5.0))
            chats = create_chats(
                user_module=create_user(chats_server.session_token(user_id)),
                websocket_module=websocket,
                config=ChatsConfig(host=chats_server.address, **config),
                action_log=action_log,
            )
            client = ChatsClient(user_id, chats, websocket, chats_server)
            clients.append(client)
            if connect:
                await websocket.connect()
                if chat is not None:
                    await client.join(chat)
            return client

        yield make
        for client in reversed(clients):
            await client.close()
