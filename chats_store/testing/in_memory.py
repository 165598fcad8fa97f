"""An in-memory chat server and transport, for unit tests of the Chats effects and facade.

A thin adapter over the reference server's core: :class:`InMemoryChatServer` runs
the real :class:`~chats_store.server.service.ChatService` on an SQLite
``":memory:"`` database, so every rule, code and message is the reference
server's, membership credentials and resume included. What it leaves out is the
network: requests and replies are domain values handed over through the event
loop, in the order the core produced them (a reply before the pushes it caused).
It adds the knobs a network cannot give deterministically:
:meth:`InMemoryChatServer.hold` keeps requests back until
:meth:`~InMemoryChatServer.release` (a held request is still applied when
released, even if its client gave up: the "lost ack"),
:meth:`~InMemoryChatServer.refuse_next` makes the next request fail with a code
without reaching the core, and :meth:`InMemoryWebSocket.drop` cuts a client's
connection; ``connect()`` again reconnects it, and its joined chats resume through
the core (``reloading``, then ``ready`` with what they missed).

Tokens are real HS256 JWTs signed with :attr:`InMemoryChatServer.secret` and
verified by the core (chat tokens, membership credentials) and by
:meth:`InMemoryWebSocket.connect` (session tokens), as the reference server does.

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
import weakref
from collections.abc import Awaitable, Callable, Mapping

from reactivex import Observable
from reactivex.subject import BehaviorSubject

from chats_store.chats.actions import Failure, ServerEvent
from chats_store.chats.commands import ChatReply, ChatRequest, PostMessageRequest
from chats_store.chats.model import ConnectionStatus, Message
from chats_store.core.store import EventStream
from chats_store.errors import AuthenticationError, ErrorCode
from chats_store.server.database import ChatDatabase
from chats_store.server.refusal import RefusedError
from chats_store.server.service import ChatService, Push, Session, Timer
from chats_store.server.tokens import mint_chat_token, mint_session_token, verify_session_token
from chats_store.testing._backstage import Backstage, live_messages
from chats_store.user.module import User, create_user

__all__ = ["InMemoryChatServer", "InMemoryTransport", "InMemoryWebSocket"]

_Reply = asyncio.Future[ChatReply | Failure]


def _call_later(delay: float, callback: Callable[[], None]) -> Timer:
    return asyncio.get_running_loop().call_later(delay, callback)


class InMemoryChatServer:
    """The reference server's core in memory, served to :class:`InMemoryWebSocket` clients."""

    secret = "in-memory-test-secret-of-at-least-32-bytes"

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.requests: list[tuple[str, ChatRequest]] = []
        """Every request received, with the user who sent it, in order."""
        # Made here, used on the thread of the event loop that runs the clients.
        database = ChatDatabase(":memory:", check_same_thread=False)
        weakref.finalize(self, database.close)
        key = self.secret.encode()
        self._database = database
        self._service = ChatService(
            database, key, clock=clock, schedule=_call_later, publish=self._publish
        )
        self._backstage = Backstage(self._service, database, key, clock, self._publish)
        self._connected: dict[Session, InMemoryTransport] = {}
        self._held: list[tuple[Session, ChatRequest, _Reply]] = []
        self._holding = False
        self._refusal: tuple[str, str] | None = None

    # Tokens ----------------------------------------------------------------------

    def session_token(self, user_id: str, *, name: str | None = None) -> str:
        """A session token for ``user_id``, valid for an hour of :attr:`clock`."""
        return mint_session_token(self.secret, user_id, 3600, name, now=self.clock())

    def chat_token(
        self,
        user_id: str,
        chat_id: str,
        *,
        permissions: tuple[str, ...] = ("send",),
        metadata: Mapping[str, str] | None = None,
        ttl: float = 300,
    ) -> str:
        """A chat token letting ``user_id`` join ``chat_id`` within ``ttl`` seconds.

        A ``ttl`` of 0 or less gives a token that has already expired.
        """
        now = self.clock()
        if ttl <= 0:  # issued in the past, so that it expired ``-ttl`` seconds ago
            now, ttl = now + ttl - 1, 1
        return mint_chat_token(self.secret, user_id, chat_id, permissions, metadata, ttl, now=now)

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
        for session, request, reply in held:
            # Handled even if the client gave up: the request reached the server on
            # its connection, only its reply is lost (the "lost ack" case).
            self._answer(session, request, reply)
        for session in {session for session, _, _ in held if session not in self._connected}:
            self._service.disconnect(session)  # what the late requests subscribed ends

    def lose_held(self) -> None:
        """Forget the held requests and stop holding: they never reach the server's core
        (lost on the way, as the requests of a client process that died as it sent them)."""
        self._holding = False
        held, self._held = self._held, []
        for session in {session for session, _, _ in held if session not in self._connected}:
            self._service.disconnect(session)

    def refuse_next(self, code: str, detail: str = "refused by the test") -> None:
        """Answer the next request with an error ``code`` instead of handling it."""
        self._refusal = (code, detail)

    def history(self, chat_id: str) -> tuple[Message, ...]:
        """The chat's live messages as the server stores them, in ``seq`` order."""
        return live_messages(self._database, chat_id)

    def post(self, chat_id: str, author_id: str, content: str, message_id: str) -> Message:
        """Post a message as ``author_id``, who need not be connected.

        The author posts from a connection of its own, which joins the chat first
        if the author is not a member (so the members amount and the chat's ``seq``
        move, as for any join). Raises :class:`~chats_store.server.RefusedError`
        if the server refuses the post (a muted or blocked author).
        """
        reply = self._backstage.act(author_id, PostMessageRequest(chat_id, message_id, content))
        if isinstance(reply, Failure):
            raise RefusedError(
                ErrorCode(reply.code), f"the post of {author_id!r} was refused: {reply.detail}"
            )
        assert isinstance(reply, Message), reply
        return reply

    # Connections and requests ----------------------------------------------------------

    def _connect(self, transport: InMemoryTransport) -> Session:
        session = Session(transport.user_id)
        self._connected[session] = transport
        return session

    def _disconnect(self, session: Session) -> None:
        del self._connected[session]
        if not any(held is session for held, _, _ in self._held):  # else on release
            self._service.disconnect(session)

    def _receive(self, session: Session, request: ChatRequest, reply: _Reply) -> None:
        self.requests.append((session.user_id, request))
        if self._holding:
            self._held.append((session, request, reply))
        else:
            self._answer(session, request, reply)

    def _answer(self, session: Session, request: ChatRequest, reply: _Reply) -> None:
        if self._refusal is not None:
            code, detail = self._refusal
            self._refusal = None
            result: ChatReply | Failure = Failure("refused", code, detail)
            pushes: tuple[Push, ...] = ()
        else:
            answer = self._service.handle(session, request)
            result, pushes = answer.reply, answer.pushes
        if not reply.done():
            reply.set_result(result)
        self._publish(pushes)

    def _publish(self, pushes: tuple[Push, ...]) -> None:
        for push in pushes:
            for recipient in push.recipients:
                transport = self._connected.get(recipient)
                if transport is not None:
                    transport.deliver(recipient, push.event)


class InMemoryTransport:
    """One client's :class:`~chats_store.chats.transport.ChatsTransport` to the server.

    Each connection is a new session of the core. Replies and events are delivered
    through the event loop in the order the server produced them, as a socket
    would; an event of an earlier connection is never delivered on a later one.
    """

    def __init__(
        self,
        server: InMemoryChatServer,
        session_token: str,
        renew_session_token: Callable[[], Awaitable[str]] | None = None,
    ) -> None:
        self.server = server
        self.session_token = session_token
        self._renew_session_token = renew_session_token
        self.user_id = create_user(session_token).user_id
        self._session: Session | None = None
        self._status: BehaviorSubject[ConnectionStatus] = BehaviorSubject("disconnected")
        self._events: EventStream[ServerEvent] = EventStream()
        self._in_flight: set[_Reply] = set()

    @property
    def status(self) -> Observable[ConnectionStatus]:
        return self._status

    @property
    def events(self) -> Observable[ServerEvent]:
        return self._events

    @property
    def connected(self) -> bool:
        return self._status.value == "connected"

    def deliver(self, session: Session, event: ServerEvent) -> None:
        """Queue a server event pushed to ``session`` (dropped unless it is still ours)."""
        if session is self._session:
            asyncio.get_running_loop().call_soon(self._deliver_now, session, event)

    def _deliver_now(self, session: Session, event: ServerEvent) -> None:
        if session is self._session:
            self._events.emit(event)

    def check_session_token(self) -> None:
        """Raise :class:`~chats_store.AuthenticationError` if the server would refuse
        the session token in the handshake."""
        try:
            verify_session_token(self.server.secret.encode(), self.session_token, self.server.clock)
        except RefusedError as refusal:
            raise AuthenticationError(
                f"the server refused the session token ({refusal.code}: {refusal.message}) - "
                "create the user module with a fresh token"
            ) from None

    async def authenticate(self) -> None:
        """:meth:`check_session_token`, renewing a refused token once if it can
        (as the WebSocket module does at a handshake)."""
        try:
            self.check_session_token()
        except AuthenticationError:
            if self._renew_session_token is None:
                raise
            self.session_token = await self._renew_session_token()
            self.check_session_token()

    def set_status(self, status: ConnectionStatus) -> None:
        if status == "connected" and self._session is None:
            self._session = self.server._connect(self)
        elif status != "connected" and self._session is not None:
            self.server._disconnect(self._session)
            self._session = None
            for reply in tuple(self._in_flight):
                if not reply.done():
                    reply.set_result(Failure("connection_lost", "connection_lost", "dropped"))
        self._status.on_next(status)

    async def request(self, request: ChatRequest, timeout: float) -> ChatReply | Failure:
        if self._session is None:
            return Failure("connection_lost", "connection_lost", "not connected")
        reply: _Reply = asyncio.get_running_loop().create_future()
        self._in_flight.add(reply)
        try:
            self.server._receive(self._session, request, reply)
            return await asyncio.wait_for(asyncio.shield(reply), timeout)
        except TimeoutError:
            return Failure("timeout", "timeout", f"no reply within {timeout} s")
        finally:
            self._in_flight.discard(reply)


class InMemoryWebSocket:
    """The in-memory stand-in for the WebSocket module: ``connect``, ``disconnect``, ``drop``.

    ``connect()`` after a ``drop()`` (or a ``disconnect()``) is a reconnection: the
    Chats modules resume their joined chats.
    """

    def __init__(self, server: InMemoryChatServer) -> None:
        self.server = server
        self._transports: list[InMemoryTransport] = []

    def chats_transport(
        self,
        url: str,
        session_token: str,
        *,
        renew_session_token: Callable[[], Awaitable[str]] | None = None,
    ) -> InMemoryTransport:
        """Register a Chats module connecting as the session token's user."""
        transport = InMemoryTransport(self.server, session_token, renew_session_token)
        self._transports.append(transport)
        return transport

    async def connect(self) -> None:
        """Connect every registered Chats module.

        Raises :class:`~chats_store.AuthenticationError` (and connects none) if a
        session token is refused, as the server's handshake would, and its renewal
        (the user's token provider) fails or is refused too.
        """
        for transport in self._transports:
            await transport.authenticate()
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
