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
:meth:`ChatService.handle_all` runs requests that arrived together in one outer
transaction, each in its own nested one (a **group commit**: one durable commit
for all of them); their answers come back once that commit is done, so an
acknowledged request is on stable storage and no push tells of a change that a
power loss could undo.

Every change a member can observe (message posted, edited or deleted; member
joined or left; a member's restrictions or metadata) takes the chat's next
``seq`` and is stored, with the event itself in the event log, before it is
pushed. Only sessions that have joined (or resumed) the chat receive pushes; a
membership lasts until leave, kick or block, not until a disconnect.

A join reply carries a **membership credential** (a JWT, audience
``chats_store:membership``); a resume request gives it back with the last ``seq``
the client applied and gets every event it missed from the log (or a snapshot if
it missed more than ``max_resume_events`` or the log no longer goes back that
far), without a new chat token and without counting a new member. A renew request
gives a connection that stays open a fresh credential before its own expires. The
missed events travel as the frames the storage keeps (:attr:`Answer.event_frames`),
never decoded on the way. Snapshots and resumptions carry the storage's
**epoch**, the identity of its history: a resume that gives another epoch, or a
``since_seq`` past the chat's ``last_seq``, gets a snapshot (the client's history
is not this one).

A chat's **members amount** is pushed at once while few members are online
(fewer than :data:`MEMBERS_AMOUNT_COALESCED_FROM`); past that, at most once per
``members_amount_interval`` seconds, so that a chat filling up does not cost a push
to every member for every join: a push opens an interval, the changes within it
are logged with their seqs (a resume reads them) but pushed once, when it ends, as
one ``members_amount_changed`` with the final amount (with the seq of the last one
logged if nothing happened in the chat since, or else a new seq, so that no member
ever sees a seq go back).

Time comes from the injected ``clock`` (epoch seconds); moderation durations are
minutes of ``seconds_per_minute`` seconds (60, or less in tests); expiry timers
are armed with the injected ``schedule`` (``loop.call_later`` in the server), and
the pushes of an expiry go to the injected ``publish``. The storage is any
:class:`~chats_store.server.storage.ChatStorage`. Nothing here imports asyncio,
so the core and its storage can run on a thread of their own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import attrs
import msgspec

from chats_store.chats.actions import (
    ChatSnapshot,
    Failure,
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
    RenewRequest,
    ResumeRequest,
)
from chats_store.chats.model import Message, Restriction, RestrictionKind
from chats_store.chats.validation import MAX_HISTORY_PAGE
from chats_store.content import MAX_ID_LENGTH, content_failure, id_failure
from chats_store.errors import ErrorCode
from chats_store.protocol import MAX_SERVER_FRAME_SIZE, decode_event
from chats_store.protocol.server import message_size_bound
from chats_store.server.refusal import RefusedError
from chats_store.server.storage import (
    ChatStorage,
    LoggedEvent,
    Member,
    Membership,
    StorageBusyError,
    StoredMessage,
)
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
    "MAX_PAGE_BYTES",
    "MAX_REASON_LENGTH",
    "MAX_RESTRICTIONS_PER_CHAT",
    "MAX_RESUME_BYTES",
    "MAX_RESUME_EVENTS",
    "MEMBERS_AMOUNT_COALESCED_FROM",
    "MEMBERS_AMOUNT_INTERVAL",
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

MEMBERS_AMOUNT_INTERVAL = 1.0
"""Seconds between two pushes of a chat's members amount, at least (default)."""

MEMBERS_AMOUNT_COALESCED_FROM = 10
"""A members amount pushed to this many members or more opens a coalescing interval."""

MAX_RESUME_BYTES = MAX_SERVER_FRAME_SIZE // 2
"""A resume reply carries events of at most this many bytes (their frames' text, as
the log holds them); more, and it is a snapshot. Half the frame maximum: the rest of
the resumption (metadata, restrictions, the credential) fits in the other half."""

MAX_PAGE_BYTES = MAX_SERVER_FRAME_SIZE // 2
"""The messages of a snapshot or a history page take at most this many bytes (by
:func:`~chats_store.protocol.server.message_size_bound`): the oldest are left out past
it. Ids of at most 128 characters and content of at most 256 never reach it (200
messages of astral characters only are under 1.6 MB); longer ids of older data might."""

MAX_RESTRICTIONS_PER_CHAT = 10_000
"""Mutes and blocks a chat may hold at once (default)."""

EXPIRY_BATCH = 500
"""Expired restrictions lifted in one transaction; the rest right after."""

EXPIRY_RETRY = 1.0
"""Seconds before lifting expired restrictions is tried again after it failed."""

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
    frame: str | None = attrs.field(default=None, eq=False, repr=False)
    """The event's frame as the event log keeps it, when it was logged: an adapter that
    writes frames sends this text, encoded once."""


@attrs.frozen
class Answer:
    """What a request produced: its reply (or refusal), then its pushes in ``seq`` order.

    ``result`` is the reply as the core built it. A resumption's missed events are
    not in it: they are ``event_frames``, the ``event`` frames the storage keeps
    (``encode_event``'s text), oldest first, so that an adapter that writes frames
    sends them as they are (``encode_reply(..., event_frames=...)``); :attr:`reply`
    is the reply with them decoded, for an adapter that hands domain values over.
    """

    result: ChatReply | Failure
    pushes: tuple[Push, ...] = ()
    event_frames: tuple[str, ...] = ()

    @property
    def reply(self) -> ChatReply | Failure:
        """The reply as domain values: a resumption with its missed events decoded."""
        if not self.event_frames:
            return self.result
        assert isinstance(self.result, Resumption), self.result
        events = tuple(decode_event(frame) for frame in self.event_frames)
        return attrs.evolve(self.result, events=events)


@attrs.define
class _AmountWindow:
    """A members amount pushed less than an interval ago: later changes wait for its end."""

    timer: Timer
    pending_seq: int | None = None
    """The seq of the last change logged since the push, if any."""


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
    RenewRequest: "_renew",
}
"""The method of :class:`ChatService` that answers each kind of request (looked up by
name on each call, so a handler can be replaced on the class, as a test does)."""

_INTERNAL_ERROR = Failure(
    "refused", ErrorCode.INTERNAL_ERROR, "the server failed to handle the request"
)


def _busy(error: StorageBusyError) -> Failure:
    return Failure(
        "refused",
        ErrorCode.SERVER_BUSY,
        f"the server's storage is busy ({error}); the request was not applied - retry later",
    )


def _refuse(failure: Failure | None) -> None:
    """Raise the refusal of a rule of :mod:`chats_store.content`, if it failed."""
    if failure is not None:
        raise RefusedError(ErrorCode(failure.code), failure.detail)


def _check_id(value: str, what: str) -> None:
    _refuse(id_failure(value, what))


def _check_content(content: str) -> None:
    _refuse(content_failure(content))


def _fitting(messages: tuple[Message, ...]) -> tuple[Message, ...]:
    """The newest of ``messages`` (oldest first) that fit in :data:`MAX_PAGE_BYTES`."""
    budget = MAX_PAGE_BYTES
    for index in range(len(messages) - 1, -1, -1):
        budget -= message_size_bound(messages[index])
        if budget < 0:
            return messages[index + 1 :]
    return messages


def _describe_until(restriction: Restriction) -> str:
    if restriction.until is None:
        return "permanently"
    until = datetime.fromtimestamp(restriction.until, UTC)
    return f"until {until.isoformat(sep=' ', timespec='seconds')} UTC"


class ChatService:
    """The chat rules over a :class:`~chats_store.server.storage.ChatStorage`.

    ``secret`` verifies chat tokens and signs membership credentials;
    ``max_resume_events`` and ``max_resume_bytes``: past either, a resume gets a
    snapshot instead of the events it missed;
    ``snapshot_messages``: how many of the latest messages a snapshot carries;
    ``max_restrictions_per_chat``: how many mutes and blocks a chat may hold (a new
    one past it is refused ``too_many_restrictions``; replacing one is not new).
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
        max_resume_bytes: int = MAX_RESUME_BYTES,
        snapshot_messages: int = SNAPSHOT_MESSAGES,
        members_amount_interval: float = MEMBERS_AMOUNT_INTERVAL,
        max_restrictions_per_chat: int = MAX_RESTRICTIONS_PER_CHAT,
    ) -> None:
        if isinstance(membership_ttl, bool) or not membership_ttl > 0:
            raise ValueError(f"membership_ttl must be a positive number, not {membership_ttl!r}")
        if isinstance(max_resume_events, bool) or max_resume_events < 0:
            raise ValueError(f"max_resume_events must be 0 or more, not {max_resume_events!r}")
        if isinstance(max_resume_bytes, bool) or max_resume_bytes < 0:
            raise ValueError(f"max_resume_bytes must be 0 or more, not {max_resume_bytes!r}")
        if isinstance(snapshot_messages, bool) or snapshot_messages < 0:
            raise ValueError(f"snapshot_messages must be 0 or more, not {snapshot_messages!r}")
        if isinstance(members_amount_interval, bool) or not members_amount_interval >= 0:
            raise ValueError(
                "members_amount_interval must be 0 or more seconds, not "
                f"{members_amount_interval!r}"
            )
        if isinstance(max_restrictions_per_chat, bool) or max_restrictions_per_chat < 1:
            raise ValueError(
                f"max_restrictions_per_chat must be 1 or more, not {max_restrictions_per_chat!r}"
            )
        self._db = storage
        self._secret = secret
        self._clock = clock
        self._schedule = schedule
        self._publish = publish
        self._minute = seconds_per_minute
        self._membership_ttl = membership_ttl
        self._max_resume_events = max_resume_events
        self._max_resume_bytes = max_resume_bytes
        self._snapshot_messages = snapshot_messages
        self._amount_interval = members_amount_interval
        self._subscribers: dict[str, dict[Session, None]] = {}
        self._amount_windows: dict[str, _AmountWindow] = {}
        self._max_restrictions = max_restrictions_per_chat
        self._expiry: tuple[float, Timer] | None = None
        """The one expiry timer, and the time it is armed for (see _arm_expiry)."""

    # Lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Arm the expiry timer for the earliest restriction stored by a previous run."""
        self._arm_expiry(self._db.next_expiry())

    def close(self) -> None:
        """Cancel every timer (the storage is closed by its owner)."""
        if self._expiry is not None:
            self._expiry[1].cancel()
            self._expiry = None
        for window in self._amount_windows.values():
            window.timer.cancel()
        self._amount_windows.clear()

    def disconnect(self, session: Session) -> None:
        """Stop pushing to ``session``; its memberships stay."""
        for chat_id in tuple(session.chats):
            self._unsubscribe(session, chat_id)

    # Requests -------------------------------------------------------------------

    def handle(self, session: Session, request: ChatRequest) -> Answer:
        """Apply ``request`` of ``session``, in one transaction; never raises.

        A broken rule is a refusal with its code; a storage locked by another
        process past its bound is ``server_busy``; anything else that goes wrong is
        logged and answered ``internal_error``. Either way nothing was changed.
        Alone, the request's transaction is the outermost: when this returns, what
        it changed is durable. Within :meth:`handle_all`, it is committed there.
        """
        try:
            handler: Callable[[Session, Any], Answer] = getattr(self, _HANDLERS[type(request)])
            with self._db.transaction():
                return handler(session, request)
        except RefusedError as refusal:
            return Answer(refusal.failure)
        except StorageBusyError as busy:
            return Answer(_busy(busy))
        except Exception:
            logger.exception("a request of user %r failed: %r", session.user_id, request)
            return Answer(_INTERNAL_ERROR)

    def handle_all(self, requests: Sequence[tuple[Session, ChatRequest]]) -> list[Answer]:
        """Apply ``requests`` in order with one commit (group commit); their answers.

        Each request is handled as by :meth:`handle`, in a transaction nested in
        one that holds them all: a refused or failed one changes nothing, the
        others keep what they changed. This returns once the outer transaction is
        committed (durably), so whoever hands the answers over after it only ever
        acknowledges, or pushes, what is on stable storage. If the outer
        transaction cannot start (the storage is busy) or commit, nothing of any
        of them was applied and every one is answered ``server_busy`` or
        ``internal_error``. (What a request changed in memory stays: a session
        it subscribed keeps receiving that chat's events, which its client, told
        the request failed, ignores.)
        """
        try:
            with self._db.transaction():
                self._db.lock_chats({request.chat_id for _, request in requests})
                answers = [self.handle(session, request) for session, request in requests]
        except StorageBusyError as busy:
            return [Answer(_busy(busy))] * len(requests)
        except Exception:
            logger.exception("the commit of %d requests failed", len(requests))
            return [Answer(_INTERNAL_ERROR)] * len(requests)
        return answers

    def snapshot(self, chat_id: str, user_id: str) -> ChatSnapshot | None:
        """The chat as a join by ``user_id`` would return it now; None for a non-member."""
        member = self._db.member(chat_id, user_id)
        if member is None:
            return None
        return self._snapshot(member, self._credential(member.membership))

    # Another process's changes ----------------------------------------------------

    def online(self, chat_id: str) -> tuple[Session, ...]:
        """The sessions that receive the chat's events (they joined or resumed it)."""
        return self._members_online(chat_id)

    def membership_ended(self, chat_id: str, seq: int) -> list[Push]:
        """The memberships of the chat changed elsewhere (another process, at ``seq``):
        tell each session of a user who is no longer a member that it was removed
        (``blocked`` if a block is in force, else ``kicked``), and stop pushing to it.
        """
        pushes: list[Push] = []
        with self._db.transaction():
            for user_id in {session.user_id for session in self._members_online(chat_id)}:
                if self._db.member(chat_id, user_id) is not None:
                    continue
                block = self._active_kind(self._db.restrictions(chat_id, user_id), "block")
                removed = (
                    RemovedFromChat(chat_id, "kicked")
                    if block is None
                    else RemovedFromChat(chat_id, "blocked", block.reason)
                )
                targets = self._sessions_of(chat_id, user_id)
                for target in targets:
                    self._unsubscribe(target, chat_id)
                pushes.append(Push(removed, targets, seq=seq))
        return pushes

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

    def _member(self, session: Session, chat_id: str) -> Member:
        """The session's membership of a chat it joined; ``chat_not_joined`` otherwise."""
        _check_id(chat_id, "chat_id")
        member = self._db.member(chat_id, session.user_id) if chat_id in session.chats else None
        if member is None:
            raise RefusedError(
                ErrorCode.CHAT_NOT_JOINED,
                f"this connection has not joined chat {chat_id!r} - send a join request first",
            )
        return member

    def _restrictions_of(
        self, member: Member | None, chat_id: str, user_id: str
    ) -> tuple[Restriction, ...]:
        """The stored restrictions of ``user_id``: the member's, or read (a non-member
        can be blocked)."""
        return self._db.restrictions(chat_id, user_id) if member is None else member.restrictions

    def _active(self, restrictions: tuple[Restriction, ...]) -> tuple[Restriction, ...]:
        """Those of ``restrictions`` in force now."""
        now = self._clock()
        return tuple(r for r in restrictions if r.is_active(now))

    def _active_kind(
        self, restrictions: tuple[Restriction, ...], kind: RestrictionKind
    ) -> Restriction | None:
        return next((r for r in self._active(restrictions) if r.kind == kind), None)

    def _check_not_blocked(self, chat_id: str, restrictions: tuple[Restriction, ...]) -> None:
        block = self._active_kind(restrictions, "block")
        if block is not None:
            raise RefusedError(
                ErrorCode.MEMBER_BLOCKED,
                f"you are blocked from chat {chat_id!r} {_describe_until(block)}",
            )

    def _logged(
        self, event: LoggedEvent, recipients: tuple[Session, ...], *, target: str | None = None
    ) -> Push:
        """Store ``event`` in the event log; its push to ``recipients``.

        ``target``: the only user who may read it back (private ``own_*`` events).
        """
        return Push(event, recipients, frame=self._db.append_event(event, target=target))

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

    def _snapshot(self, member: Member, credential: str) -> ChatSnapshot:
        membership = member.membership
        chat_id = membership.chat_id
        return ChatSnapshot(
            messages=_fitting(
                self._db.messages_before(chat_id, _NO_LIMIT_SEQ, self._snapshot_messages)
            ),
            members_amount=self._db.members_amount(chat_id),
            member_metadata=membership.metadata,
            restrictions=self._active(member.restrictions),
            last_seq=self._db.last_seq(chat_id),
            membership=credential,
            epoch=self._db.epoch,
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
        stored = self._db.member(chat_id, session.user_id)
        restrictions = self._restrictions_of(stored, chat_id, session.user_id)
        self._check_not_blocked(chat_id, restrictions)
        pushes: list[Push] = []
        previous = None if stored is None else stored.membership
        joined_seq = self._db.next_seq(chat_id) if previous is None else previous.joined_seq
        membership = Membership(
            chat_id, session.user_id, grant.permissions, dict(grant.metadata), joined_seq
        )
        self._db.save_membership(membership, self._clock())
        if previous is None:
            pushes += self._amount_changed(chat_id, joined_seq, but=session)
        elif previous.metadata != membership.metadata:
            # Logged even with no other connection online: one that resumes later
            # learns of it then.
            others = tuple(
                s for s in self._sessions_of(chat_id, session.user_id) if s is not session
            )
            seq = self._db.next_seq(chat_id)
            metadata_event = OwnMetadataChanged(chat_id, seq, membership.metadata)
            pushes.append(self._logged(metadata_event, others, target=session.user_id))
        snapshot = self._snapshot(Member(membership, restrictions), self._credential(membership))
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
        # The stored membership, not the credential, says what the member may do now
        # (a later join may have changed it).
        member = self._db.member(chat_id, session.user_id)
        self._check_not_blocked(chat_id, self._restrictions_of(member, chat_id, session.user_id))
        if member is None:
            raise RefusedError(
                ErrorCode.NOT_A_MEMBER,
                f"you are no longer a member of chat {chat_id!r} (you left or were "
                "removed) - join it again with a chat token",
            )
        membership = member.membership
        credential = self._credential(membership)
        last_seq = self._db.last_seq(chat_id)
        epoch = self._db.epoch
        # Another epoch, or a since_seq past last_seq: what the client holds is not
        # this history (restored from an older copy, replaced); it starts over from a
        # snapshot. since_seq before the member's own join: no client of this
        # membership can have it, and the log from before the join is not the
        # member's to read; a snapshot too.
        missed = None
        if request.epoch in (None, epoch) and membership.joined_seq <= since_seq <= last_seq:
            missed = self._db.missed_frames(
                chat_id,
                session.user_id,
                since_seq,
                self._max_resume_events,
                self._max_resume_bytes,
            )
        resumption = Resumption(
            events=(),
            snapshot=self._snapshot(member, credential) if missed is None else None,
            members_amount=self._db.members_amount(chat_id),
            member_metadata=membership.metadata,
            restrictions=self._active(member.restrictions),
            last_seq=last_seq,
            membership=credential,
            epoch=epoch,
            server_time=self._clock(),
        )
        self._subscribe(session, chat_id)
        return Answer(resumption, event_frames=missed or ())

    def _renew(self, session: Session, request: RenewRequest) -> Answer:
        """A fresh credential for a chat this connection joined or resumed (a connection
        that stays open never resumes, and would outlive the credential otherwise)."""
        member = self._member(session, request.chat_id)
        return Answer(MembershipRenewal(self._credential(member.membership)))

    def _remove_member(
        self, chat_id: str, user_id: str, removed: RemovedFromChat | None
    ) -> list[Push]:
        """End a membership: the others learn the new members amount."""
        self._db.delete_membership(chat_id, user_id)
        seq = self._db.next_seq(chat_id)
        pushes: list[Push] = []
        targets = self._sessions_of(chat_id, user_id)
        for target in targets:
            self._unsubscribe(target, chat_id)
        if removed is not None and targets:
            pushes.append(Push(removed, targets, seq=seq))
        return pushes + self._amount_changed(chat_id, seq)

    # The members amount, coalesced ------------------------------------------------

    def _amount_changed(self, chat_id: str, seq: int, but: Session | None = None) -> list[Push]:
        """Log the chat's new members amount with ``seq``; its push, unless it waits.

        Pushed at once, to the members online ``but`` the one who joined, unless an
        interval is open (then its end pushes the final amount:
        :meth:`_end_amount_window`); a push to many members opens one.
        """
        event = MembersAmountChanged(chat_id, seq, self._db.members_amount(chat_id))
        window = self._amount_windows.get(chat_id)
        if window is not None:
            self._db.append_event(event)
            window.pending_seq = seq
            return []
        recipients = self._members_online(chat_id, but=but)
        if self._amount_interval > 0 and len(recipients) >= MEMBERS_AMOUNT_COALESCED_FROM:
            self._open_amount_window(chat_id)
        return [self._logged(event, recipients)]

    def _open_amount_window(self, chat_id: str, pending_seq: int | None = None) -> None:
        timer = self._schedule(self._amount_interval, lambda: self._end_amount_window(chat_id))
        self._amount_windows[chat_id] = _AmountWindow(timer, pending_seq)

    def _end_amount_window(self, chat_id: str) -> None:
        """An interval since the last push ended: push the final amount if it changed.

        With the seq of the last change if nothing took a seq since (no member has
        seen a later one), else with a new seq (a member may have): either way no
        member ever gets a chat's events out of ``seq`` order. A push opens a new
        interval.
        """
        window = self._amount_windows.pop(chat_id, None)
        if window is None or window.pending_seq is None:
            return
        try:
            with self._db.transaction():
                seq = window.pending_seq
                amount = self._db.members_amount(chat_id)
                online = self._members_online(chat_id)
                if self._db.last_seq(chat_id) == seq:
                    push = Push(MembersAmountChanged(chat_id, seq, amount), online)
                else:
                    event = MembersAmountChanged(chat_id, self._db.next_seq(chat_id), amount)
                    push = self._logged(event, online)
        except Exception:  # the storage is busy or failing: try again an interval later
            logger.exception("the members amount push of chat %r failed", chat_id)
            self._open_amount_window(chat_id, window.pending_seq)
            return
        self._open_amount_window(chat_id)
        self._publish((push,))

    def _leave(self, session: Session, request: LeaveRequest) -> Answer:
        self._member(session, request.chat_id)
        return Answer(None, tuple(self._remove_member(request.chat_id, session.user_id, None)))

    # Messages -------------------------------------------------------------------

    def _post(self, session: Session, request: PostMessageRequest) -> Answer:
        chat_id, message_id = request.chat_id, request.message_id
        member = self._member(session, chat_id)
        _check_id(message_id, "message_id")
        # A repeat of an earlier post is answered as such whatever else holds now, so
        # the id is looked up before a refusal; a new post finds it free as it takes
        # its seq (next_post_seq: no read of its own).
        refusal: RefusedError | None = None
        try:
            self._check_may_send(member)
            _check_content(request.content)
        except RefusedError as error:
            refusal = error
        seq = None if refusal is not None else self._db.next_post_seq(chat_id, message_id)
        if seq is None:
            stored = self._db.message(chat_id, message_id)
            if stored is not None:
                return self._repeated_post(session, stored)
            assert refusal is not None  # a member's chat has taken a seq: its join's
            raise refusal
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
        return Answer(
            message,
            (self._logged(MessagePosted(chat_id, seq, message), self._members_online(chat_id)),),
        )

    @staticmethod
    def _repeated_post(session: Session, stored: StoredMessage) -> Answer:
        """A post with the id of ``stored``: the original if it is the session's own and
        live (a repeat: no new event); refused otherwise."""
        message = stored.message
        if message.author_id != session.user_id:
            raise RefusedError(
                ErrorCode.MESSAGE_ID_TAKEN,
                f"message id {message.id!r} is taken by another member's message - "
                "generate a new id for each message",
            )
        if stored.deleted:
            raise RefusedError(
                ErrorCode.MESSAGE_NOT_FOUND, f"message {message.id!r} was posted and deleted"
            )
        return Answer(message)

    def _check_may_send(self, member: Member) -> None:
        """Posting and editing need the ``send`` permission and no active mute."""
        chat_id = member.membership.chat_id
        if SEND not in member.membership.permissions:
            raise RefusedError(
                ErrorCode.PERMISSION_DENIED,
                f"your chat token does not grant the 'send' permission in chat {chat_id!r}",
            )
        mute = self._active_kind(member.restrictions, "mute")
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
        member = self._member(session, chat_id)
        message = self._live_message(chat_id, request.message_id)
        if message.author_id != session.user_id:
            raise RefusedError(
                ErrorCode.PERMISSION_DENIED,
                f"only the author of a message can edit it; this one is by {message.author_id!r}",
            )
        self._check_may_send(member)
        _check_content(request.content)
        edited_at = self._clock()
        assert message.seq is not None  # a stored message has the seq it was posted with
        edited = msgspec.structs.replace(message, content=request.content, edited_at=edited_at)
        seq = self._db.next_seq(chat_id)
        self._db.edit_message(chat_id, message.id, edited.content, edited_at)
        self._db.supersede_message_events(MessagePosted(chat_id, message.seq, edited))
        return Answer(
            edited,
            (self._logged(MessageEdited(chat_id, seq, edited), self._members_online(chat_id)),),
        )

    def _delete(self, session: Session, request: DeleteMessageRequest) -> Answer:
        chat_id = request.chat_id
        member = self._member(session, chat_id)
        message = self._live_message(chat_id, request.message_id)
        if message.author_id != session.user_id and MODERATE not in member.membership.permissions:
            raise RefusedError(
                ErrorCode.PERMISSION_DENIED,
                "only the author of a message or a member with the 'moderate' permission "
                "can delete it",
            )
        seq = self._db.next_seq(chat_id)
        self._db.delete_message(chat_id, message.id)
        self._db.erase_message_events(chat_id, message.id)
        removed = MessageRemoved(chat_id, seq, message.id)
        return Answer(None, (self._logged(removed, self._members_online(chat_id)),))

    def _history(self, session: Session, request: HistoryRequest) -> Answer:
        self._member(session, request.chat_id)
        if not 1 <= request.limit <= MAX_HISTORY_PAGE:
            raise RefusedError(
                ErrorCode.INVALID_LIMIT,
                f"the limit must be a whole number from 1 to {MAX_HISTORY_PAGE}, "
                f"not {request.limit}",
            )
        if request.before_seq < 0:
            raise RefusedError(ErrorCode.INVALID_REQUEST, "before_seq must be 0 or more")
        before_seq = min(request.before_seq, _NO_LIMIT_SEQ)  # SQLite integers are 64-bit
        return Answer(
            _fitting(self._db.messages_before(request.chat_id, before_seq, request.limit))
        )

    # Moderation -----------------------------------------------------------------

    def _moderate(self, session: Session, request: ModerationRequest) -> Answer:
        chat_id, target = request.chat_id, request.member_id
        member = self._member(session, chat_id)
        if MODERATE not in member.membership.permissions:
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
        is_member = self._db.member(chat_id, target) is not None
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
        member = self._db.member(chat_id, user_id)
        if member is None:
            return []
        seq = self._db.next_seq(chat_id)
        event = OwnRestrictionsChanged(chat_id, seq, self._active(member.restrictions))
        return [self._logged(event, self._sessions_of(chat_id, user_id), target=user_id)]

    def _restrict(
        self,
        chat_id: str,
        user_id: str,
        kind: RestrictionKind,
        until: float | None,
        reason: str | None,
    ) -> list[Push]:
        replaces = any(r.kind == kind for r in self._db.restrictions(chat_id, user_id))
        if not replaces and self._db.restrictions_amount(chat_id) >= self._max_restrictions:
            raise RefusedError(
                ErrorCode.TOO_MANY_RESTRICTIONS,
                f"chat {chat_id!r} already holds {self._max_restrictions} mutes and blocks, "
                "the most allowed - lift some (unmute, unblock) or give durations so that "
                "they expire",
            )
        self._db.save_restriction(chat_id, user_id, Restriction(kind, until, reason))
        pushes = self._restrictions_changed(chat_id, user_id)
        if kind == "block" and self._db.member(chat_id, user_id) is not None:
            removed = RemovedFromChat(chat_id, "blocked", reason)
            pushes += self._remove_member(chat_id, user_id, removed)
        self._arm_expiry(until)
        return pushes

    def _lift(self, chat_id: str, user_id: str, kind: RestrictionKind) -> list[Push]:
        if not self._db.delete_restriction(chat_id, user_id, kind):
            return []
        return self._restrictions_changed(chat_id, user_id)

    # Expiry -----------------------------------------------------------------------
    # One timer, armed for the earliest expiry the storage holds: however many
    # restrictions there are, the core holds one timer, and starting reads one row.
    # A lifted or replaced restriction leaves the timer as it is: when it fires,
    # whatever has expired by then is lifted, and it is armed for the next one.

    def _arm_expiry(self, until: float | None) -> None:
        """Make sure the expiry timer fires by ``until`` (None: no new expiry)."""
        if until is None or (self._expiry is not None and self._expiry[0] <= until):
            return
        if self._expiry is not None:
            self._expiry[1].cancel()
        delay = max(0.0, until - self._clock())
        self._expiry = (until, self._schedule(delay, self._expire))

    def _expire(self) -> None:
        """The timer fired: lift what has expired (a batch at a time), publish, re-arm."""
        self._expiry = None
        now = self._clock()
        try:
            with self._db.transaction():
                expired = self._db.expired_restrictions(now, EXPIRY_BATCH)
                pushes: list[Push] = []
                for timed in expired:
                    pushes += self._lift(timed.chat_id, timed.user_id, timed.kind)
        except Exception:
            logger.exception("lifting the restrictions expired by %s failed", now)
            self._arm_expiry(now + EXPIRY_RETRY)
            return
        self._publish(tuple(pushes))
        self._arm_expiry(now if len(expired) == EXPIRY_BATCH else self._db.next_expiry())
