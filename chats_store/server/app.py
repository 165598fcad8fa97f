"""The reference chat server: a ``websockets`` asyncio server around :class:`ChatService`.

:func:`run_server` is an async context manager::

    async with run_server(db="chats.sqlite3", secret=secret) as server:
        print(server.url)            # ws://127.0.0.1:<the port bound>
        ...                          # leaving the block closes every connection

The handshake needs the subprotocol ``chats_store.v1`` (HTTP 400 otherwise) and a
session token in the ``Authorization: Bearer <token>`` header (HTTP 401 with a
plain-text reason otherwise). Each connection then gets its own outbox: frames
are queued without waiting and written in order by one writer task, so a slow
client delays nobody else (past ``MAX_QUEUED_FRAMES`` unsent frames it is
closed with 1008).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, NegotiationError
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from chats_store.protocol import MAX_FRAME_SIZE, PROTOCOL_VERSION
from chats_store.server.database import ChatDatabase
from chats_store.server.service import ChatService, Session, Timer
from chats_store.server.tokens import (
    TokenRefusedError,
    check_secret,
    mint_chat_token,
    mint_session_token,
    verify_session_token,
)

__all__ = ["MAX_QUEUED_FRAMES", "SECRET_ENV", "ChatServer", "run_server"]

logger = logging.getLogger("chats_store.server")

SECRET_ENV = "CHATS_STORE_SECRET"
MAX_QUEUED_FRAMES = 1000
"""Unsent frames a connection may have queued before it is closed as too slow."""


class ChatServer:
    """A running reference server: where it listens, and token helpers for its secret."""

    def __init__(self, host: str, port: int, secret: bytes, clock: Callable[[], float]) -> None:
        self.host = host
        self.port = port
        self._secret = secret
        self._clock = clock

    @property
    def url(self) -> str:
        """``ws://host:port``, the URL clients connect to."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}"

    @property
    def address(self) -> str:
        """``host:port``, as ``ChatsConfig(host=...)`` wants it."""
        return self.url.removeprefix("ws://")

    def session_token(self, user_id: str, ttl: float = 3600, name: str | None = None) -> str:
        """A session token for ``user_id`` signed with this server's secret."""
        return mint_session_token(self._secret, user_id, ttl, name, now=self._clock())

    def chat_token(
        self,
        user_id: str,
        chat_id: str,
        permissions: Sequence[str] = ("send",),
        metadata: Mapping[str, str] | None = None,
        ttl: float = 300,
    ) -> str:
        """A chat token letting ``user_id`` join ``chat_id``, signed with this server's secret."""
        return mint_chat_token(
            self._secret, user_id, chat_id, permissions, metadata, ttl, now=self._clock()
        )

    def __repr__(self) -> str:
        return f"<ChatServer {self.url}>"


class _Outbox:
    """One connection's queue of frames, written in order by :meth:`run`."""

    def __init__(self, connection: ServerConnection) -> None:
        self._connection = connection
        self._frames: deque[str] = deque()
        self._ready = asyncio.Event()
        self._overflowed = False

    def send(self, text: str) -> None:
        if self._overflowed:
            return
        if len(self._frames) >= MAX_QUEUED_FRAMES:
            self._overflowed = True
            self._frames.clear()
        else:
            self._frames.append(text)
        self._ready.set()

    async def run(self) -> None:
        try:
            while True:
                await self._ready.wait()
                self._ready.clear()
                if self._overflowed:
                    await self._connection.close(1008, "too many unread frames: read faster")
                    return
                while self._frames:
                    await self._connection.send(self._frames.popleft())
        except ConnectionClosed:
            return


def _unauthorized(connection: ServerConnection, reason: str) -> Response:
    response = connection.respond(HTTPStatus.UNAUTHORIZED, reason + "\n")
    response.headers["WWW-Authenticate"] = 'Bearer realm="chats_store"'
    return response


class _Gateway:
    """The ``websockets`` callbacks: handshake checks and the per-connection loop."""

    def __init__(self, service: ChatService, secret: bytes, clock: Callable[[], float]) -> None:
        self._service = service
        self._secret = secret
        self._clock = clock
        self._users: weakref.WeakKeyDictionary[ServerConnection, str] = weakref.WeakKeyDictionary()

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        header = request.headers.get("Authorization")
        if header is None:
            return _unauthorized(
                connection,
                "missing session token: send the header 'Authorization: Bearer <session token>'",
            )
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _unauthorized(
                connection, "the Authorization header must be 'Bearer <session token>'"
            )
        try:
            user_id = verify_session_token(self._secret, token.strip(), self._clock)
        except TokenRefusedError as error:
            return _unauthorized(connection, f"{error.code}: {error.message}")
        self._users[connection] = user_id
        return None

    @staticmethod
    def select_subprotocol(
        connection: ServerConnection, subprotocols: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        if PROTOCOL_VERSION in subprotocols:
            return Subprotocol(PROTOCOL_VERSION)
        raise NegotiationError(
            f"this server speaks the subprotocol {PROTOCOL_VERSION!r}; offer it in "
            "Sec-WebSocket-Protocol"
        )

    async def handle(self, connection: ServerConnection) -> None:
        user_id = self._users.pop(connection, None)
        if user_id is None:  # process_request always sets it; be safe anyway
            await connection.close(1008, "not authenticated")
            return
        outbox = _Outbox(connection)
        session = Session(user_id, outbox.send)
        writer = asyncio.create_task(outbox.run())
        try:
            async for data in connection:
                close = self._service.receive(session, data)
                if close is not None:
                    code, reason = close
                    logger.info("closing the connection of %r: %d %s", user_id, code, reason)
                    await connection.close(code, reason)
                    break
        except ConnectionClosed:
            pass
        finally:
            self._service.disconnect(session)
            writer.cancel()
            await asyncio.wait([writer])


def _resolve_secret(secret: str | bytes | None) -> bytes:
    if secret is None:
        secret = os.environ.get(SECRET_ENV)
        if not secret:
            raise ValueError(
                f"no secret: pass secret=... or set the {SECRET_ENV} environment variable "
                "(at least 32 bytes)"
            )
    return check_secret(secret)


@asynccontextmanager
async def run_server(
    host: str = "127.0.0.1",
    port: int = 0,
    db: str | os.PathLike[str] = ":memory:",
    secret: str | bytes | None = None,
    *,
    clock: Callable[[], float] = time.time,
    seconds_per_minute: float = 60.0,
    ping_interval: float | None = 20.0,
) -> AsyncIterator[ChatServer]:
    """Run the reference chat server until the block exits.

    ``port`` 0 binds a free port (read it from ``.port``). ``db`` is an SQLite
    file (created if needed, WAL mode) or ``":memory:"``. ``secret`` (at least
    32 bytes; default: the ``CHATS_STORE_SECRET`` environment variable) signs and
    verifies every token. ``clock`` (epoch seconds) and ``seconds_per_minute``
    (the length of a moderation "minute") are there for tests.
    Raises ``ValueError`` for a missing or short secret.
    """
    key = _resolve_secret(secret)
    loop = asyncio.get_running_loop()

    def schedule(delay: float, callback: Callable[[], None]) -> Timer:
        return loop.call_later(delay, callback)

    database = ChatDatabase(db)
    service = ChatService(
        database, key, clock=clock, schedule=schedule, seconds_per_minute=seconds_per_minute
    )
    try:
        service.start()
        gateway = _Gateway(service, key, clock)
        async with serve(
            gateway.handle,
            host,
            port,
            process_request=gateway.process_request,
            select_subprotocol=gateway.select_subprotocol,
            subprotocols=[Subprotocol(PROTOCOL_VERSION)],
            max_size=MAX_FRAME_SIZE,
            ping_interval=ping_interval,
            server_header="chats_store",
        ) as ws_server:
            bound = ws_server.sockets[0].getsockname()
            logger.info("chats_store server listening on %s:%d", bound[0], bound[1])
            yield ChatServer(host, int(bound[1]), key, clock)
    finally:
        service.close()
        database.close()
