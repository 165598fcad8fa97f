"""Users who act on a server core without a connection: the other members of a test.

Shared by the test doubles of :mod:`chats_store.testing` (the in-memory server and
the Hypothesis server model). It holds no rule: every request goes through
:meth:`ChatService.handle`, with the tokens an application backend would hand out.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence

from chats_store.chats.actions import Failure
from chats_store.chats.commands import ChatReply, ChatRequest, JoinRequest, ResumeRequest
from chats_store.chats.model import Message
from chats_store.server.service import ChatService, Publish, Session
from chats_store.server.storage import ChatStorage
from chats_store.server.tokens import mint_chat_token, mint_membership_token

__all__ = ["Backstage", "live_messages"]


def live_messages(storage: ChatStorage, chat_id: str) -> tuple[Message, ...]:
    """Every live message of the chat, in ``seq`` order, as the storage holds it."""
    return storage.messages_before(chat_id, sys.maxsize, sys.maxsize)


class Backstage:
    """One :class:`Session` per user, acting on ``service`` as that user's other device.

    The first time a user acts in a chat, its session attaches as a client would:
    it resumes the user's membership with a credential signed with ``secret``, or,
    when the user is not a member, joins with a chat token granting
    ``permissions``. The pushes of every answer go to ``publish``.
    """

    def __init__(
        self,
        service: ChatService,
        storage: ChatStorage,
        secret: bytes,
        clock: Callable[[], float],
        publish: Publish,
    ) -> None:
        self._service = service
        self._storage = storage
        self._secret = secret
        self._clock = clock
        self._publish = publish
        self._sessions: dict[str, Session] = {}

    def session(self, user_id: str) -> Session:
        """The session that acts for ``user_id`` (made on first use)."""
        session = self._sessions.get(user_id)
        if session is None:
            session = self._sessions[user_id] = Session(user_id)
        return session

    def send(self, session: Session, request: ChatRequest) -> ChatReply | Failure:
        """Answer ``request`` of ``session`` and publish its pushes; the reply."""
        answer = self._service.handle(session, request)
        self._publish(answer.pushes)
        return answer.reply

    def join(
        self,
        user_id: str,
        chat_id: str,
        permissions: Sequence[str],
        metadata: Mapping[str, str] | None = None,
    ) -> ChatReply | Failure:
        """Join ``chat_id`` as ``user_id`` with a chat token granting what is given."""
        token = mint_chat_token(
            self._secret, user_id, chat_id, permissions, metadata, now=self._clock()
        )
        return self.send(self.session(user_id), JoinRequest(chat_id, token))

    def act(
        self, user_id: str, request: ChatRequest, *, permissions: Sequence[str] = ("send",)
    ) -> ChatReply | Failure:
        """Send ``request`` as ``user_id``, attached to its chat first (see the class)."""
        session = self.session(user_id)
        chat_id = request.chat_id
        if chat_id not in session.chats:
            member = self._storage.member(chat_id, user_id)
            if member is None:
                attached = self.join(user_id, chat_id, permissions)
            else:
                membership = member.membership
                credential = mint_membership_token(
                    self._secret,
                    user_id,
                    chat_id,
                    sorted(membership.permissions),
                    membership.metadata,
                    now=self._clock(),
                )
                resume = ResumeRequest(chat_id, credential, self._storage.last_seq(chat_id))
                attached = self.send(session, resume)
            if isinstance(attached, Failure):
                return attached
        return self.send(session, request)
