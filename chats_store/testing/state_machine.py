"""A reusable Hypothesis state machine for the Chats store (reducer, store, getters).

:class:`ChatsStateMachine` drives random action sequences through a real
:class:`~chats_store.core.store.Store` built on :func:`reduce_chats`, whose
interpreter only records the commands. The "world" around the client is
simulated by :class:`~chats_store.testing.strategies.ChatServerModel` (the
reference server's core): requests in flight are processed by the server, then
answered (or time out, possibly after the server applied them); the server's
pushes are delivered in ``seq`` order at any time; the connection drops and comes
back, and the joined chats go ``reloading`` until the server answers their resume.
Next to the store runs :class:`ClientModel`, a plain-Python model of what the
client should show, written from the documented lifecycles and independent of the
reducer.

After every dispatch the machine checks that each message status change is an
allowed lifecycle edge (:data:`ALLOWED_EDGES`, from ``chats_store.chats.lifecycle``)
and that no call is settled twice by ``SettleCall`` commands; after every step, that:

* no chat holds two messages with the same id;
* confirmed messages are strictly ordered by ``seq`` and every pending one
  (``seq`` None) comes after them;
* the model agrees with the state on each chat (messages in order with their
  content and status, members amount, metadata, restrictions, sync statuses);
* every getter's ``.value`` equals its ``select_*`` selector on the state, and
  each subscribed getter's last emission is its ``.value`` (and it never emitted
  the same value twice in a row).

One rule (:meth:`ChatsStateMachine.any_intent_through_the_facade_checks`) draws any
intent, valid or not, runs the facade's own check of it (:func:`check_intent`), and
dispatches it anyway: the reducer must refuse exactly what the check refused under the
lifecycle tables, with the same code and words, and leave the state identical; and it
must accept what the check let through. At teardown every request in flight is
answered, and then every facade call must have been settled exactly once (a
``SettleCall``, or the outcome of its request, whichever came first, as the effects
settle calls).

Use it as is::

    TestChatsStateMachine = ChatsStateMachine.TestCase

or subclass it with more rules (call :meth:`ChatsStateMachine.dispatch` so the
model and the checks follow) and more invariants.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, ClassVar

import attrs
import jwt
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from reactivex import abc

from chats_store.chats.actions import (
    ChatJoined,
    ChatJoinFailed,
    ChatResumed,
    ChatResumeFailed,
    ConnectionStatusChanged,
    DeleteMessage,
    Failure,
    JoinChat,
    LeaveChat,
    LoadOlderMessages,
    MembersAmountChanged,
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
    ModerationMeasure,
    OlderMessagesLoaded,
    OlderMessagesLoadFailed,
    OwnMetadataChanged,
    OwnRestrictionsChanged,
    RemovedFromChat,
    ResendMessage,
    Resumption,
    SendMessage,
    UpdateMessage,
)
from chats_store.chats.commands import (
    ChatReply,
    ChatRequest,
    DeleteMessageRequest,
    DispatchLater,
    EditMessageRequest,
    HistoryRequest,
    JoinRequest,
    LeaveRequest,
    Outcome,
    PostMessageRequest,
    ResumeRequest,
    SendRequest,
    SettleCall,
    outcome_of,
)
from chats_store.chats.lifecycle import LIFECYCLE_CODES, MESSAGE_EDGES, REMOVING_ACTIONS
from chats_store.chats.model import (
    ChatsState,
    ChatState,
    ChatStatus,
    Message,
    MessageStatus,
    Restriction,
    SyncStatuses,
)
from chats_store.chats.reducer import INTERNAL_CALL, reduce_chats
from chats_store.chats.selectors import (
    PROJECTION_FIELDS,
    is_syncing_of,
    members_amount_of,
    messages_of,
    metadata_of,
    restrictions_of,
    select_chat_members_amount,
    select_chat_messages,
    select_chat_status,
    select_chat_sync_statuses,
    select_chats_ids,
    select_client_chat_member_metadata,
    select_client_chat_member_restrictions,
    select_is_chat_syncing,
    status_of,
    sync_statuses_of,
)
from chats_store.chats.validation import (
    check_delete_message,
    check_join_chat,
    check_leave_chat,
    check_load_older_messages,
    check_moderation,
    check_resend_message,
    check_send_message,
    check_update_message,
)
from chats_store.core.reducer import Command
from chats_store.core.store import Getter, Store
from chats_store.errors import ActionCallError, ErrorCode
from chats_store.testing.strategies import (
    CLIENT_ID,
    OTHER_MEMBERS,
    ChatServerModel,
    contents,
    member_metadata,
    restrictions,
)
from chats_store.tokens import CHAT_AUDIENCE

__all__ = [
    "ALLOWED_EDGES",
    "CHAT_GETTERS",
    "ChatsStateMachine",
    "ClientModel",
    "ModelChat",
    "ModelMessage",
    "check_intent",
]

ALLOWED_EDGES = MESSAGE_EDGES
"""For each action class, the message status changes it may cause (old, new): the
lifecycle module's table (``chats_store.chats.lifecycle.MESSAGE_EDGES``)."""

CHAT_GETTERS: Mapping[str, tuple[Callable[[Any], Any], Callable[[ChatsState, str], Any]]] = {
    "status": (status_of, select_chat_status),
    "messages": (messages_of, select_chat_messages),
    "members_amount": (members_amount_of, select_chat_members_amount),
    "sync_statuses": (sync_statuses_of, select_chat_sync_statuses),
    "is_syncing": (is_syncing_of, select_is_chat_syncing),
    "metadata": (metadata_of, select_client_chat_member_metadata),
    "restrictions": (restrictions_of, select_client_chat_member_restrictions),
}
"""Per-chat getter kinds (the facade's key names): (projection, selector)."""

LOST = Failure("connection_lost", "connection_lost", "the connection closed")
TIMEOUT = Failure("timeout", "timeout", "no reply in time")
REFUSED = Failure("refused", ErrorCode.PERMISSION_DENIED.value, "refused by the server")


def _identity(value: Any) -> Any:
    return value


def check_intent(state: ChatsState, intent: Any, user_id: str, now: float) -> None:
    """Run the facade's check of ``intent`` (what ``Chats`` calls before dispatching it,
    with the arguments it passes); raises its :class:`ActionCallError`."""
    match intent:
        case JoinChat(chat_id=chat_id, token=token):
            claims = check_join_chat(state, token, user_id, now)
            assert claims["chat"] == chat_id, (claims, intent)
        case LeaveChat(chat_id=chat_id):
            check_leave_chat(state, chat_id)
        case SendMessage(chat_id=chat_id, message_id=message_id, content=content):
            check_send_message(state, chat_id, content, now, message_id=message_id)
        case ResendMessage(chat_id=chat_id, message_id=message_id):
            check_resend_message(state, chat_id, message_id, now)
        case UpdateMessage(chat_id=chat_id, message_id=message_id, content=content):
            check_update_message(state, chat_id, message_id, content, user_id)
        case DeleteMessage(chat_id=chat_id, message_id=message_id):
            check_delete_message(state, chat_id, message_id)
        case LoadOlderMessages(chat_id=chat_id, limit=limit):
            check_load_older_messages(state, chat_id, limit)
        case ModerateChatMember(chat_id=chat_id, member_id=member_id, measure=measure):
            duration = 0 if intent.duration is None else intent.duration
            check_moderation(state, f"{measure}_chat_member", chat_id, member_id, user_id, duration)
        case _:
            raise TypeError(f"not an intent: {intent!r}")


def chat_token(user_id: str, chat_id: str, expires_at: float) -> str:
    """A chat token for ``user_id`` in ``chat_id`` as the facade reads it (unsigned use:
    the client never checks signatures)."""
    claims = {"aud": CHAT_AUDIENCE, "sub": user_id, "chat": chat_id, "exp": expires_at}
    return jwt.encode(claims, "state-machine-key-that-is-long-enough-for-hs256")


def _chat_input(chat_id: str) -> Callable[[ChatsState], ChatState | None]:
    """A chat getter's input, as the facade builds it: the chat's state object."""

    def input_of(state: ChatsState) -> ChatState | None:
        return state.chats.get(chat_id)

    return input_of


def _bound(selector: Callable[[ChatsState, str], Any], chat_id: str) -> Callable[[ChatsState], Any]:
    def select(state: ChatsState) -> Any:
        return selector(state, chat_id)

    return select


# The plain-Python model ------------------------------------------------------------------


@attrs.define
class ModelMessage:
    id: str
    author_id: str
    content: str
    status: MessageStatus
    seq: int | None
    order: int = 0  # creation order, for pending messages

    @classmethod
    def confirmed(cls, message: Message) -> ModelMessage:
        assert message.seq is not None
        return cls(message.id, message.author_id, message.content, "ready", message.seq)

    def view(self) -> tuple[str, str, str, MessageStatus, int | None]:
        return (self.id, self.author_id, self.content, self.status, self.seq)


@attrs.define
class ModelChat:
    status: ChatStatus
    join_call: int
    messages: dict[str, ModelMessage] = attrs.Factory(dict)
    originals: dict[str, ModelMessage] = attrs.Factory(dict)
    buffered: list[Any] = attrs.Factory(list)
    last_seq: int = 0
    members_amount: int | None = None
    metadata: dict[str, str] | None = None
    restrictions: tuple[Restriction, ...] | None = None
    history_loading: int = 0
    """History requests not answered yet."""
    resumable: bool = False  # the join gave a membership credential

    def visible(self) -> list[ModelMessage]:
        """Confirmed messages by seq, then pending ones in creation order."""
        return sorted(
            self.messages.values(),
            key=lambda m: (m.seq is None, m.seq if m.seq is not None else m.order),
        )

    @property
    def sync_statuses(self) -> SyncStatuses:
        if self.status in ("loading", "reloading"):
            return SyncStatuses("loading", "loading")
        return SyncStatuses("loading" if self.history_loading else "idle", "idle")

    def receive(self, message: Message) -> None:
        """A server-confirmed version of a message (a reply or a push)."""
        confirmed = ModelMessage.confirmed(message)
        if message.id in self.originals:
            self.originals[message.id] = confirmed
            # A visible copy still pending (its send's ack lost, then an update or a
            # delete sent) keeps its in-flight status and takes the confirmed seq.
            visible = self.messages.get(message.id)
            if visible is not None and visible.seq is None:
                self.messages[message.id] = attrs.evolve(visible, seq=confirmed.seq)
        else:
            self.messages[message.id] = confirmed

    def restore(self, message_id: str) -> None:
        original = self.originals.pop(message_id, None)
        if original is not None:
            self.messages[message_id] = original

    def forget(self, message_id: str) -> None:
        self.messages.pop(message_id, None)
        self.originals.pop(message_id, None)

    def resume(self, resumption: Resumption) -> None:
        """What the chat missed (or a snapshot that replaces the history, keeping pending
        messages and the updates and deletes in flight of messages it has), then what
        was buffered meanwhile."""
        self.status = "ready"
        if resumption.snapshot is not None:
            confirmed = {m.id: ModelMessage.confirmed(m) for m in resumption.snapshot.messages}
            originals = {i: confirmed[i] for i in self.originals if i in confirmed}
            for message_id in originals:
                in_flight = self.messages[message_id]
                confirmed[message_id] = attrs.evolve(in_flight, seq=confirmed[message_id].seq)
            pending = {
                message_id: message
                for message_id, message in self.messages.items()
                if message.seq is None and message_id not in confirmed
            }
            self.messages = {**confirmed, **pending}
            self.originals = originals
            self.last_seq = resumption.snapshot.last_seq
        buffered, self.buffered = self.buffered, []
        for missed in (*resumption.events, *buffered):
            self.apply_event(missed)
        self.members_amount = resumption.members_amount
        self.metadata = dict(resumption.member_metadata)
        self.restrictions = resumption.restrictions
        self.last_seq = max(self.last_seq, resumption.last_seq)

    def apply_event(self, event: Any) -> None:
        if self.status in ("loading", "reloading"):
            self.buffered.append(event)
            return
        if event.seq <= self.last_seq:
            return
        self.last_seq = event.seq
        match event:
            case MessagePosted(message=message):
                self.receive(message)
            case MessageEdited(message=message):
                if message.id in self.messages:
                    self.receive(message)
            case MessageRemoved(message_id=message_id):
                self.forget(message_id)
            case MembersAmountChanged(members_amount=amount):
                self.members_amount = amount
            case OwnRestrictionsChanged(restrictions=restrictions_):
                self.restrictions = restrictions_
            case OwnMetadataChanged(member_metadata=metadata):
                self.metadata = dict(metadata)


class ClientModel:
    """What the client should show, as dicts and lists, from the documented lifecycles."""

    def __init__(self) -> None:
        self.connection = "disconnected"
        self.chats: dict[str, ModelChat] = {}
        self._order = itertools.count()

    def chat_ids(self) -> tuple[str, ...]:
        return tuple(self.chats)

    def ready_chat(self, chat_id: str) -> ModelChat | None:
        chat = self.chats.get(chat_id)
        return chat if chat is not None and chat.status == "ready" else None

    def apply(self, action: Any) -> None:
        if isinstance(action, ConnectionStatusChanged):
            self._connection(action.status)
            return
        chat = self.chats.get(action.chat_id)
        match action:
            case JoinChat(call_id=call_id, chat_id=chat_id):
                if chat is None:
                    self.chats[chat_id] = ModelChat("loading", call_id)
            case ChatJoinFailed(call_id=call_id, chat_id=chat_id):
                if chat is not None and chat.status == "loading" and chat.join_call == call_id:
                    del self.chats[chat_id]
            case LeaveChat(chat_id=chat_id) | RemovedFromChat(chat_id=chat_id):
                self.chats.pop(chat_id, None)
            case ChatJoined(call_id=call_id, snapshot=snapshot):
                if chat is not None and chat.status == "loading" and chat.join_call == call_id:
                    chat.status = "ready"
                    chat.messages = {m.id: ModelMessage.confirmed(m) for m in snapshot.messages}
                    chat.last_seq = snapshot.last_seq
                    chat.members_amount = snapshot.members_amount
                    chat.metadata = dict(snapshot.member_metadata)
                    chat.restrictions = snapshot.restrictions
                    chat.resumable = snapshot.membership is not None
                    buffered, chat.buffered = chat.buffered, []
                    for event in buffered:
                        chat.apply_event(event)
            case ChatResumed(resumption=resumption):
                if chat is not None and chat.status == "reloading":
                    chat.resume(resumption)
            case ChatResumeFailed(chat_id=chat_id, failure=failure):
                if chat is not None and chat.status == "reloading" and failure.kind == "refused":
                    del self.chats[chat_id]
            case (
                MessagePosted()
                | MessageEdited()
                | MessageRemoved()
                | MembersAmountChanged()
                | OwnRestrictionsChanged()
                | OwnMetadataChanged()
            ):
                if chat is not None:
                    chat.apply_event(action)
            case _:
                if chat is not None:
                    self._message_action(chat, action)

    def _connection(self, status: str) -> None:
        if status == self.connection:
            return
        self.connection = status
        if status == "connected":
            for chat in self.chats.values():
                if chat.status != "loading" and chat.resumable:
                    chat.status = "reloading"
            return
        for chat in self.chats.values():
            for message in chat.messages.values():
                if message.status == "sending":
                    message.status = "interrupted"
            for message_id in list(chat.originals):
                chat.restore(message_id)

    def _message_action(self, chat: ModelChat, action: Any) -> None:
        # A chat accepts its user's intents once loaded, during a resync too.
        ready = chat.status in ("ready", "reloading")
        message = chat.messages.get(getattr(action, "message_id", ""))
        match action:
            case SendMessage(message_id=message_id, author_id=author, content=content):
                if ready and message is None:
                    chat.messages[message_id] = ModelMessage(
                        message_id, author, content, "sending", None, next(self._order)
                    )
            case ResendMessage():
                if ready and message is not None and message.status == "interrupted":
                    message.status = "sending"
            case MessageSent(message=sent):
                # The ack of a message still shown (a removed message stays removed).
                if sent.id in chat.messages:
                    chat.receive(sent)
            case MessageSendFailed():
                if message is not None and message.status == "sending":
                    message.status = "interrupted"
            case UpdateMessage(message_id=message_id, content=content):
                if ready and message is not None and message.status == "ready":
                    chat.originals[message_id] = attrs.evolve(message)
                    message.content = content
                    message.status = "updating"
            case MessageUpdated(message=updated):
                current = chat.messages.get(updated.id)
                if current is not None and current.status == "updating":
                    chat.messages[updated.id] = ModelMessage.confirmed(updated)
                    chat.originals.pop(updated.id, None)
            case (
                MessageUpdateFailed(message_id=message_id)
                | MessageDeleteFailed(message_id=message_id)
            ):
                chat.restore(message_id)
            case DeleteMessage(message_id=message_id):
                if ready and message is not None and message.status in ("ready", "interrupted"):
                    chat.originals[message_id] = attrs.evolve(message)
                    message.status = "deleting"
            case MessageDeleted(message_id=message_id):
                chat.forget(message_id)
            case LoadOlderMessages():
                if ready:
                    chat.history_loading += 1
            case OlderMessagesLoaded(messages=older):
                for item in older:
                    if item.seq is not None and item.id not in chat.messages:
                        chat.messages[item.id] = ModelMessage.confirmed(item)
                chat.history_loading = max(0, chat.history_loading - 1)
            case OlderMessagesLoadFailed():
                chat.history_loading = max(0, chat.history_loading - 1)


def _rejections(commands: Sequence[Command], call_id: int) -> list[SettleCall]:
    """The commands that settle ``call_id`` as rejected by the reducer."""
    return [
        command
        for command in commands
        if isinstance(command, SettleCall)
        and command.call_id == call_id
        and getattr(command.outcome, "failure", None) is not None
        and command.outcome.failure.kind == "rejected"  # type: ignore[union-attr]
    ]


# The machine --------------------------------------------------------------------------


@attrs.define
class _Recorder:
    """A getter subscription that keeps every emitted value."""

    values: list[Any] = attrs.Factory(list)
    subscription: abc.DisposableBase | None = None


class ChatsStateMachine(RuleBasedStateMachine):
    """Random action sequences through a real Store, checked against :class:`ClientModel`.

    Class attributes to tune in a subclass: ``CHAT_IDS`` (the chats the client may
    join), ``USER_ID`` (the client's member id), ``SNAPSHOT_SIZE`` (how many recent
    messages a join returns; older ones come with ``LoadOlderMessages``),
    ``MAX_RESUME_EVENTS`` (past that many missed events, a resume gets a snapshot).
    """

    CHAT_IDS: ClassVar[tuple[str, ...]] = ("c1", "c2")
    USER_ID: ClassVar[str] = CLIENT_ID
    SNAPSHOT_SIZE: ClassVar[int] = 3
    MAX_RESUME_EVENTS: ClassVar[int] = 3

    def __init__(self) -> None:
        super().__init__()
        self.commands: list[Command] = []
        self.store: Store[ChatsState] = Store(
            reduce_chats,
            ChatsState(),
            scope_of=lambda action: getattr(action, "chat_id", None),
            interpreter=self.commands.append,
        )
        self.server = ChatServerModel(
            self.USER_ID,
            snapshot_size=self.SNAPSHOT_SIZE,
            max_resume_events=self.MAX_RESUME_EVENTS,
        )
        self.model = ClientModel()
        self.in_flight: dict[int, SendRequest] = {}
        self.resumes: dict[str, SendRequest] = {}
        self.timers: dict[tuple[str, str], DispatchLater] = {}
        """The timers the reducer asked for (membership renewals), by key; never fired."""
        """The resume requests in flight (the module's own: call id 0), by chat."""
        self.processed: dict[int, ChatReply | Failure] = {}
        self.settled: dict[int, Outcome] = {}
        """The outcome of every ``SettleCall`` command, by call id."""
        self.calls: set[int] = set()
        """Every facade call id handed out (:meth:`call_id`)."""
        self.settlements: dict[int, Outcome] = {}
        """How each facade call was settled: the first ``SettleCall`` or request outcome."""
        self.dispatched: list[Any] = []
        self._call_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self.getters: dict[Hashable, tuple[Getter[Any], Callable[[ChatsState], Any]]] = {}
        self.recorders: dict[Hashable, _Recorder] = {}
        self._make_getters()
        for key in self.getters:
            self._subscribe(key)
        self.dispatch(ConnectionStatusChanged("connected"))

    # Plumbing ----------------------------------------------------------------------

    def _make_getters(self) -> None:
        store = self.store
        self.getters["chats_ids"] = (
            store.getter("chats_ids", lambda state: state.chat_ids, _identity),
            select_chats_ids,
        )
        for chat_id in self.CHAT_IDS:
            for name, (projection, selector) in CHAT_GETTERS.items():
                getter = store.getter(
                    (name, chat_id),
                    _chat_input(chat_id),
                    projection,
                    scope=chat_id,
                    field=PROJECTION_FIELDS[projection],
                )
                self.getters[(name, chat_id)] = (getter, _bound(selector, chat_id))

    def _subscribe(self, key: Hashable) -> None:
        recorder = _Recorder()
        getter, select = self.getters[key]
        recorder.subscription = getter.subscribe(recorder.values.append)
        assert len(recorder.values) == 1, f"{key}: no replay on subscribe"
        assert recorder.values[0] == select(self.store.state), f"{key}: stale replay"
        self.recorders[key] = recorder

    def call_id(self) -> int:
        """A new facade call id (each must be settled exactly once)."""
        call_id = next(self._call_ids)
        self.calls.add(call_id)
        return call_id

    def dispatch(self, action: Any) -> None:
        """Dispatch ``action`` to the store and the model; check its status edges."""
        before = self.store.state
        first_command = len(self.commands)
        self.store.dispatch(action)
        self.model.apply(action)
        self.dispatched.append(action)
        self.check_edges(before, self.store.state, action)
        for command in self.commands[first_command:]:
            if isinstance(command, SendRequest) and command.call_id == INTERNAL_CALL:
                assert isinstance(command.request, ResumeRequest), command
                self.resumes[command.request.chat_id] = command
            elif isinstance(command, SendRequest):
                assert command.call_id not in self.in_flight, command
                request = command.request
                if isinstance(request, PostMessageRequest):
                    assert request.chat_id not in self._chats_sending(), (
                        f"two sends in flight in {request.chat_id}: sends must reach the server "
                        "in order"
                    )
                self.in_flight[command.call_id] = command
            elif isinstance(command, DispatchLater):
                self.timers[command.key] = command
            elif isinstance(command, SettleCall):
                assert command.call_id not in self.settled, (
                    f"call {command.call_id} settled twice: {self.settled[command.call_id]!r}, "
                    f"then {command.outcome!r}"
                )
                self.settled[command.call_id] = command.outcome
                self._settle(command.call_id, command.outcome)
            else:
                raise AssertionError(f"unexpected command {command!r}")

    def _chats_sending(self) -> set[str]:
        """Chats with a send in flight."""
        return {
            command.request.chat_id
            for command in self.in_flight.values()
            if isinstance(command.request, PostMessageRequest)
        }

    def sent(self, call_id: int) -> ChatRequest:
        """The request the last dispatch sent for ``call_id`` (it must have sent one)."""
        command = self.in_flight.get(call_id)
        assert command is not None, f"call {call_id} sent no request"
        return command.request

    def sent_or_queued(self, call_id: int, chat_id: str, expected: ChatRequest) -> None:
        """``call_id`` sent ``expected``, or waits in the chat's send queue behind another."""
        command = self.in_flight.get(call_id)
        if command is not None:
            assert command.request == expected, command
            return
        queue = self.store.state.chats[chat_id].send_queue
        assert any(entry.call_id == call_id for entry in queue[1:]), (
            f"call {call_id} was neither sent nor queued behind a send in flight"
        )

    def check_edges(self, before: ChatsState, after: ChatsState, action: Any) -> None:
        allowed = ALLOWED_EDGES.get(type(action), frozenset())
        for chat_id, old_chat in before.chats.items():
            new_chat = after.chats.get(chat_id)
            if new_chat is None or new_chat.join_call_id != old_chat.join_call_id:
                continue  # the chat itself is gone (left, removed, join failed)
            for old in old_chat.messages:
                new = new_chat.messages.find(old.id)
                if new is None:
                    assert type(action) in REMOVING_ACTIONS, (
                        f"{old.id} ({old.status}) vanished on {action!r}"
                    )
                elif new.status != old.status:
                    assert (old.status, new.status) in allowed, (
                        f"{old.id}: {old.status} -> {new.status} on {action!r}"
                    )
            for new in new_chat.messages:
                if old_chat.messages.find(new.id) is None:
                    expected = "sending" if isinstance(action, SendMessage) else "ready"
                    assert new.status == expected, f"{new.id} appeared {new.status} on {action!r}"

    def _settle(self, call_id: int, outcome: Outcome) -> None:
        """Settle a call as the effects do: the first settlement stands."""
        if call_id in self.calls:
            self.settlements.setdefault(call_id, outcome)

    def _take(self, call_id: int) -> ChatRequest:
        self.processed.pop(call_id, None)
        return self.in_flight.pop(call_id).request

    def answer(self, call_id: int) -> None:
        """Deliver the server's reply to ``call_id`` (processing it first if needed)."""
        if call_id not in self.processed:
            self.processed[call_id] = self.server.reply(self.in_flight[call_id].request)
        result = self.processed[call_id]
        request = self._take(call_id)
        self.report(call_id, outcome_of(call_id, request, result))

    def fail(self, call_id: int, failure: Failure) -> None:
        request = self._take(call_id)
        self.report(call_id, outcome_of(call_id, request, failure))

    def report(self, call_id: int, outcome: Outcome) -> None:
        """Dispatch a request's outcome, then settle its call (the effects' order)."""
        self.dispatch(outcome)
        self._settle(call_id, outcome)

    def _calls_where(self, test: Callable[[ChatRequest], bool]) -> list[int]:
        return sorted(c for c, command in self.in_flight.items() if test(command.request))

    def _model_messages(
        self, *statuses: MessageStatus, mine: bool = False
    ) -> list[tuple[str, str]]:
        return sorted(
            (chat_id, message.id)
            for chat_id, chat in self.model.chats.items()
            if chat.status == "ready"
            for message in chat.messages.values()
            if message.status in statuses and (not mine or message.author_id == self.USER_ID)
        )

    def _ready_chats(self) -> list[str]:
        return sorted(c for c, chat in self.model.chats.items() if chat.status == "ready")

    def _end_membership(self, chat_id: str) -> None:
        """The client is out of ``chat_id``: its requests there fail, pushes stop."""
        self.server.drop_events(chat_id)
        for call_id in self._calls_where(
            lambda request: (
                request.chat_id == chat_id and not isinstance(request, (JoinRequest, LeaveRequest))
            )
        ):
            self.fail(call_id, REFUSED)

    # Rules: chats ------------------------------------------------------------------------

    @initialize(
        history=st.lists(
            st.tuples(st.sampled_from((CLIENT_ID, *OTHER_MEMBERS)), contents()), max_size=6
        )
    )
    def join_the_first_chat(self, history: list[tuple[str, str]]) -> None:
        """Start with the first chat joined, on top of some history."""
        chat_id = self.CHAT_IDS[0]
        for author, content in history:
            author_id = self.USER_ID if author == CLIENT_ID else author
            self.server.post(chat_id, f"h{next(self._message_ids)}", author_id, content)
        self.join(chat_id, answer=True)

    def join(self, chat_id: str, *, answer: bool) -> None:
        call_id = self.call_id()
        self.dispatch(JoinChat(call_id, chat_id, "token"))
        assert self.sent(call_id) == JoinRequest(chat_id, "token")
        if answer:
            self.answer(call_id)
            chat = self.model.chats.get(chat_id)  # None: refused (the client is blocked)
            assert chat is None or chat.status == "ready"

    @precondition(lambda self: any(c not in self.model.chats for c in self.CHAT_IDS))
    @rule(data=st.data(), answer=st.booleans())
    def join_chat(self, data: st.DataObject, answer: bool) -> None:
        """Join a chat; the reply comes now or later (another rule)."""
        free = [c for c in self.CHAT_IDS if c not in self.model.chats]
        self.join(data.draw(st.sampled_from(free)), answer=answer)

    @precondition(lambda self: bool(self.model.chats))
    @rule(data=st.data(), how=st.sampled_from(("leave", "kicked", "blocked")))
    def membership_ends(self, data: st.DataObject, how: str) -> None:
        """The client leaves (a loading chat too) or is kicked or blocked (a ready one)."""
        chat_id = data.draw(st.sampled_from(sorted(self.model.chats)))
        chat = self.model.chats[chat_id]
        if how == "leave" or chat.status == "loading":
            call_id = self.call_id()
            self.dispatch(LeaveChat(call_id, chat_id))
            assert self.sent(call_id) == LeaveRequest(chat_id)
            if chat.status == "loading":
                outcome = self.settled.get(chat.join_call)
                assert isinstance(outcome, ChatJoinFailed), outcome
                assert outcome.failure.kind == "cancelled"
                assert outcome.failure.code == ErrorCode.CHAT_LEFT_DURING_JOIN
        else:
            self.dispatch(RemovedFromChat(chat_id, "kicked" if how == "kicked" else "blocked"))
        assert chat_id not in self.store.state.chats
        self._end_membership(chat_id)

    # Rules: requests in flight ---------------------------------------------------------------

    @precondition(lambda self: any(c not in self.processed for c in self.in_flight))
    @rule(data=st.data())
    def server_processes_a_request(self, data: st.DataObject) -> None:
        """The server applies a request; its reply is not delivered yet."""
        call_id = data.draw(st.sampled_from(sorted(set(self.in_flight) - set(self.processed))))
        self.processed[call_id] = self.server.reply(self.in_flight[call_id].request)

    @precondition(lambda self: bool(self.in_flight))
    @rule(data=st.data(), pushes_first=st.booleans())
    def reply_arrives(self, data: st.DataObject, pushes_first: bool) -> None:
        """The reply arrives, maybe after the pushes the server sent meanwhile (its own
        echo included): the transport may hand those over first."""
        call_id = data.draw(st.sampled_from(sorted(self.in_flight)))
        if pushes_first:
            if call_id not in self.processed:
                self.processed[call_id] = self.server.reply(self.in_flight[call_id].request)
            self.deliver_pushes(self.in_flight[call_id].request.chat_id)
            if call_id not in self.in_flight:  # a push removed the client from the chat
                return
        self.answer(call_id)

    @precondition(lambda self: bool(self.in_flight))
    @rule(data=st.data(), how=st.sampled_from(("refused", "timeout", "lost_reply")))
    def request_fails(self, data: st.DataObject, how: str) -> None:
        """Refused by the server, timed out, or timed out after the server applied it."""
        call_id = data.draw(st.sampled_from(sorted(self.in_flight)))
        if how == "lost_reply" and call_id not in self.processed:
            self.processed[call_id] = self.server.reply(self.in_flight[call_id].request)
        refused = how == "refused" and call_id not in self.processed
        self.fail(call_id, REFUSED if refused else TIMEOUT)

    # Rules: messages ---------------------------------------------------------------------

    @precondition(lambda self: bool(self._ready_chats()))
    @rule(data=st.data(), content=contents())
    def send_message(self, data: st.DataObject, content: str) -> None:
        chat_id = data.draw(st.sampled_from(self._ready_chats()))
        call_id, message_id = self.call_id(), f"m{next(self._message_ids)}"
        self.dispatch(SendMessage(call_id, chat_id, message_id, self.USER_ID, content, 0.0))
        self.sent_or_queued(call_id, chat_id, PostMessageRequest(chat_id, message_id, content))

    @precondition(lambda self: bool(self._model_messages("interrupted")))
    @rule(data=st.data())
    def resend_message(self, data: st.DataObject) -> None:
        chat_id, message_id = data.draw(st.sampled_from(self._model_messages("interrupted")))
        content = self.model.chats[chat_id].messages[message_id].content
        call_id = self.call_id()
        self.dispatch(ResendMessage(call_id, chat_id, message_id))
        self.sent_or_queued(call_id, chat_id, PostMessageRequest(chat_id, message_id, content))

    @precondition(lambda self: bool(self._model_messages("ready", mine=True)))
    @rule(data=st.data(), content=contents())
    def update_message(self, data: st.DataObject, content: str) -> None:
        chat_id, message_id = data.draw(st.sampled_from(self._model_messages("ready", mine=True)))
        call_id = self.call_id()
        self.dispatch(UpdateMessage(call_id, chat_id, message_id, content))
        assert self.sent(call_id) == EditMessageRequest(chat_id, message_id, content)

    @precondition(lambda self: bool(self._model_messages("ready", "interrupted")))
    @rule(data=st.data())
    def delete_message(self, data: st.DataObject) -> None:
        chat_id, message_id = data.draw(
            st.sampled_from(self._model_messages("ready", "interrupted"))
        )
        call_id = self.call_id()
        self.dispatch(DeleteMessage(call_id, chat_id, message_id))
        assert self.sent(call_id) == DeleteMessageRequest(chat_id, message_id)

    @precondition(lambda self: bool(self._ready_chats()))
    @rule(data=st.data(), limit=st.integers(min_value=1, max_value=4))
    def load_older_messages(self, data: st.DataObject, limit: int) -> None:
        chat_id = data.draw(st.sampled_from(self._ready_chats()))
        confirmed = [m.seq for m in self.model.chats[chat_id].visible() if m.seq is not None]
        call_id = self.call_id()
        self.dispatch(LoadOlderMessages(call_id, chat_id, limit))
        request = self.sent(call_id)
        assert isinstance(request, HistoryRequest)
        if confirmed:
            assert request.before_seq == confirmed[0]

    # Rules: the server and other members ---------------------------------------------------

    @rule(
        chat_id=st.sampled_from(CHAT_IDS),
        author=st.sampled_from(OTHER_MEMBERS),
        content=contents(),
    )
    def other_member_posts(self, chat_id: str, author: str, content: str) -> None:
        self.server.post(chat_id, f"o{next(self._message_ids)}", author, content)

    @rule(
        data=st.data(),
        change=st.sampled_from(("edit", "remove", "amount", "restrictions", "metadata")),
        content=contents(),
        amount=st.integers(min_value=1, max_value=50),
        restrictions_=st.lists(restrictions(), max_size=2).map(tuple),
        metadata=member_metadata(),
    )
    def server_side_change(
        self,
        data: st.DataObject,
        change: str,
        content: str,
        amount: int,
        restrictions_: tuple[Restriction, ...],
        metadata: dict[str, str],
    ) -> None:
        """Another member edits their message, a moderator removes any message, or the
        members amount, the client's restrictions or metadata change."""
        chat_id = data.draw(st.sampled_from(self.CHAT_IDS))
        messages = self.server.chat(chat_id).messages
        others = sorted(m.id for m in messages.values() if m.author_id != self.USER_ID)
        if change == "edit" and others:
            self.server.edit(chat_id, data.draw(st.sampled_from(others)), content)
        elif change == "remove" and messages:
            self.server.remove(chat_id, data.draw(st.sampled_from(sorted(messages))))
        elif change == "amount":
            self.server.set_members_amount(chat_id, amount)
        elif change == "restrictions":
            self.server.set_restrictions(chat_id, restrictions_)
        elif change == "metadata":
            self.server.set_metadata(chat_id, metadata)

    @precondition(lambda self: any(c.outbox for c in self.server.chats.values()))
    @rule(data=st.data(), count=st.integers(min_value=1, max_value=3))
    def pushes_arrive(self, data: st.DataObject, count: int) -> None:
        chat_id = data.draw(
            st.sampled_from(sorted(c.chat_id for c in self.server.chats.values() if c.outbox))
        )
        self.deliver_pushes(chat_id, count)

    def deliver_pushes(self, chat_id: str, count: int | None = None) -> None:
        """Dispatch the server's next ``count`` pushes for ``chat_id`` (all by default)."""
        for pushed in self.server.take_events(chat_id, count):
            self.dispatch(pushed)
            if isinstance(pushed, RemovedFromChat):
                self._end_membership(chat_id)
                return

    @precondition(lambda self: bool(self.resumes))
    @rule(data=st.data())
    def resume_reply_arrives(self, data: st.DataObject) -> None:
        """The server answers a chat's resume after a reconnection."""
        command = self.resumes.pop(data.draw(st.sampled_from(sorted(self.resumes))))
        result = self.server.reply(command.request)
        self.dispatch(outcome_of(INTERNAL_CALL, command.request, result))

    # Rules: the connection ------------------------------------------------------------------

    @precondition(lambda self: bool(self.in_flight))
    @rule(data=st.data(), failures_first=st.booleans(), via_connecting=st.booleans())
    def connection_drops_and_comes_back(
        self, data: st.DataObject, failures_first: bool, via_connecting: bool
    ) -> None:
        """Every request in flight fails (the server may have applied it); pushes are lost."""
        for call_id in sorted(set(self.in_flight) - set(self.processed)):
            if data.draw(st.booleans(), label=f"server got call {call_id}"):
                self.processed[call_id] = self.server.reply(self.in_flight[call_id].request)
        self.server.drop_events()
        if not failures_first:
            self.dispatch(ConnectionStatusChanged("disconnected"))
        # Every request on the dead connection fails, including a queued send that
        # a failure started before the status change arrived.
        while self.in_flight:
            self.fail(min(self.in_flight), LOST)
        for chat_id in sorted(self.resumes):
            self.dispatch(outcome_of(INTERNAL_CALL, self.resumes.pop(chat_id).request, LOST))
        if failures_first:
            self.dispatch(ConnectionStatusChanged("disconnected"))
        if via_connecting:
            self.dispatch(ConnectionStatusChanged("connecting"))
        self.dispatch(ConnectionStatusChanged("connected"))

    # Rules: any intent, through the facade's checks ----------------------------------------

    NOW: ClassVar[float] = 0.0
    """The clock of the facade's checks (mutes with a later end are active)."""

    @rule(data=st.data())
    def any_intent_through_the_facade_checks(self, data: st.DataObject) -> None:
        """Any intent, valid or not: the reducer refuses exactly what the facade's check
        refuses under the lifecycle tables (same code, same words, state identical),
        and accepts the rest.

        Arguments are valid (content, limit, duration, another member): checks of
        arguments, of the clock and of the user are the facade's alone, and an intent
        they refuse once the lifecycle accepted it is accepted by the reducer (the
        server has the last word); authorship and mutes are drawn either way. An
        intent the facade refuses is only given to the reducer as a pure function (the
        facade never dispatches it); one it accepts is dispatched.
        """
        state = self.store.state
        call_id = self.call_id()
        intent = data.draw(self._any_intent(call_id), label="intent")
        try:
            check_intent(state, intent, self.USER_ID, self.NOW)
        except ActionCallError as error:
            refused: ActionCallError | None = error
        else:
            refused = None
        event(f"{type(intent).__name__}: " + (refused.code if refused else "accepted"))
        if refused is not None:
            self.calls.discard(call_id)  # the facade would not have made the call
            step = reduce_chats(state, intent)
            rejections = _rejections(step.commands, call_id)
            if refused.code in LIFECYCLE_CODES:
                assert step.state is state, f"{intent!r} was refused but changed the state"
                assert list(step.commands) == rejections, step.commands
                (rejection,) = rejections
                failure = rejection.outcome.failure  # type: ignore[union-attr]
                assert (failure.code, failure.detail) == (refused.code, refused.detail), (
                    f"the facade refused {intent!r} with {refused.code}: {refused.detail}; "
                    f"the reducer with {failure.code}: {failure.detail}"
                )
            else:
                assert not rejections, (
                    f"the facade's check let {intent!r} through its lifecycle "
                    f"({refused.code} is an argument check), the reducer refused it: "
                    f"{rejections[0].outcome!r}"
                )
            return
        first = len(self.commands)
        self.dispatch(intent)
        rejections = _rejections(self.commands[first:], call_id)
        assert not rejections, (
            f"the facade's check let {intent!r} through, the reducer refused it: "
            f"{rejections[0].outcome!r}"
        )
        if isinstance(intent, LeaveChat):
            self._end_membership(intent.chat_id)

    def _any_intent(self, call_id: int) -> st.SearchStrategy[Any]:
        """Any intent about the current state: half of them name a message the client
        holds (in whatever status), the others any chat (joined or not) and message."""
        state = self.store.state
        held = sorted((chat.chat_id, m.id) for chat in state.chats.values() for m in chat.messages)
        joined = sorted(state.chats)
        chat_ids = st.sampled_from((*self.CHAT_IDS, "c-unknown"))
        measures: tuple[ModerationMeasure, ...] = ("block", "unblock", "mute", "unmute", "kick")
        message_kinds = ("send", "resend", "update", "delete")

        @st.composite
        def intents(draw: st.DrawFn) -> Any:
            about_a_held_message = draw(st.booleans())
            if held and about_a_held_message:
                chat_id, message_id = draw(st.sampled_from(held))
                return message_intent(
                    draw, draw(st.sampled_from(message_kinds)), chat_id, message_id
                )
            kind = draw(
                st.sampled_from(("join", "leave", "load_older", "moderate", *message_kinds))
            )
            if kind == "join":
                chat_id = draw(st.sampled_from(self.CHAT_IDS))
                return JoinChat(call_id, chat_id, chat_token(self.USER_ID, chat_id, 1e10))
            chat_id = draw(st.sampled_from(joined) | chat_ids if joined else chat_ids)
            if kind == "leave":
                return LeaveChat(call_id, chat_id)
            if kind == "load_older":
                return LoadOlderMessages(call_id, chat_id, draw(st.integers(1, 4)))
            if kind == "moderate":
                measure = draw(st.sampled_from(measures))
                duration = draw(st.integers(0, 10)) if measure in ("block", "mute") else None
                return ModerateChatMember(call_id, chat_id, OTHER_MEMBERS[0], measure, duration)
            fresh = f"m{next(self._message_ids)}"
            return message_intent(draw, kind, chat_id, draw(st.sampled_from((fresh, "m-unknown"))))

        def message_intent(draw: st.DrawFn, kind: str, chat_id: str, message_id: str) -> Any:
            if kind == "send":
                content = draw(contents())
                return SendMessage(call_id, chat_id, message_id, self.USER_ID, content, self.NOW)
            if kind == "resend":
                return ResendMessage(call_id, chat_id, message_id)
            if kind == "update":
                return UpdateMessage(call_id, chat_id, message_id, draw(contents()))
            return DeleteMessage(call_id, chat_id, message_id)

        return intents()

    # Rules: getters ----------------------------------------------------------------------

    @rule(data=st.data())
    def toggle_a_getter_subscription(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.getters, key=repr)))
        recorder = self.recorders.pop(key, None)
        if recorder is None:
            self._subscribe(key)
        else:
            assert recorder.subscription is not None
            recorder.subscription.dispose()

    # Invariants ----------------------------------------------------------------------------

    @invariant()
    def messages_are_unique_and_ordered(self) -> None:
        for chat_id, chat in self.store.state.chats.items():
            items = chat.messages.items
            ids = [m.id for m in items]
            assert len(ids) == len(set(ids)), f"duplicate message ids in {chat_id}: {ids}"
            seqs = [m.seq for m in items]
            confirmed = [s for s in seqs if s is not None]
            assert seqs[: len(confirmed)] == confirmed, f"pending before confirmed: {seqs}"
            assert confirmed == sorted(set(confirmed)), f"not strictly by seq: {seqs}"

    @invariant()
    def model_agrees_with_the_state(self) -> None:
        state = self.store.state
        assert state.chat_ids == self.model.chat_ids()
        assert state.connection == self.model.connection
        for chat_id, expected in self.model.chats.items():
            chat = state.chats[chat_id]
            assert chat.status == expected.status, (chat_id, chat.status, expected.status)
            actual_messages = [
                (m.id, m.author_id, m.content, m.status, m.seq) for m in chat.messages
            ]
            expected_messages = [m.view() for m in expected.visible()]
            assert actual_messages == expected_messages, (
                f"chat {chat_id}: the store shows {actual_messages}, "
                f"the model expects {expected_messages}"
            )
            assert chat.members_amount == expected.members_amount, chat_id
            assert (
                None if chat.member_metadata is None else dict(chat.member_metadata)
            ) == expected.metadata, chat_id
            assert chat.restrictions == expected.restrictions, chat_id
            assert chat.sync_statuses == expected.sync_statuses, chat_id

    @invariant()
    def getters_follow_the_state(self) -> None:
        state = self.store.state
        for key, (getter, select) in self.getters.items():
            expected = select(state)
            recorder = self.recorders.get(key)
            if recorder is not None:
                # Checked before reading .value, which would refresh a stale getter.
                emitted = len(recorder.values)
                assert recorder.values[-1] == expected, (
                    f"getter {key} last emitted {recorder.values[-1]!r}, the state has "
                    f"{expected!r}: the store did not refresh it"
                )
            assert getter.value == expected, f"getter {key}: {getter.value!r} != {expected!r}"
            if recorder is None:
                continue
            assert len(recorder.values) == emitted, f"reading {key}.value emitted"
            assert recorder.values[-1] is getter.value, f"getter {key}: .value is another object"
            for earlier, later in itertools.pairwise(recorder.values):
                assert earlier != later, f"getter {key} emitted an unchanged value {later!r}"

    def teardown(self) -> None:
        """Answer what is in flight (queued sends start and are answered in turn), then
        check that every facade call was settled; skipped when the run already failed,
        so as not to hide that failure."""
        for recorder in self.recorders.values():
            if recorder.subscription is not None:
                recorder.subscription.dispose()
        if sys.exc_info()[1] is not None:
            return
        while self.in_flight:
            self.answer(min(self.in_flight))
        unsettled = sorted(self.calls - set(self.settlements))
        assert not unsettled, f"calls never settled: {unsettled}"
