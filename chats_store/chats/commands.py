"""Effects as data: the requests the Chats module sends, and their outcomes (pure).

The reducer returns :class:`SendRequest` and :class:`SettleCall` commands; the
effects interpreter (``chats.effects``) carries them out.

Each kind of request is declared once, in :data:`REQUEST_KINDS`: its wire tag,
its class, the domain type of its reply, the outcome actions that report its
reply or its failure, and what a reply must be to answer it. Everything else
looks the kind up: :func:`outcome_of` (what a reply or a failure *means*, a pure
function, so the whole request -> outcome mapping is testable without any I/O),
and the wire protocol, which writes a request as ``{"type": tag, "id": n,
**fields}`` and reads its reply by the declared type.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar, get_origin

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
    MembershipRenewal,
    MembershipRenewed,
    MembershipRenewFailed,
    MessageDeleted,
    MessageDeleteFailed,
    MessageSendFailed,
    MessageSent,
    MessageUpdated,
    MessageUpdateFailed,
    ModerationMeasure,
    OlderMessagesLoaded,
    OlderMessagesLoadFailed,
    RemovedFromChat,
    Resumption,
)
from chats_store.chats.model import Message
from chats_store.core.reducer import Command
from chats_store.errors import ErrorCode

__all__ = [
    "REQUEST_KINDS",
    "ChatReply",
    "ChatRequest",
    "DeleteMessageRequest",
    "DispatchLater",
    "EditMessageRequest",
    "HistoryRequest",
    "JoinRequest",
    "LeaveRequest",
    "ModerationRequest",
    "Outcome",
    "PostMessageRequest",
    "RenewRequest",
    "RequestKind",
    "ResumeRequest",
    "SendRequest",
    "SettleCall",
    "kind_of",
    "outcome_of",
    "reply_class",
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
    ``since_seq`` the ``seq`` of the last event the client applied; ``epoch`` the
    epoch of the reply its state came from (None if that server sent none). The
    reply is a :class:`~chats_store.chats.actions.Resumption`: what was missed, or a
    full snapshot when too much was, or when the server's history is not the one
    the client holds (another epoch, or ``since_seq`` past the chat's last seq). A
    resume does not create a membership: a member that left, was kicked or blocked
    is refused (``not_a_member``, ``member_blocked``).
    """

    chat_id: str
    membership: str = attrs.field(repr=False)
    since_seq: int
    epoch: str | None = None


@attrs.frozen
class RenewRequest:
    """Ask for a fresh membership credential of a chat joined (or resumed) on this
    connection; the reply is a :class:`~chats_store.chats.actions.MembershipRenewal`.

    The client sends it when half of its credential's lifetime has passed, so that a
    connection that stays open longer than a credential lasts can still resume later.
    """

    chat_id: str


ChatRequest = (
    JoinRequest
    | LeaveRequest
    | PostMessageRequest
    | EditMessageRequest
    | DeleteMessageRequest
    | ModerationRequest
    | HistoryRequest
    | ResumeRequest
    | RenewRequest
)
ChatReply = ChatSnapshot | Message | tuple[Message, ...] | Resumption | MembershipRenewal | None
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
    | MembershipRenewed
    | MembershipRenewFailed
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


@attrs.frozen
class DispatchLater(Command):
    """Dispatch ``action`` in ``delay`` seconds (time as a message, the Elm way).

    A later ``DispatchLater`` with the same ``key`` replaces this one, so a chat has
    one timer per purpose however often it is asked for.
    """

    key: tuple[str, str]
    delay: float
    action: object


# The request registry ---------------------------------------------------------------

R = TypeVar("R")
T = TypeVar("T")


def _any_reply_fits(request: object, reply: object) -> str | None:
    return None


@attrs.frozen
class RequestKind(Generic[R, T]):
    """One kind of request, declared once; requests of class ``request`` have replies of type ``T``.

    * ``tag``: the ``type`` of the request's frame on the wire (the protocol documentation);
    * ``reply``: the domain type of its reply (``type(None)`` for an empty one): the
      wire protocol reads and writes the reply by this type;
    * ``succeeded`` and ``failed``: the outcome action reporting a reply or a
      :class:`Failure`, given the call id and the request;
    * ``mismatch``: why a reply cannot answer the request (None when it can). The
      client checks each reply it decodes with it and refuses an inconsistent one
      (``unexpected_reply``): the reducer relies on replies being about the chat and
      the message it asked for.
    """

    tag: str
    request: type[R]
    reply: type[T]
    succeeded: Callable[[int, R, T], Outcome]
    failed: Callable[[int, R, Failure], Outcome]
    mismatch: Callable[[R, T], str | None] = _any_reply_fits

    def outcome(self, call_id: int, request: R, result: T | Failure) -> Outcome:
        """The action that reports ``result`` (a reply or a failure) of ``request``."""
        if isinstance(result, Failure):
            return self.failed(call_id, request, result)
        assert isinstance(result, reply_class(self.reply)), result
        return self.succeeded(call_id, request, result)


def reply_class(reply: type) -> type:
    """The class of the values of the reply type ``reply`` (``tuple`` for ``tuple[X, ...]``)."""
    return get_origin(reply) or reply


def _message_mismatch(
    request: PostMessageRequest | EditMessageRequest, message: Message
) -> str | None:
    if message.chat_id != request.chat_id or message.id != request.message_id:
        return f"it is message {message.id!r} of chat {message.chat_id!r}, not the one requested"
    return None


def _page_mismatch(messages: tuple[Message, ...], chat_id: str, below_seq: int) -> str | None:
    """What keeps ``messages`` (a snapshot, a history page) from being shown in chat ``chat_id``.

    A page must hold messages of ``chat_id`` only, each with a ``seq`` below
    ``below_seq``, no id or ``seq`` twice: the client relies on one message per id
    and per ``seq``.
    """
    # A server sends a page by ascending seq: that case is checked by one pass over the
    # chats and seqs and a set of the ids (a join's 10,000 messages); any other page is
    # walked by _page_offender, which also names what breaks it.
    previous = 0
    for message in messages:
        seq = message.seq
        if message.chat_id != chat_id or seq is None or seq <= previous:
            break
        previous = seq
    else:
        if previous < below_seq and len({m.id for m in messages}) == len(messages):
            return None
    return _page_offender(messages, chat_id, below_seq)


def _page_offender(messages: tuple[Message, ...], chat_id: str, below_seq: int) -> str | None:
    """What :func:`_page_mismatch` says of ``messages``, naming the first message that
    breaks the page (None if none does), in any order of seqs."""
    ids: set[str] = set()
    seqs: set[int] = set()
    for message in messages:
        if message.chat_id != chat_id:
            return (
                f"a page of chat {chat_id!r} holds message {message.id!r} of chat "
                f"{message.chat_id!r}"
            )
        if message.seq is None or message.seq >= below_seq:
            return (
                f"message {message.id!r} has seq {message.seq}; this page holds seqs below "
                f"{below_seq}"
            )
        if message.id in ids or message.seq in seqs:
            return f"message {message.id!r} (seq {message.seq}) appears twice in one page"
        ids.add(message.id)
        seqs.add(message.seq)
    return None


def _snapshot_mismatch(snapshot: ChatSnapshot, chat_id: str) -> str | None:
    return _page_mismatch(snapshot.messages, chat_id, snapshot.last_seq + 1)


def _resumption_mismatch(request: ResumeRequest, resumption: Resumption) -> str | None:
    """What keeps ``resumption`` from being what chat ``request.chat_id`` missed.

    Every event must be of the chat and not ``removed_from_chat``, their seqs must
    grow strictly from above ``since_seq`` to at most ``last_seq``, a snapshot comes
    with no events, and its messages are a page of the chat.
    """
    chat_id, since_seq, last_seq = request.chat_id, request.since_seq, resumption.last_seq
    previous = since_seq
    for event in resumption.events:
        if event.chat_id != chat_id:
            return f"the resumption of chat {chat_id!r} holds an event of chat {event.chat_id!r}"
        if isinstance(event, RemovedFromChat):
            return "a resumption cannot hold a removed_from_chat event"
        if not previous < event.seq <= last_seq:
            return (
                f"the resumption of chat {chat_id!r} since seq {since_seq} holds an event "
                f"with seq {event.seq} after seq {previous} (last_seq {last_seq})"
            )
        previous = event.seq
    if resumption.snapshot is None:
        return None
    if resumption.events:
        return "a resumption holds either events or a snapshot, not both"
    return _snapshot_mismatch(resumption.snapshot, chat_id)


def _delete_failed(call_id: int, request: DeleteMessageRequest, failure: Failure) -> Outcome:
    """Deleting a message the server never received (an interrupted send) is answered
    ``message_not_found``: the message is gone either way, so that counts as success."""
    if failure.kind == "refused" and failure.code == ErrorCode.MESSAGE_NOT_FOUND:
        return MessageDeleted(call_id, request.chat_id, request.message_id)
    return MessageDeleteFailed(call_id, request.chat_id, request.message_id, failure)


# Not annotated: mypy then infers each entry's types from its request class and reply
# type, and checks its functions against them.
_KINDS = (
    RequestKind(
        "join",
        JoinRequest,
        ChatSnapshot,
        succeeded=lambda call_id, request, snapshot: ChatJoined(call_id, request.chat_id, snapshot),
        failed=lambda call_id, request, failure: ChatJoinFailed(call_id, request.chat_id, failure),
        mismatch=lambda request, snapshot: _snapshot_mismatch(snapshot, request.chat_id),
    ),
    RequestKind(
        "leave",
        LeaveRequest,
        type(None),
        succeeded=lambda call_id, request, _: ChatLeft(call_id, request.chat_id),
        failed=lambda call_id, request, failure: ChatLeaveFailed(call_id, request.chat_id, failure),
    ),
    RequestKind(
        "post",
        PostMessageRequest,
        Message,
        succeeded=lambda call_id, request, message: MessageSent(call_id, request.chat_id, message),
        failed=lambda call_id, request, failure: MessageSendFailed(
            call_id, request.chat_id, request.message_id, failure
        ),
        mismatch=_message_mismatch,
    ),
    RequestKind(
        "edit",
        EditMessageRequest,
        Message,
        succeeded=lambda call_id, request, message: MessageUpdated(
            call_id, request.chat_id, message
        ),
        failed=lambda call_id, request, failure: MessageUpdateFailed(
            call_id, request.chat_id, request.message_id, failure
        ),
        mismatch=_message_mismatch,
    ),
    RequestKind(
        "delete",
        DeleteMessageRequest,
        type(None),
        succeeded=lambda call_id, request, _: MessageDeleted(
            call_id, request.chat_id, request.message_id
        ),
        failed=_delete_failed,
    ),
    RequestKind(
        "moderate",
        ModerationRequest,
        type(None),
        succeeded=lambda call_id, request, _: ChatMemberModerated(
            call_id, request.chat_id, request.member_id, request.measure
        ),
        failed=lambda call_id, request, failure: ChatMemberModerationFailed(
            call_id, request.chat_id, request.member_id, failure
        ),
    ),
    RequestKind(
        "history",
        HistoryRequest,
        tuple[Message, ...],
        succeeded=lambda call_id, request, page: OlderMessagesLoaded(
            call_id, request.chat_id, page
        ),
        failed=lambda call_id, request, failure: OlderMessagesLoadFailed(
            call_id, request.chat_id, failure
        ),
        mismatch=lambda request, page: _page_mismatch(page, request.chat_id, request.before_seq),
    ),
    RequestKind(
        "resume",
        ResumeRequest,
        Resumption,
        succeeded=lambda call_id, request, resumption: ChatResumed(
            call_id, request.chat_id, resumption
        ),
        failed=lambda call_id, request, failure: ChatResumeFailed(
            call_id, request.chat_id, failure
        ),
        mismatch=_resumption_mismatch,
    ),
    RequestKind(
        "renew",
        RenewRequest,
        MembershipRenewal,
        succeeded=lambda call_id, request, renewal: MembershipRenewed(
            call_id, request.chat_id, renewal
        ),
        failed=lambda call_id, request, failure: MembershipRenewFailed(
            call_id, request.chat_id, failure
        ),
    ),
)

REQUEST_KINDS: Mapping[str, RequestKind[Any, Any]] = {kind.tag: kind for kind in _KINDS}
"""Every kind of request, by wire tag, in the order the protocol documentation lists them."""

_KIND_OF_CLASS: Mapping[type, RequestKind[Any, Any]] = {kind.request: kind for kind in _KINDS}


def kind_of(request: ChatRequest) -> RequestKind[Any, Any]:
    """The declaration of ``request``'s kind (``TypeError`` if it is not a chat request)."""
    kind = _KIND_OF_CLASS.get(type(request))
    if kind is None:
        raise TypeError(f"not a chat request: {request!r}")
    return kind


def outcome_of(call_id: int, request: ChatRequest, result: ChatReply | Failure) -> Outcome:
    """The action that reports ``result`` (a reply or a failure) of ``request``."""
    return kind_of(request).outcome(call_id, request, result)
