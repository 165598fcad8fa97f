"""One managed WebSocket connection: handshake, requests, pushes, reconnects (runtime).

A thin asyncio shell around the sans-I/O :class:`~chats_store.protocol.ClientProtocol`,
as ``websockets`` itself is built. It is the Chats module's
:class:`~chats_store.chats.transport.ChatsTransport`.

The connection opens with single ``websockets`` handshakes in a loop of its own, timed
by a :class:`~chats_store.websocket.reconnect.ReconnectSchedule`: the first retry after
a healthy connection drops happens at once, then the delays grow, and only a
connection that stays open for a while resets them; a 429 or 503 answer's
``Retry-After`` is heard. Why the last connection ended, or the last attempt failed,
is its :attr:`ManagedConnection.last_error` (a :class:`ConnectionFault`), and the
requests in flight when it ended fail with a detail that says so.

The session token: a handshake the server refuses (401/403) is retried at once with a
fresh token when there is a ``renew_session_token`` (the user module's token provider),
which is also asked shortly before the token expires; otherwise, or when the provider
fails or its token is refused too, the refusal is final: no retry loop, the
connection stays ``disconnected`` and ``last_error`` says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar

import attrs
from reactivex import Observable
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.messages import MAX_FRAGMENTS
from websockets.client import process_exception as retry_network_errors
from websockets.exceptions import ConnectionClosed, InvalidStatus, PayloadTooBig
from websockets.frames import DATA_OPCODES, Frame, Opcode
from websockets.protocol import Event, State
from websockets.streams import StreamReader
from websockets.typing import Subprotocol

from chats_store.chats.actions import Failure, ServerEvent
from chats_store.chats.commands import ChatReply, ChatRequest
from chats_store.chats.model import ConnectionStatus
from chats_store.core.store import EventStream
from chats_store.errors import (
    AuthenticationError,
    ConnectFailedError,
    ErrorCode,
    ProtocolError,
    TokenError,
)
from chats_store.protocol import (
    MAX_SERVER_FRAME_SIZE,
    PROTOCOL_VERSION,
    ClientProtocol,
    EventReceived,
    ReplyReceived,
)
from chats_store.socket_reads import read_in_heap_sized_chunks
from chats_store.tokens import SESSION_AUDIENCE, read_unverified_claims
from chats_store.websocket.reconnect import ReconnectPolicy, ReconnectSchedule, retry_after

__all__ = ["RENEW_MARGIN", "ConnectionFault", "ManagedConnection"]

logger = logging.getLogger("chats_store.websocket")

PROTOCOL_ERROR_CLOSE_CODE = 1002
RENEW_MARGIN = 60.0
"""Seconds before its ``exp`` that a session token is renewed, ahead of a handshake
(when there is a token provider): a margin for the clocks of client and server."""

_REFUSED_TOKEN = (401, 403)
_NETWORK_TROUBLE = (ErrorCode.CONNECTION_LOST, ErrorCode.CONNECT_FAILED)
"""Fault codes that a reconnection usually mends (logged at INFO, the others at WARNING)."""
_CODE_FIRST = re.compile(r"([a-z][a-z_]{0,63}): ")
"""The reference server's refusals start with their code: ``expired_token: ...``."""


@attrs.frozen
class ConnectionFault:
    """Why a connection ended, or why an attempt to open one failed.

    ``code`` says what happened: the :class:`~chats_store.ErrorCode` of the broken
    rule when the server broke the protocol (``invalid_json``, ``invalid_frame``,
    ``unexpected_reply``, ``frame_too_large``...), ``invalid_token`` or
    ``expired_token`` when it refused the session token, ``token_provider_failed``,
    the code of a refused handshake (``too_many_connections``, ``rate_limited``),
    ``connection_lost`` when the connection closed or broke, ``connect_failed`` when
    none could be opened. ``detail`` says it for people (the server's close reason
    and HTTP answer included); ``close_code`` is the WebSocket close code of a
    connection that closed with one (1009: a frame too large; 1008: the server's
    policy...). ``final``: the module gave up and stays ``disconnected`` until
    ``connect()`` is called again; otherwise it is reconnecting.
    """

    code: ErrorCode
    detail: str
    close_code: int | None = None
    final: bool = False


class _GiveUpError(Exception):
    """The connection must stop reconnecting: ``fault`` says why, ``error`` is raised
    by :meth:`ManagedConnection.open`."""

    def __init__(self, fault: ConnectionFault, error: ConnectFailedError) -> None:
        super().__init__(fault.detail)
        self.fault = fault
        self.error = error


def _body(refused: InvalidStatus) -> str:
    body = refused.response.body
    return body.decode(errors="replace").strip()[:300] if body else ""


def _refusal_code(body: str, default: ErrorCode) -> ErrorCode:
    match = _CODE_FIRST.match(body)
    return ErrorCode(match.group(1)) if match else default


def _http_answer(refused: InvalidStatus) -> str:
    body = _body(refused)
    return f"HTTP {refused.response.status_code}{': ' + body if body else ''}"


def _token_refused(refused: InvalidStatus, renewed: bool) -> _GiveUpError:
    answer = _http_answer(refused)
    code = _refusal_code(_body(refused), ErrorCode.INVALID_TOKEN)
    if renewed:
        detail = f"the server refused the session token the token provider returned ({answer})"
    else:
        detail = (
            f"the server refused the session token ({answer}) - create the user module "
            "with a fresh token, or give create_user a token_provider"
        )
    fault = ConnectionFault(code, detail, final=True)
    return _GiveUpError(fault, AuthenticationError(detail, code=code))


def _attempt_failed(error: Exception) -> tuple[ConnectionFault, float | None]:
    """The fault of a failed handshake and the ``Retry-After`` it asked for.

    Raises :class:`_GiveUpError` when retrying cannot help (websockets' rule: network
    errors, 5xx and timeouts are retried; so is 429).
    """
    if isinstance(error, InvalidStatus):
        status = error.response.status_code
        detail = f"the server refused the connection ({_http_answer(error)})"
        if status == 429 or status >= 500:
            default = ErrorCode.RATE_LIMITED if status == 429 else ErrorCode.CONNECT_FAILED
            fault = ConnectionFault(_refusal_code(_body(error), default), detail)
            if status in (429, 503):
                return fault, retry_after(error.response.headers.get("Retry-After"))
            return fault, None
        fault = ConnectionFault(_refusal_code(_body(error), ErrorCode.CONNECT_FAILED), detail)
        raise _GiveUpError(attrs.evolve(fault, final=True), ConnectFailedError(detail))
    detail = f"could not connect: {type(error).__name__}: {error}"
    fault = ConnectionFault(ErrorCode.CONNECT_FAILED, detail)
    if retry_network_errors(error) is not None:
        raise _GiveUpError(attrs.evolve(fault, final=True), ConnectFailedError(detail))
    return fault, None


def _drop_fault(connection: ClientConnection, violation: ProtocolError | None) -> ConnectionFault:
    """Why ``connection`` ended: a frame we refused, or who closed it and how."""
    protocol = connection.protocol
    sent, received = protocol.close_sent, protocol.close_rcvd
    if violation is not None:
        code = violation.close_code or PROTOCOL_ERROR_CLOSE_CODE
        return ConnectionFault(
            violation.code, f"the server broke the protocol: {violation} (closed with {code})", code
        )
    if isinstance(protocol.parser_exc, PayloadTooBig):
        return ConnectionFault(
            ErrorCode.FRAME_TOO_LARGE,
            f"the server sent a frame larger than the {MAX_SERVER_FRAME_SIZE} bytes a client "
            f"accepts ({protocol.parser_exc}; closed with 1009)",
            1009,
        )
    if received is not None and protocol.close_rcvd_then_sent is not False:
        reason = f": {received.reason}" if received.reason else ""
        return ConnectionFault(
            ErrorCode.CONNECTION_LOST,
            f"the server closed the connection ({received.code}{reason})",
            received.code,
        )
    if sent is not None:
        reason = f": {sent.reason}" if sent.reason else ""
        detail = f"the client closed the connection ({sent.code}{reason})"
        return ConnectionFault(ErrorCode.CONNECTION_LOST, detail, sent.code)
    return ConnectionFault(
        ErrorCode.CONNECTION_LOST, "the connection broke without a closing handshake", 1006
    )


class _ClientConnection(ClientConnection):
    """``websockets``' client connection, reading in heap-sized chunks (see
    :mod:`chats_store.socket_reads`) and handing each message to its owner where its
    last frame is parsed.

    ``websockets`` queues a message until a task's ``recv()`` takes it: a future, a
    wake-up and a task switch per message, more than the client's own work on a
    message pushed to a busy chat. Here the message is read in ``data_received``, in
    order with the control frames; nothing is queued and ``recv()`` is not used. The
    limits stay ``websockets``': ``max_size`` (fragments included) and at most
    ``MAX_FRAGMENTS`` fragments per message.

    Frames are split here too, once the connection is open: a complete, unfragmented,
    uncompressed text or binary frame within the size limit, the usual push, is read
    from the bytes as they arrive, past ``websockets``' generator-based parser (see
    ``benchmarks/README.md`` for what it saves). Every other frame (control frames,
    fragments, compressed or oversized frames, anything malformed) and every byte
    after it go to ``websockets`` as before, from the start of that frame, so it sees
    the stream from a frame boundary; the splitting resumes once its parser waits for
    a new frame again (:meth:`_at_frame_start`). The frames split here are those its
    parser would return unchanged without a change of its state.

    Made per :class:`ManagedConnection` by :meth:`for_owner` (``websockets`` creates
    connections from a class).
    """

    owner: ClassVar[ManagedConnection]
    """Reads each message (:meth:`ManagedConnection.message_received`), closes the
    connection on one that breaks the protocol (:meth:`ManagedConnection.refuse`)."""

    violation: ProtocolError | None = None
    """The message that broke the protocol (set by the owner): the connection is
    closing, and the messages after it are not read."""

    @classmethod
    def for_owner(cls, owner: ManagedConnection) -> type[_ClientConnection]:
        return type("_ClientConnection", (cls,), {"owner": owner})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fragments: list[Frame] = []
        self._splitting = False
        """Whether this connection splits the frames it receives (see the class)."""
        self._partial = bytearray()
        """While splitting: the start of a frame that has not fully arrived."""
        self._needed = 0
        """While splitting: how many bytes ``_partial`` needs before it is read again."""

    def data_received(self, data: bytes) -> None:
        protocol = self.protocol
        splitting = self._splitting and protocol.state is State.OPEN
        partial = self._partial
        if partial:
            partial += data
            if splitting and len(partial) < self._needed:
                return
            data = bytes(partial)
            partial.clear()
        if not splitting:
            self._to_websockets(data)
            return
        limit = protocol.max_message_size
        if protocol.max_fragment_size is not None:
            limit = min(limit or protocol.max_fragment_size, protocol.max_fragment_size)
        size = len(data)
        position = 0
        while position < size:
            head = data[position]
            if head != _TEXT_HEAD and head != _BINARY_HEAD:
                break  # anything else: websockets' (a control frame, a fragment, ...)
            if size - position < 2:
                self._wait_for(data, position, 2)
                return
            length = data[position + 1]  # the mask bit is 0 in a server's frame
            start = position + 2
            if length >= 126:
                if length > 127:
                    break  # masked: websockets refuses it
                start += 2 if length == 126 else 8
                if start > size:
                    self._wait_for(data, position, start - position)
                    return
                length = int.from_bytes(data[position + 2 : start])
            if limit is not None and length > limit:
                break  # websockets closes with 1009 as soon as it reads the length
            end = start + length
            if end > size:
                self._wait_for(data, position, end - position)
                return
            if self.violation is None:
                self.owner.message_received(self, data[start:end], head == _TEXT_HEAD)
            position = end
        else:
            return
        self._to_websockets(data[position:])

    def _wait_for(self, data: bytes, position: int, needed: int) -> None:
        """Keep the incomplete frame at ``position`` until ``needed`` bytes of it came."""
        self._partial += memoryview(data)[position:]
        self._needed = needed

    def _to_websockets(self, data: bytes) -> None:
        """Give ``data`` (from a frame boundary, or anything before splitting) to
        ``websockets``; split again once its parser is back at a frame boundary."""
        self._splitting = False
        super().data_received(data)
        self._splitting = self._at_frame_start()

    def _at_frame_start(self) -> bool:
        """Whether ``websockets``' parser waits for the first byte of a frame, the
        connection open and no fragmented message under way, so that the frames that
        come next may be split here (False as well if ``websockets`` changed how it
        parses: then it reads every frame, as it would anyway).

        A frame cut short by the end of the stream is then never given to
        ``websockets``: between frames, its parser sees the end as unexpected, which
        is what it would say of the frame.
        """
        protocol = self.protocol
        if protocol.state is not State.OPEN or protocol.current_size is not None:
            return False
        waiting: Any = protocol.parser
        while getattr(waiting, "gi_yieldfrom", None) is not None:
            waiting = waiting.gi_yieldfrom
        return getattr(waiting, "gi_code", None) is _AWAITING_FRAME

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        read_in_heap_sized_chunks(transport)

    def process_event(self, event: Event) -> None:
        if (
            self.response is None  # the handshake's response
            or not isinstance(event, Frame)
            or event.opcode not in DATA_OPCODES
        ):
            super().process_event(event)
            return
        if self.violation is not None:
            return
        fragments = self._fragments
        if event.fin and not fragments:
            self.owner.message_received(self, bytes(event.data), event.opcode is Opcode.TEXT)
            return
        if len(fragments) >= MAX_FRAGMENTS:  # websockets' own limit, which recv() applies
            fragments.clear()
            error = ProtocolError(
                f"a message came in more than {MAX_FRAGMENTS} fragments",
                code=ErrorCode.FRAME_TOO_LARGE,
                close_code=1009,
            )
            self.owner.refuse(self, error)
            return
        fragments.append(event)
        if event.fin:
            data = b"".join(frame.data for frame in fragments)
            self.owner.message_received(self, data, fragments[0].opcode is Opcode.TEXT)
            fragments.clear()


_TEXT_HEAD = 0x80 | Opcode.TEXT
_BINARY_HEAD = 0x80 | Opcode.BINARY
"""The first byte of an unfragmented, uncompressed text or binary frame (FIN set, no
reserved bit)."""
_AWAITING_FRAME = StreamReader.at_eof.__code__
"""Where ``websockets``' parser waits between frames (``Protocol.parse``)."""


def _text_of(data: bytes) -> str:
    """The text of a message that came in text frames (UTF-8, as RFC 6455 requires)."""
    try:
        return data.decode()
    except UnicodeDecodeError as error:
        raise ProtocolError(
            f"a text frame is not valid UTF-8 ({error.reason} at byte {error.start})",
            code=ErrorCode.INVALID_FRAME,
            close_code=1007,
        ) from None


class ManagedConnection:
    """A connection to one URL, reconnecting until closed; the Chats transport.

    ``status`` and ``last_error`` are reported through ``on_status`` and
    ``on_fault`` (the WebSocket module keeps the getters); ``events`` emits server
    pushes; ``request`` returns a reply or a :class:`Failure`, never raises for
    network trouble. ``renew_session_token``, when given, returns a fresh session
    token of the same user (the user module's token provider, checked).
    """

    def __init__(
        self,
        url: str,
        session_token: str,
        *,
        status: Observable[ConnectionStatus],
        on_status: Callable[[ConnectionStatus], None],
        on_fault: Callable[[ConnectionFault | None], None],
        reconnect: ReconnectPolicy,
        open_timeout: float,
        ping_interval: float | None,
        renew_session_token: Callable[[], Awaitable[str]] | None = None,
    ) -> None:
        self.url = url
        self._session_token = session_token
        self._renew_session_token = renew_session_token
        self._status = status
        self._on_status = on_status
        self._on_fault = on_fault
        self._reconnect = reconnect
        self._open_timeout = open_timeout
        self._ping_interval = ping_interval
        self._events: EventStream[ServerEvent] = EventStream()
        self._connection: ClientConnection | None = None
        self._connection_class = _ClientConnection.for_owner(self)
        self._protocol = ClientProtocol()
        self._replies: dict[int, asyncio.Future[ChatReply | Failure]] = {}
        self._task: asyncio.Task[None] | None = None
        self._closer: asyncio.Future[None] | None = None
        """The close of a connection whose server broke the protocol (kept from the GC)."""
        self._opened: asyncio.Event | None = None
        self._closing = False
        self._fault: ConnectionFault | None = None
        self._stopped_by: ConnectFailedError | None = None
        self._token_unproven = False
        """The token came from the provider and no handshake has accepted it yet."""

    @property
    def status(self) -> Observable[ConnectionStatus]:
        return self._status

    @property
    def events(self) -> Observable[ServerEvent]:
        return self._events

    @property
    def last_error(self) -> ConnectionFault | None:
        """Why the last connection ended or the last attempt failed; None while connected."""
        return self._fault

    def _set_fault(self, fault: ConnectionFault | None) -> None:
        if fault is not None:
            transient = not fault.final and fault.code in _NETWORK_TROUBLE
            logger.log(
                logging.INFO if transient else logging.WARNING, "%s: %s", self.url, fault.detail
            )
        self._fault = fault
        self._on_fault(fault)

    # Lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Start connecting (and reconnecting); return once connected.

        Raises :class:`AuthenticationError` if the server refuses the session
        token (or the token provider fails) and :class:`ConnectFailedError` if no
        connection could be opened within the open time-out; the connection is
        then closed.
        """
        if self._task is not None and not self._task.done():
            if self._connection is not None:
                return
        else:
            self._closing = False
            self._stopped_by = None
            self._set_fault(None)
            self._opened = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())
        assert self._opened is not None and self._task is not None
        opened = asyncio.ensure_future(self._opened.wait())
        try:
            await asyncio.wait(
                (opened, self._task),
                timeout=self._open_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            opened.cancel()
        if self._connection is not None:
            return
        stopped_by, fault = self._stopped_by, self._fault
        await self.close()
        if stopped_by is not None:
            raise stopped_by
        raise ConnectFailedError(
            f"could not connect to {self.url} within {self._open_timeout} s"
            + (f": {fault.detail}" if fault is not None else "")
        )

    async def close(self) -> None:
        """Close the connection and stop reconnecting; status becomes disconnected."""
        self._closing = True
        task, self._task = self._task, None
        if self._connection is not None:
            await self._connection.close()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        schedule = ReconnectSchedule(self._reconnect)
        loop = asyncio.get_running_loop()
        self._on_status("connecting")
        try:
            while True:
                try:
                    connection = await self._handshake()
                except _GiveUpError:
                    raise
                except Exception as error:
                    fault, asked = _attempt_failed(error)
                    self._set_fault(fault)
                    await asyncio.sleep(schedule.after_failure(asked))
                    continue
                opened_at = loop.time()
                await self._serve(connection)
                if self._closing:
                    break
                self._on_status("connecting")
                await asyncio.sleep(schedule.after_drop(loop.time() - opened_at))
        except _GiveUpError as stopped:
            self._stopped_by = stopped.error
            self._set_fault(stopped.fault)
        finally:
            self._on_status("disconnected")

    # The handshake and the session token -----------------------------------------------

    async def _handshake(self) -> _ClientConnection:
        """One attempt; a token refused (or about to expire) is renewed and tried at once."""
        if self._renew_session_token is not None and self._expires_soon():
            await self._renew()
        try:
            return await self._connect()
        except InvalidStatus as refused:
            if refused.response.status_code not in _REFUSED_TOKEN:
                raise
            if self._renew_session_token is None or self._token_unproven:
                raise _token_refused(refused, self._token_unproven) from None
        await self._renew()
        try:
            return await self._connect()
        except InvalidStatus as refused:
            if refused.response.status_code in _REFUSED_TOKEN:
                raise _token_refused(refused, renewed=True) from None
            raise

    async def _connect(self) -> _ClientConnection:
        connection = await connect(
            self.url,
            create_connection=self._connection_class,
            additional_headers={"Authorization": f"Bearer {self._session_token}"},
            subprotocols=[Subprotocol(PROTOCOL_VERSION)],
            max_size=MAX_SERVER_FRAME_SIZE,
            open_timeout=self._open_timeout,
            ping_interval=self._ping_interval,
        )
        assert isinstance(connection, _ClientConnection)
        self._token_unproven = False
        return connection

    def _expires_soon(self) -> bool:
        """Whether the token's ``exp`` is within :data:`RENEW_MARGIN` of the local clock."""
        try:
            claims = read_unverified_claims(self._session_token, SESSION_AUDIENCE, ("exp",))
        except TokenError:
            return False  # no expiry to judge by: the server will say
        expires: float = claims["exp"]
        return expires - RENEW_MARGIN <= time.time()

    async def _renew(self) -> None:
        """A fresh session token from the provider, within the open time-out.

        Raises :class:`_GiveUpError` when the provider fails (raises, times out, or
        returns something that is not a session token of this user).
        """
        assert self._renew_session_token is not None
        try:
            async with asyncio.timeout(self._open_timeout):
                token = await self._renew_session_token()
        except TimeoutError:
            error = AuthenticationError(
                f"the token provider did not return a session token within {self._open_timeout} s",
                code=ErrorCode.TOKEN_PROVIDER_FAILED,
            )
        except AuthenticationError as refused:
            error = refused
        else:
            self._session_token = token
            self._token_unproven = True
            return
        raise _GiveUpError(ConnectionFault(error.code, str(error), final=True), error)

    # The open connection ---------------------------------------------------------------

    async def _serve(self, connection: _ClientConnection) -> None:
        self._connection = connection
        self._set_fault(None)
        self._on_status("connected")
        assert self._opened is not None
        self._opened.set()
        try:
            await connection.wait_closed()  # messages are read meanwhile
        finally:
            self._connection = None
            self._dropped(connection, connection.violation)

    def message_received(self, connection: _ClientConnection, data: bytes, text: bool) -> None:
        """Read one message of ``connection`` (see :class:`_ClientConnection`); one that
        breaks the protocol closes it, with the close code the error names."""
        try:
            self._protocol.receive_data(_text_of(data) if text else data)
        except ProtocolError as error:
            self.refuse(connection, error)
        finally:
            self._deliver(self._protocol.events_received())

    def refuse(self, connection: _ClientConnection, error: ProtocolError) -> None:
        """Close ``connection``, whose server broke the protocol (``error``), with the
        close code the error names (1002 if none); read nothing more from it."""
        connection.violation = error
        # A close reason is at most 123 bytes of UTF-8.
        reason = str(error).encode()[:120].decode(errors="ignore")
        code = error.close_code or PROTOCOL_ERROR_CLOSE_CODE
        self._closer = asyncio.ensure_future(connection.close(code, reason))

    def _dropped(self, connection: ClientConnection, violation: ProtocolError | None) -> None:
        """Say why ``connection`` ended and fail the requests in flight with it.

        The request the fault is about, if it is one, fails with the fault's code: the
        reply that broke the protocol, or the oldest in flight after a frame too large
        (replies come in the order of the requests; the oversized frame was its reply,
        unless it was an event).
        """
        if self._closing:
            fault = None
            cause = "the WebSocket module was disconnected (disconnect())"
        else:
            fault = _drop_fault(connection, violation)
            cause = fault.detail
        pending = self._protocol.pending_ids
        culprit = None
        if fault is not None and fault.code == ErrorCode.FRAME_TOO_LARGE and pending:
            culprit = pending[0]
        elif violation is not None and violation.request_id in pending:
            culprit = violation.request_id
        failed = self._protocol.fail_pending(
            "connection_lost", detail=f"the connection closed before the server answered: {cause}"
        )
        if fault is not None:
            self._set_fault(fault)
            failed = [
                attrs.evolve(item, result=Failure("connection_lost", fault.code, fault.detail))
                if item.request_id == culprit
                else item
                for item in failed
            ]
        self._deliver(failed)

    def _deliver(self, received: Sequence[ReplyReceived | EventReceived]) -> None:
        for item in received:
            if isinstance(item, ReplyReceived):
                reply = self._replies.get(item.request_id)
                if reply is not None and not reply.done():
                    reply.set_result(item.result)
            else:
                self._events.emit(item.event)  # a subscriber that raises is logged there

    # Requests ------------------------------------------------------------------------

    async def request(self, request: ChatRequest, timeout: float) -> ChatReply | Failure:
        """Send ``request`` and return its reply or a :class:`Failure` (see ChatsTransport)."""
        connection = self._connection
        if connection is None:
            why = f" ({self._fault.detail})" if self._fault is not None else ""
            return Failure(
                "connection_lost", ErrorCode.NOT_CONNECTED, f"the WebSocket is not connected{why}"
            )
        protocol = self._protocol
        try:
            request_id = protocol.send_request(request)
        except ProtocolError as error:
            return Failure("refused", error.code, str(error))
        reply: asyncio.Future[ChatReply | Failure] = asyncio.get_running_loop().create_future()
        self._replies[request_id] = reply
        try:
            try:
                for text in protocol.data_to_send():
                    await connection.send(text)
            except ConnectionClosed:
                pass  # _serve fails every pending reply when the connection ends
            return await asyncio.wait_for(asyncio.shield(reply), timeout)
        except TimeoutError:
            abandoned = protocol.abandon(request_id)
            return abandoned.result if abandoned is not None else await reply
        finally:
            self._replies.pop(request_id, None)
