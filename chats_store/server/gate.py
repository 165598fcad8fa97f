"""The gate: who may open a connection, how many at once, how fast, with what headers.

:class:`Gate` holds the counts and the buckets; :class:`GuardedConnection` (the
server's ``websockets`` connection class) reports to it and guards what
``websockets`` does not: the bytes of a handshake request, incoming pings, the
write buffer. In the order a client meets them:

1. **TCP accept.** At most ``max_handshakes`` handshakes in progress in all and
   ``max_handshakes_per_ip`` from one network address (an IPv6 address counts by
   its /64): past them the connection is answered **HTTP 503** or **429** at once
   and closed. A handshake is in progress from the TCP accept until its request has
   been read (``run_server``'s ``handshake_timeout`` bounds how long that takes).
2. **The request.** At most ``max_header_bytes`` bytes of request line and headers
   (counted as they arrive: more, and the connection is answered **HTTP 431** and
   closed before they are parsed) and ``max_headers`` headers (**431**).
3. **The handshake rate.** ``handshake_rate_per_ip`` handshakes per second from one
   address (bursts of ``handshake_burst_per_ip``), checked before the token, then
   ``handshake_rate_per_user`` for the token's user: **HTTP 429**
   ``too_many_handshakes``.
   Before the rate, the request's **Origin** (a browser's page) must be one of
   ``origins`` (**HTTP 403** ``origin_not_allowed``; a request without ``Origin``,
   from a program, passes), and the client must offer the subprotocol
   ``chats_store.v1`` (**HTTP 400** ``unsupported_protocol``).
4. **The token**: exactly one, either an ``Authorization: Bearer <session token>``
   header or, for browsers (whose WebSocket API cannot set headers), a subprotocol
   ``chats_store.bearer.<session token>`` offered next to ``chats_store.v1`` (two
   are **HTTP 400**), a valid session token whose user id is 1 to 128 characters
   (**HTTP 401** otherwise). The server selects ``chats_store.v1``, never the
   token's subprotocol, and :func:`redact_headers` keeps the token out of
   ``websockets``' debug log of the request.
5. **Open connections**: ``max_connections_per_user`` of one user and
   ``max_connections_per_ip`` of one address (**HTTP 429**
   ``too_many_connections``), ``max_connections`` in all (**HTTP 503**
   ``server_busy``).

Every refusal is :func:`refusal`: a one-line plain-text body
``<code>: <what happened and what to do>``, the code an
:class:`~chats_store.errors.ErrorCode` value; every 429 and 503 carries
``Retry-After`` (whole seconds). Anything else that refuses a handshake (an
overloaded server, say) answers with :func:`refusal` too, and :func:`as_refusal`
rewrites ``websockets``' own rejections (a request that is no WebSocket handshake:
``invalid_handshake``) the same way.

Once open, a connection may send ``ping_rate`` pings per second (bursts of
``ping_burst``): past them it is closed with **1008**, and nothing more it sends is
read (it is discarded until the client closes too, for the close timeout at most).
Its transport may hold at
most ``max_write_buffer`` bytes unwritten, checked after every read (a peer
that sends pings and never reads fills it with pongs): past it the connection is
dropped. A frame over ``max_size`` makes ``websockets`` fail the connection (1009)
as soon as its header is read: the close is held (:meth:`GuardedConnection.send_data`)
until the gateway has answered the requests read before it, so it does not overtake
their replies (unless that frame continues a fragmented message, which cannot be
ended: then the close goes at once).
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import ipaddress
import logging
import math
import re
import time
import weakref
from collections.abc import Callable, Collection, Sequence
from http import HTTPStatus
from typing import Any, ClassVar

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosedError, InvalidHeader, PayloadTooBig
from websockets.frames import DATA_OPCODES, CloseCode, Frame, Opcode
from websockets.headers import parse_subprotocol
from websockets.http11 import Request, Response
from websockets.protocol import State

from chats_store.errors import ErrorCode
from chats_store.protocol import BEARER_SUBPROTOCOL_PREFIX, PROTOCOL_VERSION
from chats_store.server.compression import NegotiatedDeflate
from chats_store.server.limits import Buckets, ServerLimits, TokenBucket
from chats_store.server.refusal import RefusedError
from chats_store.server.tokens import verify_session_token
from chats_store.server.wire import WireFrame
from chats_store.socket_reads import read_in_heap_sized_chunks

__all__ = [
    "Gate",
    "GuardedConnection",
    "address_key",
    "as_refusal",
    "check_origins",
    "redact_headers",
    "refusal",
    "write_buffer_over",
]

logger = logging.getLogger("chats_store.server")


def refusal(
    status: HTTPStatus, code: str, message: str, retry_after: float | None = None
) -> Response:
    """The HTTP answer refusing a handshake: ``<code>: <message>`` as plain text.

    ``retry_after``: seconds after which trying again may succeed (``Retry-After``,
    rounded up to whole seconds, at least 1); required for 429 and 503.
    """
    busy = status in (HTTPStatus.TOO_MANY_REQUESTS, HTTPStatus.SERVICE_UNAVAILABLE)
    if busy and retry_after is None:
        raise ValueError(f"a {status.value} answer needs retry_after")
    body = f"{code}: {message}\n".encode()
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(body))),
            ("Content-Type", "text/plain; charset=utf-8"),
        ]
    )
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    if status is HTTPStatus.UNAUTHORIZED:
        headers["WWW-Authenticate"] = 'Bearer realm="chats_store"'
    return Response(status.value, status.phrase, headers, body)


_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[^/?#\s]+")


def check_origins(origins: Collection[str]) -> frozenset[str]:
    """The allow-list of browser Origins, as a browser writes them (lower case).

    Each is ``scheme://host`` or ``scheme://host:port`` (no path, no trailing slash),
    or ``null`` (a page from a ``file:`` URL or a sandboxed frame); ``ValueError``
    otherwise.
    """
    if isinstance(origins, str):
        raise ValueError(f"origins must be a collection of origins, not the string {origins!r}")
    allowed = set()
    for origin in origins:
        normal = origin.strip().lower()
        if normal != "null" and not _ORIGIN.fullmatch(normal):
            raise ValueError(
                f"{origin!r} is not an origin: write it as a browser sends it, "
                "scheme://host[:port] with no path (e.g. https://chat.example.com), or null"
            )
        allowed.add(normal)
    return frozenset(allowed)


def _redacted(name: str, value: str) -> str:
    """The value of header ``name`` with any session token in it hidden."""
    lowered = name.lower()
    if lowered == "authorization":
        scheme, space, _ = value.partition(" ")
        return f"{scheme} [redacted]" if space else "[redacted]"  # no scheme: all of it
    if lowered == "sec-websocket-protocol":
        return ", ".join(
            f"{BEARER_SUBPROTOCOL_PREFIX}[redacted]"
            if item.strip().startswith(BEARER_SUBPROTOCOL_PREFIX)
            else item.strip()
            for item in value.split(",")
        )
    return value


class _RedactHeaders(logging.Filter):
    """Rewrites ``websockets``' debug lines of request headers (``< Name: value``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.msg == "< %s: %s" and isinstance(args, tuple) and len(args) == 2:
            name, value = args
            record.args = (name, _redacted(str(name), str(value)))
        return True


def redact_headers(name: str = "websockets.server.chats_store") -> logging.Logger:
    """The logger to give ``websockets.serve``: its debug log of each handshake
    request shows no session token (``Authorization`` and the bearer subprotocol)."""
    chosen = logging.getLogger(name)
    if not any(isinstance(f, _RedactHeaders) for f in chosen.filters):
        chosen.addFilter(_RedactHeaders())
    return chosen


_REFUSAL_BODY = re.compile(rb"[a-z][a-z0-9_]*: ")


def as_refusal(response: Response) -> Response | None:
    """``websockets``' own rejection of a handshake (not a WebSocket request, a bad
    ``Sec-WebSocket-Key``, a failing hook) as a :func:`refusal`; None for a
    :func:`refusal` already, or an accepted handshake."""
    if response.status_code < 400 or _REFUSAL_BODY.match(bytes(response.body or b"")):
        return None
    status = HTTPStatus(response.status_code)
    said = bytes(response.body or b"").decode("utf-8", "replace").strip().replace("\n", " ")
    if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        return refusal(status, ErrorCode.INTERNAL_ERROR, said or status.phrase, retry_after=1)
    return refusal(
        status,
        ErrorCode.INVALID_HANDSHAKE,
        f"not a valid WebSocket handshake ({said or status.phrase})",
        retry_after=1 if status is HTTPStatus.TOO_MANY_REQUESTS else None,
    )


def write_buffer_over(connection: ServerConnection, limit: int | None) -> bool:
    """Whether the connection's transport holds more than ``limit`` bytes unwritten."""
    return limit is not None and connection.transport.get_write_buffer_size() > limit


def address_key(peername: Any) -> str:
    """The network address a connection counts under: its IP, or the /64 of an IPv6 one."""
    host = peername[0] if isinstance(peername, tuple) and peername else None
    if not isinstance(host, str):
        return "local"  # a Unix socket
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)


class _Counts:
    """How many of something each key has, and in all."""

    def __init__(self) -> None:
        self.total = 0
        self._by_key: dict[str, int] = {}

    def of(self, key: str) -> int:
        return self._by_key.get(key, 0)

    def add(self, key: str) -> None:
        self.total += 1
        self._by_key[key] = self._by_key.get(key, 0) + 1

    def remove(self, key: str) -> None:
        self.total -= 1
        remaining = self._by_key[key] - 1
        if remaining:
            self._by_key[key] = remaining
        else:
            del self._by_key[key]


def _over(limit: int | None, count: int) -> bool:
    return limit is not None and count >= limit


class Gate:
    """Admission of connections (see the module): counts, buckets and the token check."""

    def __init__(
        self,
        limits: ServerLimits,
        secret: bytes,
        clock: Callable[[], float],
        *,
        max_connections_per_user: int | None,
        origins: Collection[str] = (),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self._origins = check_origins(origins)
        self._secret = secret
        self._clock = clock
        self._monotonic = monotonic
        self._max_connections_per_user = max_connections_per_user
        self._handshakes = _Counts()
        self._by_ip = _Counts()
        self._by_user = _Counts()
        self._handshakes_by_ip = _bucket_set(
            limits.handshake_rate_per_ip, limits.handshake_burst_per_ip
        )
        self._handshakes_by_user = _bucket_set(
            limits.handshake_rate_per_user, limits.handshake_burst_per_user
        )
        self._users: weakref.WeakKeyDictionary[ServerConnection, str] = weakref.WeakKeyDictionary()

    @property
    def open_connections(self) -> int:
        return self._by_ip.total

    @property
    def handshakes_in_progress(self) -> int:
        return self._handshakes.total

    # 1. TCP accept -------------------------------------------------------------------------

    def handshake_started(self, address: str) -> Response | None:
        """A TCP connection was accepted: its refusal, or None (then it is counted)."""
        limits = self.limits
        if _over(limits.max_handshakes, self._handshakes.total):
            return refusal(
                HTTPStatus.SERVICE_UNAVAILABLE,
                ErrorCode.SERVER_BUSY,
                f"the server has {limits.max_handshakes} handshakes in progress, the most it "
                "takes - try again in a moment",
                retry_after=1,
            )
        if _over(limits.max_handshakes_per_ip, self._handshakes.of(address)):
            return refusal(
                HTTPStatus.TOO_MANY_REQUESTS,
                ErrorCode.TOO_MANY_HANDSHAKES,
                f"your address has {limits.max_handshakes_per_ip} handshakes in progress, the "
                "most allowed - finish them first",
                retry_after=1,
            )
        self._handshakes.add(address)
        return None

    def handshake_ended(self, address: str) -> None:
        """The request of a counted handshake was read (or its connection was lost)."""
        self._handshakes.remove(address)

    # 2-5. The request ------------------------------------------------------------------------

    def admit(
        self, connection: ServerConnection, address: str, request: Request
    ) -> Response | None:
        """The refusal of a handshake request, or None: then :meth:`user_of` knows who it is."""
        limits = self.limits
        headers = sum(1 for _ in request.headers.raw_items())
        if limits.max_headers is not None and headers > limits.max_headers:
            return refusal(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                ErrorCode.HEADERS_TOO_LARGE,
                f"the request has {headers} headers; the most is {limits.max_headers}",
            )
        origin = request.headers.get("Origin")
        if origin is not None and origin.lower() not in self._origins:
            return refusal(
                HTTPStatus.FORBIDDEN,
                ErrorCode.ORIGIN_NOT_ALLOWED,
                f"pages from {origin[:100]!r} may not connect to this server: its operator "
                "lists the origins allowed (run_server(origins=...), chats-store serve --origin)",
            )
        offered = _offered_subprotocols(request)
        if PROTOCOL_VERSION not in offered:
            return refusal(
                HTTPStatus.BAD_REQUEST,
                ErrorCode.UNSUPPORTED_PROTOCOL,
                f"this server speaks the subprotocol {PROTOCOL_VERSION!r}; offer it in "
                "Sec-WebSocket-Protocol",
            )
        now = self._monotonic()
        wait = self._take(self._handshakes_by_ip, address, now)
        if wait is not None:
            return self._too_many_handshakes("your address", limits.handshake_rate_per_ip, wait)
        user_id = self._authenticate(request, offered)
        if isinstance(user_id, Response):
            return user_id
        wait = self._take(self._handshakes_by_user, user_id, now)
        if wait is not None:
            return self._too_many_handshakes(
                f"user {user_id!r}", limits.handshake_rate_per_user, wait
            )
        crowded = self._crowded(user_id, address)
        if crowded is not None:
            return crowded
        self._users[connection] = user_id
        return None

    def user_of(self, connection: ServerConnection) -> str | None:
        """The user an admitted connection authenticated as (once: it is forgotten)."""
        return self._users.pop(connection, None)

    @staticmethod
    def _take(buckets: Buckets | None, key: str, now: float) -> float | None:
        return None if buckets is None else buckets.take(key, now)

    @staticmethod
    def _too_many_handshakes(who: str, rate: float | None, wait: float) -> Response:
        return refusal(
            HTTPStatus.TOO_MANY_REQUESTS,
            ErrorCode.TOO_MANY_HANDSHAKES,
            f"{who} opened connections faster than {rate:g} per second - wait and retry "
            "with a growing delay",
            retry_after=wait,
        )

    def _authenticate(self, request: Request, offered: list[str]) -> str | Response:
        """The user of the one session token the request carries, or the refusal."""
        headers = request.headers.get_all("Authorization")
        bearers = [p for p in offered if p.startswith(BEARER_SUBPROTOCOL_PREFIX)]
        how = (
            "send the header 'Authorization: Bearer <session token>', or (from a browser) "
            f"offer the subprotocol '{BEARER_SUBPROTOCOL_PREFIX}<session token>' next to "
            f"'{PROTOCOL_VERSION}'"
        )
        if not headers and not bearers:
            return refusal(
                HTTPStatus.UNAUTHORIZED, ErrorCode.INVALID_TOKEN, f"missing session token: {how}"
            )
        if len(headers) + len(bearers) > 1:
            return refusal(
                HTTPStatus.BAD_REQUEST,
                ErrorCode.INVALID_TOKEN,
                f"the request has {len(headers)} Authorization headers and {len(bearers)} "
                f"bearer subprotocols: send exactly one session token ({how})",
            )
        if headers:
            scheme, _, token = headers[0].partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return refusal(
                    HTTPStatus.UNAUTHORIZED,
                    ErrorCode.INVALID_TOKEN,
                    "the Authorization header must be 'Bearer <session token>'",
                )
        else:
            token = bearers[0].removeprefix(BEARER_SUBPROTOCOL_PREFIX)
        try:
            return verify_session_token(self._secret, token.strip(), self._clock)
        except RefusedError as error:
            return refusal(HTTPStatus.UNAUTHORIZED, error.code, error.message)

    def _crowded(self, user_id: str, address: str) -> Response | None:
        """The refusal of one more open connection of ``user_id`` from ``address``."""
        for limit, count, who in (
            (self._max_connections_per_user, self._by_user.of(user_id), f"user {user_id!r}"),
            (self.limits.max_connections_per_ip, self._by_ip.of(address), "your address"),
        ):
            if _over(limit, count):
                return refusal(
                    HTTPStatus.TOO_MANY_REQUESTS,
                    ErrorCode.TOO_MANY_CONNECTIONS,
                    f"{who} already has {limit} open connections, the most allowed - "
                    "close one and try again",
                    retry_after=1,
                )
        if _over(self.limits.max_connections, self._by_ip.total):
            return refusal(
                HTTPStatus.SERVICE_UNAVAILABLE,
                ErrorCode.SERVER_BUSY,
                f"the server holds {self.limits.max_connections} connections, the most it "
                "takes - try again later",
                retry_after=5,
            )
        return None

    # Open connections -----------------------------------------------------------------------

    def open(self, user_id: str, address: str) -> str | None:
        """Count an open connection; the reason to close it instead, when handshakes
        that raced past :meth:`admit` together went over a cap."""
        refused = self._crowded(user_id, address)
        if refused is not None:
            return refused.body.decode().strip()
        self._by_user.add(user_id)
        self._by_ip.add(address)
        return None

    def closed(self, user_id: str, address: str) -> None:
        self._by_user.remove(user_id)
        self._by_ip.remove(address)


def _offered_subprotocols(request: Request) -> list[str]:
    """The subprotocols the client offers (none when the header cannot be read)."""
    offered: list[str] = []
    try:
        for header in request.headers.get_all("Sec-WebSocket-Protocol"):
            offered.extend(parse_subprotocol(header))
    except InvalidHeader:
        return []
    return offered


def _bucket_set(rate: float | None, burst: int) -> Buckets | None:
    return None if rate is None else Buckets(rate, burst)


class GuardedConnection(ServerConnection):
    """The server's connection class: reports to the :class:`Gate` and guards the
    request's bytes, incoming pings and the write buffer (see the module).

    Made per server by :meth:`for_gate` (``websockets`` creates connections from a class).
    """

    gate: ClassVar[Gate]

    address = "local"
    """The network address the connection counts under (:func:`address_key`)."""

    on_pong: Callable[[bytes], None] | None = None
    """Called with the payload of each pong received (the outbox's confirmations)."""

    @classmethod
    def for_gate(cls, gate: Gate) -> type[GuardedConnection]:
        return type("GuardedConnection", (cls,), {"gate": gate})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._counted = False
        self._request_bytes = 0
        limits = self.gate.limits
        self._pings: TokenBucket | None = (
            None
            if limits.ping_rate is None
            else TokenBucket(limits.ping_rate, limits.ping_burst, time.monotonic())
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        read_in_heap_sized_chunks(transport)
        self.address = address_key(transport.get_extra_info("peername"))
        refused = self.gate.handshake_started(self.address)
        if refused is None:
            self._counted = True
        else:
            self._answer_and_close(refused)

    def _answer_and_close(self, response: Response) -> None:
        """Answer before the request was parsed (the handshake never reaches websockets)."""
        logger.info("refused a connection from %s: %s", self.address, response.body[:80])
        self.transport.write(response.serialize())
        self.transport.close()

    def _end_handshake(self) -> None:
        if self._counted:
            self._counted = False
            self.gate.handshake_ended(self.address)

    def data_received(self, data: bytes) -> None:
        if self.request is None:
            self._request_bytes += len(data)
            limit = self.gate.limits.max_header_bytes
            if limit is not None and self._request_bytes > limit:
                self._end_handshake()
                self._answer_and_close(
                    refusal(
                        HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                        ErrorCode.HEADERS_TOO_LARGE,
                        f"the request line and headers are over {limit} bytes",
                    )
                )
                return
        super().data_received(data)
        if self._held_close is not None and self._messages_before_close is None:
            if self._partial:  # the frame over the limit continues a message: it cannot end
                self.release_close()
            else:
                self._end_messages()
        if write_buffer_over(self, self.gate.limits.max_write_buffer):
            logger.info("dropping a connection from %s: its write buffer is full", self.address)
            self.transport.abort()

    def process_event(self, event: Any) -> None:
        if self.request is None:
            super().process_event(event)
            self._end_handshake()  # the request is read
            return
        super().process_event(event)
        if isinstance(event, Frame) and event.opcode in DATA_OPCODES:
            self._partial = not event.fin
            self._messages_queued += event.fin
        if isinstance(event, Frame) and event.opcode is Opcode.PONG and self.on_pong:
            self.on_pong(bytes(event.data))
        if (
            isinstance(event, Frame)
            and event.opcode is Opcode.PING
            and self._pings is not None
            and not self._pings.take(time.monotonic())
            and self.protocol.state is State.OPEN
        ):
            limits = self.gate.limits
            logger.info("closing a connection from %s: a ping flood", self.address)
            self.protocol.fail(
                CloseCode.POLICY_VIOLATION,
                f"ping flood: more than {limits.ping_rate:g} pings per second",
            )
            # The close frame, then the end of the stream (websockets' fail); what
            # comes next is discarded until the client closes too, or for the close
            # timeout at most. Closing the socket at once would answer the pings
            # still on their way with a reset: the client's next write would fail,
            # and the client drop the connection with the close unread (1006).
            self.send_data()
            if self.close_timeout is not None:
                self.loop.call_later(self.close_timeout, self.transport.abort)

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_handshake()
        super().connection_lost(exc)

    # A frame over the size limit ---------------------------------------------------

    _held_close: list[bytes] | None = None
    """What ``websockets`` wrote on failing the connection for a frame over
    ``max_size`` (its close frame, the end of the stream), not written yet."""

    _close_released = False
    """Set by :meth:`release_close`: from then on no close is held."""
    _messages_queued = 0
    """Messages handed to ``websockets``' queue of incoming messages."""
    _messages_read = 0
    """Messages :meth:`recv` returned."""
    _partial = False
    """Whether the last data frame queued left a message unfinished."""
    _messages_before_close: int | None = None
    """How many messages came before the frame over the limit (None: no such frame)."""

    def _end_messages(self) -> None:
        """Mark the end of the messages read before the frame over the limit.

        ``websockets`` ends them when the connection is lost, which the held close
        delays: one more message (empty) follows them, which wakes a :meth:`recv`
        waiting, and :meth:`recv` raises in its place.
        """
        self._messages_before_close = self._messages_queued
        self.recv_messages.put(Frame(Opcode.TEXT, b""))

    async def recv(self, decode: bool | None = None) -> Any:
        """The next message (``websockets``' ``recv``); once the messages that came
        before a frame over the limit are read, raises ``ConnectionClosedError`` (1009)."""
        data = await super().recv(decode)
        self._messages_read += 1
        before = self._messages_before_close
        if before is not None and self._messages_read > before:
            raise ConnectionClosedError(self.protocol.close_rcvd, self.protocol.close_sent)
        return data

    @property
    def holds_close(self) -> bool:
        """Whether a close for a frame over the limit waits for :meth:`release_close`."""
        return self._held_close is not None

    def send_data(self) -> None:
        """Write what ``websockets`` has to send; but once a frame went over the size
        limit, hold it (the close, and anything after it) until :meth:`release_close`.

        The messages read before that frame still reach the gateway, then the
        stream of messages ends: it answers them, then releases the close.
        """
        if (
            self._held_close is None
            and not self._close_released
            and isinstance(self.protocol.parser_exc, PayloadTooBig)
        ):
            self._held_close = []
        if self._held_close is not None:
            self._held_close.extend(self.protocol.data_to_send())
            return
        super().send_data()

    def release_close(self) -> None:
        """Write the held close (if any) and end the stream; idempotent."""
        held, self._held_close = self._held_close, None
        self._close_released = True
        if self.transport.is_closing():
            return  # the peer has gone meanwhile
        for data in held or ():
            if data:
                self.transport.write(data)
            else:
                self.transport.write_eof()  # websockets' own end of the stream

    # Writing frames serialized once for every recipient -------------------------

    def write_frames(self, frames: Sequence[WireFrame]) -> bool:
        """Write ``frames`` to the transport in one piece, in the encoding this
        connection negotiated; False (nothing written) once the connection is not open.

        Written past ``websockets``' send path, which would serialize and compress
        each frame again for each connection; control frames still go through it, in
        order with these (both write at once, on the loop's thread).
        """
        if self.protocol.state is not State.OPEN and self._held_close is None:
            return False
        deflate = self._deflate
        self.transport.write(b"".join([frame.serialized(deflate) for frame in frames]))
        return True

    @functools.cached_property
    def _deflate(self) -> NegotiatedDeflate | None:
        """The permessage-deflate this connection negotiated (None: none). Looked up
        once: the handshake, which settles it, is over before any frame is written."""
        return next((e for e in self.protocol.extensions if isinstance(e, NegotiatedDeflate)), None)

    write_paused = False
    """Whether the transport's write buffer is over its high-water mark (asyncio's flow
    control: :meth:`pause_writing` until :meth:`resume_writing`)."""

    def pause_writing(self) -> None:
        super().pause_writing()
        self.write_paused = True

    def resume_writing(self) -> None:
        super().resume_writing()
        self.write_paused = False

    async def writable(self) -> bool:
        """Wait while the transport's write buffer is over its high-water mark (TCP
        pushes back); False once the connection is not open."""
        try:
            await self.drain()
        except Exception:  # the connection was lost while waiting: its error, whatever it is
            return False
        return self.protocol.state is State.OPEN
