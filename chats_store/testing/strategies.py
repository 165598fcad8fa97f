"""Hypothesis strategies for the Chats module: values, actions and valid states.

Values: :func:`ids` (and the named :func:`chat_ids`, :func:`message_ids`,
:func:`member_ids`), :func:`contents` (what ``send_message`` accepts),
:func:`messages` (:func:`confirmed_messages` with a ``seq``,
:func:`pending_messages` without), :func:`restrictions`, :func:`member_metadata`
and :func:`chat_snapshots`.

Actions: :func:`server_events` (what the server pushes for one chat) and
:func:`chats_actions` (any action, sensible or not, about a given state: the
reducer must never raise on one).

States: :func:`chats_states` builds a :class:`ChatsState` the only way the
application can: by dispatching a valid sequence of actions (intents the facade
would accept, replies the server model :class:`ChatServerModel` would give, its
pushes, connection changes) through :func:`reduce_chats`. :func:`chats_scenarios`
gives the same with the actions and the requests still in flight. The server model
(in :mod:`chats_store.testing.server_model`, re-exported here with
:class:`ServerChat`) runs the reference server's core, so the states reached include
resumed chats and chats still ``reloading``.

Everything here is synchronous; use ``chats_store.testing.in_memory`` for tests
that need the effects and the facade.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import msgspec
from hypothesis import strategies as st
from hypothesis.strategies import DrawFn, SearchStrategy

from chats_store.chats.actions import (
    ChatJoined,
    ChatJoinFailed,
    ChatLeaveFailed,
    ChatLeft,
    ChatMemberModerated,
    ChatMemberModerationFailed,
    ChatSnapshot,
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
    SendMessage,
    ServerEvent,
    UpdateMessage,
)
from chats_store.chats.commands import (
    ChatReply,
    ChatRequest,
    SendRequest,
    outcome_of,
)
from chats_store.chats.model import (
    ChatsState,
    ChatState,
    Message,
    MessageStatus,
    Restriction,
)
from chats_store.chats.reducer import reduce_chats
from chats_store.content import MAX_CONTENT_LENGTH, is_blank
from chats_store.errors import ErrorCode
from chats_store.testing.server_model import CLIENT_ID, ChatServerModel, ServerChat

__all__ = [
    "CLIENT_ID",
    "OTHER_MEMBERS",
    "ChatServerModel",
    "ChatsScenario",
    "ServerChat",
    "chat_ids",
    "chat_snapshots",
    "chats_actions",
    "chats_scenarios",
    "chats_states",
    "confirmed_messages",
    "contents",
    "failures",
    "ids",
    "member_ids",
    "member_metadata",
    "message_ids",
    "messages",
    "pending_messages",
    "restrictions",
    "server_events",
    "timestamps",
]

OTHER_MEMBERS = ("alice", "bob")
"""Other members who post in generated chats."""

CONFIRMED_STATUSES: tuple[MessageStatus, ...] = ("ready", "updating", "deleting")
PENDING_STATUSES: tuple[MessageStatus, ...] = ("sending", "interrupted", "deleting")

_ID_ALPHABET = string.ascii_lowercase + string.digits


# Values ------------------------------------------------------------------------------


def ids(prefix: str = "", *, max_size: int = 8) -> SearchStrategy[str]:
    """Short non-empty identifiers (``[a-z0-9]``), each prefixed with ``prefix``."""
    return st.text(_ID_ALPHABET, min_size=1, max_size=max_size).map(lambda text: prefix + text)


def chat_ids() -> SearchStrategy[str]:
    return ids("chat-")


def message_ids() -> SearchStrategy[str]:
    return ids("msg-")


def member_ids() -> SearchStrategy[str]:
    """Member ids, the client's own (``CLIENT_ID``) included now and then."""
    return st.one_of(st.sampled_from((CLIENT_ID, *OTHER_MEMBERS)), ids("user-"))


def contents() -> SearchStrategy[str]:
    """Message contents ``send_message`` accepts: 1 to 256 characters, not blank."""
    return st.text(min_size=1, max_size=MAX_CONTENT_LENGTH).filter(lambda text: not is_blank(text))


def timestamps() -> SearchStrategy[float]:
    """Epoch seconds between 1970 and about 2096."""
    return st.floats(min_value=0.0, max_value=4e9, allow_nan=False, allow_infinity=False)


def _chat_id_strategy(chat_id: str | None) -> SearchStrategy[str]:
    return chat_ids() if chat_id is None else st.just(chat_id)


@st.composite
def confirmed_messages(
    draw: DrawFn,
    chat_id: str | None = None,
    *,
    seqs: SearchStrategy[int] | None = None,
    statuses: Sequence[MessageStatus] = ("ready",),
) -> Message:
    """A message the server has confirmed: it has a ``seq`` (default status ``ready``)."""
    return Message(
        id=draw(message_ids()),
        chat_id=draw(_chat_id_strategy(chat_id)),
        author_id=draw(member_ids()),
        content=draw(contents()),
        status=draw(st.sampled_from(tuple(statuses))),
        seq=draw(seqs if seqs is not None else st.integers(min_value=1, max_value=10**9)),
        created_at=draw(timestamps()),
        edited_at=draw(st.none() | timestamps()),
    )


@st.composite
def pending_messages(
    draw: DrawFn,
    chat_id: str | None = None,
    *,
    statuses: Sequence[MessageStatus] = ("sending", "interrupted"),
) -> Message:
    """A message of the client not confirmed yet (``seq`` None)."""
    return Message(
        id=draw(message_ids()),
        chat_id=draw(_chat_id_strategy(chat_id)),
        author_id=CLIENT_ID,
        content=draw(contents()),
        status=draw(st.sampled_from(tuple(statuses))),
        created_at=draw(timestamps()),
    )


def messages(chat_id: str | None = None) -> SearchStrategy[Message]:
    """Confirmed (with ``seq``) or pending (without) messages, in any legal status."""
    return st.one_of(
        confirmed_messages(chat_id, statuses=CONFIRMED_STATUSES),
        pending_messages(chat_id, statuses=PENDING_STATUSES),
    )


@st.composite
def restrictions(draw: DrawFn) -> Restriction:
    return Restriction(
        kind=draw(st.sampled_from(("mute", "block"))),
        until=draw(st.none() | timestamps()),
        reason=draw(st.none() | st.text(max_size=40)),
    )


def member_metadata() -> SearchStrategy[dict[str, str]]:
    return st.dictionaries(ids(), st.text(max_size=20), max_size=3)


def failures() -> SearchStrategy[Failure]:
    """Any request failure: refused by the server, connection lost, time-out, cancelled."""
    return st.one_of(
        st.builds(
            Failure,
            st.just("refused"),
            st.sampled_from([code.value for code in ErrorCode]),
            st.just("refused by the server"),
        ),
        st.builds(
            Failure, st.just("connection_lost"), st.just("connection_lost"), st.just("closed")
        ),
        st.builds(Failure, st.just("timeout"), st.just("timeout"), st.just("no reply")),
        st.builds(
            Failure,
            st.just("cancelled"),
            st.just(ErrorCode.CHAT_LEFT_DURING_JOIN.value),
            st.just("left"),
        ),
    )


@st.composite
def chat_snapshots(
    draw: DrawFn, chat_id: str, *, min_last_seq: int = 0, max_messages: int = 8
) -> ChatSnapshot:
    """A join reply: up to ``max_messages`` ready messages with distinct ``seq`` <= last_seq."""
    last_seq = draw(st.integers(min_value=min_last_seq, max_value=min_last_seq + 50))
    count = draw(st.integers(min_value=0, max_value=min(max_messages, last_seq)))
    seqs = sorted(
        draw(
            st.lists(
                st.integers(min_value=1, max_value=max(last_seq, 1)),
                min_size=count,
                max_size=count,
                unique=True,
            )
        )
    )
    message_ids_ = draw(st.lists(message_ids(), min_size=count, max_size=count, unique=True))
    snapshot_messages = tuple(
        msgspec.structs.replace(draw(confirmed_messages(chat_id, seqs=st.just(seq))), id=message_id)
        for seq, message_id in zip(seqs, message_ids_, strict=True)
    )
    return ChatSnapshot(
        messages=snapshot_messages,
        members_amount=draw(st.integers(min_value=1, max_value=10**6)),
        member_metadata=draw(member_metadata()),
        restrictions=tuple(draw(st.lists(restrictions(), max_size=2))),
        last_seq=last_seq,
    )


@st.composite
def server_events(
    draw: DrawFn,
    chat_id: str,
    *,
    after_seq: int = 0,
    known_messages: Sequence[Message] = (),
) -> ServerEvent:
    """One push of the server about ``chat_id``, with an event ``seq`` > ``after_seq``.

    ``after_seq`` must be at least every ``seq`` the server has given out in that
    chat (the chat's ``last_seq``, and the ``seq`` of acked messages whose push
    has not arrived yet): a new message takes the event's ``seq``.

    ``known_messages`` are messages the client holds: pushes then also echo,
    edit or remove them (an echo keeps the message's ``seq`` once it has one).
    """
    seq = draw(st.integers(min_value=after_seq + 1, max_value=after_seq + 20))
    confirmed = [message for message in known_messages if message.seq is not None]
    new_message = confirmed_messages(chat_id, seqs=st.just(seq))
    posted_options: list[SearchStrategy[Message]] = [new_message]
    if known_messages:
        posted_options.append(
            st.sampled_from(tuple(known_messages)).map(
                lambda message: msgspec.structs.replace(
                    message, status="ready", seq=message.seq if message.seq is not None else seq
                )
            )
        )
    options: list[SearchStrategy[ServerEvent]] = [
        st.builds(MessagePosted, st.just(chat_id), st.just(seq), st.one_of(posted_options)),
        st.builds(
            MembersAmountChanged,
            st.just(chat_id),
            st.just(seq),
            st.integers(min_value=0, max_value=10**6),
        ),
        st.builds(
            OwnRestrictionsChanged,
            st.just(chat_id),
            st.just(seq),
            st.lists(restrictions(), max_size=2).map(tuple),
        ),
        st.builds(OwnMetadataChanged, st.just(chat_id), st.just(seq), member_metadata()),
        st.builds(
            RemovedFromChat,
            st.just(chat_id),
            st.sampled_from(("kicked", "blocked")),
            st.none() | st.text(max_size=20),
        ),
        st.builds(
            MessageRemoved,
            st.just(chat_id),
            st.just(seq),
            st.sampled_from(tuple(m.id for m in known_messages)) | message_ids()
            if known_messages
            else message_ids(),
        ),
    ]
    if confirmed:
        options.append(
            st.builds(
                MessageEdited,
                st.just(chat_id),
                st.just(seq),
                st.builds(
                    lambda message, content, at: msgspec.structs.replace(
                        message, status="ready", content=content, edited_at=at
                    ),
                    st.sampled_from(confirmed),
                    contents(),
                    timestamps(),
                ),
            )
        )
    return draw(st.one_of(options))


# Valid states ------------------------------------------------------------------------


@attrs.frozen
class ChatsScenario:
    """A valid state, the actions that built it, and the requests still unanswered."""

    state: ChatsState
    actions: tuple[Any, ...]
    in_flight: Mapping[int, ChatRequest]


_WEIGHTS = {
    "join": 3,
    "leave": 1,
    "reply": 6,
    "fail": 2,
    "send": 4,
    "resend": 2,
    "update": 2,
    "delete": 2,
    "load_older": 1,
    "moderate": 1,
    "other_posts": 3,
    "server_change": 2,
    "deliver": 3,
    "kick": 1,
    "disconnect": 1,
}


def _applicable_kinds(
    state: ChatsState,
    server: ChatServerModel,
    in_flight: Mapping[int, ChatRequest],
    chat_pool: Sequence[str],
) -> list[str]:
    """The kinds of step that fit ``state``, each repeated by its weight."""
    ready = bool(_ready(state))
    fits = {
        "join": any(chat_id not in state.chats for chat_id in chat_pool),
        "leave": bool(state.chats),
        "reply": bool(in_flight),
        "fail": bool(in_flight),
        "send": ready,
        "resend": bool(_messages_where(state, "interrupted")),
        "update": bool(_messages_where(state, "ready")),
        "delete": bool(_messages_where(state, "ready", "interrupted")),
        "load_older": ready,
        "moderate": ready,
        "other_posts": ready,
        "server_change": ready,
        "deliver": any(chat.outbox for chat in server.chats.values()),
        "kick": ready,
        "disconnect": True,
    }
    return [kind for kind, weight in _WEIGHTS.items() if fits[kind] for _ in range(weight)]


def _ready(state: ChatsState) -> list[ChatState]:
    """The ready chats in join order (the chats map has no order of its own)."""
    return [chat for chat_id in state.chat_ids if (chat := state.chats[chat_id]).status == "ready"]


def _messages_where(state: ChatsState, *statuses: MessageStatus) -> list[Message]:
    return [
        message
        for chat in _ready(state)
        for message in chat.messages
        if message.status in statuses and message.author_id == CLIENT_ID
    ]


def _failure_kinds() -> SearchStrategy[Failure]:
    return st.one_of(
        st.builds(
            Failure,
            st.just("refused"),
            st.sampled_from((ErrorCode.PERMISSION_DENIED.value, ErrorCode.INVALID_REQUEST.value)),
            st.just("refused"),
        ),
        st.just(Failure("timeout", "timeout", "no reply in time")),
        st.just(Failure("connection_lost", "connection_lost", "the connection closed")),
    )


@st.composite
def _next_actions(
    draw: DrawFn,
    state: ChatsState,
    server: ChatServerModel,
    in_flight: dict[int, ChatRequest],
    chat_pool: Sequence[str],
    next_id: int,
) -> list[Any]:
    """Actions for one step of a valid history (empty when the drawn kind does not fit)."""
    connected = state.connection == "connected"
    kind = draw(st.sampled_from(_applicable_kinds(state, server, in_flight, chat_pool)))
    ready = _ready(state)
    if not connected:
        return [ConnectionStatusChanged("connected")]
    if kind == "join":
        free = [chat_id for chat_id in chat_pool if chat_id not in state.chats]
        if free:
            return [JoinChat(next_id, draw(st.sampled_from(free)), "token")]
    elif kind == "leave" and state.chats:
        return [LeaveChat(next_id, draw(st.sampled_from(sorted(state.chats))))]
    elif kind in ("reply", "fail") and in_flight:
        call_id = draw(st.sampled_from(sorted(in_flight)))
        request = in_flight.pop(call_id)
        result: ChatReply | Failure
        if kind == "fail":
            result = draw(_failure_kinds())
            if result.kind == "timeout" and draw(st.booleans()):
                server.reply(request)  # applied by the server, but the reply was lost
        else:
            result = server.reply(request)
        return [outcome_of(call_id, request, result)]
    elif kind == "send" and ready:
        chat = draw(st.sampled_from(ready))
        return [
            SendMessage(
                next_id, chat.chat_id, f"m{next_id}", CLIENT_ID, draw(contents()), float(next_id)
            )
        ]
    elif kind == "resend":
        candidates = _messages_where(state, "interrupted")
        if candidates:
            message = draw(st.sampled_from(candidates))
            return [ResendMessage(next_id, message.chat_id, message.id)]
    elif kind == "update":
        candidates = _messages_where(state, "ready")
        if candidates:
            message = draw(st.sampled_from(candidates))
            return [UpdateMessage(next_id, message.chat_id, message.id, draw(contents()))]
    elif kind == "delete":
        candidates = _messages_where(state, "ready", "interrupted")
        if candidates:
            message = draw(st.sampled_from(candidates))
            return [DeleteMessage(next_id, message.chat_id, message.id)]
    elif kind == "load_older" and ready:
        chat = draw(st.sampled_from(ready))
        return [LoadOlderMessages(next_id, chat.chat_id, draw(st.integers(1, 5)))]
    elif kind == "moderate" and ready:
        chat = draw(st.sampled_from(ready))
        measures: tuple[ModerationMeasure, ...] = ("block", "unblock", "mute", "unmute", "kick")
        measure = draw(st.sampled_from(measures))
        return [ModerateChatMember(next_id, chat.chat_id, OTHER_MEMBERS[0], measure)]
    elif kind == "other_posts" and ready:
        chat = draw(st.sampled_from(ready))
        server.post(chat.chat_id, f"o{next_id}", draw(st.sampled_from(OTHER_MEMBERS)), "hi")
        return server.take_events(chat.chat_id)
    elif kind == "server_change" and ready:
        chat_id = draw(st.sampled_from(ready)).chat_id
        live = list(server.chat(chat_id).messages)
        change = draw(st.sampled_from(("amount", "restrictions", "metadata", "edit", "remove")))
        if change == "amount":
            server.set_members_amount(chat_id, draw(st.integers(1, 100)))
        elif change == "restrictions":
            server.set_restrictions(chat_id, tuple(draw(st.lists(restrictions(), max_size=2))))
        elif change == "metadata":
            server.set_metadata(chat_id, draw(member_metadata()))
        elif live and change == "edit":
            server.edit(chat_id, draw(st.sampled_from(live)), draw(contents()))
        elif live:
            server.remove(chat_id, draw(st.sampled_from(live)))
        if draw(st.booleans()):
            return server.take_events(chat_id)
    elif kind == "deliver":
        chat_id = draw(st.sampled_from([c.chat_id for c in server.chats.values() if c.outbox]))
        return list(server.take_events(chat_id, draw(st.integers(1, 3))))
    elif kind == "kick" and ready:
        chat_id = draw(st.sampled_from(ready)).chat_id
        server.drop_events(chat_id)
        return [RemovedFromChat(chat_id, draw(st.sampled_from(("kicked", "blocked"))))]
    elif kind == "disconnect":
        # Every request in flight fails with the connection (some were applied by
        # the server first); the transport may report them before or after the
        # status change. Undelivered pushes are lost.
        lost = Failure("connection_lost", "connection_lost", "the connection closed")
        failed = []
        for call_id, request in sorted(in_flight.items()):
            if draw(st.booleans()):
                server.reply(request)
            failed.append(outcome_of(call_id, request, lost))
        in_flight.clear()
        server.drop_events()
        disconnected = ConnectionStatusChanged("disconnected")
        return [disconnected, *failed] if draw(st.booleans()) else [*failed, disconnected]
    return []


@st.composite
def chats_scenarios(
    draw: DrawFn, *, chat_pool: Sequence[str] = ("c1", "c2", "c3"), max_steps: int = 40
) -> ChatsScenario:
    """A valid history: the state reached, the actions dispatched, requests in flight.

    Each step is an intent the facade would accept (the connection is open, the
    chat is ready, the message is in the right status, authored by ``CLIENT_ID``),
    a reply or failure of a request in flight as :class:`ChatServerModel` answers
    it (a time-out sometimes after the server applied the request), a push of the
    server delivered in ``seq`` order, a removal from a chat, or a connection
    change (pending pushes are lost with the connection).
    """
    server = ChatServerModel()
    state = ChatsState(connection="connected")
    in_flight: dict[int, ChatRequest] = {}
    dispatched: list[Any] = []
    for step in range(draw(st.integers(min_value=0, max_value=max_steps))):
        for action in draw(_next_actions(state, server, in_flight, chat_pool, step + 1)):
            result = reduce_chats(state, action)
            state = result.state
            dispatched.append(action)
            for command in result.commands:
                if isinstance(command, SendRequest):
                    in_flight[command.call_id] = command.request
            if isinstance(action, (LeaveChat, RemovedFromChat)):
                server.drop_events(action.chat_id)
    return ChatsScenario(state, tuple(dispatched), dict(in_flight))


def chats_states(
    *, chat_pool: Sequence[str] = ("c1", "c2", "c3"), max_steps: int = 40
) -> SearchStrategy[ChatsState]:
    """Valid states, reached by dispatching valid actions (see :func:`chats_scenarios`)."""
    return chats_scenarios(chat_pool=chat_pool, max_steps=max_steps).map(
        lambda scenario: scenario.state
    )


# Any action --------------------------------------------------------------------------


def _message_of(chat_id: str, message_id: str, seq: int, content: str) -> Message:
    return Message(
        id=message_id,
        chat_id=chat_id,
        author_id=CLIENT_ID,
        content=content,
        status="ready",
        seq=seq,
        created_at=float(seq),
    )


_ANY_ACTION_KINDS: tuple[type, ...] = (
    JoinChat,
    ChatJoined,
    ChatJoinFailed,
    LeaveChat,
    ChatLeft,
    ChatLeaveFailed,
    SendMessage,
    ResendMessage,
    MessageSent,
    MessageSendFailed,
    UpdateMessage,
    MessageUpdated,
    MessageUpdateFailed,
    DeleteMessage,
    MessageDeleted,
    MessageDeleteFailed,
    LoadOlderMessages,
    OlderMessagesLoaded,
    OlderMessagesLoadFailed,
    ModerateChatMember,
    ChatMemberModerated,
    ChatMemberModerationFailed,
    MessagePosted,
    MessageEdited,
    MessageRemoved,
    MembersAmountChanged,
    OwnRestrictionsChanged,
    OwnMetadataChanged,
    RemovedFromChat,
    ConnectionStatusChanged,
)


@st.composite
def chats_actions(draw: DrawFn, state: ChatsState) -> Any:
    """Any action about ``state``: valid or not, for a chat joined or not.

    Chat ids, message ids, call ids and seqs are mostly taken from ``state`` so the
    actions hit real entries; replies from the server are plausible (a message
    keeps its ``seq``, sometimes comes back unchanged; a new one gets a ``seq``
    above the chat's messages).
    """
    kind = draw(st.sampled_from(_ANY_ACTION_KINDS))
    if kind is ConnectionStatusChanged:
        return ConnectionStatusChanged(
            draw(st.sampled_from(("disconnected", "connecting", "connected")))
        )
    known_chats = sorted(state.chats)
    chat_id = draw(
        st.sampled_from(known_chats) | chat_ids() if known_chats else st.just("chat-unknown")
    )
    if kind is RemovedFromChat:
        return RemovedFromChat(chat_id, draw(st.sampled_from(("kicked", "blocked"))))
    chat = state.chats.get(chat_id)
    held = tuple(chat.messages) if chat is not None else ()
    last_seq = chat.last_seq if chat is not None else 0
    top_seq = max([last_seq, *(m.seq for m in held if m.seq is not None)])
    event_seq = draw(st.integers(min_value=max(0, last_seq - 2), max_value=top_seq + 5))
    if kind is MembersAmountChanged:
        return MembersAmountChanged(chat_id, event_seq, draw(st.integers(0, 100)))
    if kind is OwnRestrictionsChanged:
        restrictions_ = tuple(draw(st.lists(restrictions(), max_size=2)))
        return OwnRestrictionsChanged(chat_id, event_seq, restrictions_)
    if kind is OwnMetadataChanged:
        return OwnMetadataChanged(chat_id, event_seq, draw(member_metadata()))
    call_id = draw(
        st.sampled_from([chat.join_call_id]) | st.integers(1, 1000)
        if chat is not None
        else st.integers(1, 1000)
    )
    if kind is JoinChat:
        return JoinChat(call_id, chat_id, "token")
    if kind in (LeaveChat, ChatLeft):
        return kind(call_id, chat_id)
    if kind is ChatJoined:
        return ChatJoined(call_id, chat_id, draw(chat_snapshots(chat_id)))
    if kind in (ChatJoinFailed, ChatLeaveFailed, OlderMessagesLoadFailed):
        return kind(call_id, chat_id, draw(failures()))
    if kind is LoadOlderMessages:
        return LoadOlderMessages(call_id, chat_id, draw(st.integers(1, 200)))
    if kind is ModerateChatMember:
        measures: tuple[ModerationMeasure, ...] = ("block", "unblock", "mute", "unmute", "kick")
        return ModerateChatMember(call_id, chat_id, "alice", draw(st.sampled_from(measures)))
    if kind is ChatMemberModerated:
        return ChatMemberModerated(call_id, chat_id, "alice", "kick")
    if kind is ChatMemberModerationFailed:
        return ChatMemberModerationFailed(call_id, chat_id, "alice", draw(failures()))
    message_id = draw(
        st.sampled_from([m.id for m in held]) | message_ids() if held else message_ids()
    )
    if kind in (ResendMessage, DeleteMessage, MessageDeleted):
        return kind(call_id, chat_id, message_id)
    if kind is MessageRemoved:
        return MessageRemoved(chat_id, event_seq, message_id)
    if kind in (MessageSendFailed, MessageUpdateFailed, MessageDeleteFailed):
        return kind(call_id, chat_id, message_id, draw(failures()))
    content = draw(contents())
    if kind is SendMessage:
        return SendMessage(call_id, chat_id, message_id, CLIENT_ID, content, 1.0)
    if kind is UpdateMessage:
        return UpdateMessage(call_id, chat_id, message_id, content)
    existing = next((m for m in held if m.id == message_id), None)
    seq = (
        existing.seq
        if existing is not None and existing.seq is not None
        else draw(st.integers(min_value=top_seq + 1, max_value=top_seq + 5))
    )
    server_message = _message_of(chat_id, message_id, seq, content)
    if existing is not None and existing.seq is not None and draw(st.booleans()):
        # The server's copy of a message the client holds, unchanged (a repeated
        # ack, an echo): nothing should change.
        server_message = msgspec.structs.replace(existing, status="ready")
    if kind is OlderMessagesLoaded:
        return OlderMessagesLoaded(call_id, chat_id, (server_message,))
    if kind is MessagePosted:
        return MessagePosted(chat_id, seq, server_message)
    if kind is MessageEdited:
        return MessageEdited(chat_id, event_seq, server_message)
    return kind(call_id, chat_id, server_message)  # MessageSent, MessageUpdated
