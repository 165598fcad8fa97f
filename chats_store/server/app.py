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
session token in the ``Authorization: Bearer <token>`` header or, from a browser, in
the subprotocol ``chats_store.bearer.<token>`` (HTTP 401 with a plain-text reason
otherwise); a browser's page must be of an origin the server allows (HTTP 403). It
sends a ``hello`` frame first. Each connection then gets its own outbox
(:mod:`chats_store.server.outbox`): frames are queued without waiting and written
in order by one writer task, so a slow client delays nobody else, and what it
leaves unread is bounded in frames, bytes and age.

Protection against abusive clients, each configurable in :func:`run_server`:

* who may connect, how many at once and how fast, with what headers: the gate
  (:mod:`chats_store.server.gate`), with the settings of :class:`ServerLimits`,
  ``handshake_timeout`` (5 s to complete the handshake) and
  ``max_connections_per_user`` (10);
* each user may send ``rate_limit`` requests per second (20), over all its
  connections, with bursts of ``rate_burst`` (200); a large reply costs more
  (:mod:`chats_store.server.limits`): beyond that a request gets an ``error`` reply
  ``rate_limited`` without being processed, and a connection that keeps flooding
  is closed with 1008;
* a frame may be at most ``MAX_FRAME_SIZE`` bytes (closed with 1009); every frame
  the server sends is at most ``MAX_SERVER_FRAME_SIZE``;
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
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager, suppress

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from chats_store import __version__
from chats_store.errors import ErrorCode
from chats_store.protocol import (
    MAX_FRAME_SIZE,
    PROTOCOL_VERSION,
    encode_error,
    encode_hello,
    peek_request_id,
)
from chats_store.server.compression import Compression
from chats_store.server.database import ChatDatabase
from chats_store.server.dispatch import Dispatcher
from chats_store.server.engine import open_storage
from chats_store.server.fanout import Fanout, Listener
from chats_store.server.gate import Gate, GuardedConnection, as_refusal, redact_headers
from chats_store.server.limits import (
    DEFAULT_BURST,
    DEFAULT_RATE,
    MAX_QUEUED_FRAMES,
    Buckets,
    RateLimiter,
    ServerLimits,
    Verdict,
)
from chats_store.server.outbox import Outboxes
from chats_store.server.overload import Overload, overloaded
from chats_store.server.rows import BUSY_TIMEOUT, DEFAULT_KEEP_EVENTS
from chats_store.server.service import (
    MAX_RESTRICTIONS_PER_CHAT,
    MAX_RESUME_BYTES,
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
)
from chats_store.server.wire import WireFrame
from chats_store.server.worker import CoreWorker

__all__ = [
    "HANDSHAKE_TIMEOUT",
    "MAX_CONNECTIONS_PER_USER",
    "MAX_QUEUED_FRAMES",
    "SECRET_ENV",
    "ChatServer",
    "ServerLimits",
    "run_server",
]

logger = logging.getLogger("chats_store.server")

SECRET_ENV = "CHATS_STORE_SECRET"
HANDSHAKE_TIMEOUT = 5.0
"""Seconds a connection has to complete the WebSocket handshake (default)."""
MAX_CONNECTIONS_PER_USER = 10
"""Connections one user may hold at once (default)."""

_HELLO = WireFrame(encode_hello(f"chats_store/{__version__}"))


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


class _Gateway:
    """The ``websockets`` callbacks: the handshake (through the gate) and each
    connection's loop: requests in, through the user's rate limit, to the core."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        overload: Overload,
        outboxes: Outboxes,
        gate: Gate,
        *,
        rate_limit: float | None,
        rate_burst: int,
    ) -> None:
        self._dispatcher = dispatcher
        self._overload = overload
        self._outboxes = outboxes
        self._gate = gate
        self._requests = None if rate_limit is None else Buckets(rate_limit, rate_burst)
        """Each user's request bucket, shared by its connections."""

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        # Overloaded: refuse first, before any token is verified (a herd of
        # reconnections comes back spread out).
        retry_after = self._overload.retry_after()
        if retry_after is not None:
            return overloaded(retry_after)
        assert isinstance(connection, GuardedConnection)
        return self._gate.admit(connection, connection.address, request)

    async def handle(self, connection: ServerConnection) -> None:
        assert isinstance(connection, GuardedConnection)
        user_id = self._gate.user_of(connection)
        if user_id is None:  # process_request always sets it; be safe anyway
            await connection.close(1008, "not authenticated")
            return
        address = connection.address
        refused = self._gate.open(user_id, address)
        if refused is not None:  # handshakes that raced past process_request
            await connection.close(1008, refused.encode()[:120].decode("utf-8", "ignore"))
            return
        session = Session(user_id)
        outbox = self._outboxes.open(session, connection)
        outbox.send(_HELLO)  # first, before any reply or event
        limiter = self._limiter(user_id)
        self._dispatcher.connect(session, limiter)
        writer = asyncio.create_task(outbox.run())
        try:
            async for data in connection:
                verdict = Verdict.ACCEPT if limiter is None else limiter.admit(time.monotonic())
                if verdict is Verdict.ACCEPT:
                    close = await self._dispatcher.receive(session, data)
                    await asyncio.sleep(0)  # the other connections' turn: one request each
                elif verdict is Verdict.REFUSE:
                    assert limiter is not None
                    self._dispatcher.reply(session, _rate_limited(peek_request_id(data), limiter))
                    continue
                else:
                    close = (1008, "request flood: too many requests refused as rate_limited")
                if close is not None:
                    code, reason = close
                    logger.info("closing the connection of %r: %d %s", user_id, code, reason)
                    await self._dispatcher.settled(session)  # the replies owed go first,
                    await outbox.flushed()  # and are handed to the connection before the close
                    connection.release_close()  # one held for a later frame over the limit
                    await _close(connection, code, reason)
                    break
        except ConnectionClosed:
            if connection.holds_close:  # a frame over the limit: answer what came before it
                await self._dispatcher.settled(session)
                await outbox.flushed()
        finally:
            connection.release_close()
            self._gate.closed(user_id, address)
            if self._requests is not None:
                self._requests.release(user_id)
            self._dispatcher.disconnect(session)
            self._outboxes.close(session)
            writer.cancel()
            await asyncio.wait([writer])

    def _limiter(self, user_id: str) -> RateLimiter | None:
        """This connection's limiter over ``user_id``'s shared bucket (held until released)."""
        if self._requests is None:
            return None
        now = time.monotonic()
        bucket = self._requests.hold(user_id, now)
        return RateLimiter(bucket.rate, bucket.burst, now, bucket=bucket)


def _refusal_of_websockets(
    connection: ServerConnection, request: Request, response: Response
) -> Response | None:
    return as_refusal(response)


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
    max_resume_bytes: int = MAX_RESUME_BYTES,
    keep_events: int = DEFAULT_KEEP_EVENTS,
    rate_limit: float | None = DEFAULT_RATE,
    rate_burst: int = DEFAULT_BURST,
    handshake_timeout: float | None = HANDSHAKE_TIMEOUT,
    max_connections_per_user: int | None = MAX_CONNECTIONS_PER_USER,
    durable: bool = True,
    busy_timeout: float = BUSY_TIMEOUT,
    members_amount_interval: float = MEMBERS_AMOUNT_INTERVAL,
    max_restrictions_per_chat: int = MAX_RESTRICTIONS_PER_CHAT,
    origins: Collection[str] = (),
    limits: ServerLimits = ServerLimits(),  # noqa: B008 (frozen: one value for every call)
    compression: Compression | None = Compression(),  # noqa: B008 (frozen, as limits)
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
    snapshot instead (1,000), ``max_resume_bytes`` the most bytes of them (2 MiB);
    ``keep_events`` how many events the log keeps per chat, at least (10,000);
    ``max_restrictions_per_chat`` how many mutes and blocks a chat may hold (10,000).

    Protection: ``rate_limit`` requests per second per user, over all its
    connections (20; None: no limit) in bursts of ``rate_burst`` (200);
    ``handshake_timeout`` seconds to complete the WebSocket handshake (5; None: no
    limit); ``max_connections_per_user`` (10; None: no limit); ``limits``, every
    other bound (connections per address and in all, handshakes, headers, pings,
    unsent frames), :class:`ServerLimits`.

    ``compression``: permessage-deflate for the clients that offer it, on the terms
    of :class:`Compression` (no compression context kept between messages, so an
    idle connection holds no zlib state and a push is compressed once for all its
    recipients; frames under 512 bytes uncompressed); None: never negotiated.

    Storage: with ``durable`` (the default) a request is acknowledged, and its
    events pushed, only once it is on stable storage (SQLite ``synchronous=FULL``;
    the requests that arrive together share one commit); ``durable=False`` acks
    before the fsync (faster; a power loss may undo acknowledged requests); on
    PostgreSQL that is ``synchronous_commit`` on or off. Another process holding
    the database's write lock (on PostgreSQL: a lock of the chat) delays requests
    by up to ``busy_timeout`` seconds (10), then they are answered ``server_busy``.
    ``members_amount_interval``: in a chat with many members online, its members
    amount is pushed at most once per that many seconds (1).

    Browsers: ``origins``, the page origins (``https://chat.example.com``) whose
    scripts may connect; a handshake with any other ``Origin`` header is refused
    (HTTP 403 ``origin_not_allowed``), one without (a program, not a browser) is
    not. A browser authenticates with the subprotocol
    ``chats_store.bearer.<session token>`` (it cannot set ``Authorization``).

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
    outboxes = Outboxes(limits)
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
            max_resume_bytes=max_resume_bytes,
            max_restrictions_per_chat=max_restrictions_per_chat,
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
    watchdog = asyncio.create_task(outboxes.watch())
    try:
        gate = Gate(
            limits,
            key,
            clock,
            max_connections_per_user=max_connections_per_user,
            origins=origins,
        )
        gateway = _Gateway(
            dispatcher, overload, outboxes, gate, rate_limit=rate_limit, rate_burst=rate_burst
        )
        async with serve(
            gateway.handle,
            host,
            port,
            process_request=gateway.process_request,
            process_response=_refusal_of_websockets,
            subprotocols=[Subprotocol(PROTOCOL_VERSION)],  # never a token's subprotocol
            logger=redact_headers(),
            max_size=MAX_FRAME_SIZE,
            open_timeout=handshake_timeout,
            ping_interval=ping_interval,
            server_header="chats_store",
            compression=None,  # permessage-deflate only as the policy negotiates it:
            extensions=None if compression is None else compression.extensions(),
            create_connection=GuardedConnection.for_gate(gate),
            reuse_port=reuse_port,
        ) as ws_server:
            bound = ws_server.sockets[0].getsockname()
            logger.info("chats_store server listening on %s:%d", bound[0], bound[1])
            yield ChatServer(host, int(bound[1]), key, clock)
    finally:
        watchdog.cancel()
        if listener is not None:
            listener.stop()
            await asyncio.to_thread(listener.join)
        worker.stop()  # closes the service once what was submitted is done
        await asyncio.to_thread(worker.join)
        database.close()
