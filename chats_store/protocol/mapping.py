"""Mapping between wire DTOs (``frames``) and domain values (pure).

``*_to_wire`` functions take domain values and build DTOs; ``*_from_wire``
functions go the other way. Messages read from the wire are server-confirmed, so
they get the status ``"ready"``; a message sent on the wire must have a ``seq``.
:data:`REPLY_CODECS` says how each type of reply travels as the ``result`` of an
``ok`` frame.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from types import NoneType
from typing import Any, Generic, Literal, TypeVar

import attrs
import msgspec

from chats_store.chats.actions import (
    ChatSnapshot,
    MembersAmountChanged,
    MembershipRenewal,
    MessageEdited,
    MessagePosted,
    MessageRemoved,
    OwnMetadataChanged,
    OwnRestrictionsChanged,
    RemovedFromChat,
    Resumption,
    ServerEvent,
)
from chats_store.chats.commands import reply_class
from chats_store.chats.model import Message, Restriction
from chats_store.errors import ErrorCode, ProtocolError
from chats_store.protocol.frames import (
    EventFrame,
    MembersAmountChangedBody,
    MessageEditedBody,
    MessagePostedBody,
    MessageRemovedBody,
    OkJson,
    OwnMetadataChangedBody,
    OwnRestrictionsChangedBody,
    RemovedFromChatBody,
    WireEvent,
    WireHistory,
    WireMessage,
    WireResumption,
    WireSnapshot,
    read_frame,
    read_ok_result,
)

__all__ = [
    "REPLY_CODECS",
    "ReplyCodec",
    "event_from_wire",
    "event_to_wire",
    "history_from_wire",
    "history_to_wire",
    "message_from_wire",
    "message_to_wire",
    "read_event",
    "read_history",
    "read_message",
    "read_snapshot",
    "reply_codec_of",
    "resumption_from_wire",
    "resumption_to_wire",
    "snapshot_from_wire",
    "snapshot_to_wire",
]


# Values ---------------------------------------------------------------------------


def message_to_wire(message: Message) -> WireMessage:
    """A server-confirmed message as a DTO (``ValueError`` if it has no ``seq``)."""
    if message.seq is None:
        raise ValueError(f"message {message.id!r} has no seq: only confirmed messages travel")
    return WireMessage(
        id=message.id,
        chat_id=message.chat_id,
        author_id=message.author_id,
        content=message.content,
        seq=message.seq,
        created_at=message.created_at,
        edited_at=message.edited_at,
    )


def message_from_wire(wire: WireMessage) -> Message:
    """A message read from the wire: confirmed by the server, status ``ready``.

    Its ``chat_id`` and ``author_id`` are interned: ``json.loads`` makes a new string
    for each, and a store holding thousands of messages of a few chats and authors
    would otherwise keep one copy of each per message (~50 bytes each).
    """
    return Message(
        id=wire.id,
        chat_id=_intern(wire.chat_id),
        author_id=_intern(wire.author_id),
        content=wire.content,
        status="ready",
        seq=wire.seq,
        created_at=wire.created_at,
        edited_at=wire.edited_at,
    )


_intern = sys.intern


def _metadata(mapping: Mapping[str, str]) -> dict[str, str]:
    return dict(mapping)


def snapshot_to_wire(snapshot: ChatSnapshot) -> WireSnapshot:
    return WireSnapshot(
        messages=tuple(message_to_wire(m) for m in snapshot.messages),
        members_amount=snapshot.members_amount,
        member_metadata=_metadata(snapshot.member_metadata),
        restrictions=snapshot.restrictions,
        last_seq=snapshot.last_seq,
        membership=snapshot.membership,
        epoch=snapshot.epoch,
        server_time=snapshot.server_time,
    )


def snapshot_from_wire(wire: WireSnapshot) -> ChatSnapshot:
    return ChatSnapshot(
        messages=tuple(message_from_wire(m) for m in wire.messages),
        members_amount=wire.members_amount,
        member_metadata=dict(wire.member_metadata),
        restrictions=wire.restrictions,
        last_seq=wire.last_seq,
        membership=wire.membership,
        epoch=wire.epoch,
        server_time=wire.server_time,
    )


def history_to_wire(messages: tuple[Message, ...]) -> WireHistory:
    return WireHistory(tuple(message_to_wire(m) for m in messages))


def history_from_wire(wire: WireHistory) -> tuple[Message, ...]:
    return tuple(message_from_wire(m) for m in wire.messages)


# Events -----------------------------------------------------------------------------


def event_to_wire(event: ServerEvent, seq: int | None = None) -> EventFrame:
    """The frame that carries ``event``.

    ``seq`` defaults to the event's own; :class:`RemovedFromChat` has none in the
    domain, so the server must give the seq of the membership change that removed
    the member (``ValueError`` otherwise).
    """
    body: WireEvent
    match event:
        case MessagePosted(message=message):
            body = MessagePostedBody(message_to_wire(message))
        case MessageEdited(message=message):
            body = MessageEditedBody(message_to_wire(message))
        case MessageRemoved(message_id=message_id):
            body = MessageRemovedBody(message_id)
        case MembersAmountChanged(members_amount=amount):
            body = MembersAmountChangedBody(amount)
        case OwnRestrictionsChanged(restrictions=restrictions):
            body = OwnRestrictionsChangedBody(restrictions)
        case OwnMetadataChanged(member_metadata=metadata):
            body = OwnMetadataChangedBody(_metadata(metadata))
        case RemovedFromChat(reason=reason, detail=detail):
            body = RemovedFromChatBody(reason, detail)
        case _:
            raise TypeError(f"not a server event: {event!r}")
    if seq is None:
        if isinstance(event, RemovedFromChat):
            raise ValueError("a removed_from_chat event needs the seq of the membership change")
        seq = event.seq
    return EventFrame(event.chat_id, seq, body)


def _message_of(chat_id: str, message: Message) -> Message:
    """``message``, carried by an event of chat ``chat_id`` (:class:`ProtocolError`
    if it is another chat's)."""
    if message.chat_id != chat_id:
        raise ProtocolError(
            f"an event of chat {chat_id!r} carries a message of chat {message.chat_id!r}",
            code=ErrorCode.INVALID_FRAME,
        )
    return message


def _posted(chat_id: str, seq: int, message: Message) -> MessagePosted:
    """The ``message_posted`` event ``seq`` of a chat (:class:`ProtocolError` if the
    message is not the one it may carry)."""
    return _checked_posted(MessagePosted(chat_id, seq, message))


def _checked_posted(event: MessagePosted) -> MessagePosted:
    """``event``, if its message is one it may carry (:class:`ProtocolError` if not)."""
    message, seq = event.message, event.seq
    if message.seq != seq:
        raise ProtocolError(
            f"message {message.id!r} posted by event {seq} must have seq {seq}, not {message.seq}",
            code=ErrorCode.INVALID_FRAME,
        )
    _message_of(event.chat_id, message)
    return event


def event_from_wire(frame: EventFrame) -> ServerEvent:
    """The domain event carried by ``frame`` (:class:`ProtocolError` if inconsistent)."""
    chat_id, seq, body = frame.chat_id, frame.seq, frame.event
    match body:
        case MessagePostedBody(message=message):
            return _posted(chat_id, seq, message_from_wire(message))
        case MessageEditedBody(message=message):
            return MessageEdited(chat_id, seq, _message_of(chat_id, message_from_wire(message)))
        case MessageRemovedBody(message_id=message_id):
            return MessageRemoved(chat_id, seq, message_id)
        case MembersAmountChangedBody(members_amount=amount):
            return MembersAmountChanged(chat_id, seq, amount)
        case OwnRestrictionsChangedBody(restrictions=restrictions):
            return OwnRestrictionsChanged(chat_id, seq, restrictions)
        case OwnMetadataChangedBody(member_metadata=metadata):
            return OwnMetadataChanged(chat_id, seq, dict(metadata))
        case RemovedFromChatBody(reason=reason, detail=detail):
            return RemovedFromChat(chat_id, reason, detail)
    raise ProtocolError(f"unknown event body {body!r}", code=ErrorCode.INVALID_FRAME)


# Resumptions ------------------------------------------------------------------------


def resumption_to_wire(resumption: Resumption) -> WireResumption:
    """Every event is encoded by :func:`event_to_wire`, as it would be pushed."""
    return WireResumption(
        events=tuple(event_to_wire(event) for event in resumption.events),
        snapshot=None if resumption.snapshot is None else snapshot_to_wire(resumption.snapshot),
        members_amount=resumption.members_amount,
        member_metadata=_metadata(resumption.member_metadata),
        restrictions=resumption.restrictions,
        last_seq=resumption.last_seq,
        membership=resumption.membership,
        epoch=resumption.epoch,
        server_time=resumption.server_time,
    )


def resumption_from_wire(wire: WireResumption) -> Resumption:
    """The resumption carried by ``wire``; each event is read by :func:`event_from_wire`."""
    return Resumption(
        events=tuple(event_from_wire(frame) for frame in wire.events),
        snapshot=None if wire.snapshot is None else snapshot_from_wire(wire.snapshot),
        members_amount=wire.members_amount,
        member_metadata=dict(wire.member_metadata),
        restrictions=wire.restrictions,
        last_seq=wire.last_seq,
        membership=wire.membership,
        epoch=wire.epoch,
        server_time=wire.server_time,
    )


# Reading replies straight into the domain --------------------------------------------
# A join's snapshot and a history page are the large frames (10,000 messages at a join),
# a post's or an edit's reply the frequent one: msgspec reads them into these structs
# (one per class of frames.py, every field known, every value checked), and
# _domain_messages makes the domain's messages of them. Unknown fields go the general
# way (see frames.read_ok_result), which reads and ignores them.


class _MessageJson(msgspec.Struct, forbid_unknown_fields=True, frozen=True, gc=False):
    """A wire message (see :func:`_domain_messages`)."""

    id: str
    chat_id: str
    author_id: str
    content: str
    seq: int
    created_at: float
    edited_at: float | None = None


def _domain_messages(messages: tuple[_MessageJson, ...]) -> tuple[Message, ...]:
    """The messages as :func:`message_from_wire` gives them: ready, their chat and
    author ids interned."""
    # One pass that interns and constructs: a Message is a Struct, whose constructor
    # takes the fields msgspec has checked as they are; twice as quick as an interning
    # pass, then msgspec.convert from the structs' attributes (the join's figures:
    # benchmarks/README.md). The messages of a page share one chat (a valid page has no
    # other): an equal id is given the interned one without looking it up.
    chat_id = ""
    domain = []
    for wire in messages:
        if wire.chat_id != chat_id:
            chat_id = _intern(wire.chat_id)
        domain.append(
            Message(
                wire.id,
                chat_id,
                _intern(wire.author_id),
                wire.content,
                "ready",
                wire.seq,
                wire.created_at,
                wire.edited_at,
            )
        )
    return tuple(domain)


class _RestrictionJson(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    kind: Literal["mute", "block"]
    until: float | None = None
    reason: str | None = None


class _SnapshotJson(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    messages: tuple[_MessageJson, ...]
    members_amount: int
    member_metadata: dict[str, str]
    restrictions: tuple[_RestrictionJson, ...]
    last_seq: int
    membership: str | None = None
    epoch: str | None = None
    server_time: float | None = None


class _HistoryJson(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    messages: tuple[_MessageJson, ...]


class _MessagePostedJson(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    kind: Literal["message_posted"]
    message: _MessageJson


class _PostedFrameJson(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The ``event`` frame of a ``message_posted`` event: most of what a client receives."""

    type: Literal["event"]
    chat_id: str
    seq: int
    event: _MessagePostedJson


_POSTED_FRAME = msgspec.json.Decoder(_PostedFrameJson)
_EVENT_FRAME_START = '{"type":"event",'
_MESSAGE_FRAME = msgspec.json.Decoder(OkJson[_MessageJson])
_SNAPSHOT_FRAME = msgspec.json.Decoder(OkJson[_SnapshotJson])
_HISTORY_FRAME = msgspec.json.Decoder(OkJson[_HistoryJson])


def read_snapshot(frame: str | bytes, request_id: int) -> ChatSnapshot | None:
    """The snapshot answering request ``request_id`` in the ``ok`` frame ``frame``,
    as ``snapshot_from_wire(structure(...))`` reads it; None where it does not read
    (see :func:`frames.read_ok_result`)."""
    wire = read_ok_result(_SNAPSHOT_FRAME, frame, request_id)
    if wire is None:
        return None
    return ChatSnapshot(
        messages=_domain_messages(wire.messages),
        members_amount=wire.members_amount,
        member_metadata=wire.member_metadata,
        restrictions=msgspec.convert(
            wire.restrictions, tuple[Restriction, ...], from_attributes=True
        ),
        last_seq=wire.last_seq,
        membership=wire.membership,
        epoch=wire.epoch,
        server_time=wire.server_time,
    )


def read_event(frame: str | bytes) -> ServerEvent | None:
    """The event of the ``event`` frame ``frame``, as ``event_from_wire`` reads it
    (raising the same :class:`ProtocolError` for a message that is not the one the
    event may carry); None where it does not read (only ``message_posted`` frames
    do: see :func:`frames.read_ok_result`)."""
    if not (isinstance(frame, str) and frame.startswith(_EVENT_FRAME_START)):
        return None  # not an event frame as the server writes one: not worth a try
    wire = read_frame(_POSTED_FRAME, frame)
    if wire is None:
        return None
    (message,) = _domain_messages((wire.event.message,))
    return _checked_posted(MessagePosted(wire.chat_id, wire.seq, message))


def read_message(frame: str | bytes, request_id: int) -> Message | None:
    """The message answering request ``request_id`` (a post, an edit) in ``frame``,
    as :func:`read_snapshot` reads a snapshot."""
    wire = read_ok_result(_MESSAGE_FRAME, frame, request_id)
    if wire is None:
        return None
    (message,) = _domain_messages((wire,))
    return message


def read_history(frame: str | bytes, request_id: int) -> tuple[Message, ...] | None:
    """The history page answering request ``request_id`` in ``frame``, as
    :func:`read_snapshot` reads a snapshot."""
    wire = read_ok_result(_HISTORY_FRAME, frame, request_id)
    return None if wire is None else _domain_messages(wire.messages)


# Writing the frequent frames with the same structs -------------------------------------
# A post's reply and its message_posted event are most of what a server writes. The
# readers' structs write them too: msgspec gives the text frames.dumps gives (fields
# in the wire classes' order, compact), when every string is printable ASCII (dumps
# escapes the rest) and every time is 0 or between 1 and 1e16 (where msgspec and
# Python's repr write a float alike); otherwise None, and the general path writes it.

_WRITE = msgspec.json.Encoder()


def _writable(message: Message) -> bool:
    edited = message.edited_at
    return (
        _printable_ascii(message.id)
        and _printable_ascii(message.chat_id)
        and _printable_ascii(message.author_id)
        and _printable_ascii(message.content)
        and _plain_time(message.created_at)
        and (edited is None or _plain_time(edited))
        and message.seq is not None
    )


def _printable_ascii(text: str) -> bool:
    return text.isascii() and "\x7f" not in text


def _plain_time(value: float) -> bool:
    return value == 0.0 or 1.0 <= value < 1e16


def _message_json(message: Message) -> _MessageJson:
    assert message.seq is not None  # checked by _writable
    return _MessageJson(
        message.id,
        message.chat_id,
        message.author_id,
        message.content,
        message.seq,
        message.created_at,
        message.edited_at,
    )


def write_message(request_id: int, message: Message) -> str | None:
    """The ``ok`` frame answering request ``request_id`` with ``message`` (a post's,
    an edit's reply), as the general path writes it; None where this does not write
    it (see above)."""
    if not _writable(message):
        return None
    return _WRITE.encode(OkJson("ok", request_id, _message_json(message))).decode()


def write_posted(event: MessagePosted, seq: int) -> str | None:
    """The ``event`` frame of ``event`` at ``seq``, as the general path writes it;
    None where this does not write it (see above)."""
    if not (_writable(event.message) and _printable_ascii(event.chat_id)):
        return None
    posted = _MessagePostedJson("message_posted", _message_json(event.message))
    return _WRITE.encode(_PostedFrameJson("event", event.chat_id, seq, posted)).decode()


# Replies ----------------------------------------------------------------------------

T = TypeVar("T")
W = TypeVar("W")


@attrs.frozen
class ReplyCodec(Generic[T, W]):
    """How a reply of domain type ``T`` travels as the ``result`` of an ``ok`` frame.

    ``wire`` is the type the converter reads the result as; ``to_wire`` and
    ``from_wire`` map between it and the domain value. ``read``, for the large
    replies: reads the reply to a request (by its id) from the text of an ``ok``
    frame straight into the domain value, or gives None where the converter must
    read it (see :func:`frames.read_ok_result`).
    """

    wire: type[W]
    to_wire: Callable[[T], W]
    from_wire: Callable[[W], T]
    read: Callable[[str | bytes, int], T | None] | None = None


def _as_is(value: T) -> T:
    """The codec of a reply whose JSON shape is the domain class's own."""
    return value


REPLY_CODECS: Mapping[type, ReplyCodec[Any, Any]] = {
    ChatSnapshot: ReplyCodec(WireSnapshot, snapshot_to_wire, snapshot_from_wire, read_snapshot),
    Message: ReplyCodec(WireMessage, message_to_wire, message_from_wire, read_message),
    tuple[Message, ...]: ReplyCodec(WireHistory, history_to_wire, history_from_wire, read_history),
    Resumption: ReplyCodec(WireResumption, resumption_to_wire, resumption_from_wire),
    MembershipRenewal: ReplyCodec(MembershipRenewal, _as_is, _as_is),
    NoneType: ReplyCodec(NoneType, _as_is, _as_is),
}
"""The codec of each reply type a :class:`~chats_store.chats.commands.RequestKind` declares."""

_CODEC_OF_CLASS: Mapping[type, ReplyCodec[Any, Any]] = {
    reply_class(reply): codec for reply, codec in REPLY_CODECS.items()
}


def reply_codec_of(reply: object) -> ReplyCodec[Any, Any]:
    """The codec of the reply value ``reply`` (``TypeError`` if it is not a chat reply)."""
    codec = _CODEC_OF_CLASS.get(type(reply))
    if codec is None:
        raise TypeError(f"not a chat reply: {reply!r}")
    return codec
