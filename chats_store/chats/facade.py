"""The Chats module's public face: ``create_chats``, ``ChatsConfig`` and ``Chats``.

Every action method follows the same three steps: check the call against the
current state (raising :class:`ActionCallError` with nothing changed), dispatch
the intent, await its outcome. Every call settles exactly once: with its outcome,
with the reducer's refusal, or, when the module is closed under it, with
:class:`CallCancelledError` (``module_closed``). Every getter is memoized by its
arguments.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import time
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn, TypeVar

import attrs
from reactivex.disposable import CompositeDisposable

from chats_store.chats.action_log import ActionLogWriter
from chats_store.chats.actions import (
    ChatJoined,
    ChatMemberModerated,
    ConnectionStatusChanged,
    DeleteMessage,
    Failure,
    FailureKind,
    JoinChat,
    LeaveChat,
    LoadOlderMessages,
    MessageDeleted,
    MessageSent,
    MessageUpdated,
    ModerateChatMember,
    ModerationMeasure,
    OlderMessagesLoaded,
    ResendMessage,
    SendMessage,
    UpdateMessage,
)
from chats_store.chats.commands import Outcome
from chats_store.chats.derived import (
    ReadMarkers,
    chat_last_message,
    chat_summary,
    chat_unread_count,
    mark_chat_read,
)
from chats_store.chats.effects import ChatsEffects
from chats_store.chats.model import (
    ChatContext,
    ChatRemoval,
    ChatsState,
    ChatState,
    ChatStatus,
    Message,
    Restriction,
    SyncStatuses,
)
from chats_store.chats.persistence import DEFAULT_KEPT_MESSAGES, StateFile
from chats_store.chats.reducer import chats_reducer
from chats_store.chats.selectors import (
    PROJECTION_FIELDS,
    ChatSummary,
    chat_context,
    is_syncing_of,
    members_amount_of,
    messages_of,
    metadata_of,
    restrictions_of,
    select_chats_ids,
    status_of,
    sync_statuses_of,
)
from chats_store.chats.server_clock import ServerClock, issued_at, latest_server_time
from chats_store.chats.transport import ChatsTransport, ChatsTransportProvider
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
from chats_store.core.store import Getter, Store
from chats_store.errors import (
    ActionCallError,
    ActionError,
    CallCancelledError,
    ConnectionLostError,
    ErrorCode,
    RequestTimeoutError,
    ServerRefusedError,
)
from chats_store.tokens import CHAT_AUDIENCE, SESSION_AUDIENCE
from chats_store.user.module import User

__all__ = ["Chats", "ChatsConfig", "create_chats"]

T = TypeVar("T")


def _new_message_id() -> str:
    return str(uuid.uuid4())


def _chat_scope(action: Any) -> str | None:
    return getattr(action, "chat_id", None)


def _identity(value: T) -> T:
    return value


ChatInput = Callable[[ChatsState], ChatState | None]

# One input function per chat id, shared by the chat's getters (in every store, as
# it depends on the chat id only): the store groups the getters of a scope by their
# input function and runs it once per dispatch for the whole group. Weak: an entry
# lives as long as a getter (or a store group) holds its function.
_chat_inputs: weakref.WeakValueDictionary[str, ChatInput] = weakref.WeakValueDictionary()


def _chat_input(chat_id: str) -> ChatInput:
    """The input of every getter of ``chat_id``: the chat's state object, or None."""
    input_of = _chat_inputs.get(chat_id)
    if input_of is None:

        def input_of(state: ChatsState) -> ChatState | None:
            return state.chats.get(chat_id)

        _chat_inputs[chat_id] = input_of
    return input_of


@attrs.frozen
class ChatsConfig:
    """Where the chat server is and how long to wait for it.

    ``host`` is ``"host:port"``; ``secure`` selects ``wss://`` over ``ws://``;
    ``request_timeout`` (seconds) bounds every request: past it, a send becomes
    ``interrupted`` and the call raises :class:`RequestTimeoutError`.
    ``auto_resend``: after a reconnect, once a chat has resynchronized, send its
    ``interrupted`` messages again, in order (off by default: the user decides
    with :meth:`Chats.resend_message`).
    ``max_messages_in_memory``: when set (at least 1), each chat keeps only its
    newest that many confirmed messages in memory (pending ones always stay), so
    a long-running application's memory stays flat; older ones come back with
    :meth:`Chats.load_older_messages`, which stay until the chat next changes.
    None (the default) keeps every message.
    ``state_file``: a path; the module keeps its chats there (an SQLite file, created
    with mode 0600: it holds membership credentials), so that a new module on the
    same file, for the same user, restores them at once, before any connection, and
    finishes the requests the previous process left in flight (see
    :mod:`chats_store.chats.persistence`). One module per file; None (the default)
    keeps nothing.
    """

    host: str
    secure: bool = False
    request_timeout: float = 10.0
    auto_resend: bool = False
    max_messages_in_memory: int | None = attrs.field(default=None)
    state_file: str | os.PathLike[str] | None = None

    @max_messages_in_memory.validator
    def _check_max_messages(self, attribute: object, value: int | None) -> None:
        if value is not None and (isinstance(value, bool) or value < 1):
            raise ValueError(f"max_messages_in_memory must be None or at least 1, not {value!r}")

    @property
    def url(self) -> str:
        """The WebSocket URL of the chat server."""
        return f"{'wss' if self.secure else 'ws'}://{self.host}"


def _failure_of(outcome: Outcome) -> Failure:
    failure: Failure | None = getattr(outcome, "failure", None)
    if failure is None:
        raise TypeError(f"unexpected outcome {outcome!r}")
    return failure


_FAILURE_ERRORS: Mapping[FailureKind, type[ActionError]] = {
    "rejected": ActionCallError,
    "refused": ServerRefusedError,
    "cancelled": CallCancelledError,
    "connection_lost": ConnectionLostError,
    "timeout": RequestTimeoutError,
}
"""The exception each kind of :class:`Failure` raises from a facade call."""


def _raise_failure(action: str, failure: Failure) -> NoReturn:
    raise _FAILURE_ERRORS[failure.kind](action, failure.code, failure.detail)


class Chats:
    """The Chats module: actions (async methods) and getters (reactive values).

    Use :func:`create_chats` to make one. All methods must be called from the
    asyncio loop that runs it (the loop running when it was created, or else the
    loop of its first action): an action awaited elsewhere raises
    :class:`~chats_store.errors.WrongThreadError`; GUI threads go through
    :mod:`chats_store.gui`. Actions raise :class:`ActionCallError` for every
    misuse the spec lists (nothing is sent or changed then),
    :class:`ServerRefusedError` when the server refuses,
    :class:`ConnectionLostError` / :class:`RequestTimeoutError` when the outcome is
    unknown, and :class:`CallCancelledError` when the client gave the call up (the
    chat was left or lost, the module closed). Close it with :meth:`close` or
    ``async with chats:``.
    """

    def __init__(
        self,
        user: User,
        transport: ChatsTransport,
        config: ChatsConfig,
        *,
        clock: Callable[[], float] = time.time,
        new_message_id: Callable[[], str] = _new_message_id,
        action_log: str | Path | None = None,
        state_file: StateFile | None = None,
    ) -> None:
        if state_file is None and config.state_file is not None:
            state_file = open_state_file(config, user)
        self._state_file = state_file
        self._user = user
        self._config = config
        self._server_clock = ServerClock(clock)
        self._server_clock.saw(issued_at(user.session_token, SESSION_AUDIENCE))
        self._new_message_id = new_message_id
        self._call_ids = itertools.count(1)
        self._closed = False
        self._store: Store[ChatsState] = Store(
            chats_reducer(
                auto_resend=config.auto_resend, max_messages=config.max_messages_in_memory
            ),
            ChatsState(),
            scope_of=_chat_scope,
        )
        self._effects = ChatsEffects(
            transport,
            self._store.dispatch,
            config.request_timeout,
            self._server_clock,
            None if state_file is None else state_file.unrecorded,
        )
        self._store.set_interpreter(self._effects.run)
        self._action_log: ActionLogWriter | None = None
        self._remove_action_log: Callable[[], None] | None = None
        if action_log is not None:
            self._action_log = ActionLogWriter(
                action_log,
                auto_resend=config.auto_resend,
                max_messages=config.max_messages_in_memory,
                clock=clock,
            )
            self._remove_action_log = self._store.add_middleware(self._action_log)
        self._remove_state_file: Callable[[], None] | None = None
        if state_file is not None:
            self._server_clock.offset = state_file.offset
            self._store.dispatch(state_file.restored)
            state_file.follow(self._store.state, self._server_clock)
            self._remove_state_file = self._store.add_middleware(state_file.record)
            self._restore_history(state_file, list(state_file.older))
        self._subscriptions = CompositeDisposable(
            transport.status.subscribe(
                lambda status: self._store.dispatch(ConnectionStatusChanged(status))
            ),
            transport.events.subscribe(self._on_event),
        )

    def _restore_history(self, state_file: StateFile, chat_ids: list[str]) -> None:
        """Bring back the older messages the state file keeps, a chat per turn of the
        running event loop (all at once without one): every chat shows its newest
        messages at once, and the loop stays free meanwhile."""

        def restore(chat_id: str) -> None:
            history = state_file.history(chat_id)
            if history is not None and not self._closed:
                self._store.dispatch(history)

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            for chat_id in chat_ids:
                restore(chat_id)
            return

        def step() -> None:
            if chat_ids and not self._closed:
                restore(chat_ids.pop(0))
                loop.call_soon(step)

        loop.call_soon(step)

    @property
    def store(self) -> Store[ChatsState]:
        """The underlying store (for tools, tests and custom getters)."""
        return self._store

    @property
    def config(self) -> ChatsConfig:
        return self._config

    @property
    def server_clock(self) -> ServerClock:
        """The server's clock as this client estimates it: ``chats.server_clock()`` is
        the server's time now (epoch seconds).

        Server deadlines are the server's: count a restriction down with it
        (``restriction.until - chats.server_clock()``, ``restriction.is_active(
        chats.server_clock())``), not with the local clock, which may be minutes off.
        The module's own checks (mutes, token expiry) use it. See
        :mod:`chats_store.chats.server_clock`.
        """
        return self._server_clock

    def _on_event(self, event: Any) -> None:
        self._server_clock.saw(latest_server_time(event))
        self._store.dispatch(event)

    async def close(self) -> None:
        """Stop listening to the transport, end every pending call, close the files.

        Every call still pending (a request in flight, a send queued behind another,
        a join waiting for its snapshot) raises :class:`CallCancelledError` with code
        ``module_closed``, and what it changed optimistically is rolled back as for a
        failed request: a send stays ``interrupted``, an update's previous content
        comes back (``leave_chat`` still returns: the chat was left locally). Calls
        made afterwards raise :class:`ActionCallError` (``module_closed``). The
        state file is closed first, so it keeps those requests as in flight: a new
        module on it sends them again. The WebSocket module is not closed: it may
        serve other modules. Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        self._subscriptions.dispose()
        # The state file keeps the requests in flight as they are: a new module on it
        # sends them again (cancelling them would record them interrupted).
        if self._state_file is not None and self._remove_state_file is not None:
            self._remove_state_file()
            self._state_file.close()
        await self._effects.close()
        if self._action_log is not None and self._remove_action_log is not None:
            self._remove_action_log()
            self._action_log.close()

    async def __aenter__(self) -> Chats:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """``async with chats:`` closes the module on the way out (see :meth:`close`)."""
        await self.close()

    # Getters ---------------------------------------------------------------------

    @property
    def chats_ids(self) -> Getter[tuple[str, ...]]:
        """The spec's ``chatsIds``: ids of joined (or joining) chats, in join order."""
        return self._store.getter("chats_ids", select_chats_ids, _identity)

    def _chat_getter(
        self, name: str, chat_id: str, project: Callable[[ChatState | None], T]
    ) -> Getter[T]:
        field = PROJECTION_FIELDS[project]
        return self._store.getter(
            (name, chat_id), _chat_input(chat_id), project, scope=chat_id, field=field
        )

    def get_chat_status(self, chat_id: str) -> Getter[ChatStatus | None]:
        """``loading`` | ``ready`` | ``reloading``, or None for a chat not joined."""
        return self._chat_getter("status", chat_id, status_of)

    def get_chat_messages(self, chat_id: str) -> Getter[Sequence[Message] | None]:
        """The chat's messages in order (confirmed by ``seq``, then pending), or None.

        The value is an immutable :class:`~chats_store.chats.model.MessageSequence`:
        it indexes, iterates and compares like a tuple of the messages.
        """
        return self._chat_getter("messages", chat_id, messages_of)

    def get_chat_members_amount(self, chat_id: str) -> Getter[int | None]:
        """How many members the chat has, or None."""
        return self._chat_getter("members_amount", chat_id, members_amount_of)

    def get_chat_sync_statuses(self, chat_id: str) -> Getter[SyncStatuses | None]:
        """What is being fetched for the chat (``idle`` / ``loading`` per kind), or None."""
        return self._chat_getter("sync_statuses", chat_id, sync_statuses_of)

    def is_chat_syncing(self, chat_id: str) -> Getter[bool]:
        """True while any of the chat's data is being fetched."""
        return self._chat_getter("is_syncing", chat_id, is_syncing_of)

    def get_client_chat_member_metadata(self, chat_id: str) -> Getter[Mapping[str, str] | None]:
        """The client's own member metadata in the chat (read-only), or None."""
        return self._chat_getter("metadata", chat_id, metadata_of)

    def get_chat_removal(self, chat_id: str) -> Getter[ChatRemoval | None]:
        """Why the client lost ``chat_id`` (kicked, blocked, membership lost), or None.

        Not in the spec: a chat UI needs to say why a chat disappeared. Cleared when
        the client joins the chat again.
        """
        return self._store.getter(
            ("removal", chat_id), lambda state: state.removed.get(chat_id), _identity, scope=chat_id
        )

    def get_client_chat_member_restrictions(
        self, chat_id: str
    ) -> Getter[tuple[Restriction, ...] | None]:
        """The client's own restrictions in the chat (mutes), or None."""
        return self._chat_getter("restrictions", chat_id, restrictions_of)

    # Derived getters (chats_store.chats.derived) ---------------------------------

    @functools.cached_property
    def read_markers(self) -> ReadMarkers:
        """The application's read marker per chat, which unread counts start from."""
        return ReadMarkers(self._store.affinity)

    def get_chat_last_message(self, chat_id: str) -> Getter[Message | None]:
        """The last message of the chat shown (pending ones last), or None."""
        return chat_last_message(self, chat_id)

    def get_chat_unread_count(self, chat_id: str) -> Getter[int]:
        """How many messages others wrote after the chat's read marker (all if none)."""
        return chat_unread_count(self, chat_id, self._user.user_id)

    def get_chat_summary(self, chat_id: str) -> Getter[ChatSummary]:
        """One chat-list row: status, members, last message, unread count."""
        return chat_summary(self, chat_id, self._user.user_id)

    def mark_chat_read(self, chat_id: str, message_id: str | None = None) -> int:
        """Mark the chat read up to ``message_id`` (default: its last confirmed message)."""
        return mark_chat_read(self, chat_id, message_id)

    # Actions ---------------------------------------------------------------------

    def _state_for(self, action: str) -> ChatsState:
        """The state to check ``action`` against (every action starts here).

        Raises ``WrongThreadError`` off the module's loop, ``module_closed`` once closed.
        """
        self._store.affinity.check_loop("a Chats action")
        if self._closed:
            raise ActionCallError(
                action,
                ErrorCode.MODULE_CLOSED,
                "the Chats module is closed (Chats.close() was called) - create a new one "
                "with create_chats",
            )
        return self._store.state

    async def _call(self, action: str, make_intent: Callable[[int], Any]) -> Outcome:
        call_id = next(self._call_ids)
        outcome = self._effects.expect(call_id, action)
        self._store.dispatch(make_intent(call_id))
        return await outcome

    def _current(self, chat_id: str, message: Message) -> Message:
        chat = self._store.state.chats.get(chat_id)
        current = chat.messages.find(message.id) if chat is not None else None
        return current if current is not None else message

    async def join_chat(self, token: str) -> ChatContext:
        """Join the chat a chat token is for; resolves when the chat is ``ready``.

        Raises ``not_connected``, ``invalid_token``, ``expired_token`` (also when the
        server says so), ``already_joined``, and ``chat_left_during_join`` when
        :meth:`leave_chat` is called before the join finished.
        """
        state = self._state_for("join_chat")
        if isinstance(token, str):
            self._server_clock.saw(issued_at(token, CHAT_AUDIENCE))
        claims = check_join_chat(state, token, self._user.user_id, self._server_clock.earliest())
        chat_id: str = claims["chat"]
        outcome = await self._call("join_chat", lambda call_id: JoinChat(call_id, chat_id, token))
        if not isinstance(outcome, ChatJoined):
            _raise_failure("join_chat", _failure_of(outcome))
        chat = self._store.state.chats.get(chat_id)
        if chat is None or chat.join_call_id != outcome.call_id:
            raise ActionCallError(
                "join_chat",
                ErrorCode.CHAT_LEFT_DURING_JOIN,
                "the chat was left while it was being joined",
            )
        return chat_context(chat)

    async def leave_chat(self, chat_id: str) -> ChatContext:
        """Leave a joined (or loading) chat; returns its last context.

        The chat is removed from the state at once; the call resolves when the
        server has answered. A failed leave request is not an error: the server
        ends a membership whose client is gone.
        """
        context = chat_context(check_leave_chat(self._state_for("leave_chat"), chat_id))
        await self._call("leave_chat", lambda call_id: LeaveChat(call_id, chat_id))
        return context

    async def send_message(self, chat_id: str, content: str) -> Message:
        """Send a message (at most 256 characters); returns it once ``ready``.

        The message appears at once with the status ``sending``. If the send
        fails it stays, ``interrupted``, for :meth:`resend_message`, and the call
        raises.
        """
        state = self._state_for("send_message")
        now = self._server_clock()
        message_id = self._new_message_id()
        checked = check_send_message(state, chat_id, content, now, message_id=message_id)
        author_id = self._user.user_id
        outcome = await self._call(
            "send_message",
            lambda call_id: SendMessage(call_id, chat_id, message_id, author_id, checked, now),
        )
        if not isinstance(outcome, MessageSent):
            _raise_failure("send_message", _failure_of(outcome))
        return self._current(chat_id, outcome.message)

    async def resend_message(self, chat_id: str, message_id: str) -> Message:
        """Send an ``interrupted`` message again, with the same id (never a duplicate)."""
        check_resend_message(
            self._state_for("resend_message"), chat_id, message_id, self._server_clock()
        )
        outcome = await self._call(
            "resend_message", lambda call_id: ResendMessage(call_id, chat_id, message_id)
        )
        if not isinstance(outcome, MessageSent):
            _raise_failure("resend_message", _failure_of(outcome))
        return self._current(chat_id, outcome.message)

    async def update_message(self, chat_id: str, message_id: str, content: str) -> Message:
        """Replace the content of one of your ``ready`` messages; returns it updated.

        The new content shows at once with the status ``updating``; if the update
        fails, the previous content comes back and the call raises.
        """
        checked = check_update_message(
            self._state_for("update_message"), chat_id, message_id, content, self._user.user_id
        )
        outcome = await self._call(
            "update_message", lambda call_id: UpdateMessage(call_id, chat_id, message_id, checked)
        )
        if not isinstance(outcome, MessageUpdated):
            _raise_failure("update_message", _failure_of(outcome))
        return self._current(chat_id, outcome.message)

    async def delete_message(self, chat_id: str, message_id: str) -> Message:
        """Delete a ``ready`` or ``interrupted`` message; returns it as it was.

        It shows ``deleting`` meanwhile; if the delete fails it comes back as it was
        and the call raises.
        """
        state = self._state_for("delete_message")
        check_delete_message(state, chat_id, message_id)
        message = state.chats[chat_id].messages.find(message_id)
        assert message is not None
        outcome = await self._call(
            "delete_message", lambda call_id: DeleteMessage(call_id, chat_id, message_id)
        )
        if not isinstance(outcome, MessageDeleted):
            _raise_failure("delete_message", _failure_of(outcome))
        return message

    async def load_older_messages(self, chat_id: str, limit: int = 50) -> tuple[Message, ...]:
        """Fetch up to ``limit`` messages older than the oldest held, oldest first.

        They are inserted at the start of ``get_chat_messages``; the chat's sync
        statuses show messages ``loading`` meanwhile. An empty result means the
        start of the history was reached.
        """
        checked = check_load_older_messages(self._state_for("load_older_messages"), chat_id, limit)
        outcome = await self._call(
            "load_older_messages", lambda call_id: LoadOlderMessages(call_id, chat_id, checked)
        )
        if not isinstance(outcome, OlderMessagesLoaded):
            _raise_failure("load_older_messages", _failure_of(outcome))
        return outcome.messages

    async def _moderate(
        self,
        action: str,
        measure: ModerationMeasure,
        chat_id: str,
        member_id: str,
        duration: int | None = None,
        reason: str | None = None,
    ) -> None:
        check_moderation(
            self._state_for(action),
            action,
            chat_id,
            member_id,
            self._user.user_id,
            0 if duration is None else duration,
        )
        outcome = await self._call(
            action,
            lambda call_id: ModerateChatMember(
                call_id, chat_id, member_id, measure, duration, reason
            ),
        )
        if not isinstance(outcome, ChatMemberModerated):
            _raise_failure(action, _failure_of(outcome))

    async def block_chat_member(
        self, chat_id: str, member_id: str, duration: int, reason: str | None = None
    ) -> None:
        """Block a member for ``duration`` minutes (0 = permanently): removed, cannot rejoin.

        Resolves when the server has applied it; raises ``permission_denied`` (no
        ``moderate`` permission) or ``member_not_found`` when the server refuses.
        """
        await self._moderate("block_chat_member", "block", chat_id, member_id, duration, reason)

    async def unblock_chat_member(self, chat_id: str, member_id: str) -> None:
        """Lift a member's block; resolves when the server has applied it."""
        await self._moderate("unblock_chat_member", "unblock", chat_id, member_id)

    async def mute_chat_member(
        self, chat_id: str, member_id: str, duration: int, reason: str | None = None
    ) -> None:
        """Mute a member for ``duration`` minutes (0 = permanently): reads, cannot send."""
        await self._moderate("mute_chat_member", "mute", chat_id, member_id, duration, reason)

    async def unmute_chat_member(self, chat_id: str, member_id: str) -> None:
        """Lift a member's mute; resolves when the server has applied it."""
        await self._moderate("unmute_chat_member", "unmute", chat_id, member_id)

    async def kick_chat_member(
        self, chat_id: str, member_id: str, reason: str | None = None
    ) -> None:
        """Remove a member from the chat; they may join again with a new token."""
        await self._moderate("kick_chat_member", "kick", chat_id, member_id, None, reason)


def create_chats(
    *,
    user_module: User,
    websocket_module: ChatsTransportProvider,
    config: ChatsConfig,
    clock: Callable[[], float] = time.time,
    new_message_id: Callable[[], str] = _new_message_id,
    action_log: str | Path | None = None,
) -> Chats:
    """The Chats module of ``user_module``'s user, connected through ``websocket_module``.

    ``clock`` (epoch seconds) and ``new_message_id`` are injectable for tests;
    message ids must be unique (UUID4 strings by default).

    ``action_log``: a file path; every action the store dispatches is written
    there as a JSON line with a time stamp (tokens and membership credentials
    redacted; see :mod:`chats_store.chats.action_log`), for ``chats-store replay``.
    The file is closed by :meth:`Chats.close`.

    With ``config.state_file``, the chats kept there are restored before this returns
    (each ``reloading``); raises :class:`~chats_store.errors.StateFileError` when the
    file cannot be used (another user's, damaged, newer, in use), before anything is
    registered with ``websocket_module``.
    """
    state_file = None if config.state_file is None else open_state_file(config, user_module)
    try:
        if user_module.token_provider is None:
            transport = websocket_module.chats_transport(config.url, user_module.session_token)
        else:
            transport = websocket_module.chats_transport(
                config.url,
                user_module.session_token,
                renew_session_token=user_module.fresh_session_token,
            )
        return Chats(
            user_module,
            transport,
            config,
            clock=clock,
            new_message_id=new_message_id,
            action_log=action_log,
            state_file=state_file,
        )
    except BaseException:
        if state_file is not None:
            state_file.close()  # so that a new attempt finds the file free
        raise


def open_state_file(config: ChatsConfig, user: User) -> StateFile:
    """The state file of ``config`` for ``user``, keeping the messages a chat keeps in
    memory (``max_messages_in_memory``, or ``DEFAULT_KEPT_MESSAGES``)."""
    assert config.state_file is not None
    return StateFile.open(
        config.state_file,
        user.user_id,
        kept_messages=config.max_messages_in_memory or DEFAULT_KEPT_MESSAGES,
    )
