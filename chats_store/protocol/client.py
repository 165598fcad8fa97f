"""The client side of the wire protocol, sans I/O, in the style of ``websockets``.

:class:`ClientProtocol` holds no socket. The connection manager feeds it what
arrives and sends what it produces::

    protocol = ClientProtocol()
    request_id = protocol.send_request(JoinRequest("c1", token))
    for text in protocol.data_to_send():
        await websocket.send(text)
    ...
    protocol.receive_data(await websocket.recv())      # may raise ProtocolError
    for received in protocol.events_received():
        ...  # ReplyReceived(request_id, result, request) or EventReceived(event)

Replies come back already decoded to the domain type the request's kind
declares (:data:`~chats_store.chats.commands.REQUEST_KINDS`) and checked against
the request; an ``error`` frame becomes ``Failure("refused", code, message)``.
When the connection drops, :meth:`ClientProtocol.fail_pending` fails every
request still in flight.

Any frame that breaks the protocol raises :class:`ProtocolError` and changes
nothing: the connection manager should then close the connection (with the
error's ``close_code``, or 1002) and call :meth:`fail_pending`.
"""

from __future__ import annotations

import attrs

from chats_store.chats.actions import Failure, FailureKind, ServerEvent
from chats_store.chats.commands import ChatReply, ChatRequest, kind_of
from chats_store.errors import ErrorCode, ProtocolError
from chats_store.protocol.frames import (
    MAX_FRAME_SIZE,
    ErrorFrame,
    HelloFrame,
    OkFrame,
    dumps,
    ok_frame_id,
    parse_server_frame,
    request_data,
    structure,
)
from chats_store.protocol.mapping import REPLY_CODECS, event_from_wire, read_event

__all__ = ["ClientProtocol", "EventReceived", "ReceivedItem", "ReplyReceived", "encode_request"]


@attrs.frozen
class ReplyReceived:
    """The outcome of request ``request_id``: its decoded reply, or a :class:`Failure`."""

    request_id: int
    result: ChatReply | Failure
    request: ChatRequest | None = attrs.field(default=None, eq=False)


@attrs.frozen
class EventReceived:
    """A server push, as the domain's server event action."""

    event: ServerEvent


ReceivedItem = ReplyReceived | EventReceived

_DETAILS: dict[str, str] = {
    "connection_lost": "the connection closed before the server answered",
    "timeout": "the server did not answer in time",
    "cancelled": "the request was cancelled by the client",
}


def encode_request(request_id: int, request: ChatRequest) -> str:
    """The text frame of ``request`` with id ``request_id`` (what a client sends)."""
    return dumps(request_data(request_id, request))


def _decode_result(request: ChatRequest, result: object, request_id: int) -> ChatReply:
    """The reply to ``request`` read from ``result``, as the type its kind declares.

    Raises :class:`ProtocolError`: ``invalid_frame`` if ``result`` is not of that
    type, ``unexpected_reply`` if it is but cannot answer ``request`` (the kind's
    ``mismatch``).
    """
    codec = REPLY_CODECS[kind_of(request).reply]
    reply: ChatReply = codec.from_wire(structure(result, codec.wire, request_id))
    return _checked(request, reply, request_id)


def _checked(request: ChatRequest, reply: ChatReply, request_id: int) -> ChatReply:
    """``reply``, if it can answer ``request`` (``unexpected_reply`` otherwise)."""
    kind = kind_of(request)
    mismatch = kind.mismatch(request, reply)
    if mismatch is not None:
        raise ProtocolError(
            f"the reply to request {request_id} ({kind.tag}) cannot answer it: {mismatch}",
            code=ErrorCode.UNEXPECTED_REPLY,
            request_id=request_id,
        )
    return reply


class ClientProtocol:
    """Request ids, reply correlation and frame decoding for one connection (sans I/O).

    Ids start at 1 and grow for the life of the object. Not thread-safe: use it
    from one task (or guard it), as with ``websockets``' own protocol objects.
    """

    def __init__(self) -> None:
        self._next_id = 1
        self._pending: dict[int, ChatRequest] = {}
        self._abandoned: set[int] = set()
        self._outgoing: list[str] = []
        self._received: list[ReceivedItem] = []
        self._hello: HelloFrame | None = None

    @property
    def server_hello(self) -> HelloFrame | None:
        """The server's ``hello`` on this connection (None until it came, or from a
        server that sends none); :meth:`fail_pending` forgets it."""
        return self._hello

    @property
    def pending_ids(self) -> tuple[int, ...]:
        """The ids of the requests sent and not answered yet, oldest first."""
        return tuple(self._pending)

    def send_request(self, request: ChatRequest) -> int:
        """Queue the frame of ``request`` and return the id its reply will carry.

        Raises :class:`ProtocolError` (``frame_too_large``) if the frame would be
        larger than the server accepts; nothing is queued then.
        """
        request_id = self._next_id
        text = encode_request(request_id, request)
        if len(text) > MAX_FRAME_SIZE:  # ASCII-only JSON: characters are bytes
            raise ProtocolError(
                f"the request frame is {len(text)} bytes; the server accepts at most "
                f"{MAX_FRAME_SIZE}",
                code=ErrorCode.FRAME_TOO_LARGE,
            )
        self._next_id += 1
        self._pending[request_id] = request
        self._outgoing.append(text)
        return request_id

    def data_to_send(self) -> list[str]:
        """The text frames to send, in order; the queue is emptied."""
        outgoing, self._outgoing = self._outgoing, []
        return outgoing

    def receive_data(self, text: str | bytes) -> None:
        """Read one frame received from the server.

        What it means is then available from :meth:`events_received`. Raises
        :class:`ProtocolError` if the frame breaks the protocol (not JSON, too
        large, missing or mistyped field, a reply to no request); the protocol's
        state is unchanged then. A frame of a type or an event of a kind this
        version does not know is ignored (a newer server's); a ``hello`` is kept
        as :attr:`server_hello`.
        """
        if self._received_fast(text):
            return
        frame = parse_server_frame(text)
        if frame is None:  # a newer server's frame type or event kind: ignored
            return
        if isinstance(frame, HelloFrame):
            self._hello = frame
            return
        if isinstance(frame, OkFrame | ErrorFrame):
            if frame.id is None:
                assert isinstance(frame, ErrorFrame)
                raise ProtocolError(
                    f"the server could not read a request: {frame.code}: {frame.message}",
                    code=ErrorCode.UNEXPECTED_REPLY,
                )
            request_id = frame.id
            request = self._pending.get(request_id)
            if request is None:
                if request_id in self._abandoned:
                    self._abandoned.discard(request_id)
                    return
                raise ProtocolError(
                    f"the server answered request {request_id}, which is not in flight",
                    code=ErrorCode.UNEXPECTED_REPLY,
                    request_id=request_id,
                )
            result: ChatReply | Failure
            if isinstance(frame, ErrorFrame):
                result = Failure("refused", frame.code, frame.message)
            else:
                result = _decode_result(request, frame.result, request_id)
            self._answer(request_id, result, request)
        else:
            self._received.append(EventReceived(event_from_wire(frame)))

    def _received_fast(self, text: str | bytes) -> bool:
        """Whether ``text`` was read on the fast path: a reply to a join, a history
        page, a post or an edit, or a ``message_posted`` event.

        That path takes an ``ok`` frame to a request in flight whose reply type has a
        reader (:attr:`~chats_store.protocol.mapping.ReplyCodec.read`), when every
        field of the frame is one this version knows; it gives the reply the general
        path would give. Any other frame, or one that does not read, is left to the
        general path (False), which reports what is wrong. An event is read there
        the same way (:func:`~chats_store.protocol.mapping.read_event`).
        """
        event = read_event(text)
        if event is not None:
            self._received.append(EventReceived(event))
            return True
        request_id = ok_frame_id(text)
        if request_id is None:
            return False
        request = self._pending.get(request_id)
        if request is None:
            return False
        reader = REPLY_CODECS[kind_of(request).reply].read
        reply = None if reader is None else reader(text, request_id)
        if reply is None:
            return False
        self._answer(request_id, _checked(request, reply, request_id), request)
        return True

    def _answer(self, request_id: int, result: ChatReply | Failure, request: ChatRequest) -> None:
        del self._pending[request_id]
        self._received.append(ReplyReceived(request_id, result, request))

    def events_received(self) -> list[ReceivedItem]:
        """Replies and events decoded since the last call, in arrival order."""
        received, self._received = self._received, []
        return received

    def abandon(self, request_id: int, kind: FailureKind = "timeout") -> ReplyReceived | None:
        """Stop waiting for request ``request_id`` (a time-out, say).

        Returns its failure (None if it is not in flight). A reply that arrives
        later for it is dropped silently.
        """
        request = self._pending.pop(request_id, None)
        if request is None:
            return None
        self._abandoned.add(request_id)
        return ReplyReceived(request_id, Failure(kind, kind, _DETAILS.get(kind, kind)), request)

    def fail_pending(
        self, kind: FailureKind = "connection_lost", *, detail: str | None = None
    ) -> list[ReplyReceived]:
        """Fail every request in flight (the connection dropped), oldest first.

        ``detail``: what the failures say (why the connection ended); a sentence for
        ``kind`` by default. Also forgets abandoned ids and drops frames not yet sent:
        after this, the object is ready for a new connection (ids keep growing).
        """
        failure = Failure(kind, kind, _DETAILS.get(kind, kind) if detail is None else detail)
        failed = [
            ReplyReceived(request_id, failure, request)
            for request_id, request in self._pending.items()
        ]
        self._pending.clear()
        self._abandoned.clear()
        self._outgoing.clear()
        self._hello = None
        return failed
