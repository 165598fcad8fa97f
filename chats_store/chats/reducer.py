"""The Chats module's reducer: one named case reducer per transition (pure).

Two tables, like Redux Toolkit slices:

* ``CHATS_CASES`` act on the whole :class:`ChatsState` (joining, leaving,
  removal, connection changes): they add or remove chats;
* ``CHAT_CASES`` act on one :class:`ChatState`, the one named by the action's
  ``chat_id``; an outcome or event for a chat that is not there changes nothing.

Every intent first goes through the lifecycle tables of
:mod:`chats_store.chats.lifecycle`, the same ones the facade's checks raise from:
an intent they refuse (the facade validates first, so only an intent dispatched
after the state changed under it, or by a buggy caller, gets here) leaves the state
unchanged and settles its call at once with a ``SettleCall`` whose outcome carries
``Failure("rejected", code, detail)``. The cases below only run for intents the
tables accept, so they hold no guards of their own; the message status edges each
case may cause are listed in ``lifecycle.MESSAGE_EDGES``.

Server events carry the chat event ``seq``; an event at or below the chat's
``last_seq`` was already applied and is ignored. Events for a chat still
``loading`` or ``reloading`` are buffered and applied on top of the join's snapshot
or the resume's missed events (those already included are then skipped by the same
``seq`` rule), so the order in which a transport hands over a reply and the chat's
events does not matter. A chat keeps at most :data:`MAX_BUFFERED_EVENTS` of them:
with one more, the client gives the join (or the resync) up.

Whenever a chat gets a new membership credential, the reducer asks for a timer
(``DispatchLater``) at half the credential's lifetime; its ``MembershipRenewalDue``
then sends a renew request, so that a connection that stays up keeps a credential
it can resume with (:func:`_renewal`).

A snapshot (of a join, or of a resume) **replaces** the chat's history: its
``last_seq`` becomes the snapshot's, even a lower one (the server's data may come
from an older copy: its seqs are used again), and only the client's own pending
work stays on top. A resume reply whose ``epoch`` is not the chat's, or whose
``last_seq`` is below the chat's, without a snapshot (a server that does not
compare) cannot be applied: the chat drops its confirmed messages and asks again
from seq 0, in the reply's epoch.

The configuration (``auto_resend``, ``max_messages``) is given to
:func:`chats_reducer`, which builds a reducer for it; :data:`reduce_chats` is the
reducer of the default configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, TypedDict, TypeVar, Unpack

import msgspec
from immutables import Map

from chats_store.chats.actions import (
    ChatHistoryRestored,
    ChatJoined,
    ChatJoinFailed,
    ChatLeaveFailed,
    ChatMemberModerationFailed,
    ChatResumed,
    ChatResumeFailed,
    ChatSnapshot,
    ChatsRestored,
    ConnectionStatusChanged,
    DeleteMessage,
    Failure,
    FailureKind,
    JoinChat,
    LeaveChat,
    LoadOlderMessages,
    MembersAmountChanged,
    MembershipRenewalDue,
    MembershipRenewed,
    MembershipRenewFailed,
    MessageDeleted,
    MessageDeleteFailed,
    MessageEdited,
    MessagePosted,
    MessageRemoved,
    MessageSendFailed,
    MessageSent,
    MessageUpdated,
    MessageUpdateFailed,
    ModerateChatMember,
    OlderMessagesLoaded,
    OlderMessagesLoadFailed,
    OwnMetadataChanged,
    OwnRestrictionsChanged,
    RemovedFromChat,
    ResendMessage,
    RestoredChat,
    Resumption,
    SendMessage,
    UpdateMessage,
)
from chats_store.chats.commands import (
    DeleteMessageRequest,
    DispatchLater,
    EditMessageRequest,
    HistoryRequest,
    JoinRequest,
    LeaveRequest,
    ModerationRequest,
    Outcome,
    PostMessageRequest,
    RenewRequest,
    ResumeRequest,
    SendRequest,
    SettleCall,
)
from chats_store.chats.event_buffer import EMPTY_BUFFER, EventBuffer
from chats_store.chats.lifecycle import INTENTS, action_of, refusal
from chats_store.chats.model import (
    SYNC_IDLE,
    ChatRemoval,
    ChatsState,
    ChatState,
    ChatStatus,
    ConnectionStatus,
    Message,
    MessageLog,
    PendingOperation,
    QueuedSend,
    RemovalReason,
    Restriction,
    SyncStatus,
    SyncStatuses,
    read_only,
    replaced,
)
from chats_store.core.reducer import Command, Reducer, Step, reducer_from_table
from chats_store.errors import ErrorCode
from chats_store.tokens import renewal_delay

__all__ = ["CHATS_CASES", "CHAT_CASES", "MAX_BUFFERED_EVENTS", "chats_reducer", "reduce_chats"]

A = TypeVar("A")
V = TypeVar("V")

MAX_BUFFERED_EVENTS = 10_000
"""The most server events a chat keeps while it is ``loading`` or ``reloading``; with
one more, the client gives the chat up (:func:`_buffer_overflowed`). A server writes a
join's or resume's reply before the chat's events, so only the few that arrive with
the reply, before its outcome is dispatched, are buffered: the cap stops a peer that
floods a chat before answering, and bounds the work of applying the buffer at once."""

INTERNAL_CALL = 0
"""The call id of requests the module makes by itself (resumes, automatic resends):
no facade call waits for them (facade call ids start at 1)."""
ChatCase = Callable[[ChatState, Any], "ChatState | Step[ChatState]"]
WholeCase = Callable[[ChatsState, Any], "ChatsState | Step[ChatsState]"]


def _without(mapping: Map[str, V], key: str) -> Map[str, V]:
    return mapping.delete(key) if key in mapping else mapping


class _StateChanges(TypedDict, total=False):
    """The fields of a :class:`ChatsState` that :func:`_evolve` may replace."""

    connection: ConnectionStatus
    chat_ids: tuple[str, ...]
    chats: Map[str, ChatState]
    removed: Map[str, ChatRemoval]


def _evolve(state: ChatsState, **changes: Unpack[_StateChanges]) -> ChatsState:
    """``state`` with some fields replaced (a dict copy, not ``attrs.evolve``, which
    looks the fields up and sets them one by one on every call: this is the reducer's
    hot path; the keywords are typed, so nothing needs converting)."""
    return replaced(state, changes)


class _ChatChanges(TypedDict, total=False):
    """The fields of a :class:`ChatState` that :func:`_evolve_chat` may replace (all but
    the chat's identity: ``chat_id`` and ``join_call_id``)."""

    status: ChatStatus
    messages: MessageLog
    members_amount: int | None
    sync_statuses: SyncStatuses
    member_metadata: Mapping[str, str] | None
    restrictions: tuple[Restriction, ...] | None
    last_seq: int
    originals: Map[str, Message]
    buffered_events: EventBuffer
    send_queue: tuple[QueuedSend, ...]
    membership: str | None
    history_in_flight: int
    epoch: str | None
    recovered: tuple[PendingOperation, ...]


def _evolve_chat(chat: ChatState, **changes: Unpack[_ChatChanges]) -> ChatState:
    """``chat`` with some fields replaced (a dict copy, like :func:`_evolve`)."""
    return replaced(chat, changes)


def _remove_chat(state: ChatsState, chat_id: str) -> ChatsState:
    chat_ids = tuple(k for k in state.chat_ids if k != chat_id)
    return _evolve(state, chat_ids=chat_ids, chats=_without(state.chats, chat_id))


# Whole-state cases -----------------------------------------------------------------


def join_chat(state: ChatsState, action: JoinChat) -> ChatsState | Step[ChatsState]:
    chat = ChatState(chat_id=action.chat_id, status="loading", join_call_id=action.call_id)
    chats = state.chats.set(action.chat_id, chat)
    removed = _without(state.removed, action.chat_id)
    next_state = _evolve(
        state, chat_ids=(*state.chat_ids, action.chat_id), chats=chats, removed=removed
    )
    return Step(
        next_state, (SendRequest(action.call_id, JoinRequest(action.chat_id, action.token)),)
    )


def chat_join_failed(state: ChatsState, action: ChatJoinFailed) -> ChatsState:
    chat = state.chats.get(action.chat_id)
    if chat is None or chat.join_call_id != action.call_id or chat.status != "loading":
        return state
    return _remove_chat(state, action.chat_id)


def _cancel_queued_sends(
    chat: ChatState, kind: FailureKind, code: str, detail: str
) -> tuple[Command, ...]:
    """Settle the calls of the sends still waiting in the queue (not the one in flight)."""
    return tuple(
        SettleCall(
            entry.call_id,
            MessageSendFailed(
                entry.call_id, chat.chat_id, entry.message_id, Failure(kind, code, detail)
            ),
        )
        for entry in chat.send_queue[1:]
    )


def leave_chat(state: ChatsState, action: LeaveChat) -> ChatsState | Step[ChatsState]:
    chat = state.chats[action.chat_id]
    commands: tuple[Command, ...] = (
        *_cancel_queued_sends(
            chat,
            "cancelled",
            ErrorCode.CHAT_NOT_JOINED,
            "the chat was left before this message was sent",
        ),
        SendRequest(action.call_id, LeaveRequest(action.chat_id)),
    )
    if chat.status == "loading":
        abandoned = ChatJoinFailed(
            chat.join_call_id,
            action.chat_id,
            Failure(
                "cancelled",
                ErrorCode.CHAT_LEFT_DURING_JOIN,
                "the chat was left while it was being joined (leave_chat was called "
                "before join_chat finished)",
            ),
        )
        commands = (SettleCall(chat.join_call_id, abandoned), *commands)
    return Step(_remove_chat(state, action.chat_id), commands)


def removed_from_chat(state: ChatsState, action: RemovedFromChat) -> ChatsState | Step[ChatsState]:
    chat = state.chats.get(action.chat_id)
    if chat is None:
        return state
    cancelled = _cancel_queued_sends(
        chat, "cancelled", ErrorCode.CHAT_NOT_JOINED, f"you were {action.reason} from the chat"
    )
    removal = ChatRemoval(action.chat_id, action.reason, action.detail)
    return Step(_lose_chat(state, removal), cancelled)


def _lose_chat(state: ChatsState, removal: ChatRemoval) -> ChatsState:
    """Remove a chat the client did not leave itself, and say why."""
    removed = _remove_chat(state, removal.chat_id)
    return _evolve(removed, removed=state.removed.set(removal.chat_id, removal))


def _interrupt_in_flight(chat: ChatState) -> Step[ChatState]:
    """Settle locally what a lost connection leaves unresolved.

    Sends become ``interrupted`` (never stuck in ``sending``) and the send queue
    empties (the calls of waiting sends fail at once; the one in flight fails
    through its transport); updates and deletes roll back to the message as it
    was before the request.
    """
    log = chat.messages
    changed = False
    for message in chat.messages:
        if message.status == "sending":
            log = log.replace(msgspec.structs.replace(message, status="interrupted"))
            changed = True
    for original in chat.originals.values():
        log = log.replace(original)
        changed = True
    if not changed and not chat.send_queue:
        return Step(chat)
    cancelled = _cancel_queued_sends(
        chat, "connection_lost", "connection_lost", "the connection was lost before it was sent"
    )
    return Step(_evolve_chat(chat, messages=log, originals=Map(), send_queue=()), cancelled)


def connection_status_changed(
    state: ChatsState, action: ConnectionStatusChanged
) -> ChatsState | Step[ChatsState]:
    if action.status == state.connection:
        return state
    chats = state.chats
    transition = _interrupt_in_flight if action.status != "connected" else _resume
    commands: list[Command] = []
    for chat_id in state.chat_ids:  # in join order, so that the commands are too
        chat = chats[chat_id]
        step = transition(chat)
        if step.state is not chat:
            chats = chats.set(chat_id, step.state)
        commands.extend(step.commands)
    return Step(_evolve(state, connection=action.status, chats=chats), tuple(commands))


def _resume(chat: ChatState) -> Step[ChatState]:
    """On (re)connection: a joined chat goes ``reloading`` and asks what it missed.

    A chat restored from a state file also sends its recovered messages again, first
    in its send queue, right after the resume request: the server deduplicates posts
    by id, and sends made during the resync queue up behind them.
    """
    if chat.status == "loading" or chat.membership is None:
        return Step(chat)
    request = ResumeRequest(chat.chat_id, chat.membership, chat.last_seq, chat.epoch)
    reloading = _synced(_evolve_chat(chat, status="reloading"))
    commands: list[Command] = [SendRequest(INTERNAL_CALL, request)]
    for operation in reloading.recovered:
        message = reloading.messages.find(operation.message_id)
        if operation.kind == "send" and message is not None and message.status == "interrupted":
            sending = msgspec.structs.replace(message, status="sending")
            queued = _evolve_chat(reloading, messages=reloading.messages.replace(sending))
            step = _enqueue_send(queued, INTERNAL_CALL, message.id)
            reloading = step.state
            commands.extend(step.commands)
    return Step(reloading, tuple(commands))


def chats_restored(state: ChatsState, action: ChatsRestored) -> ChatsState | Step[ChatsState]:
    """The chats of a state file, each ``reloading``, after the chats the state holds;
    resumed at once if the connection is open."""
    chats, chat_ids = state.chats, list(state.chat_ids)
    commands: list[Command] = []
    for restored in action.chats:
        if restored.chat_id in chats:
            continue
        step = _restored_chat(restored)
        if state.connection == "connected":
            step = _resume(step.state)
        chats = chats.set(restored.chat_id, step.state)
        chat_ids.append(restored.chat_id)
        commands.extend(step.commands)
    return Step(_evolve(state, chat_ids=tuple(chat_ids), chats=chats), tuple(commands))


def _restored_chat(restored: RestoredChat) -> Step[ChatState]:
    chat = ChatState(
        chat_id=restored.chat_id,
        status="reloading",
        join_call_id=INTERNAL_CALL,
        messages=MessageLog(restored.messages),
        members_amount=restored.members_amount,
        member_metadata=read_only(restored.member_metadata),
        restrictions=restored.restrictions,
        last_seq=restored.last_seq,
        membership=restored.membership,
        recovered=restored.operations,
    )
    return Step(_synced(chat))


_RESUME_FAILURE_REMOVALS: Mapping[str, RemovalReason] = {
    ErrorCode.MEMBER_BLOCKED: "blocked",
    ErrorCode.FRAME_TOO_LARGE: "resync_failed",
}
"""Why a chat whose resume failed for good is removed (``membership_lost`` otherwise)."""


def chat_resume_failed(
    state: ChatsState, action: ChatResumeFailed
) -> ChatsState | Step[ChatsState]:
    """A refused resume loses the chat, with the reason; a lost one waits for the next
    connection; a timed-out one is asked again (each attempt is bounded by the time-out).

    A resumption too large to be read (``frame_too_large``: the connection closed with
    1009 as it arrived) would be as large when asked again: the chat is given up
    (``resync_failed``), to be joined again with a chat token, whose snapshot is bounded.
    """
    chat = state.chats.get(action.chat_id)
    if chat is None or chat.status != "reloading":
        return state
    failure = action.failure
    if failure.kind == "refused" or failure.code == ErrorCode.FRAME_TOO_LARGE:
        reason = _RESUME_FAILURE_REMOVALS.get(failure.code, "membership_lost")
        cancelled = _cancel_queued_sends(
            chat, "cancelled", ErrorCode.CHAT_NOT_JOINED, "the chat could not be resumed"
        )
        removal = ChatRemoval(action.chat_id, reason, f"{failure.code}: {failure.detail}")
        return Step(_lose_chat(state, removal), cancelled)
    if failure.kind == "timeout" and state.connection == "connected":
        step = _resume(chat)
        return Step(_evolve(state, chats=state.chats.set(chat.chat_id, step.state)), step.commands)
    return state


def _buffer_overflowed(state: ChatsState, chat: ChatState) -> Step[ChatsState]:
    """Too many events arrived while ``chat`` loaded: give it up, and say so.

    A join in flight fails (``CallCancelledError``, ``too_many_events``); a chat that
    was reloading is removed with the reason ``resync_failed``. Either way its buffer
    is dropped at once, and the chat's later events find no chat.
    """
    detail = (
        f"more than {MAX_BUFFERED_EVENTS} events arrived while the chat was {chat.status}; "
        "the client gave it up - join it again with a chat token"
    )
    failure = Failure("cancelled", ErrorCode.TOO_MANY_EVENTS, detail)
    if chat.status == "loading":
        failed = ChatJoinFailed(chat.join_call_id, chat.chat_id, failure)
        return Step(_remove_chat(state, chat.chat_id), (SettleCall(chat.join_call_id, failed),))
    cancelled = _cancel_queued_sends(chat, failure.kind, failure.code, detail)
    removal = ChatRemoval(chat.chat_id, "resync_failed", f"{failure.code}: {detail}")
    return Step(_lose_chat(state, removal), cancelled)


def membership_renewal_due(
    state: ChatsState, action: MembershipRenewalDue
) -> ChatsState | Step[ChatsState]:
    """Renew the chat's credential, if it is ``ready`` on an open connection (a chat
    that is reloading, or waiting for the connection, gets a fresh one by its resume)."""
    chat = state.chats.get(action.chat_id)
    if chat is None or chat.membership is None or chat.status != "ready":
        return state
    if state.connection != "connected":
        return state
    return Step(state, (SendRequest(INTERNAL_CALL, RenewRequest(action.chat_id)),))


def membership_renew_failed(
    state: ChatsState, action: MembershipRenewFailed
) -> ChatsState | Step[ChatsState]:
    """A renewal that timed out is asked again (as a resume is); a lost one waits for the
    resume of the next connection; a refused one (a server that does not know it) is
    not asked again: its credential lasts until it expires, as it always did."""
    if action.failure.kind != "timeout":
        return state
    return membership_renewal_due(state, MembershipRenewalDue(action.chat_id))


# Single-chat cases -----------------------------------------------------------------


def _named(chat: ChatState, message_id: str) -> Message:
    """The message an accepted intent names (the lifecycle tables checked it is there)."""
    message = chat.messages.find(message_id)
    assert message is not None, message_id
    return message


def _ready(message: Message) -> Message:
    return (
        message if message.status == "ready" else msgspec.structs.replace(message, status="ready")
    )


def _ready_in_order(messages: tuple[Message, ...]) -> tuple[Message, ...]:
    """A snapshot's confirmed messages by ``seq`` (the last one of a repeated ``seq``), ready.

    One pass when they come as the server sends them (ascending ``seq``, all
    ``ready``), which is what a join of a long history costs.
    """
    previous = 0
    for message in messages:
        seq = message.seq
        if seq is None or seq <= previous or message.status != "ready":
            break
        previous = seq
    else:
        return messages
    by_seq = {m.seq: m for m in messages if m.seq is not None}
    return tuple(_ready(by_seq[seq]) for seq in sorted(by_seq))


def chat_joined(chat: ChatState, action: ChatJoined) -> ChatState:
    if chat.join_call_id != action.call_id or chat.status != "loading":
        return chat
    snapshot = action.snapshot
    log = MessageLog(_ready_in_order(snapshot.messages))
    ready = _evolve_chat(
        chat,
        status="ready",
        messages=log,
        members_amount=snapshot.members_amount,
        sync_statuses=SYNC_IDLE,  # a chat just joined has no history request in flight
        member_metadata=read_only(snapshot.member_metadata),
        restrictions=snapshot.restrictions,
        last_seq=snapshot.last_seq,
        buffered_events=EMPTY_BUFFER,
        membership=snapshot.membership,
        epoch=snapshot.epoch,
    )
    for event in chat.buffered_events:
        ready = EVENT_CASES[type(event)](ready, event)
    return ready


def chat_history_restored(chat: ChatState, action: ChatHistoryRestored) -> ChatState:
    """The older messages of a restored chat go below the ones it shows, if it still
    starts at ``before_seq``: not after a resume replaced its messages with a snapshot
    (a gap would open) nor once older ones came from the server."""
    if chat.messages.first_confirmed_seq != action.before_seq:
        return chat
    older = tuple(m for m in action.messages if m.seq is not None and m.seq < action.before_seq)
    if not older:
        return chat
    return _evolve_chat(chat, messages=MessageLog((*older, *chat.messages)))


def _post(chat: ChatState, entry: QueuedSend) -> SendRequest | None:
    message = chat.messages.find(entry.message_id)
    if message is None or message.status != "sending":
        return None
    return SendRequest(entry.call_id, PostMessageRequest(chat.chat_id, message.id, message.content))


def _enqueue_send(chat: ChatState, call_id: int, message_id: str) -> Step[ChatState]:
    """Queue a send (its message already ``sending``); start it if none is in flight."""
    entry = QueuedSend(call_id, message_id)
    chat = _evolve_chat(chat, send_queue=(*chat.send_queue, entry))
    request = _post(chat, entry) if len(chat.send_queue) == 1 else None
    return Step(chat, (request,) if request is not None else ())


def _send_finished(chat: ChatState, message_id: str) -> ChatState | Step[ChatState]:
    """The send in flight got its outcome: start the next queued send, if any."""
    queue = chat.send_queue
    if not queue or queue[0].message_id != message_id:
        return chat
    commands: list[Command] = []
    queue = queue[1:]
    while queue:
        request = _post(chat, queue[0])
        if request is not None:
            commands.append(request)
            break
        entry, queue = queue[0], queue[1:]
        gone = Failure("cancelled", ErrorCode.MESSAGE_NOT_FOUND, "the message is gone")
        commands.append(
            SettleCall(
                entry.call_id,
                MessageSendFailed(entry.call_id, chat.chat_id, entry.message_id, gone),
            )
        )
    return Step(_evolve_chat(chat, send_queue=queue), tuple(commands))


def _replaced_by(chat: ChatState, snapshot: ChatSnapshot) -> ChatState:
    """The chat's history replaced by the snapshot's, the client's own work on top.

    Its confirmed messages are the snapshot's, and ``last_seq`` the snapshot's; the
    pending messages stay (but one the snapshot has is confirmed by it); a message
    with an update or delete in flight keeps showing it if the snapshot has it
    (the snapshot's version is what a failure rolls back to), and goes if not
    (the server has no such message: the request will fail).
    """
    confirmed = _ready_in_order(snapshot.messages)
    visible: list[Message] = []
    originals: dict[str, Message] = {}
    for message in confirmed:
        in_flight = chat.messages.find(message.id) if message.id in chat.originals else None
        if in_flight is None:
            visible.append(message)
        else:
            visible.append(msgspec.structs.replace(in_flight, seq=message.seq))
            originals[message.id] = message
    ids = {message.id for message in confirmed}
    pending = [m for m in chat.messages if m.seq is None and m.id not in ids]
    return _evolve_chat(
        chat,
        messages=MessageLog((*visible, *pending)),
        originals=Map(originals),
        last_seq=snapshot.last_seq,
    )


def _diverged(chat: ChatState, resumption: Resumption) -> bool:
    """Whether the missed events of ``resumption`` belong to another history than the
    chat's: another epoch (both known), or a server behind the chat's last seq."""
    other_epoch = None not in (chat.epoch, resumption.epoch) and chat.epoch != resumption.epoch
    return other_epoch or chat.last_seq > resumption.last_seq


def chat_resumed(
    state: ChatsState,
    action: ChatResumed,
    *,
    auto_resend: bool = False,
    max_messages: int | None = None,
) -> ChatsState | Step[ChatsState]:
    """Apply what the chat missed; with ``auto_resend``, queue interrupted messages again.

    Events of another history without a snapshot are not applied: the chat asks
    again from the start (:func:`_ask_from_the_start`).
    """
    chat = state.chats.get(action.chat_id)
    if chat is None or chat.status != "reloading":
        return state
    resumption = action.resumption
    if resumption.snapshot is None and _diverged(chat, resumption):
        step = _ask_from_the_start(chat, resumption)
        return Step(_evolve(state, chats=state.chats.set(chat.chat_id, step.state)), step.commands)
    replayed = _replay_recovered(_apply_resumption(chat, resumption), resumption)
    resumed = replayed.state
    if max_messages is not None:
        resumed = _bounded(resumed, max_messages)
    step = resend_interrupted(resumed) if auto_resend else Step(resumed)
    return Step(
        _evolve(state, chats=state.chats.set(chat.chat_id, step.state)),
        (*replayed.commands, *step.commands),
    )


def _bounded(chat: ChatState, limit: int) -> ChatState:
    """``chat`` holding at most its newest ``limit`` confirmed messages (pending ones stay).

    With ``max_messages_in_memory``, every change of a chat ends with this, except the
    arrival of older messages the application asked for (``load_older_messages``):
    those stay until the next change, then the oldest beyond ``limit`` go again.
    """
    messages = chat.messages.keep_newest(limit)
    return chat if messages is chat.messages else _evolve_chat(chat, messages=messages)


def _ask_from_the_start(chat: ChatState, resumption: Resumption) -> Step[ChatState]:
    """Events of another history came without a snapshot: drop the confirmed messages
    and resume again from seq 0 in the reply's epoch (the chat stays ``reloading``,
    buffering what is pushed meanwhile)."""
    pending = MessageLog(tuple(m for m in chat.messages if m.seq is None))
    cleared = _evolve_chat(
        chat,
        messages=pending,
        originals=Map(),
        last_seq=0,
        membership=resumption.membership,
        epoch=resumption.epoch,
    )
    return _resume(cleared)


def _apply_resumption(chat: ChatState, resumption: Resumption) -> ChatState:
    """The missed events (or the snapshot that replaces the history), then those
    pushed meanwhile."""
    ready = _evolve_chat(chat, status="ready", buffered_events=EMPTY_BUFFER)
    if resumption.snapshot is not None:
        ready = _replaced_by(ready, resumption.snapshot)
    for event in (*resumption.events, *chat.buffered_events):
        ready = EVENT_CASES[type(event)](ready, event)
    return _synced(
        _evolve_chat(
            ready,
            members_amount=resumption.members_amount,
            member_metadata=read_only(resumption.member_metadata),
            restrictions=resumption.restrictions,
            last_seq=max(ready.last_seq, resumption.last_seq),
            membership=resumption.membership,
            epoch=resumption.epoch,
        )
    )


def _replay_recovered(chat: ChatState, resumption: Resumption) -> Step[ChatState]:
    """Send the recovered edits and deletes again, in order, and forget what was recovered.

    An operation whose message is gone, or that the user has acted on since, is not
    sent. An edit is not sent either when the resumption holds its ``message_edited``
    event (the server applied it before the previous process ended) or when the
    message has its content already: sending it again would edit it twice. A delete
    of a message already deleted is answered ``message_not_found``, which counts as
    done. (The sends went out at the connection: see ``_resume``.)
    """
    if not chat.recovered:
        return Step(chat)
    applied = {
        (event.message.id, event.message.content)
        for event in resumption.events
        if isinstance(event, MessageEdited)
    }
    log, originals = chat.messages, chat.originals
    commands: list[Command] = []
    for operation in chat.recovered:
        message = log.find(operation.message_id)
        if message is None or operation.kind == "send":
            continue
        request: EditMessageRequest | DeleteMessageRequest
        if operation.kind == "edit":
            content = operation.content
            if (
                content is None
                or message.status != "ready"
                or message.content == content
                or (message.id, content) in applied
            ):
                continue
            shown = msgspec.structs.replace(message, content=content, status="updating")
            request = EditMessageRequest(chat.chat_id, message.id, content)
        else:
            if message.status not in ("ready", "interrupted"):
                continue
            shown = msgspec.structs.replace(message, status="deleting")
            request = DeleteMessageRequest(chat.chat_id, message.id)
        log = log.replace(shown)
        originals = originals.set(message.id, message)
        commands.append(SendRequest(INTERNAL_CALL, request))
    replayed = _evolve_chat(chat, messages=log, originals=originals, recovered=())
    return Step(replayed, tuple(commands))


def resend_interrupted(chat: ChatState) -> Step[ChatState]:
    """Queue every interrupted message of the chat again, in display order."""
    step: Step[ChatState] = Step(chat)
    commands: list[Command] = []
    for message in chat.messages:
        if message.status == "interrupted":
            sending = msgspec.structs.replace(
                step.state.messages.find(message.id) or message, status="sending"
            )
            queued = _evolve_chat(step.state, messages=step.state.messages.replace(sending))
            step = _enqueue_send(queued, INTERNAL_CALL, message.id)
            commands.extend(step.commands)
    return Step(step.state, tuple(commands))


def send_message(chat: ChatState, action: SendMessage) -> ChatState | Step[ChatState]:
    message = Message(
        id=action.message_id,
        chat_id=action.chat_id,
        author_id=action.author_id,
        content=action.content,
        status="sending",
        created_at=action.created_at,
    )
    with_message = _evolve_chat(chat, messages=chat.messages.append_pending(message))
    return _enqueue_send(with_message, action.call_id, action.message_id)


def resend_message(chat: ChatState, action: ResendMessage) -> ChatState | Step[ChatState]:
    message = _named(chat, action.message_id)
    sending = msgspec.structs.replace(message, status="sending")
    with_message = _evolve_chat(chat, messages=chat.messages.replace(sending))
    return _enqueue_send(with_message, action.call_id, action.message_id)


def _received(chat: ChatState, message: Message) -> _ChatChanges:
    """What a server-confirmed version of ``message`` (a reply or an event) changes in
    ``chat`` (nothing: empty).

    While an update or delete of it is in flight, the visible message keeps its
    in-flight status and the new version becomes what a failure rolls back to; a
    visible message still pending (a send whose ack was lost, then edited or deleted)
    moves to its ``seq`` meanwhile, as a snapshot shows it (:func:`_replaced_by`).
    """
    existing = chat.messages.find(message.id)
    message = _at_first_seq(existing, message)
    if message.id in chat.originals:
        changes: _ChatChanges = {}
        if chat.originals[message.id] != message:
            changes["originals"] = chat.originals.set(message.id, message)
        if existing is not None and existing.seq is None:
            changes["messages"] = chat.messages.confirm(
                msgspec.structs.replace(existing, seq=message.seq)
            )
        return changes
    messages = chat.messages.confirm(message)
    return {} if messages is chat.messages else {"messages": messages}


def _at_first_seq(existing: Message | None, message: Message) -> Message:
    """``message``, a version the server confirmed, at the ``seq`` of ``existing`` (the
    version held) when that one is confirmed: a message's seq never changes, and a
    server saying otherwise must not move it or make it show twice. A pending (or no)
    ``existing`` takes the server's seq."""
    if existing is None or existing.seq is None or existing.seq == message.seq:
        return message
    return msgspec.structs.replace(message, seq=existing.seq)


def _receive(chat: ChatState, message: Message) -> ChatState:
    """``chat`` with a server-confirmed version of ``message`` applied (:func:`_received`);
    the same object when that changes nothing."""
    changes = _received(chat, message)
    return _evolve_chat(chat, **changes) if changes else chat


def message_sent(chat: ChatState, action: MessageSent) -> ChatState | Step[ChatState]:
    # A message removed since it was sent (a removal pushed, or its delete acked,
    # before this ack was dispatched) must not come back.
    if chat.messages.find(action.message.id) is not None:
        chat = _receive(chat, _ready(action.message))
    return _send_finished(chat, action.message.id)


def message_send_failed(chat: ChatState, action: MessageSendFailed) -> ChatState | Step[ChatState]:
    message = chat.messages.find(action.message_id)
    if message is not None and message.status == "sending":
        interrupted = msgspec.structs.replace(message, status="interrupted")
        chat = _evolve_chat(chat, messages=chat.messages.replace(interrupted))
    return _send_finished(chat, action.message_id)


def update_message(chat: ChatState, action: UpdateMessage) -> Step[ChatState]:
    message = _named(chat, action.message_id)
    updating = msgspec.structs.replace(message, content=action.content, status="updating")
    request = EditMessageRequest(action.chat_id, action.message_id, action.content)
    return Step(
        _evolve_chat(
            chat,
            messages=chat.messages.replace(updating),
            originals=chat.originals.set(message.id, message),
        ),
        (SendRequest(action.call_id, request),),
    )


def message_updated(chat: ChatState, action: MessageUpdated) -> ChatState:
    message_id = action.message.id
    current = chat.messages.find(message_id)
    if current is None or current.status != "updating":
        return chat
    return _evolve_chat(
        chat,
        messages=chat.messages.replace(_at_first_seq(current, _ready(action.message))),
        originals=_without(chat.originals, message_id),
    )


def _roll_back(chat: ChatState, message_id: str) -> ChatState:
    original = chat.originals.get(message_id)
    if original is None:
        return chat
    return _evolve_chat(
        chat,
        messages=chat.messages.replace(original),
        originals=_without(chat.originals, message_id),
    )


def message_update_failed(chat: ChatState, action: MessageUpdateFailed) -> ChatState:
    return _roll_back(chat, action.message_id)


def delete_message(chat: ChatState, action: DeleteMessage) -> Step[ChatState]:
    message = _named(chat, action.message_id)
    request = DeleteMessageRequest(action.chat_id, action.message_id)
    return Step(
        _evolve_chat(
            chat,
            messages=chat.messages.replace(msgspec.structs.replace(message, status="deleting")),
            originals=chat.originals.set(message.id, message),
        ),
        (SendRequest(action.call_id, request),),
    )


def message_deleted(chat: ChatState, action: MessageDeleted) -> ChatState:
    messages = chat.messages.remove(action.message_id)
    originals = _without(chat.originals, action.message_id)
    if messages is chat.messages and originals is chat.originals:
        return chat
    return _evolve_chat(chat, messages=messages, originals=originals)


def message_delete_failed(chat: ChatState, action: MessageDeleteFailed) -> ChatState:
    return _roll_back(chat, action.message_id)


def load_older_messages(chat: ChatState, action: LoadOlderMessages) -> Step[ChatState]:
    oldest = next((m.seq for m in chat.messages if m.seq is not None), chat.last_seq + 1)
    request = HistoryRequest(action.chat_id, before_seq=oldest, limit=action.limit)
    chat = _synced(_evolve_chat(chat, history_in_flight=chat.history_in_flight + 1))
    return Step(chat, (SendRequest(action.call_id, request),))


def _synced(chat: ChatState) -> ChatState:
    """``chat`` with the sync statuses its status and history requests call for.

    Everything is ``loading`` while the chat is loading or reloading; once it is
    ready, its messages are ``loading`` while a history request is in flight.
    """
    settled = chat.status == "ready"
    messages: SyncStatus = "idle" if settled and not chat.history_in_flight else "loading"
    members: SyncStatus = "idle" if settled else "loading"
    current = chat.sync_statuses
    if current.messages == messages and current.members == members:
        return chat
    return _evolve_chat(chat, sync_statuses=SyncStatuses(messages=messages, members=members))


def _history_answered(chat: ChatState) -> ChatState:
    """A history request of the chat got its outcome."""
    if not chat.history_in_flight:
        return chat  # the request was made before the chat was joined again
    return _synced(_evolve_chat(chat, history_in_flight=chat.history_in_flight - 1))


def older_messages_loaded(chat: ChatState, action: OlderMessagesLoaded) -> ChatState:
    log = chat.messages
    for message in action.messages:
        if message.seq is not None and log.find(message.id) is None:
            log = log.confirm(_ready(message))
    if log is not chat.messages:
        chat = _evolve_chat(chat, messages=log)
    return _history_answered(chat)


def older_messages_load_failed(chat: ChatState, action: OlderMessagesLoadFailed) -> ChatState:
    return _history_answered(chat)


def membership_renewed(chat: ChatState, action: MembershipRenewed) -> ChatState:
    if chat.membership is None:
        return chat  # a join that has not finished: its snapshot brings the credential
    return _evolve_chat(chat, membership=action.renewal.membership)


def moderate_chat_member(chat: ChatState, action: ModerateChatMember) -> Step[ChatState]:
    request = ModerationRequest(
        action.chat_id, action.member_id, action.measure, action.duration, action.reason
    )
    return Step(chat, (SendRequest(action.call_id, request),))


def _server_event(
    apply: Callable[[ChatState, A], _ChatChanges],
) -> Callable[[ChatState, A], ChatState]:
    """Wrap an event case, which says what the event changes in a ready chat: buffer
    the event while (re)loading, skip already-applied ``seq``s, else apply the changes
    and the event's ``seq`` as ``last_seq``.

    (The changes, not a changed chat: the chat is copied once per event, with its new
    ``last_seq``, rather than once by the case and again for ``last_seq``.)
    """

    def case(chat: ChatState, action: A) -> ChatState:
        if chat.status != "ready":
            return _evolve_chat(chat, buffered_events=chat.buffered_events.appended(action))
        seq: int = action.seq  # type: ignore[attr-defined]
        if seq <= chat.last_seq:
            return chat
        changes = apply(chat, action)
        changes["last_seq"] = seq
        return replaced(chat, changes)

    case.__name__ = apply.__name__
    return case


@_server_event
def message_posted(chat: ChatState, action: MessagePosted) -> _ChatChanges:
    return _received(chat, _ready(action.message))


@_server_event
def message_edited(chat: ChatState, action: MessageEdited) -> _ChatChanges:
    if chat.messages.find(action.message.id) is None:
        return {}
    # An edit never moves a confirmed message: it keeps the seq it was posted with
    # (_at_first_seq, in _received). A pending copy, whose ack was lost, is confirmed
    # by the edit's seq.
    return _received(chat, _ready(action.message))


@_server_event
def message_removed(chat: ChatState, action: MessageRemoved) -> _ChatChanges:
    return {
        "messages": chat.messages.remove(action.message_id),
        "originals": _without(chat.originals, action.message_id),
    }


@_server_event
def members_amount_changed(chat: ChatState, action: MembersAmountChanged) -> _ChatChanges:
    return {"members_amount": action.members_amount}


@_server_event
def own_restrictions_changed(chat: ChatState, action: OwnRestrictionsChanged) -> _ChatChanges:
    return {"restrictions": action.restrictions}


@_server_event
def own_metadata_changed(chat: ChatState, action: OwnMetadataChanged) -> _ChatChanges:
    return {"member_metadata": read_only(action.member_metadata)}


EVENT_CASES: Mapping[type, Callable[[ChatState, Any], ChatState]] = {
    MessagePosted: message_posted,
    MessageEdited: message_edited,
    MessageRemoved: message_removed,
    MembersAmountChanged: members_amount_changed,
    OwnRestrictionsChanged: own_restrictions_changed,
    OwnMetadataChanged: own_metadata_changed,
}

CHATS_CASES: Mapping[type, WholeCase] = {
    JoinChat: join_chat,
    ChatJoinFailed: chat_join_failed,
    LeaveChat: leave_chat,
    RemovedFromChat: removed_from_chat,
    ConnectionStatusChanged: connection_status_changed,
    ChatsRestored: chats_restored,
    ChatResumed: chat_resumed,
    ChatResumeFailed: chat_resume_failed,
    MembershipRenewalDue: membership_renewal_due,
    MembershipRenewFailed: membership_renew_failed,
}

CHAT_CASES: Mapping[type, ChatCase] = {
    ChatJoined: chat_joined,
    MembershipRenewed: membership_renewed,
    ChatHistoryRestored: chat_history_restored,
    SendMessage: send_message,
    ResendMessage: resend_message,
    MessageSent: message_sent,
    MessageSendFailed: message_send_failed,
    UpdateMessage: update_message,
    MessageUpdated: message_updated,
    MessageUpdateFailed: message_update_failed,
    DeleteMessage: delete_message,
    MessageDeleted: message_deleted,
    MessageDeleteFailed: message_delete_failed,
    ModerateChatMember: moderate_chat_member,
    LoadOlderMessages: load_older_messages,
    OlderMessagesLoaded: older_messages_loaded,
    OlderMessagesLoadFailed: older_messages_load_failed,
    **EVENT_CASES,
}


def _in_chat(case: ChatCase, limit: int | None, *, capped: bool = False) -> WholeCase:
    """Lift a single-chat case to the whole state: only ``action.chat_id`` changes.

    With a ``limit`` (``max_messages``), a changed chat is then trimmed to it. A chat
    given a new membership credential gets its renewal timer (:func:`_renewal`).
    ``capped``, for server events: a chat whose buffer is full is given up
    (:func:`_buffer_overflowed`) rather than buffer one more (only a chat that is not
    ``ready`` buffers events).
    """

    def lifted(state: ChatsState, action: Any) -> ChatsState | Step[ChatsState]:
        chat = state.chats.get(action.chat_id)
        if chat is None:
            return state
        if capped and chat.status != "ready" and len(chat.buffered_events) >= MAX_BUFFERED_EVENTS:
            return _buffer_overflowed(state, chat)
        result = case(chat, action)
        if isinstance(result, Step):
            next_chat, commands = result.state, result.commands
        else:
            next_chat, commands = result, ()
        if next_chat is chat:
            return Step(state, commands)
        if limit is not None:
            next_chat = _bounded(next_chat, limit)
        if next_chat.membership is not chat.membership:
            timer = _renewal(chat, next_chat)
            if timer is not None:
                commands = (*commands, timer)
        # ``replaced`` rather than ``_evolve``: one call less on the dispatch's hot path.
        chats = state.chats.set(action.chat_id, next_chat)
        return Step(replaced(state, {"chats": chats}), commands)

    return lifted


def _rejection(intent: Any, failure: Failure) -> Outcome:
    """The failure outcome that settles the call of a refused ``intent``."""
    match intent:
        case JoinChat(call_id=call_id, chat_id=chat_id):
            return ChatJoinFailed(call_id, chat_id, failure)
        case LeaveChat(call_id=call_id, chat_id=chat_id):
            return ChatLeaveFailed(call_id, chat_id, failure)
        case (
            SendMessage(call_id=call_id, chat_id=chat_id, message_id=message_id)
            | ResendMessage(call_id=call_id, chat_id=chat_id, message_id=message_id)
        ):
            return MessageSendFailed(call_id, chat_id, message_id, failure)
        case UpdateMessage(call_id=call_id, chat_id=chat_id, message_id=message_id):
            return MessageUpdateFailed(call_id, chat_id, message_id, failure)
        case DeleteMessage(call_id=call_id, chat_id=chat_id, message_id=message_id):
            return MessageDeleteFailed(call_id, chat_id, message_id, failure)
        case LoadOlderMessages(call_id=call_id, chat_id=chat_id):
            return OlderMessagesLoadFailed(call_id, chat_id, failure)
        case ModerateChatMember(call_id=call_id, chat_id=chat_id, member_id=member_id):
            return ChatMemberModerationFailed(call_id, chat_id, member_id, failure)
    raise TypeError(f"not an intent: {intent!r}")


def _checked(case: WholeCase) -> WholeCase:
    """``case`` behind the lifecycle tables: a refused intent changes nothing and its
    call is settled at once with the refusal."""

    def checked(state: ChatsState, intent: Any) -> ChatsState | Step[ChatsState]:
        refused = refusal(
            state, action_of(intent), intent.chat_id, getattr(intent, "message_id", None)
        )
        if refused is None:
            return case(state, intent)
        return Step(state, (SettleCall(intent.call_id, _rejection(intent, refused)),))

    return checked


UNBOUNDED_CASES = frozenset({OlderMessagesLoaded})
"""Chat cases not trimmed to ``max_messages_in_memory``: older messages the application
asked for stay until the chat next changes."""


def _renewal(before: ChatState | None, after: ChatState) -> DispatchLater | None:
    """The renewal timer of chat ``after`` when it holds a new membership credential
    (one ``before`` did not hold), whatever brought it (a join, a resume, a renewal).

    The renewal is due when half the credential's lifetime has passed
    (:func:`~chats_store.tokens.renewal_delay`); the timer replaces the chat's previous one.
    """
    membership = after.membership
    if membership is None or (before is not None and before.membership == membership):
        return None
    delay = renewal_delay(membership)
    if delay is None:
        return None
    chat_id = after.chat_id
    return DispatchLater(("renew", chat_id), delay, MembershipRenewalDue(chat_id))


def _renewing(case: WholeCase) -> WholeCase:
    """A whole-state ``case``, asking for the renewal timer of ``action.chat_id`` when
    that chat got a new membership credential (:func:`_renewal`; the chat cases ask in
    :func:`_in_chat`)."""

    def renewing(state: ChatsState, action: Any) -> ChatsState | Step[ChatsState]:
        result = case(state, action)
        chat_id = getattr(action, "chat_id", None)
        if chat_id is None:
            return result
        after = result.state if isinstance(result, Step) else result
        chat = after.chats.get(chat_id)
        if chat is None:
            return result
        timer = _renewal(state.chats.get(chat_id), chat)
        if timer is None:
            return result
        if isinstance(result, Step):
            return Step(result.state, (*result.commands, timer))
        return Step(result, (timer,))

    return renewing


def chats_reducer(
    *, auto_resend: bool = False, max_messages: int | None = None
) -> Reducer[ChatsState]:
    """The Chats module's reducer for one configuration: ``(ChatsState, action) -> Step``.

    ``auto_resend``: once a chat has resumed after a reconnect, queue its
    ``interrupted`` messages again, in order. ``max_messages`` (at least 1), when
    set: after every change of a chat, keep only its newest that many confirmed
    messages (pending ones always stay; older ones that ``load_older_messages``
    brought stay until the chat next changes). Raises ``ValueError`` for a
    ``max_messages`` below 1.
    """
    if max_messages is not None and (isinstance(max_messages, bool) or max_messages < 1):
        raise ValueError(f"max_messages must be None or at least 1, not {max_messages!r}")
    table: dict[type, WholeCase] = {
        **{kind: _renewing(case) for kind, case in CHATS_CASES.items()},
        ChatResumed: _renewing(
            partial(chat_resumed, auto_resend=auto_resend, max_messages=max_messages)
        ),
        **{
            kind: _in_chat(
                case,
                None if kind in UNBOUNDED_CASES else max_messages,
                capped=kind in EVENT_CASES,
            )
            for kind, case in CHAT_CASES.items()
        },
    }
    return reducer_from_table(
        {kind: _checked(case) if kind in INTENTS else case for kind, case in table.items()}
    )


reduce_chats = chats_reducer()
"""The Chats reducer of the default configuration (no ``auto_resend``, every message kept)."""
