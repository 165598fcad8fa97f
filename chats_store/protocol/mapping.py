"""Mapping between wire DTOs (``frames``) and domain values (pure).

``*_to_wire`` functions take domain values and build DTOs; ``*_from_wire``
functions go the other way. Messages read from the wire are server-confirmed, so
they get the status ``"ready"``; a message sent on the wire must have a ``seq``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from chats_store.chats.actions import (
    ChatSnapshot,
    MembersAmountChanged,
    MessageEdited,
    MessagePosted,
    MessageRemoved,
    OwnMetadataChanged,
    OwnRestrictionsChanged,
    RemovedFromChat,
    Resumption,
    ServerEvent,
)
from chats_store.chats.commands import (
    ChatRequest,
    DeleteMessageRequest,
    EditMessageRequest,
    HistoryRequest,
    JoinRequest,
    LeaveRequest,
    ModerationRequest,
    PostMessageRequest,
    ResumeRequest,
)
from chats_store.chats.model import Message, Restriction
from chats_store.errors import ErrorCode, ProtocolError
from chats_store.protocol.frames import (
    DeleteFrame,
    EditFrame,
    EventFrame,
    HistoryFrame,
    JoinFrame,
    LeaveFrame,
    MembersAmountChangedBody,
    MessageEditedBody,
    MessagePostedBody,
    MessageRemovedBody,
    ModerateFrame,
    OwnMetadataChangedBody,
    OwnRestrictionsChangedBody,
    PostFrame,
    RemovedFromChatBody,
    RequestFrame,
    ResumeFrame,
    WireEvent,
    WireHistory,
    WireMessage,
    WireRestriction,
    WireResumption,
    WireSnapshot,
)

__all__ = [
    "check_messages",
    "event_from_wire",
    "event_to_wire",
    "history_from_wire",
    "history_to_wire",
    "message_from_wire",
    "message_to_wire",
    "request_from_wire",
    "request_to_wire",
    "restriction_from_wire",
    "restriction_to_wire",
    "resumption_from_wire",
    "resumption_to_wire",
    "snapshot_from_wire",
    "snapshot_of_chat",
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


def restriction_to_wire(restriction: Restriction) -> WireRestriction:
    return WireRestriction(restriction.kind, restriction.until, restriction.reason)


def restriction_from_wire(wire: WireRestriction) -> Restriction:
    return Restriction(wire.kind, wire.until, wire.reason)


def _metadata(mapping: Mapping[str, str]) -> dict[str, str]:
    return dict(mapping)


def snapshot_to_wire(snapshot: ChatSnapshot) -> WireSnapshot:
    return WireSnapshot(
        messages=tuple(message_to_wire(m) for m in snapshot.messages),
        members_amount=snapshot.members_amount,
        member_metadata=_metadata(snapshot.member_metadata),
        restrictions=tuple(restriction_to_wire(r) for r in snapshot.restrictions),
        last_seq=snapshot.last_seq,
        membership=snapshot.membership,
    )


def snapshot_from_wire(wire: WireSnapshot) -> ChatSnapshot:
    return ChatSnapshot(
        messages=tuple(message_from_wire(m) for m in wire.messages),
        members_amount=wire.members_amount,
        member_metadata=dict(wire.member_metadata),
        restrictions=tuple(restriction_from_wire(r) for r in wire.restrictions),
        last_seq=wire.last_seq,
        membership=wire.membership,
    )


def history_to_wire(messages: tuple[Message, ...]) -> WireHistory:
    return WireHistory(tuple(message_to_wire(m) for m in messages))


def history_from_wire(wire: WireHistory) -> tuple[Message, ...]:
    return tuple(message_from_wire(m) for m in wire.messages)


# Requests ---------------------------------------------------------------------------


def request_to_wire(request_id: int, request: ChatRequest) -> RequestFrame:
    """The frame that carries ``request`` with id ``request_id``."""
    match request:
        case JoinRequest(chat_id=chat_id, token=token):
            return JoinFrame(request_id, chat_id, token)
        case LeaveRequest(chat_id=chat_id):
            return LeaveFrame(request_id, chat_id)
        case PostMessageRequest(chat_id=chat_id, message_id=message_id, content=content):
            return PostFrame(request_id, chat_id, message_id, content)
        case EditMessageRequest(chat_id=chat_id, message_id=message_id, content=content):
            return EditFrame(request_id, chat_id, message_id, content)
        case DeleteMessageRequest(chat_id=chat_id, message_id=message_id):
            return DeleteFrame(request_id, chat_id, message_id)
        case ModerationRequest():
            return ModerateFrame(
                request_id,
                request.chat_id,
                request.member_id,
                request.measure,
                request.duration,
                request.reason,
            )
        case HistoryRequest(chat_id=chat_id, before_seq=before_seq, limit=limit):
            return HistoryFrame(request_id, chat_id, before_seq, limit)
        case ResumeRequest(chat_id=chat_id, membership=membership, since_seq=since_seq):
            return ResumeFrame(request_id, chat_id, membership, since_seq)
    raise TypeError(f"not a chat request: {request!r}")


def request_from_wire(frame: RequestFrame) -> tuple[int, ChatRequest]:
    """The request id and the domain request carried by ``frame``."""
    request: ChatRequest
    match frame:
        case JoinFrame():
            request = JoinRequest(frame.chat_id, frame.token)
        case LeaveFrame():
            request = LeaveRequest(frame.chat_id)
        case PostFrame():
            request = PostMessageRequest(frame.chat_id, frame.message_id, frame.content)
        case EditFrame():
            request = EditMessageRequest(frame.chat_id, frame.message_id, frame.content)
        case DeleteFrame():
            request = DeleteMessageRequest(frame.chat_id, frame.message_id)
        case ModerateFrame():
            request = ModerationRequest(
                frame.chat_id, frame.member_id, frame.measure, frame.duration, frame.reason
            )
        case HistoryFrame():
            request = HistoryRequest(frame.chat_id, frame.before_seq, frame.limit)
        case ResumeFrame():
            request = ResumeRequest(frame.chat_id, frame.membership, frame.since_seq)
        case _:
            raise TypeError(f"not a request frame: {frame!r}")
    return frame.id, request


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
            body = OwnRestrictionsChangedBody(tuple(restriction_to_wire(r) for r in restrictions))
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


def _message_of(frame: EventFrame, message: WireMessage) -> Message:
    if message.chat_id != frame.chat_id:
        raise ProtocolError(
            f"an event of chat {frame.chat_id!r} carries a message of chat {message.chat_id!r}",
            code=ErrorCode.INVALID_FRAME,
        )
    return message_from_wire(message)


def event_from_wire(frame: EventFrame) -> ServerEvent:
    """The domain event carried by ``frame`` (:class:`ProtocolError` if inconsistent)."""
    chat_id, seq, body = frame.chat_id, frame.seq, frame.event
    match body:
        case MessagePostedBody(message=message):
            if message.seq != seq:
                raise ProtocolError(
                    f"message {message.id!r} posted by event {seq} must have seq {seq}, "
                    f"not {message.seq}",
                    code=ErrorCode.INVALID_FRAME,
                )
            return MessagePosted(chat_id, seq, _message_of(frame, message))
        case MessageEditedBody(message=message):
            return MessageEdited(chat_id, seq, _message_of(frame, message))
        case MessageRemovedBody(message_id=message_id):
            return MessageRemoved(chat_id, seq, message_id)
        case MembersAmountChangedBody(members_amount=amount):
            return MembersAmountChanged(chat_id, seq, amount)
        case OwnRestrictionsChangedBody(restrictions=restrictions):
            return OwnRestrictionsChanged(
                chat_id, seq, tuple(restriction_from_wire(r) for r in restrictions)
            )
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
        restrictions=tuple(restriction_to_wire(r) for r in resumption.restrictions),
        last_seq=resumption.last_seq,
        membership=resumption.membership,
    )


def _refuse(message: str, request_id: int | None) -> ProtocolError:
    return ProtocolError(message, code=ErrorCode.UNEXPECTED_REPLY, request_id=request_id)


def check_messages(
    messages: tuple[Message, ...], chat_id: str, below_seq: int, request_id: int | None
) -> tuple[Message, ...]:
    """``messages`` if they can all be shown in chat ``chat_id``, else :class:`ProtocolError`.

    A page of messages (a snapshot, a history page) must hold messages of
    ``chat_id`` only, each with a ``seq`` below ``below_seq``, no id or ``seq``
    twice: the client relies on one message per id and per ``seq``.
    """
    ids: set[str] = set()
    seqs: set[int] = set()
    for message in messages:
        if message.chat_id != chat_id:
            raise _refuse(
                f"a page of chat {chat_id!r} holds message {message.id!r} of chat "
                f"{message.chat_id!r}",
                request_id,
            )
        if message.seq is None or message.seq >= below_seq:
            raise _refuse(
                f"message {message.id!r} has seq {message.seq}; this page holds seqs below "
                f"{below_seq}",
                request_id,
            )
        if message.id in ids or message.seq in seqs:
            raise _refuse(
                f"message {message.id!r} (seq {message.seq}) appears twice in one page",
                request_id,
            )
        ids.add(message.id)
        seqs.add(message.seq)
    return messages


def snapshot_of_chat(
    wire: WireSnapshot, chat_id: str, request_id: int | None = None
) -> ChatSnapshot:
    """The snapshot of chat ``chat_id``, its messages checked by :func:`check_messages`."""
    snapshot = snapshot_from_wire(wire)
    check_messages(snapshot.messages, chat_id, snapshot.last_seq + 1, request_id)
    return snapshot


def resumption_from_wire(
    wire: WireResumption, chat_id: str, since_seq: int, request_id: int | None = None
) -> Resumption:
    """The resumption of chat ``chat_id`` since ``since_seq``, checked for consistency.

    Raises :class:`ProtocolError` (``unexpected_reply``) unless every event is of
    ``chat_id``, none is ``removed_from_chat``, their seqs grow strictly from above
    ``since_seq`` to at most ``last_seq``, and a snapshot comes with no events.
    """
    events: list[ServerEvent] = []
    previous = since_seq
    for frame in wire.events:
        if frame.chat_id != chat_id:
            raise _refuse(
                f"the resumption of chat {chat_id!r} holds an event of chat {frame.chat_id!r}",
                request_id,
            )
        if not previous < frame.seq <= wire.last_seq:
            raise _refuse(
                f"the resumption of chat {chat_id!r} since seq {since_seq} holds an event "
                f"with seq {frame.seq} after seq {previous} (last_seq {wire.last_seq})",
                request_id,
            )
        event = event_from_wire(frame)
        if isinstance(event, RemovedFromChat):
            raise _refuse("a resumption cannot hold a removed_from_chat event", request_id)
        events.append(event)
        previous = frame.seq
    if wire.snapshot is not None and events:
        raise _refuse("a resumption holds either events or a snapshot, not both", request_id)
    return Resumption(
        events=tuple(events),
        snapshot=None
        if wire.snapshot is None
        else snapshot_of_chat(wire.snapshot, chat_id, request_id),
        members_amount=wire.members_amount,
        member_metadata=dict(wire.member_metadata),
        restrictions=tuple(restriction_from_wire(r) for r in wire.restrictions),
        last_seq=wire.last_seq,
        membership=wire.membership,
    )
