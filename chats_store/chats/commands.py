"""Effects as data: the requests the Chats module sends, and their outcomes (pure).

The reducer returns :class:`SendRequest` and :class:`SettleCall` commands; the
effects interpreter (``chats.effects``) carries them out. What a reply or a
failure *means* is decided here, by :func:`outcome_of`, a pure function, so the
whole request -> outcome mapping is testable without any I/O.

Requests are domain values; the wire protocol maps them to frames.
"""

from __future__ import annotations

import attrs

from chats_store.chats.actions import (
    ChatJoined,
    ChatJoinFailed,
    ChatLeaveFailed,
    ChatLeft,
    ChatMemberModerated,
    ChatMemberModerationFailed,
    ChatResumed,
    ChatResumeFailed,
    ChatSnapshot,
    Failure,
    MessageDeleted,
    MessageDeleteFailed,
    MessageSendFailed,
    MessageSent,
    MessageUpdated,
    MessageUpdateFailed,
    ModerationMeasure,
    OlderMessagesLoaded,
    OlderMessagesLoadFailed,
    Resumption,
)
from chats_store.chats.model import Message
from chats_store.core.reducer import Command
from chats_store.errors import ErrorCode

__all__ = [
    "ChatReply",
    "ChatRequest",
    "DeleteMessageRequest",
    "EditMessageRequest",
    "HistoryRequest",
    "JoinRequest",
    "LeaveRequest",
    "ModerationRequest",
    "Outcome",
    "PostMessageRequest",
    "ResumeRequest",
    "SendRequest",
    "SettleCall",
    "outcome_of",
]


@attrs.frozen
class JoinRequest:
    """Join with a chat token; the reply is a :class:`ChatSnapshot`."""

    chat_id: str
    token: str = attrs.field(repr=False)


@attrs.frozen
class LeaveRequest:
    """End the membership; the reply is empty."""

    chat_id: str


@attrs.frozen
class PostMessageRequest:
    """Post (or re-post: the server deduplicates on ``message_id``); reply: Message."""

    chat_id: str
    message_id: str
    content: str


@attrs.frozen
class EditMessageRequest:
    """Replace a message's content (author only); reply: the edited Message."""

    chat_id: str
    message_id: str
    content: str


@attrs.frozen
class DeleteMessageRequest:
    """Delete a message (author or moderator); the reply is empty."""

    chat_id: str
    message_id: str


@attrs.frozen
class ModerationRequest:
    """Apply a moderation measure to another member; the reply is empty."""

    chat_id: str
    member_id: str
    measure: ModerationMeasure
    duration: int | None = None
    reason: str | None = None


@attrs.frozen
class HistoryRequest:
    """Fetch up to ``limit`` messages older than ``before_seq``; reply: tuple of Message."""

    chat_id: str
    before_seq: int
    limit: int


@attrs.frozen
class ResumeRequest:
    """Re-attach to a chat with the membership credential of an earlier join.

    ``membership`` is the credential of the last join or resume reply;
    ``since_seq`` the ``seq`` of the last event the client applied. The reply is a
    :class:`~chats_store.chats.actions.Resumption`: what was missed, or a full
    snapshot when too much was. A resume does not create a membership: a member
    that left, was kicked or blocked is refused (``not_a_member``,
    ``member_blocked``).
    """

    chat_id: str
    membership: str = attrs.field(repr=False)
    since_seq: int


ChatRequest = (
    JoinRequest
    | LeaveRequest
    | PostMessageRequest
    | EditMessageRequest
    | DeleteMessageRequest
    | ModerationRequest
    | HistoryRequest
    | ResumeRequest
)
ChatReply = ChatSnapshot | Message | tuple[Message, ...] | Resumption | None
Outcome = (
    ChatJoined
    | ChatJoinFailed
    | ChatLeft
    | ChatLeaveFailed
    | MessageSent
    | MessageSendFailed
    | MessageUpdated
    | MessageUpdateFailed
    | MessageDeleted
    | MessageDeleteFailed
    | ChatMemberModerated
    | ChatMemberModerationFailed
    | OlderMessagesLoaded
    | OlderMessagesLoadFailed
    | ChatResumed
    | ChatResumeFailed
)


@attrs.frozen
class SendRequest(Command):
    """Send ``request``; dispatch its outcome and settle the call ``call_id`` with it."""

    call_id: int
    request: ChatRequest


@attrs.frozen
class SettleCall(Command):
    """Settle the facade call ``call_id`` with ``outcome`` now (nothing is sent)."""

    call_id: int
    outcome: Outcome


def outcome_of(call_id: int, request: ChatRequest, result: ChatReply | Failure) -> Outcome:
    """The action that reports ``result`` (a reply or a failure) of ``request``.

    Deleting a message the server never received (an interrupted send) is
    answered ``message_not_found``: the message is gone either way, so that
    counts as success.
    """
    failure = result if isinstance(result, Failure) else None
    match request:
        case JoinRequest(chat_id=chat_id):
            if failure is not None:
                return ChatJoinFailed(call_id, chat_id, failure)
            assert isinstance(result, ChatSnapshot), result
            return ChatJoined(call_id, chat_id, result)
        case LeaveRequest(chat_id=chat_id):
            if failure is not None:
                return ChatLeaveFailed(call_id, chat_id, failure)
            return ChatLeft(call_id, chat_id)
        case PostMessageRequest(chat_id=chat_id, message_id=message_id):
            if failure is not None:
                return MessageSendFailed(call_id, chat_id, message_id, failure)
            assert isinstance(result, Message), result
            return MessageSent(call_id, chat_id, result)
        case EditMessageRequest(chat_id=chat_id, message_id=message_id):
            if failure is not None:
                return MessageUpdateFailed(call_id, chat_id, message_id, failure)
            assert isinstance(result, Message), result
            return MessageUpdated(call_id, chat_id, result)
        case DeleteMessageRequest(chat_id=chat_id, message_id=message_id):
            if failure is not None and not (
                failure.kind == "refused" and failure.code == ErrorCode.MESSAGE_NOT_FOUND
            ):
                return MessageDeleteFailed(call_id, chat_id, message_id, failure)
            return MessageDeleted(call_id, chat_id, message_id)
        case ModerationRequest(chat_id=chat_id, member_id=member_id, measure=measure):
            if failure is not None:
                return ChatMemberModerationFailed(call_id, chat_id, member_id, failure)
            return ChatMemberModerated(call_id, chat_id, member_id, measure)
        case HistoryRequest(chat_id=chat_id):
            if failure is not None:
                return OlderMessagesLoadFailed(call_id, chat_id, failure)
            assert isinstance(result, tuple), result
            return OlderMessagesLoaded(call_id, chat_id, result)
        case ResumeRequest(chat_id=chat_id):
            if failure is not None:
                return ChatResumeFailed(call_id, chat_id, failure)
            assert isinstance(result, Resumption), result
            return ChatResumed(call_id, chat_id, result)
