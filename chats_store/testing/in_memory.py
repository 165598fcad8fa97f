"""An in-memory chat server and transport, for unit tests of the Chats effects and facade.

This is a test double of one layer, not a second server: it implements just
enough of the reference server's rules (join with a chat token's claims, posts
deduplicated by message id, per-chat event ``seq``, authors-only edits,
moderation with the ``moderate`` permission) to exercise the client, plus knobs
a network cannot give deterministically: :meth:`InMemoryChatServer.hold` keeps
replies back until :meth:`~InMemoryChatServer.release`,
:meth:`~InMemoryChatServer.refuse_next` makes the next request fail with a code,
and :meth:`InMemoryWebSocket.drop` cuts one client's connection.

Tokens are real HS256 JWTs signed with :attr:`InMemoryChatServer.secret`, but
this double trusts their claims without checking the signature.

Usage::

    server = InMemoryChatServer()
    websocket = server.websocket()
    chats = create_chats(user_module=create_user(server.session_token("ann")),
                         websocket_module=websocket, config=ChatsConfig(host="memory"))
    await websocket.connect()
    await chats.join_chat(server.chat_token("ann", "lobby"))
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

import attrs
import jwt
from reactivex import Observable
from reactivex.subject import BehaviorSubject, Subject

from chats_store.chats.actions import (
    ChatSnapshot,
    Failure,
    MembersAmountChanged,
    MessageEdited,
    MessagePosted,
    MessageRemoved,
    OwnRestrictionsChanged,
    RemovedFromChat,
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
)
from chats_store.chats.model import ConnectionStatus, Message, Restriction
from chats_store.errors import ErrorCode
from chats_store.tokens import CHAT_AUDIENCE, SESSION_AUDIENCE
from chats_store.user.module import User, create_user

__all__ = ["InMemoryChatServer", "InMemoryTransport", "InMemoryWebSocket"]


class _RefusedError(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@attrs.define
class _Member:
    permissions: tuple[str, ...]
    metadata: dict[str, str]
    restrictions: list[Restriction] = attrs.Factory(list)


@attrs.define
class _Chat:
    seq: int = 0
    messages: dict[str, Message] = attrs.Factory(dict)
    members: dict[str, _Member] = attrs.Factory(dict)
    blocked: set[str] = attrs.Factory(set)


class InMemoryChatServer:
    """The shared state of an in-memory chat, served to :class:`InMemoryWebSocket` clients."""

    secret = "in-memory-test-secret-of-at-least-32-bytes"

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.requests: list[tuple[str, ChatRequest]] = []
        """Every request received, with the user who sent it, in order."""
        self._chats: dict[str, _Chat] = {}
        self._transports: list[InMemoryTransport] = []
        self._held: list[tuple[InMemoryTransport, ChatRequest, asyncio.Future[Any]]] = []
        self._holding = False
        self._refusal: tuple[str, str] | None = None

    # Tokens ----------------------------------------------------------------------

    def session_token(self, user_id: str, *, name: str | None = None) -> str:
        claims: dict[str, Any] = {"sub": user_id, "aud": SESSION_AUDIENCE}
        claims["exp"] = int(self.clock()) + 3600
        if name is not None:
            claims["name"] = name
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def chat_token(
        self,
        user_id: str,
        chat_id: str,
        *,
        permissions: tuple[str, ...] = ("send",),
        metadata: Mapping[str, str] | None = None,
        ttl: float = 300,
    ) -> str:
        claims = {
            "sub": user_id,
            "chat": chat_id,
            "aud": CHAT_AUDIENCE,
            "exp": self.clock() + ttl,
            "permissions": list(permissions),
            "metadata": dict(metadata or {}),
        }
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def user(self, user_id: str) -> User:
        """The user module of ``user_id`` (with a session token of this server)."""
        return create_user(self.session_token(user_id))

    def websocket(self) -> InMemoryWebSocket:
        """A new client connection manager (disconnected until ``connect()``)."""
        return InMemoryWebSocket(self)

    # Knobs -----------------------------------------------------------------------

    def hold(self) -> None:
        """Keep every request received from now on unanswered until :meth:`release`."""
        self._holding = True

    def release(self) -> None:
        """Answer the held requests, in the order received, and stop holding."""
        self._holding = False
        held, self._held = self._held, []
        for transport, request, reply in held:
            # Handled even if the client gave up: the request reached the server,
            # only its reply is lost (the "lost ack" case).
            self._answer(transport, request, reply)

    def refuse_next(self, code: str, detail: str = "refused by the test") -> None:
        """Answer the next request with an error ``code`` instead of handling it."""
        self._refusal = (code, detail)

    def history(self, chat_id: str) -> tuple[Message, ...]:
        """The chat's messages as the server stores them, in ``seq`` order."""
        chat = self._chats.get(chat_id)
        return tuple(sorted(chat.messages.values(), key=lambda m: m.seq or 0)) if chat else ()

    def post(self, chat_id: str, author_id: str, content: str, message_id: str) -> Message:
        """Post a message as ``author_id`` (who need not be connected)."""
        return self._post(author_id, PostMessageRequest(chat_id, message_id, content))

    # Request handling ----------------------------------------------------------------

    def _receive(
        self, transport: InMemoryTransport, request: ChatRequest, reply: asyncio.Future[Any]
    ) -> None:
        self.requests.append((transport.user_id, request))
        if self._holding:
            self._held.append((transport, request, reply))
        else:
            self._answer(transport, request, reply)

    def _answer(
        self, transport: InMemoryTransport, request: ChatRequest, reply: asyncio.Future[Any]
    ) -> None:
        result: ChatReply | Failure
        if self._refusal is not None:
            code, detail = self._refusal
            self._refusal = None
            result = Failure("refused", code, detail)
        else:
            try:
                result = self._handle(transport, request)
            except _RefusedError as refusal:
                result = Failure("refused", refusal.code, refusal.detail)
        if not reply.done():
            reply.set_result(result)

    def _handle(self, transport: InMemoryTransport, request: ChatRequest) -> ChatReply:
        user_id = transport.user_id
        match request:
            case JoinRequest():
                return self._join(transport, request)
            case LeaveRequest(chat_id=chat_id):
                chat = self._member_chat(user_id, chat_id)
                del chat.members[user_id]
                transport.chat_ids.discard(chat_id)
                self._emit(
                    chat_id, lambda seq: MembersAmountChanged(chat_id, seq, len(chat.members))
                )
                return None
            case PostMessageRequest():
                return self._post(user_id, request)
            case EditMessageRequest(chat_id=chat_id, message_id=message_id, content=content):
                chat = self._member_chat(user_id, chat_id)
                message = self._message(chat, message_id)
                if message.author_id != user_id:
                    raise _RefusedError(ErrorCode.PERMISSION_DENIED, "only the author can edit")
                edited = attrs.evolve(message, content=content, edited_at=self.clock())
                chat.messages[message_id] = edited
                self._emit(chat_id, lambda seq: MessageEdited(chat_id, seq, edited))
                return edited
            case DeleteMessageRequest(chat_id=chat_id, message_id=message_id):
                chat = self._member_chat(user_id, chat_id)
                message = self._message(chat, message_id)
                member = chat.members[user_id]
                if message.author_id != user_id and "moderate" not in member.permissions:
                    raise _RefusedError(
                        ErrorCode.PERMISSION_DENIED, "only the author or a moderator"
                    )
                del chat.messages[message_id]
                self._emit(chat_id, lambda seq: MessageRemoved(chat_id, seq, message_id))
                return None
            case HistoryRequest(chat_id=chat_id, before_seq=before_seq, limit=limit):
                chat = self._member_chat(user_id, chat_id)
                older = [m for m in self.history(chat_id) if (m.seq or 0) < before_seq]
                return tuple(older[-limit:])
            case ModerationRequest():
                self._moderate(user_id, request)
                return None
        raise _RefusedError(ErrorCode.INVALID_REQUEST, f"unknown request {request!r}")

    def _join(self, transport: InMemoryTransport, request: JoinRequest) -> ChatSnapshot:
        claims = jwt.decode(request.token, options={"verify_signature": False})
        if claims.get("sub") != transport.user_id or claims.get("chat") != request.chat_id:
            raise _RefusedError(ErrorCode.INVALID_TOKEN, "the token is for another user or chat")
        if claims["exp"] <= self.clock():
            raise _RefusedError(ErrorCode.EXPIRED_TOKEN, "the chat token has expired")
        chat = self._chats.setdefault(request.chat_id, _Chat())
        if transport.user_id in chat.blocked:
            raise _RefusedError(ErrorCode.MEMBER_BLOCKED, "you are blocked from this chat")
        member = chat.members.get(transport.user_id)
        if member is None:
            member = _Member(tuple(claims.get("permissions", ())), dict(claims.get("metadata", {})))
            chat.members[transport.user_id] = member
        transport.chat_ids.add(request.chat_id)
        snapshot = ChatSnapshot(
            messages=self.history(request.chat_id)[-100:],
            members_amount=len(chat.members),
            member_metadata=dict(member.metadata),
            restrictions=tuple(member.restrictions),
            last_seq=chat.seq,
        )
        amount = len(chat.members)
        self._emit(request.chat_id, lambda seq: MembersAmountChanged(request.chat_id, seq, amount))
        return snapshot

    def _post(self, user_id: str, request: PostMessageRequest) -> Message:
        chat_id = request.chat_id
        chat = self._chats.setdefault(chat_id, _Chat())
        existing = chat.messages.get(request.message_id)
        if existing is not None:
            return existing
        member = chat.members.get(user_id)
        now = self.clock()
        if member is not None and any(
            r.kind == "mute" and r.is_active(now) for r in member.restrictions
        ):
            raise _RefusedError(ErrorCode.MEMBER_MUTED, "you are muted in this chat")
        message = Message(
            id=request.message_id,
            chat_id=chat_id,
            author_id=user_id,
            content=request.content,
            status="ready",
            seq=chat.seq + 1,
            created_at=now,
        )
        chat.messages[message.id] = message
        self._emit(chat_id, lambda seq: MessagePosted(chat_id, seq, message))
        return message

    def _moderate(self, user_id: str, request: ModerationRequest) -> None:
        chat_id = request.chat_id
        chat = self._member_chat(user_id, chat_id)
        if "moderate" not in chat.members[user_id].permissions:
            raise _RefusedError(
                ErrorCode.PERMISSION_DENIED, "moderation needs the moderate permission"
            )
        target_id = request.member_id
        target = chat.members.get(target_id)
        if request.measure == "unblock":
            chat.blocked.discard(target_id)
            return
        if target is None:
            raise _RefusedError(ErrorCode.MEMBER_NOT_FOUND, f"{target_id!r} is not a member")
        until = self.clock() + request.duration * 60 if request.duration else None
        if request.measure == "mute":
            target.restrictions = [
                *(r for r in target.restrictions if r.kind != "mute"),
                Restriction("mute", until, request.reason),
            ]
        elif request.measure == "unmute":
            target.restrictions = [r for r in target.restrictions if r.kind != "mute"]
        else:
            if request.measure == "block":
                chat.blocked.add(target_id)
            del chat.members[target_id]
            reason: Literal["kicked", "blocked"] = (
                "blocked" if request.measure == "block" else "kicked"
            )
            for transport in self._transports:
                if transport.user_id == target_id and chat_id in transport.chat_ids:
                    transport.chat_ids.discard(chat_id)
                    transport.deliver(RemovedFromChat(chat_id, reason, request.reason))
            amount = len(chat.members)
            self._emit(chat_id, lambda seq: MembersAmountChanged(chat_id, seq, amount))
            return
        restrictions = tuple(target.restrictions)
        chat.seq += 1
        event = OwnRestrictionsChanged(chat_id, chat.seq, restrictions)
        for transport in self._transports:
            if transport.user_id == target_id and chat_id in transport.chat_ids:
                transport.deliver(event)

    def _member_chat(self, user_id: str, chat_id: str) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None or user_id not in chat.members:
            raise _RefusedError(ErrorCode.CHAT_NOT_JOINED, f"you are not a member of {chat_id!r}")
        return chat

    def _message(self, chat: _Chat, message_id: str) -> Message:
        message = chat.messages.get(message_id)
        if message is None:
            raise _RefusedError(ErrorCode.MESSAGE_NOT_FOUND, f"no message {message_id!r}")
        return message

    def _emit(self, chat_id: str, make_event: Callable[[int], ServerEvent]) -> None:
        chat = self._chats[chat_id]
        chat.seq += 1
        event = make_event(chat.seq)
        for transport in self._transports:
            if chat_id in transport.chat_ids:
                transport.deliver(event)


class InMemoryTransport:
    """One client's :class:`~chats_store.chats.transport.ChatsTransport` to the server.

    Replies and events are delivered through the event loop in the order the
    server produced them, as a socket would.
    """

    def __init__(self, server: InMemoryChatServer, user_id: str) -> None:
        self.server = server
        self.user_id = user_id
        self.chat_ids: set[str] = set()
        self._status: BehaviorSubject[ConnectionStatus] = BehaviorSubject("disconnected")
        self._events: Subject[ServerEvent] = Subject()
        self._in_flight: set[asyncio.Future[Any]] = set()

    @property
    def status(self) -> Observable[ConnectionStatus]:
        return self._status

    @property
    def events(self) -> Observable[ServerEvent]:
        return self._events

    @property
    def connected(self) -> bool:
        return self._status.value == "connected"

    def deliver(self, event: ServerEvent) -> None:
        """Queue a server event for this client (dropped if it is disconnected)."""
        if self.connected:
            asyncio.get_running_loop().call_soon(self._deliver_now, event)

    def _deliver_now(self, event: ServerEvent) -> None:
        if self.connected:
            self._events.on_next(event)

    def set_status(self, status: ConnectionStatus) -> None:
        if status != "connected":
            self.chat_ids.clear()
            for reply in tuple(self._in_flight):
                if not reply.done():
                    reply.set_result(Failure("connection_lost", "connection_lost", "dropped"))
        self._status.on_next(status)

    async def request(self, request: ChatRequest, timeout: float) -> ChatReply | Failure:
        if not self.connected:
            return Failure("connection_lost", "connection_lost", "not connected")
        reply: asyncio.Future[ChatReply | Failure] = asyncio.get_running_loop().create_future()
        self._in_flight.add(reply)
        try:
            self.server._receive(self, request, reply)
            return await asyncio.wait_for(asyncio.shield(reply), timeout)
        except TimeoutError:
            return Failure("timeout", "timeout", f"no reply within {timeout} s")
        finally:
            self._in_flight.discard(reply)


class InMemoryWebSocket:
    """The in-memory stand-in for the WebSocket module: ``connect``, ``disconnect``, ``drop``."""

    def __init__(self, server: InMemoryChatServer) -> None:
        self.server = server
        self._transports: list[InMemoryTransport] = []

    def chats_transport(self, url: str, session_token: str) -> InMemoryTransport:
        """Register a Chats module connecting as the session token's user."""
        transport = InMemoryTransport(self.server, create_user(session_token).user_id)
        self._transports.append(transport)
        self.server._transports.append(transport)
        return transport

    async def connect(self) -> None:
        for transport in self._transports:
            transport.set_status("connecting")
            transport.set_status("connected")

    async def disconnect(self) -> None:
        for transport in self._transports:
            transport.set_status("disconnected")

    def drop(self) -> None:
        """Cut the connection as a network failure would (in-flight requests fail)."""
        for transport in self._transports:
            transport.set_status("disconnected")
