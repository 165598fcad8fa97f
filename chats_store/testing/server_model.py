"""A synchronous chat server for Hypothesis: the reference server's core, step by step.

:class:`ChatServerModel` is a thin adapter over the real
:class:`~chats_store.server.service.ChatService` (on an SQLite ``":memory:"``
database): every reply and push is the reference server's, membership credentials
and resume included; the model holds no rule of its own. It answers the requests
of one client (:attr:`ChatServerModel.user_id`) when the test says so, queues the
pushes meant for that client per chat (:attr:`ServerChat.outbox`) until the test
delivers them, and plays the rest of the world, each part through the core:

* the application backend: whatever token a join request carries, the client joins
  with a chat token the model signs (``send`` and ``moderate``, and the metadata
  given to :meth:`~ChatServerModel.set_metadata`);
* the other members: :meth:`~ChatServerModel.post` and
  :meth:`~ChatServerModel.edit` are sent by the author's own connection, which joins
  first when it is not a member; a post always goes through (a moderator lifts the
  author's block or mute first); :meth:`~ChatServerModel.set_members_amount` has
  synthetic members join or leave;
* a moderator (:data:`MODERATOR_ID`, a member once it acts in a chat):
  :meth:`~ChatServerModel.remove` deletes a message, :meth:`~ChatServerModel.kick`
  kicks the client, :meth:`~ChatServerModel.set_restrictions` mutes or blocks it (a
  block removes it from the chat) or lifts it.

Time is deterministic: the model's clock starts at 0 and moves one second per
operation; moderation minutes are seconds; expiry timers fire when the clock
reaches them.
"""

from __future__ import annotations

import itertools
import math
import weakref
from collections.abc import Callable, Mapping

import attrs

from chats_store.chats.actions import ChatSnapshot, Failure, ModerationMeasure, ServerEvent
from chats_store.chats.commands import (
    ChatReply,
    ChatRequest,
    DeleteMessageRequest,
    EditMessageRequest,
    JoinRequest,
    LeaveRequest,
    ModerationRequest,
    PostMessageRequest,
)
from chats_store.chats.model import Message, Restriction, RestrictionKind
from chats_store.errors import ErrorCode
from chats_store.server.database import ChatDatabase
from chats_store.server.refusal import RefusedError
from chats_store.server.service import (
    MAX_DURATION_MINUTES,
    MAX_RESUME_EVENTS,
    ChatService,
    Push,
    Session,
    Timer,
)
from chats_store.server.tokens import mint_chat_token
from chats_store.testing._backstage import Backstage, live_messages

__all__ = [
    "CLIENT_ID",
    "CLIENT_PERMISSIONS",
    "MODERATOR_ID",
    "ChatServerModel",
    "ServerChat",
]

CLIENT_ID = "me"
"""The user id of the client in generated states (the author of its own messages)."""

CLIENT_PERMISSIONS = ("send", "moderate")
"""What the model's chat tokens grant its client."""

MODERATOR_ID = "moderator"
"""The member who removes messages and restricts the client for the model."""

_LIFTS: Mapping[str, ModerationMeasure] = {
    ErrorCode.MEMBER_BLOCKED: "unblock",
    ErrorCode.MEMBER_MUTED: "unmute",
}
"""The moderation that lifts what a refusal code says stands in the way of a post."""


@attrs.define
class _Timer:
    due: float
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class ServerChat:
    """One chat of a :class:`ChatServerModel`, as its storage holds it now.

    ``outbox`` (a list the test may edit) holds the pushes to the model's client not
    delivered yet, in ``seq`` order.
    """

    def __init__(self, database: ChatDatabase, chat_id: str) -> None:
        self.chat_id = chat_id
        self.outbox: list[ServerEvent] = []
        self._database = database

    @property
    def seq(self) -> int:
        """The chat's last event seq."""
        return self._database.last_seq(self.chat_id)

    @property
    def messages(self) -> dict[str, Message]:
        """The live messages by id, in ``seq`` order."""
        return {message.id: message for message in live_messages(self._database, self.chat_id)}

    @property
    def members_amount(self) -> int:
        return self._database.members_amount(self.chat_id)

    def next_seq(self) -> int:
        """Take the chat's next seq for no event (for frames the test makes itself)."""
        with self._database.transaction():
            return self._database.next_seq(self.chat_id)

    def __repr__(self) -> str:
        return f"<ServerChat {self.chat_id!r} seq={self.seq} outbox={self.outbox!r}>"


class ChatServerModel:
    """The reference server's core, driven synchronously for one client (see the module).

    ``snapshot_size``: how many of the latest messages a join returns;
    ``max_resume_events``: past that many missed events, a resume gets a snapshot.
    """

    secret = b"chat-server-model-secret-of-at-least-32-bytes"

    def __init__(
        self,
        user_id: str = CLIENT_ID,
        *,
        snapshot_size: int = 5,
        max_resume_events: int = MAX_RESUME_EVENTS,
    ) -> None:
        self.user_id = user_id
        self.snapshot_size = snapshot_size
        self.chats: dict[str, ServerChat] = {}
        self._now = 0.0
        self._timers: list[_Timer] = []
        # Used by the test's thread; closed by the finalizer on whichever thread the
        # collector runs (a server's worker thread, in a test that runs one).
        database = ChatDatabase(":memory:", check_same_thread=False)
        weakref.finalize(self, database.close)
        self._database = database
        self._service = ChatService(
            database,
            self.secret,
            clock=self._clock,
            schedule=self._schedule,
            publish=self._route,
            seconds_per_minute=1.0,
            max_resume_events=max_resume_events,
            snapshot_messages=snapshot_size,
        )
        self._backstage = Backstage(self._service, database, self.secret, self._clock, self._route)
        self._session = Session(user_id)
        self._metadata: dict[str, dict[str, str]] = {}
        self._synthetic: dict[str, list[str]] = {}
        self._member_ids = itertools.count(1)

    # Time ------------------------------------------------------------------------

    def _clock(self) -> float:
        return self._now

    def _schedule(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = _Timer(self._now + delay, callback)
        self._timers.append(timer)
        return timer

    def _tick(self) -> None:
        """One second passes: the timers due fire, earliest first."""
        self._now += 1.0
        while True:
            due = [t for t in self._timers if not t.cancelled and t.due <= self._now]
            self._timers = [t for t in self._timers if not t.cancelled and t.due > self._now]
            if not due:
                return
            for timer in sorted(due, key=lambda t: t.due):
                timer.callback()

    # The client ------------------------------------------------------------------

    def chat(self, chat_id: str) -> ServerChat:
        chat = self.chats.get(chat_id)
        if chat is None:
            chat = self.chats[chat_id] = ServerChat(self._database, chat_id)
        return chat

    def snapshot(self, chat_id: str) -> ChatSnapshot | None:
        """What a join of the client would return now (None if it is not a member)."""
        return self._service.snapshot(chat_id, self.user_id)

    def reply(self, request: ChatRequest) -> ChatReply | Failure:
        """Apply ``request`` of the client as the server does; the reply or the refusal.

        The pushes it causes for the client go to the chats' outboxes.
        """
        self._tick()
        if isinstance(request, JoinRequest):
            token = mint_chat_token(
                self.secret,
                self.user_id,
                request.chat_id,
                CLIENT_PERMISSIONS,
                self._metadata.get(request.chat_id),
                now=self._now,
            )
            request = JoinRequest(request.chat_id, token)
        answer = self._service.handle(self._session, request)
        self._route(answer.pushes)
        return answer.reply

    def take_events(self, chat_id: str, count: int | None = None) -> list[ServerEvent]:
        """Remove and return the first ``count`` undelivered events (all by default)."""
        outbox = self.chat(chat_id).outbox
        count = len(outbox) if count is None else count
        taken = outbox[:count]
        del outbox[:count]
        return taken

    def drop_events(self, chat_id: str | None = None) -> None:
        """Forget undelivered events: of ``chat_id`` (the membership ended), or of every
        chat (the connection dropped: the client's next requests come on a new
        connection, which receives nothing until it joins or resumes)."""
        if chat_id is not None:
            self.chat(chat_id).outbox.clear()
            return
        for chat in self.chats.values():
            chat.outbox.clear()
        self._service.disconnect(self._session)
        self._session = Session(self.user_id)

    def _route(self, pushes: tuple[Push, ...]) -> None:
        for push in pushes:
            if self._session in push.recipients:
                self.chat(push.event.chat_id).outbox.append(push.event)

    # The rest of the world -------------------------------------------------------

    def post(self, chat_id: str, message_id: str, author_id: str, content: str) -> Message:
        """A message of ``author_id`` (the existing one if the author posted that id).

        Raises :class:`~chats_store.server.RefusedError` if the server refuses it
        even so (the id is another member's, or a deleted message's).
        """
        self._tick()
        request = PostMessageRequest(chat_id, message_id, content)
        reply = self._backstage.act(author_id, request)
        for _ in _LIFTS:
            if not (isinstance(reply, Failure) and reply.code in _LIFTS):
                break
            self._moderate(chat_id, author_id, _LIFTS[reply.code])
            reply = self._backstage.act(author_id, request)
        if isinstance(reply, Failure):
            raise RefusedError(ErrorCode(reply.code), f"the post was refused: {reply.detail}")
        assert isinstance(reply, Message), reply
        return reply

    def edit(self, chat_id: str, message_id: str, content: str) -> Message | None:
        """The author edits a live message; None if there is none or it is refused."""
        self._tick()
        stored = self._database.message(chat_id, message_id)
        if stored is None or stored.deleted:
            return None
        request = EditMessageRequest(chat_id, message_id, content)
        reply = self._backstage.act(stored.message.author_id, request)
        return reply if isinstance(reply, Message) else None

    def remove(self, chat_id: str, message_id: str) -> bool:
        """The moderator deletes a message; False if there is no such live message."""
        self._tick()
        reply = self._backstage.act(
            MODERATOR_ID, DeleteMessageRequest(chat_id, message_id), permissions=CLIENT_PERMISSIONS
        )
        return not isinstance(reply, Failure)

    def set_members_amount(self, chat_id: str, amount: int) -> None:
        """Synthetic members join, or leave, until the chat has ``amount`` members (or
        only members who are not synthetic are left)."""
        self._tick()
        present = self._synthetic.setdefault(chat_id, [])
        while self._database.members_amount(chat_id) < amount:
            member_id = f"member-{next(self._member_ids)}"
            self._backstage.join(member_id, chat_id, ("send",))
            present.append(member_id)
        while present and self._database.members_amount(chat_id) > amount:
            self._backstage.act(present.pop(), LeaveRequest(chat_id))

    def set_restrictions(self, chat_id: str, restrictions: tuple[Restriction, ...]) -> None:
        """The moderator mutes or blocks the client as ``restrictions`` say (the last one
        of each kind, for the seconds left until its ``until``) and lifts the rest.

        A block removes the client from the chat; a mute needs it to be a member.
        """
        self._tick()
        measures: tuple[tuple[RestrictionKind, ModerationMeasure], ...] = (
            ("mute", "unmute"),
            ("block", "unblock"),
        )
        for kind, lift in measures:
            wanted = [r for r in restrictions if r.kind == kind]
            restriction = wanted[-1] if wanted else None
            if restriction is None or not restriction.is_active(self._now):
                self._moderate(chat_id, self.user_id, lift)
                continue
            duration = 0  # permanent
            if restriction.until is not None:
                duration = min(MAX_DURATION_MINUTES, math.ceil(restriction.until - self._now))
            self._moderate(chat_id, self.user_id, kind, duration, restriction.reason)

    def kick(self, chat_id: str, reason: str | None = None) -> None:
        """The moderator kicks the client out of the chat (if it is a member)."""
        self._tick()
        self._moderate(chat_id, self.user_id, "kick", reason=reason)

    def set_metadata(self, chat_id: str, metadata: Mapping[str, str]) -> None:
        """The client's member metadata becomes ``metadata``: its next join is granted
        it, and a member rejoins with it from another connection at once."""
        self._tick()
        self._metadata[chat_id] = dict(metadata)
        if self._database.member(chat_id, self.user_id) is not None:
            self._backstage.join(self.user_id, chat_id, CLIENT_PERMISSIONS, metadata)

    def _moderate(
        self,
        chat_id: str,
        member_id: str,
        measure: ModerationMeasure,
        duration: int | None = None,
        reason: str | None = None,
    ) -> None:
        request = ModerationRequest(chat_id, member_id, measure, duration, reason)
        self._backstage.act(MODERATOR_ID, request, permissions=CLIENT_PERMISSIONS)
