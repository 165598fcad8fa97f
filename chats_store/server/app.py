"""The reference chat server: a ``websockets`` asyncio server around :class:`ChatService`.

This module is the core's frame adapter: it decodes each request frame, hands the
domain request to :meth:`ChatService.handle`, and encodes what comes back, the
reply first, then each push once (the same text queued for every recipient).

:func:`run_server` is an async context manager::

    async with run_server(db="chats.sqlite3", secret=secret) as server:
        print(server.url)            # ws://127.0.0.1:<the port bound>
        ...                          # leaving the block closes every connection

The handshake needs the subprotocol ``chats_store.v1`` (HTTP 400 otherwise) and a
session token in the ``Authorization: Bearer <token>`` header (HTTP 401 with a
plain-text reason otherwise). Each connection then gets its own outbox
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
  the server sends is at most ``MAX_SERVER_FRAME_SIZE``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, NegotiationError
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from chats_store.chats.actions import Failure
from chats_store.chats.commands import ChatReply
from chats_store.errors import ErrorCode, ProtocolError
from chats_store.protocol import (
    MAX_FRAME_SIZE,
    MAX_SERVER_FRAME_SIZE,
    PROTOCOL_VERSION,
    decode_request,
    encode_error,
    encode_reply,
    peek_request_id,
)
from chats_store.server.database import DEFAULT_KEEP_EVENTS, ChatDatabase
from chats_store.server.gate import Gate, GuardedConnection
from chats_store.server.limits import (
    DEFAULT_BURST,
    DEFAULT_RATE,
    MAX_QUEUED_FRAMES,
    Buckets,
    RateLimiter,
    ServerLimits,
    Verdict,
    reply_cost,
)
from chats_store.server.outbox import Outboxes, fits_in_a_frame
from chats_store.server.service import (
    MAX_RESTRICTIONS_PER_CHAT,
    MAX_RESUME_BYTES,
    MAX_RESUME_EVENTS,
    ChatService,
    Session,
    Timer,
)
from chats_store.server.tokens import (
    MEMBERSHIP_TTL,
    check_secret,
    mint_chat_token,
    mint_membership_token,
    mint_session_token,
)

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
        service: ChatService,
        outboxes: Outboxes,
        gate: Gate,
        *,
        rate_limit: float | None,
        rate_burst: int,
    ) -> None:
        self._service = service
        self._outboxes = outboxes
        self._gate = gate
        self._requests = None if rate_limit is None else Buckets(rate_limit, rate_burst)
        """Each user's request bucket, shared by its connections."""

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        assert isinstance(connection, GuardedConnection)
        return self._gate.admit(connection, connection.address, request)

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
        writer = asyncio.create_task(outbox.run())
        limiter = self._limiter(user_id)
        try:
            async for data in connection:
                verdict = Verdict.ACCEPT if limiter is None else limiter.admit(time.monotonic())
                if verdict is Verdict.ACCEPT:
                    close = self.receive(session, data, limiter)
                    await asyncio.sleep(0)  # the other connections' turn: one request each
                elif verdict is Verdict.REFUSE:
                    assert limiter is not None
                    outbox.send(_rate_limited(peek_request_id(data), limiter))
                    continue
                else:
                    close = (1008, "request flood: too many requests refused as rate_limited")
                if close is not None:
                    code, reason = close
                    logger.info("closing the connection of %r: %d %s", user_id, code, reason)
                    await _close(connection, code, reason)
                    break
        except ConnectionClosed:
            pass
        finally:
            self._gate.closed(user_id, address)
            if self._requests is not None:
                self._requests.release(user_id)
            self._service.disconnect(session)
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

    def receive(
        self, session: Session, data: str | bytes, limiter: RateLimiter | None = None
    ) -> tuple[int, str] | None:
        """Handle one frame of ``session``: its reply, then the pushes it caused.

        Returns ``(close code, reason)`` when the frame cannot be answered and the
        connection must be closed (binary 1003, not JSON 1007, too large 1009);
        every other frame gets exactly one reply, which costs ``limiter`` in
        proportion to its size.
        """
        try:
            request_id, request = decode_request(data)
        except ProtocolError as error:
            if error.close_code is not None:
                reason = str(error).encode("utf-8")[:120].decode("utf-8", "ignore")
                return error.close_code, reason
            self._outboxes.send(session, encode_error(error.request_id, error.code, str(error)))
            return None
        answer = self._service.handle(session, request)
        reply = _reply_text(request_id, answer.reply, session)
        if limiter is not None:
            limiter.charge(reply_cost(len(reply)))
        self._outboxes.send(session, reply)
        self._outboxes.publish(answer.pushes)
        return None


def _reply_text(request_id: int, reply: ChatReply | Failure, session: Session) -> str:
    if isinstance(reply, Failure):
        return encode_error(request_id, reply.code, reply.detail)
    try:
        text = encode_reply(request_id, reply)
    except Exception:
        logger.exception("the reply to request %d of %r failed", request_id, session.user_id)
        return encode_error(
            request_id, ErrorCode.INTERNAL_ERROR, "the server failed to encode the reply"
        )
    if not fits_in_a_frame(text):  # the core keeps every reply under the maximum
        logger.error(
            "the reply to request %d of %r is %d bytes, over the frame maximum",
            request_id,
            session.user_id,
            len(text),
        )
        return encode_error(
            request_id,
            ErrorCode.INTERNAL_ERROR,
            f"the reply would be larger than the frame maximum of {MAX_SERVER_FRAME_SIZE} bytes",
        )
    return text


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
    max_restrictions_per_chat: int = MAX_RESTRICTIONS_PER_CHAT,
    limits: ServerLimits = ServerLimits(),  # noqa: B008 (frozen: one value for every call)
) -> AsyncIterator[ChatServer]:
    """Run the reference chat server until the block exits.

    ``port`` 0 binds a free port (read it from ``.port``). ``db`` is an SQLite
    file (created if needed, WAL mode) or ``":memory:"``. ``secret`` (at least
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
    loop = asyncio.get_running_loop()

    def schedule(delay: float, callback: Callable[[], None]) -> Timer:
        return loop.call_later(delay, callback)

    database = ChatDatabase(db, keep_events=keep_events)
    outboxes = Outboxes(limits)
    try:
        service = ChatService(
            database,
            key,
            clock=clock,
            schedule=schedule,
            publish=outboxes.publish,
            seconds_per_minute=seconds_per_minute,
            membership_ttl=membership_ttl,
            max_resume_events=max_resume_events,
            max_resume_bytes=max_resume_bytes,
            max_restrictions_per_chat=max_restrictions_per_chat,
        )
    except BaseException:
        database.close()
        raise
    watchdog = asyncio.create_task(outboxes.watch())
    try:
        service.start()
        gate = Gate(limits, key, clock, max_connections_per_user=max_connections_per_user)
        gateway = _Gateway(service, outboxes, gate, rate_limit=rate_limit, rate_burst=rate_burst)
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
            create_connection=GuardedConnection.for_gate(gate),
        ) as ws_server:
            bound = ws_server.sockets[0].getsockname()
            logger.info("chats_store server listening on %s:%d", bound[0], bound[1])
            yield ChatServer(host, int(bound[1]), key, clock)
    finally:
        watchdog.cancel()
        service.close()
        database.close()
