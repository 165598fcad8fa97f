"""Every action of the Chats module (pure: attrs only).

Three families, each named by what it is:

* **intents** (imperative), dispatched by the facade after validation; each
  carries the ``call_id`` of the facade call waiting for its outcome, and every
  id or time the reducer needs (reducers have no clock and no id factory);
* **outcomes** (past tense), dispatched by the effects when a request's reply or
  failure arrives, with the same ``call_id``;
* **server events** (past tense), pushed by the server, each with the chat
  event's ``seq``; plus :class:`ConnectionStatusChanged` from the transport and
  :class:`ChatsRestored` from a state file;
* **due times**: :class:`MembershipRenewalDue`, dispatched when a timer the reducer
  asked for (``DispatchLater``) fires.

Every action that concerns one chat has a ``chat_id`` field; it changes nothing
but that chat's entry (and the list of chat ids), which the store relies on to
refresh only that chat's getters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import attrs

from chats_store.chats.model import ConnectionStatus, Message, PendingOperation, Restriction

__all__ = [
    "ChatHistoryRestored",
    "ChatJoinFailed",
    "ChatJoined",
    "ChatLeaveFailed",
    "ChatLeft",
    "ChatMemberModerated",
    "ChatMemberModerationFailed",
    "ChatResumeFailed",
    "ChatResumed",
    "ChatSnapshot",
    "ChatsRestored",
    "ConnectionStatusChanged",
    "DeleteMessage",
    "Failure",
    "FailureKind",
    "JoinChat",
    "LeaveChat",
    "LoadOlderMessages",
    "MembersAmountChanged",
    "MembershipRenewFailed",
    "MembershipRenewal",
    "MembershipRenewalDue",
    "MembershipRenewed",
    "MessageDeleteFailed",
    "MessageDeleted",
    "MessageEdited",
    "MessagePosted",
    "MessageRemoved",
    "MessageSendFailed",
    "MessageSent",
    "MessageUpdateFailed",
    "MessageUpdated",
    "ModerateChatMember",
    "ModerationMeasure",
    "OlderMessagesLoadFailed",
    "OlderMessagesLoaded",
    "OwnMetadataChanged",
    "OwnRestrictionsChanged",
    "RemovedFromChat",
    "ResendMessage",
    "RestoredChat",
    "Resumption",
    "SendMessage",
    "ServerEvent",
    "UpdateMessage",
]

ModerationMeasure = Literal["block", "unblock", "mute", "unmute", "kick"]
FailureKind = Literal["rejected", "refused", "connection_lost", "timeout", "cancelled"]


@attrs.frozen
class Failure:
    """Why a request did not succeed, as a value (exceptions are the facade's).

    ``rejected``: the reducer refused the intent (nothing was sent, nothing changed);
    ``refused``: the server answered with an error ``code``; ``connection_lost``
    and ``timeout``: the outcome is unknown; ``cancelled``: the client gave up on
    the call itself (``code`` says why, e.g. the chat was left during its join).
    """

    kind: FailureKind
    code: str
    detail: str


@attrs.frozen
class ChatSnapshot:
    """What the server returns on join: the chat as of event ``last_seq``.

    ``membership`` is the resumable membership credential the server issued with
    the join (a signed token, audience ``chats_store:membership``): give it back in a
    :class:`~chats_store.chats.commands.ResumeRequest` to re-attach after a
    reconnect without a fresh chat token. None where no server issued one.
    ``epoch`` names the server's history (see
    :class:`~chats_store.chats.commands.ResumeRequest`); None from a server that
    does not send one.
    ``server_time`` is the server's clock when it answered (epoch seconds; None from
    a server that does not send it): see :mod:`chats_store.chats.server_clock`.
    """

    messages: tuple[Message, ...]
    members_amount: int
    member_metadata: Mapping[str, str]
    restrictions: tuple[Restriction, ...]
    last_seq: int
    membership: str | None = attrs.field(default=None, repr=False)
    epoch: str | None = None
    server_time: float | None = None


# Intents ---------------------------------------------------------------------


@attrs.frozen
class JoinChat:
    call_id: int
    chat_id: str
    token: str = attrs.field(repr=False)


@attrs.frozen
class LeaveChat:
    call_id: int
    chat_id: str


@attrs.frozen
class SendMessage:
    call_id: int
    chat_id: str
    message_id: str
    author_id: str
    content: str
    created_at: float


@attrs.frozen
class UpdateMessage:
    call_id: int
    chat_id: str
    message_id: str
    content: str


@attrs.frozen
class DeleteMessage:
    call_id: int
    chat_id: str
    message_id: str


@attrs.frozen
class ResendMessage:
    call_id: int
    chat_id: str
    message_id: str


@attrs.frozen
class LoadOlderMessages:
    call_id: int
    chat_id: str
    limit: int


@attrs.frozen
class ModerateChatMember:
    """One intent for the five moderation actions: they differ only in ``measure``."""

    call_id: int
    chat_id: str
    member_id: str
    measure: ModerationMeasure
    duration: int | None = None
    reason: str | None = None


# Outcomes --------------------------------------------------------------------


@attrs.frozen
class ChatJoined:
    call_id: int
    chat_id: str
    snapshot: ChatSnapshot


@attrs.frozen
class ChatJoinFailed:
    call_id: int
    chat_id: str
    failure: Failure


@attrs.frozen
class ChatLeft:
    call_id: int
    chat_id: str


@attrs.frozen
class ChatLeaveFailed:
    call_id: int
    chat_id: str
    failure: Failure


@attrs.frozen
class MessageSent:
    call_id: int
    chat_id: str
    message: Message


@attrs.frozen
class MessageSendFailed:
    call_id: int
    chat_id: str
    message_id: str
    failure: Failure


@attrs.frozen
class MessageUpdated:
    call_id: int
    chat_id: str
    message: Message


@attrs.frozen
class MessageUpdateFailed:
    call_id: int
    chat_id: str
    message_id: str
    failure: Failure


@attrs.frozen
class MessageDeleted:
    call_id: int
    chat_id: str
    message_id: str


@attrs.frozen
class MessageDeleteFailed:
    call_id: int
    chat_id: str
    message_id: str
    failure: Failure


@attrs.frozen
class OlderMessagesLoaded:
    call_id: int
    chat_id: str
    messages: tuple[Message, ...]


@attrs.frozen
class OlderMessagesLoadFailed:
    call_id: int
    chat_id: str
    failure: Failure


@attrs.frozen
class ChatResumed:
    """A resume request succeeded: apply ``resumption`` to the chat."""

    call_id: int
    chat_id: str
    resumption: Resumption


@attrs.frozen
class ChatResumeFailed:
    """A resume request failed (refused: ``not_a_member``, ``member_blocked``,
    ``invalid_token``, ``expired_token``...; or the connection was lost)."""

    call_id: int
    chat_id: str
    failure: Failure


@attrs.frozen
class MembershipRenewed:
    """A renew request succeeded: keep the fresh credential for the next resume."""

    call_id: int
    chat_id: str
    renewal: MembershipRenewal


@attrs.frozen
class MembershipRenewFailed:
    """A renew request failed (timed out, the connection was lost, or a server that
    does not know the request refused it)."""

    call_id: int
    chat_id: str
    failure: Failure


@attrs.frozen
class ChatMemberModerated:
    call_id: int
    chat_id: str
    member_id: str
    measure: ModerationMeasure


@attrs.frozen
class ChatMemberModerationFailed:
    call_id: int
    chat_id: str
    member_id: str
    failure: Failure


# Server events -----------------------------------------------------------------


@attrs.frozen
class MessagePosted:
    """A new message in the chat (any author, the client's own included)."""

    chat_id: str
    seq: int
    message: Message


@attrs.frozen
class MessageEdited:
    chat_id: str
    seq: int
    message: Message


@attrs.frozen
class MessageRemoved:
    chat_id: str
    seq: int
    message_id: str


@attrs.frozen
class MembersAmountChanged:
    chat_id: str
    seq: int
    members_amount: int


@attrs.frozen
class OwnRestrictionsChanged:
    """The client's own restrictions in the chat, as a whole new list."""

    chat_id: str
    seq: int
    restrictions: tuple[Restriction, ...]


@attrs.frozen
class OwnMetadataChanged:
    chat_id: str
    seq: int
    member_metadata: Mapping[str, str]


@attrs.frozen
class RemovedFromChat:
    """The server ended the client's membership (kicked or blocked)."""

    chat_id: str
    reason: Literal["kicked", "blocked"]
    detail: str | None = None


@attrs.frozen
class ConnectionStatusChanged:
    status: ConnectionStatus


@attrs.frozen
class MembershipRenewalDue:
    """Half of the lifetime of the chat's membership credential has passed: renew it
    (while the chat is ``ready`` on an open connection; a resume renews it otherwise)."""

    chat_id: str


@attrs.frozen
class RestoredChat:
    """What a state file kept of one joined chat (see :class:`ChatsRestored`).

    ``messages``: its newest confirmed messages by ``seq`` (``ready``, as the server
    last confirmed them), then its pending ones (``interrupted``), in order;
    ``operations``: its requests not acknowledged, in the order they were made.
    """

    chat_id: str
    last_seq: int
    membership: str = attrs.field(repr=False)
    members_amount: int | None
    member_metadata: Mapping[str, str]
    restrictions: tuple[Restriction, ...]
    messages: tuple[Message, ...]
    operations: tuple[PendingOperation, ...]


@attrs.frozen
class ChatsRestored:
    """The chats of a state file, restored when the module is created (before any
    connection): each becomes ``reloading`` until it has resumed. Each shows its newest
    messages at once; :class:`ChatHistoryRestored` brings the older ones the file keeps."""

    chats: tuple[RestoredChat, ...]


@attrs.frozen
class ChatHistoryRestored:
    """Older messages of a chat restored from a state file: those it keeps below
    ``before_seq``, the oldest message :class:`ChatsRestored` showed."""

    chat_id: str
    before_seq: int
    messages: tuple[Message, ...]


ServerEvent = (
    MessagePosted
    | MessageEdited
    | MessageRemoved
    | MembersAmountChanged
    | OwnRestrictionsChanged
    | OwnMetadataChanged
    | RemovedFromChat
)
"""What the server pushes to the client, as actions."""


@attrs.frozen
class Resumption:
    """What the server returns on resume: what a member missed since ``since_seq``.

    Either ``events`` (every event of the chat visible to this member with
    ``seq > since_seq``, in ``seq`` order; ``snapshot`` is None), or, when the
    member is too far behind, a full join ``snapshot`` (``events`` is empty).
    ``members_amount``, ``member_metadata``, ``restrictions`` (active ones) and
    ``last_seq`` are the chat's current values either way; ``last_seq`` may be
    larger than the last event's seq (other members' private events take seqs).
    ``membership`` is a refreshed credential: keep it for the next resume.
    ``epoch`` names the server's history: when it is not the one the client's
    state came from, the server sends a ``snapshot`` (None from a server that
    does not send one).
    ``server_time``: the server's clock when it answered, as in :class:`ChatSnapshot`.
    """

    events: tuple[ServerEvent, ...]
    snapshot: ChatSnapshot | None
    members_amount: int
    member_metadata: Mapping[str, str]
    restrictions: tuple[Restriction, ...]
    last_seq: int
    membership: str = attrs.field(repr=False)
    epoch: str | None = None
    server_time: float | None = None


@attrs.frozen
class MembershipRenewal:
    """What the server returns on renew: a fresh membership credential of the chat.

    A connection that stays open never resumes, so the credential of its last join or
    resume would expire under it; the client renews it before then.
    """

    membership: str = attrs.field(repr=False)
