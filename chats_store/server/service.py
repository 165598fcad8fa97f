"""The reference server's core: every chat rule, over domain values (no sockets, no frames).

:class:`ChatService` takes a domain request of a :class:`Session` and returns an
:class:`Answer`: the ``reply`` (a :data:`~chats_store.chats.commands.ChatReply`, or
a :class:`~chats_store.chats.actions.Failure` of kind ``refused`` with an
:class:`~chats_store.errors.ErrorCode` and a message saying which rule was broken)
and the ``pushes`` the request caused, each a domain event with its recipients,
in ``seq`` order. Whoever runs the core (the asyncio server of
:mod:`chats_store.server.app`, the test doubles of :mod:`chats_store.testing`)
hands the reply over first, then each push, encoding each event once if it
encodes at all. So, as long as a connection's frames are written in the order
they were handed over, a join reply reaches its connection before any event of
that chat, and every member sees a chat's events in ``seq`` order. The core runs
one request at a time, to completion, in one storage transaction: requests never
interleave, and a refused (or failed) request changes nothing.

Every change a member can observe (message posted, edited or deleted; member
joined or left; a member's restrictions or metadata) takes the chat's next
``seq`` and is stored, with the event itself in the event log, before it is
pushed. Only sessions that have joined (or resumed) the chat receive pushes; a
membership lasts until leave, kick or block, not until a disconnect.

A join reply carries a **membership credential** (a JWT, audience
``chats_store:membership``); a resume request gives it back with the last ``seq``
the client applied and gets every event it missed from the log (or a snapshot if
it missed more than ``max_resume_events`` or the log no longer goes back that
far), without a new chat token and without counting a new member.

Time comes from the injected ``clock`` (epoch seconds); moderation durations are
minutes of ``seconds_per_minute`` seconds (60, or less in tests); expiry timers
are armed with the injected ``schedule`` (``loop.call_later`` in the server), and
the pushes of an expiry go to the injected ``publish``. The storage is any
:class:`~chats_store.server.storage.ChatStorage`. Nothing here imports asyncio,
so the core and its storage can run on a thread of their own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import attrs

from chats_store.chats.actions import (
    ChatSnapshot,
    Failure,
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
    ChatReply,
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
from chats_store.chats.model import Message, Restriction, RestrictionKind
from chats_store.chats.validation import MAX_CONTENT_LENGTH, MAX_HISTORY_PAGE
from chats_store.errors import ErrorCode
from chats_store.server.refusal import RefusedError
from chats_store.server.storage import ChatStorage, LoggedEvent, Membership
from chats_store.server.tokens import (
    MEMBERSHIP_TTL,
    ChatGrant,
    mint_membership_token,
    verify_chat_token,
    verify_membership_token,
)

__all__ = [
    "MAX_DURATION_MINUTES",
    "MAX_ID_LENGTH",
    "MAX_REASON_LENGTH",
    "MAX_RESUME_EVENTS",
    "SNAPSHOT_MESSAGES",
    "Answer",
    "ChatService",
    "Publish",
    "Push",
    "Scheduler",
    "Session",
    "Timer",
]

logger = logging.getLogger("chats_store.server")

SNAPSHOT_MESSAGES = 100
"""How many of the latest messages a join reply carries (default)."""

MAX_RESUME_EVENTS = 1000
"""A resume reply carries at most this many events; further behind, it is a snapshot."""

MAX_ID_LENGTH = 128
MAX_REASON_LENGTH = 256
MAX_DURATION_MINUTES = 100 * 365 * 24 * 60
_NO_LIMIT_SEQ = 2**62

SEND = "send"
MODERATE = "moderate"


class Timer(Protocol):
    def cancel(self) -> None: ...


Scheduler = Callable[[float, Callable[[], None]], Timer]
"""``schedule(delay, callback)``: call ``callback`` in ``delay`` seconds; cancellable."""


class Session:
    """One client connection as the core sees it: its user, the chats it receives.

    Whoever runs the core makes one per connection and keeps what it needs to reach
    that connection (its outbox) next to it; :meth:`ChatService.disconnect` ends it.
    """

    __slots__ = ("chats", "user_id")

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.chats: set[str] = set()

    def __repr__(self) -> str:
        return f"Session({self.user_id!r}, chats={sorted(self.chats)!r})"


@attrs.frozen
class Push:
    """``event`` for each of ``recipients``.

    ``seq`` is the wire seq of a :class:`~chats_store.chats.actions.RemovedFromChat`
    (which has none in the domain): the seq of the membership change that removed
    the member. None for every other event, which carries its own.
    """

    event: ServerEvent
    recipients: tuple[Session, ...]
    seq: int | None = None


@attrs.frozen
class Answer:
    """What a request produced: its reply (or refusal), then its pushes in ``seq`` order."""

    reply: ChatReply | Failure
    pushes: tuple[Push, ...] = ()


Publish = Callable[[tuple[Push, ...]], None]
"""Where the pushes the core makes on its own (restriction expiry) go."""

_HANDLERS: Final[Mapping[type[Any], str]] = {
    JoinRequest: "_join",
    LeaveRequest: "_leave",
    PostMessageRequest: "_post",
    EditMessageRequest: "_edit",
    DeleteMessageRequest: "_delete",
    ModerationRequest: "_moderate",
    HistoryRequest: "_history",
    ResumeRequest: "_resume",
}
"""The method of :class:`ChatService` that answers each kind of request (looked up by
name on each call, so a handler can be replaced on the class, as a test does)."""

_INTERNAL_ERROR = Failure(
    "refused", ErrorCode.INTERNAL_ERROR, "the server failed to handle the request"
)


def _check_id(value: str, what: str) -> None:
    if not value or len(value) > MAX_ID_LENGTH:
        raise RefusedError(
            ErrorCode.INVALID_REQUEST,
            f"{what} must be 1 to {MAX_ID_LENGTH} characters long, not {len(value)}",
        )


def _check_content(content: str) -> None:
    if not content.strip():
        raise RefusedError(
            ErrorCode.CONTENT_EMPTY, "the message content is empty - write something"
        )
    if len(content) > MAX_CONTENT_LENGTH:
        raise RefusedError(
            ErrorCode.CONTENT_TOO_LONG,
            f"the message content is {len(content)} characters long; the maximum is "
            f"{MAX_CONTENT_LENGTH}",
        )


def _describe_until(restriction: Restriction) -> str:
    if restriction.until is None:
        return "permanently"
    until = datetime.fromtimestamp(restriction.until, UTC)
    return f"until {until.isoformat(sep=' ', timespec='seconds')} UTC"


class ChatService:
    """The chat rules over a :class:`~chats_store.server.storage.ChatStorage`.

    ``secret`` verifies chat tokens and signs membership credentials;
    ``snapshot_messages``: how many of the latest messages a snapshot carries.
    """

    def __init__(
        self,
        storage: ChatStorage,
        secret: bytes,
        *,
        clock: Callable[[], float],
        schedule: Scheduler,
        publish: Publish,
        seconds_per_minute: float = 60.0,
        membership_ttl: float = MEMBERSHIP_TTL,
        max_resume_events: int = MAX_RESUME_EVENTS,
        snapshot_messages: int = SNAPSHOT_MESSAGES,
    ) -> None:
        if isinstance(membership_ttl, bool) or not membership_ttl > 0:
            raise ValueError(f"membership_ttl must be a positive number, not {membership_ttl!r}")
        if isinstance(max_resume_events, bool) or max_resume_events < 0:
            raise ValueError(f"max_resume_events must be 0 or more, not {max_resume_events!r}")
        if isinstance(snapshot_messages, bool) or snapshot_messages < 0:
            raise ValueError(f"snapshot_messages must be 0 or more, not {snapshot_messages!r}")
        self._db = storage
        self._secret = secret
        self._clock = clock
        self._schedule = schedule
        self._publish = publish
        self._minute = seconds_per_minute
        self._membership_ttl = membership_ttl
        self._max_resume_events = max_resume_events
        self._snapshot_messages = snapshot_messages
        self._subscribers: dict[str, dict[Session, None]] = {}
        self._timers: dict[tuple[str, str, RestrictionKind], Timer] = {}

    # Lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Arm the expiry timers of the restrictions stored by a previous run."""
        for timed in self._db.timed_restrictions():
            self._arm(timed.chat_id, timed.user_id, timed.kind, timed.until)

    def close(self) -> None:
        """Cancel every timer (the storage is closed by its owner)."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def disconnect(self, session: Session) -> None:
        """Stop pushing to ``session``; its memberships stay."""
        for chat_id in tuple(session.chats):
            self._unsubscribe(session, chat_id)

    # Requests -------------------------------------------------------------------

    def handle(self, session: Session, request: ChatRequest) -> Answer:
        """Apply ``request`` of ``session``, in one transaction; never raises.

        A broken rule is a refusal with its code; anything else that goes wrong is
        logged and answered ``internal_error``. Either way nothing was changed.
        """
        try:
            handler: Callable[[Session, Any], Answer] = getattr(self, _HANDLERS[type(request)])
            with self._db.transaction():
                return handler(session, request)
        except RefusedError as refusal:
            return Answer(refusal.failure)
        except Exception:
            logger.exception("a request of user %r failed: %r", session.user_id, request)
            return Answer(_INTERNAL_ERROR)

    def snapshot(self, chat_id: str, user_id: str) -> ChatSnapshot | None:
        """The chat as a join by ``user_id`` would return it now; None for a non-member."""
        membership = self._db.membership(chat_id, user_id)
        if membership is None:
            return None
        return self._snapshot(membership, self._credential(membership))

    # Subscriptions --------------------------------------------------------------

    def _subscribe(self, session: Session, chat_id: str) -> None:
        self._subscribers.setdefault(chat_id, {})[session] = None
        session.chats.add(chat_id)

    def _unsubscribe(self, session: Session, chat_id: str) -> None:
        session.chats.discard(chat_id)
        subscribers = self._subscribers.get(chat_id)
        if subscribers is not None:
            subscribers.pop(session, None)
            if not subscribers:
                del self._subscribers[chat_id]

    def _members_online(self, chat_id: str, but: Session | None = None) -> tuple[Session, ...]:
        return tuple(s for s in self._subscribers.get(chat_id, ()) if s is not but)

    def _sessions_of(self, chat_id: str, user_id: str) -> tuple[Session, ...]:
        return tuple(s for s in self._subscribers.get(chat_id, ()) if s.user_id == user_id)

    def _membership(self, session: Session, chat_id: str) -> Membership:
        """The session's membership of a chat it joined; ``chat_not_joined`` otherwise."""
        _check_id(chat_id, "chat_id")
        membership = (
            self._db.membership(chat_id, session.user_id) if chat_id in session.chats else None
        )
        if membership is None:
            raise RefusedError(
                ErrorCode.CHAT_NOT_JOINED,
                f"this connection has not joined chat {chat_id!r} - send a join request first",
            )
        return membership

    def _active(self, chat_id: str, user_id: str) -> tuple[Restriction, ...]:
        now = self._clock()
        return tuple(r for r in self._db.restrictions(chat_id, user_id) if r.is_active(now))

    def _active_kind(self, chat_id: str, user_id: str, kind: str) -> Restriction | None:
        return next((r for r in self._active(chat_id, user_id) if r.kind == kind), None)

    def _check_not_blocked(self, chat_id: str, user_id: str) -> None:
        block = self._active_kind(chat_id, user_id, "block")
        if block is not None:
            raise RefusedError(
                ErrorCode.MEMBER_BLOCKED,
                f"you are blocked from chat {chat_id!r} {_describe_until(block)}",
            )

    def _log(self, event: LoggedEvent, *, target: str | None = None) -> LoggedEvent:
        """Store ``event`` in the event log; the event, to push.

        ``target``: the only user who may read it back (private ``own_*`` events).
        """
        self._db.append_event(event, target=target)
        return event

    def _credential(self, membership: Membership) -> str:
        return mint_membership_token(
            self._secret,
            membership.user_id,
            membership.chat_id,
            sorted(membership.permissions),
            membership.metadata,
            self._membership_ttl,
            now=self._clock(),
        )

    def _snapshot(self, membership: Membership, credential: str) -> ChatSnapshot:
        chat_id = membership.chat_id
        return ChatSnapshot(
            messages=self._db.messages_before(chat_id, _NO_LIMIT_SEQ, self._snapshot_messages),
            members_amount=self._db.members_amount(chat_id),
            member_metadata=membership.metadata,
            restrictions=self._active(chat_id, membership.user_id),
            last_seq=self._db.last_seq(chat_id),
            membership=credential,
            server_time=self._clock(),
        )

    # Join, resume and leave -------------------------------------------------------

    def _join(self, session: Session, request: JoinRequest) -> Answer:
        chat_id = request.chat_id
        _check_id(chat_id, "chat_id")
        grant = verify_chat_token(self._secret, request.token, self._clock)
        if grant.user_id != session.user_id:
            raise RefusedError(
                ErrorCode.INVALID_TOKEN,
                f"the chat token was issued for user {grant.user_id!r}, but this connection "
                f"is user {session.user_id!r}",
            )
        if grant.chat_id != chat_id:
            raise RefusedError(
                ErrorCode.INVALID_TOKEN,
                f"the chat token is for chat {grant.chat_id!r}, not {chat_id!r}",
            )
        self._check_not_blocked(chat_id, session.user_id)
        pushes: list[Push] = []
        membership = Membership(chat_id, session.user_id, grant.permissions, dict(grant.metadata))
        previous = self._db.membership(chat_id, session.user_id)
        self._db.save_membership(membership, self._clock())
        if previous is None:
            seq = self._db.next_seq(chat_id)
            amount = self._db.members_amount(chat_id)
            event = self._log(MembersAmountChanged(chat_id, seq, amount))
            pushes.append(Push(event, self._members_online(chat_id, but=session)))
        elif previous.metadata != membership.metadata:
            # Logged even with no other connection online: one that resumes later
            # learns of it then.
            others = tuple(
                s for s in self._sessions_of(chat_id, session.user_id) if s is not session
            )
            seq = self._db.next_seq(chat_id)
            metadata_event = OwnMetadataChanged(chat_id, seq, membership.metadata)
            pushes.append(Push(self._log(metadata_event, target=session.user_id), others))
        snapshot = self._snapshot(membership, self._credential(membership))
        self._subscribe(session, chat_id)
        return Answer(snapshot, tuple(pushes))

    def _verified_membership(self, session: Session, request: ResumeRequest) -> ChatGrant:
        grant = verify_membership_token(self._secret, request.membership, self._clock)
        if grant.user_id != session.user_id:
            raise RefusedError(
                ErrorCode.INVALID_TOKEN,
                f"the membership credential was issued to user {grant.user_id!r}, but this "
                f"connection is user {session.user_id!r}",
            )
        if grant.chat_id != request.chat_id:
            raise RefusedError(
                ErrorCode.INVALID_TOKEN,
                f"the membership credential is for chat {grant.chat_id!r}, not {request.chat_id!r}",
            )
        return grant

    def _resume(self, session: Session, request: ResumeRequest) -> Answer:
        chat_id, since_seq = request.chat_id, request.since_seq
        _check_id(chat_id, "chat_id")
        if since_seq < 0:
            raise RefusedError(ErrorCode.INVALID_REQUEST, "since_seq must be 0 or more")
        self._verified_membership(session, request)
        self._check_not_blocked(chat_id, session.user_id)
        # The stored membership, not the credential, says what the member may do now
        # (a later join may have changed it).
        membership = self._db.membership(chat_id, session.user_id)
        if membership is None:
            raise RefusedError(
                ErrorCode.NOT_A_MEMBER,
                f"you are no longer a member of chat {chat_id!r} (you left or were "
                "removed) - join it again with a chat token",
            )
        credential = self._credential(membership)
        last_seq = self._db.last_seq(chat_id)
        # since_seq > last_seq: the client is ahead of the server (a database restored
        # from a backup); it starts over from a snapshot.
        missed = None
        if since_seq <= last_seq:
            missed = self._db.events_for(
                chat_id, session.user_id, since_seq, self._max_resume_events
            )
        resumption = Resumption(
            events=() if missed is None else missed,
            snapshot=self._snapshot(membership, credential) if missed is None else None,
            members_amount=self._db.members_amount(chat_id),
            member_metadata=membership.metadata,
            restrictions=self._active(chat_id, session.user_id),
            last_seq=last_seq,
            membership=credential,
            server_time=self._clock(),
        )
        self._subscribe(session, chat_id)
        return Answer(resumption)

    def _remove_member(
        self, chat_id: str, user_id: str, removed: RemovedFromChat | None
    ) -> list[Push]:
        """End a membership: the others learn the new members amount."""
        self._db.delete_membership(chat_id, user_id)
        seq = self._db.next_seq(chat_id)
        amount = self._db.members_amount(chat_id)
        pushes: list[Push] = []
        targets = self._sessions_of(chat_id, user_id)
        for target in targets:
            self._unsubscribe(target, chat_id)
        if removed is not None and targets:
            pushes.append(Push(removed, targets, seq=seq))
        event = self._log(MembersAmountChanged(chat_id, seq, amount))
        pushes.append(Push(event, self._members_online(chat_id)))
        return pushes

    def _leave(self, session: Session, request: LeaveRequest) -> Answer:
        self._membership(session, request.chat_id)
        return Answer(None, tuple(self._remove_member(request.chat_id, session.user_id, None)))

    # Messages -------------------------------------------------------------------

    def _post(self, session: Session, request: PostMessageRequest) -> Answer:
        chat_id, message_id = request.chat_id, request.message_id
        membership = self._membership(session, chat_id)
        _check_id(message_id, "message_id")
        stored = self._db.message(chat_id, message_id)
        if stored is not None:
            if stored.message.author_id != session.user_id:
                raise RefusedError(
                    ErrorCode.INVALID_REQUEST,
                    f"message id {message_id!r} is taken by another member's message - "
                    "generate a new id for each message",
                )
            if stored.deleted:
                raise RefusedError(
                    ErrorCode.MESSAGE_NOT_FOUND, f"message {message_id!r} was posted and deleted"
                )
            return Answer(stored.message)  # a repeated post: the original, no new event
        if SEND not in membership.permissions:
            raise RefusedError(
                ErrorCode.PERMISSION_DENIED,
                f"your chat token does not grant the 'send' permission in chat {chat_id!r}",
            )
        self._check_not_muted(chat_id, session.user_id)
        _check_content(request.content)
        seq = self._db.next_seq(chat_id)
        message = Message(
            id=message_id,
            chat_id=chat_id,
            author_id=session.user_id,
            content=request.content,
            status="ready",
            seq=seq,
            created_at=self._clock(),
        )
        self._db.insert_message(message)
        event = self._log(MessagePosted(chat_id, seq, message))
        return Answer(message, (Push(event, self._members_online(chat_id)),))

    def _check_not_muted(self, chat_id: str, user_id: str) -> None:
        mute = self._active_kind(chat_id, user_id, "mute")
        if mute is not None:
            raise RefusedError(
                ErrorCode.MEMBER_MUTED,
                f"you are muted in chat {chat_id!r} {_describe_until(mute)}",
            )

    def _live_message(self, chat_id: str, message_id: str) -> Message:
        _check_id(message_id, "message_id")
        stored = self._db.message(chat_id, message_id)
        if stored is None or stored.deleted:
            raise RefusedError(
                ErrorCode.MESSAGE_NOT_FOUND,
                f"there is no message {message_id!r} in chat {chat_id!r}",
            )
        return stored.message

    def _edit(self, session: Session, request: EditMessageRequest) -> Answer:
        chat_id = request.chat_id
        self._membership(session, chat_id)
        message = self._live_message(chat_id, request.message_id)
        if message.author_id != session.user_id:
            raise RefusedError(
                ErrorCode.PERMISSION_DENIED,
                f"only the author of a message can edit it; this one is by {message.author_id!r}",
            )
        self._check_not_muted(chat_id, session.user_id)
        _check_content(request.content)
        edited_at = self._clock()
        edited = attrs.evolve(message, content=request.content, edited_at=edited_at)
        seq = self._db.next_seq(chat_id)
        self._db.edit_message(chat_id, message.id, edited.content, edited_at)
        event = self._log(MessageEdited(chat_id, seq, edited))
        return Answer(edited, (Push(event, self._members_online(chat_id)),))

    def _delete(self, session: Session, request: DeleteMessageRequest) -> Answer:
        chat_id = request.chat_id
        membership = self._membership(session, chat_id)
        message = self._live_message(chat_id, request.message_id)
        if message.author_id != session.user_id and MODERATE not in membership.permissions:
            raise RefusedError(
                ErrorCode.PERMISSION_DENIED,
                "only the author of a message or a member with the 'moderate' permission "
                "can delete it",
            )
        seq = self._db.next_seq(chat_id)
        self._db.delete_message(chat_id, message.id)
        self._db.erase_message_events(chat_id, message.id)
        event = self._log(MessageRemoved(chat_id, seq, message.id))
        return Answer(None, (Push(event, self._members_online(chat_id)),))

    def _history(self, session: Session, request: HistoryRequest) -> Answer:
        self._membership(session, request.chat_id)
        if not 1 <= request.limit <= MAX_HISTORY_PAGE:
            raise RefusedError(
                ErrorCode.INVALID_LIMIT,
                f"the limit must be a whole number from 1 to {MAX_HISTORY_PAGE}, "
                f"not {request.limit}",
            )
        if request.before_seq < 0:
            raise RefusedError(ErrorCode.INVALID_REQUEST, "before_seq must be 0 or more")
        before_seq = min(request.before_seq, _NO_LIMIT_SEQ)  # SQLite integers are 64-bit
        return Answer(self._db.messages_before(request.chat_id, before_seq, request.limit))

    # Moderation -----------------------------------------------------------------

    def _moderate(self, session: Session, request: ModerationRequest) -> Answer:
        chat_id, target = request.chat_id, request.member_id
        membership = self._membership(session, chat_id)
        if MODERATE not in membership.permissions:
            raise RefusedError(
                ErrorCode.PERMISSION_DENIED,
                f"your chat token does not grant the 'moderate' permission in chat {chat_id!r}",
            )
        _check_id(target, "member_id")
        if target == session.user_id:
            raise RefusedError(
                ErrorCode.MODERATION_TARGET_IS_SELF,
                "you cannot moderate yourself - give the id of another member",
            )
        reason = request.reason
        if reason is not None and len(reason) > MAX_REASON_LENGTH:
            raise RefusedError(
                ErrorCode.INVALID_REQUEST,
                f"the reason is longer than {MAX_REASON_LENGTH} characters",
            )
        measure = request.measure
        is_member = self._db.membership(chat_id, target) is not None
        if measure in ("mute", "kick") and not is_member:
            raise RefusedError(
                ErrorCode.MEMBER_NOT_FOUND, f"{target!r} is not a member of chat {chat_id!r}"
            )
        if measure == "kick":
            removed = RemovedFromChat(chat_id, "kicked", reason)
            return Answer(None, tuple(self._remove_member(chat_id, target, removed)))
        if measure in ("mute", "block"):
            kind: RestrictionKind = "mute" if measure == "mute" else "block"
            duration = 0 if request.duration is None else request.duration
            if not 0 <= duration <= MAX_DURATION_MINUTES:
                raise RefusedError(
                    ErrorCode.INVALID_DURATION,
                    f"the duration must be a whole number of minutes from 0 (permanent) to "
                    f"{MAX_DURATION_MINUTES}, not {duration}",
                )
            until = None if duration == 0 else self._clock() + duration * self._minute
            return Answer(None, tuple(self._restrict(chat_id, target, kind, until, reason)))
        kind = "mute" if measure == "unmute" else "block"
        return Answer(None, tuple(self._lift(chat_id, target, kind)))

    def _restrictions_changed(self, chat_id: str, user_id: str) -> list[Push]:
        """Tell a member about its new restrictions, if it is one."""
        if self._db.membership(chat_id, user_id) is None:
            return []
        seq = self._db.next_seq(chat_id)
        event = OwnRestrictionsChanged(chat_id, seq, self._active(chat_id, user_id))
        return [Push(self._log(event, target=user_id), self._sessions_of(chat_id, user_id))]

    def _restrict(
        self,
        chat_id: str,
        user_id: str,
        kind: RestrictionKind,
        until: float | None,
        reason: str | None,
    ) -> list[Push]:
        self._db.save_restriction(chat_id, user_id, Restriction(kind, until, reason))
        pushes = self._restrictions_changed(chat_id, user_id)
        if kind == "block" and self._db.membership(chat_id, user_id) is not None:
            removed = RemovedFromChat(chat_id, "blocked", reason)
            pushes += self._remove_member(chat_id, user_id, removed)
        if until is None:
            self._disarm(chat_id, user_id, kind)
        else:
            self._arm(chat_id, user_id, kind, until)
        return pushes

    def _lift(self, chat_id: str, user_id: str, kind: RestrictionKind) -> list[Push]:
        self._disarm(chat_id, user_id, kind)
        if not self._db.delete_restriction(chat_id, user_id, kind):
            return []
        return self._restrictions_changed(chat_id, user_id)

    # Expiry -----------------------------------------------------------------------

    def _arm(self, chat_id: str, user_id: str, kind: RestrictionKind, until: float) -> None:
        self._disarm(chat_id, user_id, kind)
        delay = max(0.0, until - self._clock())
        self._timers[(chat_id, user_id, kind)] = self._schedule(
            delay, lambda: self._expire(chat_id, user_id, kind, until)
        )

    def _disarm(self, chat_id: str, user_id: str, kind: RestrictionKind) -> None:
        timer = self._timers.pop((chat_id, user_id, kind), None)
        if timer is not None:
            timer.cancel()

    def _expire(self, chat_id: str, user_id: str, kind: RestrictionKind, until: float) -> None:
        """A timer fired: lift the restriction if it is still the one armed, and publish."""
        self._timers.pop((chat_id, user_id, kind), None)
        try:
            with self._db.transaction():
                stored = next(
                    (r for r in self._db.restrictions(chat_id, user_id) if r.kind == kind), None
                )
                if stored is None or stored.until != until:
                    return
                if stored.is_active(self._clock()):  # the timer ran early: wait for the clock
                    self._arm(chat_id, user_id, kind, until)
                    return
                pushes = self._lift(chat_id, user_id, kind)
        except Exception:
            logger.exception("the expiry of a %s of %r in %r failed", kind, user_id, chat_id)
            return
        self._publish(tuple(pushes))
