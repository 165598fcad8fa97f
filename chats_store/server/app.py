"""The reference chat server: a ``websockets`` asyncio server around :class:`ChatService`.

This module is the core's frame adapter. The core and its storage run on a thread
of their own (:class:`~chats_store.server.worker.CoreWorker`, with group commit),
so the event loop only does WebSocket I/O; a request reaches it through
:class:`~chats_store.server.dispatch.Dispatcher`, which decodes each request
frame, submits it, and encodes what comes back once it is durable, the reply first,
then each push once (the same text queued for every recipient).

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

Protection against abusive clients, each configurable in :func:`run_server`:

* a handshake must complete within ``handshake_timeout`` seconds (5), or the TCP
  connection is dropped;
* a user may hold ``max_connections_per_user`` connections at once (10); the next
  handshake is answered HTTP 429 (``too_many_connections: ...``);
* each connection may send ``rate_limit`` requests per second (20) with bursts of
  ``rate_burst`` (200): beyond that a request gets an ``error`` reply
  ``rate_limited`` without being processed, and a connection that keeps flooding
  (see :mod:`chats_store.server.limits`) is closed with 1008;
* a frame may be at most ``MAX_FRAME_SIZE`` bytes (closed with 1009);
* while the server is overloaded (its core's worker is behind:
  :mod:`chats_store.server.overload`), a handshake is answered HTTP 503 with a
  ``Retry-After`` spread at random, so that a herd of reconnections comes back
  spread out.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, NegotiationError
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from chats_store.errors import ErrorCode
from chats_store.protocol import (
    MAX_FRAME_SIZE,
    PROTOCOL_VERSION,
    encode_error,
    peek_request_id,
)
from chats_store.server.database import ChatDatabase
from chats_store.server.dispatch import Dispatcher
from chats_store.server.engine import open_storage
from chats_store.server.fanout import Fanout, Listener
from chats_store.server.limits import DEFAULT_BURST, DEFAULT_RATE, RateLimiter, Verdict
from chats_store.server.overload import Overload, overloaded
from chats_store.server.refusal import RefusedError
from chats_store.server.rows import BUSY_TIMEOUT, DEFAULT_KEEP_EVENTS
from chats_store.server.service import (
    MAX_RESUME_EVENTS,
    MEMBERS_AMOUNT_INTERVAL,
    ChatService,
    Push,
    Session,
)
from chats_store.server.tokens import (
    MEMBERSHIP_TTL,
    check_secret,
    mint_chat_token,
    mint_membership_token,
    mint_session_token,
    verify_session_token,
)
from chats_store.server.worker import CoreWorker

__all__ = [
    "HANDSHAKE_TIMEOUT",
    "MAX_CONNECTIONS_PER_USER",
    "MAX_QUEUED_FRAMES",
    "SECRET_ENV",
    "ChatServer",
    "run_server",
]

logger = logging.getLogger("chats_store.server")

SECRET_ENV = "CHATS_STORE_SECRET"
MAX_QUEUED_FRAMES = 1000
"""Unsent frames a connection may have queued before it is closed as too slow."""
HANDSHAKE_TIMEOUT = 5.0
"""Seconds a connection has to complete the WebSocket handshake (default)."""
MAX_CONNECTIONS_PER_USER = 10
"""Connections one user may hold at once (default)."""


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

    def membership_token(
        self,
        user_id: str,
        chat_id: str,
        permissions: Sequence[str] = ("send",),
        metadata: Mapping[str, str] | None = None,
        ttl: float = MEMBERSHIP_TTL,
    ) -> str:
        """A membership credential as a join would return it (for tests and tools)."""
        return mint_membership_token(
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


class _Outboxes:
    """The outbox of each open connection's session: where the core's pushes go."""

    def __init__(self) -> None:
        self._by_session: dict[Session, _Outbox] = {}

    def open(self, session: Session, outbox: _Outbox) -> None:
        self._by_session[session] = outbox

    def close(self, session: Session) -> None:
        self._by_session.pop(session, None)

    def send(self, session: Session, text: str) -> None:
        outbox = self._by_session.get(session)
        if outbox is not None:
            outbox.send(text)


def _unauthorized(connection: ServerConnection, reason: str) -> Response:
    response = connection.respond(HTTPStatus.UNAUTHORIZED, reason + "\n")
    response.headers["WWW-Authenticate"] = 'Bearer realm="chats_store"'
    return response


class _Gateway:
    """The ``websockets`` callbacks: handshake checks and the per-connection loop."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        overload: Overload,
        outboxes: _Outboxes,
        secret: bytes,
        clock: Callable[[], float],
        *,
        rate_limit: float | None,
        rate_burst: int,
        max_connections_per_user: int | None,
    ) -> None:
        self._dispatcher = dispatcher
        self._overload = overload
        self._outboxes = outboxes
        self._secret = secret
        self._clock = clock
        self._rate_limit = rate_limit
        self._rate_burst = rate_burst
        self._max_connections = max_connections_per_user
        self._users: weakref.WeakKeyDictionary[ServerConnection, str] = weakref.WeakKeyDictionary()
        self._open: dict[str, int] = {}
        """Open connections (past the handshake) per user."""

    def _at_capacity(self, user_id: str) -> bool:
        cap = self._max_connections
        return cap is not None and self._open.get(user_id, 0) >= cap

    def _limiter(self) -> RateLimiter | None:
        if self._rate_limit is None:
            return None
        return RateLimiter(self._rate_limit, self._rate_burst, time.monotonic())

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        # Overloaded: refuse first, before any token is verified (issue 13: herds).
        retry_after = self._overload.retry_after()
        if retry_after is not None:
            return overloaded(connection, retry_after)
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
        except RefusedError as error:
            return _unauthorized(connection, f"{error.code}: {error.message}")
        if self._at_capacity(user_id):
            return connection.respond(
                HTTPStatus.TOO_MANY_REQUESTS,
                f"{ErrorCode.TOO_MANY_CONNECTIONS}: user {user_id!r} already has "
                f"{self._max_connections} open connections, the most allowed - close one "
                "and try again\n",
            )
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
        if self._at_capacity(user_id):  # handshakes that raced past process_request
            await connection.close(1008, f"{ErrorCode.TOO_MANY_CONNECTIONS}: close one first")
            return
        self._open[user_id] = self._open.get(user_id, 0) + 1
        outbox = _Outbox(connection)
        session = Session(user_id)
        self._outboxes.open(session, outbox)
        self._dispatcher.connect(session)
        writer = asyncio.create_task(outbox.run())
        limiter = self._limiter()
        try:
            async for data in connection:
                verdict = Verdict.ACCEPT if limiter is None else limiter.admit(time.monotonic())
                if verdict is Verdict.ACCEPT:
                    close = await self._dispatcher.receive(session, data)
                elif verdict is Verdict.REFUSE:
                    assert limiter is not None
                    self._dispatcher.reply(session, _rate_limited(peek_request_id(data), limiter))
                    continue
                else:
                    close = (1008, "request flood: too many requests refused as rate_limited")
                if close is not None:
                    code, reason = close
                    logger.info("closing the connection of %r: %d %s", user_id, code, reason)
                    await self._dispatcher.settled(session)  # the replies owed go first
                    await _close(connection, code, reason)
                    break
        except ConnectionClosed:
            pass
        finally:
            remaining = self._open[user_id] - 1
            if remaining:
                self._open[user_id] = remaining
            else:
                del self._open[user_id]
            self._dispatcher.disconnect(session)
            self._outboxes.close(session)
            writer.cancel()
            await asyncio.wait([writer])


async def _close(connection: ServerConnection, code: int, reason: str) -> None:
    """Close with ``code``, reading (and dropping) what the client still sends meanwhile.

    A client that sent many frames at once fills the connection's incoming queue,
    which stops ``websockets`` reading the socket; its answer to our close frame
    would then never be read, and the close would wait for its time-out.
    """
    closing = asyncio.create_task(connection.close(code, reason))
    with suppress(ConnectionClosed):
        async for _ in connection:
            pass
    await closing


def _rate_limited(request_id: int | None, limiter: RateLimiter) -> str:
    return encode_error(
        request_id,
        ErrorCode.RATE_LIMITED,
        f"too many requests: at most {limiter.rate:g} per second in bursts of "
        f"{limiter.burst}; this request was not processed - retry in "
        f"{limiter.retry_after():.2f} s",
    )


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
    membership_ttl: float = MEMBERSHIP_TTL,
    max_resume_events: int = MAX_RESUME_EVENTS,
    keep_events: int = DEFAULT_KEEP_EVENTS,
    rate_limit: float | None = DEFAULT_RATE,
    rate_burst: int = DEFAULT_BURST,
    handshake_timeout: float | None = HANDSHAKE_TIMEOUT,
    max_connections_per_user: int | None = MAX_CONNECTIONS_PER_USER,
    durable: bool = True,
    busy_timeout: float = BUSY_TIMEOUT,
    members_amount_interval: float = MEMBERS_AMOUNT_INTERVAL,
    reuse_port: bool = False,
) -> AsyncIterator[ChatServer]:
    """Run the reference chat server until the block exits.

    ``port`` 0 binds a free port (read it from ``.port``). ``db`` is an SQLite
    file (created if needed, WAL mode) or ``":memory:"``, or a ``postgresql://``
    URL: a PostgreSQL database that any number of server processes share (the
    extra ``chats_store[postgresql]``; the server creates and migrates its
    tables). ``secret`` (at least
    32 bytes; default: the ``CHATS_STORE_SECRET`` environment variable) signs and
    verifies every token. ``clock`` (epoch seconds) and ``seconds_per_minute``
    (the length of a moderation "minute") are there for tests.

    Resumable memberships: ``membership_ttl`` is how long the membership
    credential of a join or resume reply is valid (seconds, 7 days);
    ``max_resume_events`` the most events a resume reply carries before it sends a
    snapshot instead (1,000); ``keep_events`` how many events the log keeps per
    chat, at least (10,000).

    Protection: ``rate_limit`` requests per second per connection (20; None: no
    limit) in bursts of ``rate_burst`` (200); ``handshake_timeout`` seconds to
    complete the WebSocket handshake (5; None: no limit);
    ``max_connections_per_user`` (10; None: no limit).

    Storage: with ``durable`` (the default) a request is acknowledged, and its
    events pushed, only once it is on stable storage (SQLite ``synchronous=FULL``;
    the requests that arrive together share one commit); ``durable=False`` acks
    before the fsync (faster; a power loss may undo acknowledged requests); on
    PostgreSQL that is ``synchronous_commit`` on or off. Another process holding
    the database's write lock (on PostgreSQL: a lock of the chat) delays requests
    by up to ``busy_timeout`` seconds (10), then they are answered ``server_busy``.
    ``members_amount_interval``: in a chat with many members online, its members
    amount is pushed at most once per that many seconds (1).

    ``reuse_port``: bind with ``SO_REUSEPORT``, so that several server processes
    listen on one port and the kernel spreads connections over them (the workers
    of ``chats-store serve --workers``, on one PostgreSQL database).

    Raises ``ValueError`` for a missing or short secret or a bad setting.
    """
    key = _resolve_secret(secret)
    if rate_limit is not None:
        RateLimiter(rate_limit, rate_burst, 0.0)  # checks the values
    if handshake_timeout is not None and not handshake_timeout > 0:
        raise ValueError(f"handshake_timeout must be positive, not {handshake_timeout!r}")
    if max_connections_per_user is not None and max_connections_per_user < 1:
        raise ValueError(
            f"max_connections_per_user must be 1 or more, not {max_connections_per_user!r}"
        )
    database = open_storage(db, keep_events=keep_events, durable=durable, busy_timeout=busy_timeout)
    outboxes = _Outboxes()
    worker = CoreWorker(asyncio.get_running_loop().call_soon_threadsafe)

    fanout: Fanout | None = None

    def publish(pushes: tuple[Push, ...]) -> None:
        if fanout is not None:
            fanout.published(pushes)  # in order with what other processes committed
        else:
            dispatcher.publish(pushes)

    try:
        service = ChatService(
            database,
            key,
            clock=clock,
            schedule=worker.schedule,
            publish=publish,
            seconds_per_minute=seconds_per_minute,
            membership_ttl=membership_ttl,
            max_resume_events=max_resume_events,
            members_amount_interval=members_amount_interval,
        )
    except BaseException:
        database.close()
        raise
    dispatcher = Dispatcher(worker, service, outboxes.send)
    overload = Overload(worker)
    listener: Listener | None = None
    if isinstance(database, ChatDatabase):
        worker.start(service)
    else:  # PostgreSQL: other processes may share it
        fanout = Fanout(service, database, dispatcher.publish)
        worker.start(fanout)
        assert isinstance(db, str)
        listener = Listener(db, worker.call, fanout)
        listener.start()
    try:
        gateway = _Gateway(
            dispatcher,
            overload,
            outboxes,
            key,
            clock,
            rate_limit=rate_limit,
            rate_burst=rate_burst,
            max_connections_per_user=max_connections_per_user,
        )
        async with serve(
            gateway.handle,
            host,
            port,
            process_request=gateway.process_request,
            select_subprotocol=gateway.select_subprotocol,
            subprotocols=[Subprotocol(PROTOCOL_VERSION)],
            max_size=MAX_FRAME_SIZE,
            open_timeout=handshake_timeout,
            ping_interval=ping_interval,
            server_header="chats_store",
            reuse_port=reuse_port,
        ) as ws_server:
            bound = ws_server.sockets[0].getsockname()
            logger.info("chats_store server listening on %s:%d", bound[0], bound[1])
            yield ChatServer(host, int(bound[1]), key, clock)
    finally:
        if listener is not None:
            listener.stop()
            await asyncio.to_thread(listener.join)
        worker.stop()  # closes the service once what was submitted is done
        await asyncio.to_thread(worker.join)
        database.close()
