"""The seam between the Chats effects and the network (runtime interface).

The effects talk only to a :class:`ChatsTransport`. The WebSocket module
provides the real one; ``chats_store.testing`` provides an in-memory one for unit
tests of this layer. ``create_chats`` obtains its transport from the
``websocket_module`` it is given, through :class:`ChatsTransportProvider`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from reactivex import Observable

from chats_store.chats.actions import Failure, ServerEvent
from chats_store.chats.commands import ChatReply, ChatRequest
from chats_store.chats.model import ConnectionStatus

__all__ = ["ChatsTransport", "ChatsTransportProvider"]


class ChatsTransport(Protocol):
    """A connection to a chat server, seen by the Chats effects.

    * ``status`` replays the current connection status to each subscriber, then
      every change.
    * ``events`` emits every server event in the order received. The server sends
      a join's reply before any event of that chat.
    * ``request`` sends one request and returns its reply, or a :class:`Failure`
      (``refused`` with the server's code, ``connection_lost``, ``timeout`` after
      ``timeout`` seconds). It never raises for these; it is never cancelled by
      the caller except at shutdown.

    Emissions happen on the thread of the asyncio loop that runs the store.
    """

    @property
    def status(self) -> Observable[ConnectionStatus]: ...

    @property
    def events(self) -> Observable[ServerEvent]: ...

    async def request(self, request: ChatRequest, timeout: float) -> ChatReply | Failure: ...


class ChatsTransportProvider(Protocol):
    """What ``create_chats`` needs of its ``websocket_module``."""

    def chats_transport(
        self,
        url: str,
        session_token: str,
        *,
        renew_session_token: Callable[[], Awaitable[str]] | None = None,
    ) -> ChatsTransport:
        """Register the Chats module's connection to ``url`` and return its transport.

        ``session_token`` authenticates the connection in the handshake;
        ``renew_session_token`` (the user module's ``fresh_session_token``, when it has
        a token provider) gives a fresh one when the server refuses it. ``create_chats``
        passes it only when there is one, so a provider written before it existed
        still serves users without a token provider.
        """
        ...
