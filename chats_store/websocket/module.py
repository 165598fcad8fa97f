"""``create_websocket``: the connection manager the other modules register with (runtime).

Modules register the connection they need when they are created
(``create_chats`` registers ``ws://host`` or ``wss://host`` with the user's
session token and its renewal); ``await websocket.connect()`` opens them all, and
``websocket.status`` is one getter for the whole:

* ``connected`` when every registered connection is open,
* ``connecting`` while any is opening or reconnecting after a drop,
* ``disconnected`` before ``connect()``, after ``disconnect()``, or when the
  module gave up (the server refused the session token, the token provider failed).

``websocket.last_error`` says why a connection is not open: the
:class:`~chats_store.websocket.connection.ConnectionFault` of its last drop or
failed attempt (None before the first ``connect()`` and once every connection is
open; a ``disconnect()`` by the application is no fault and leaves it as it was).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

import attrs

from chats_store.chats.model import ConnectionStatus
from chats_store.core.reducer import reducer_from_table
from chats_store.core.store import Getter, Store
from chats_store.websocket.connection import ConnectionFault, ManagedConnection
from chats_store.websocket.reconnect import ReconnectPolicy

__all__ = ["ConnectionFault", "ReconnectPolicy", "WebSocket", "create_websocket"]

DEFAULT_RECONNECT = ReconnectPolicy()


@attrs.frozen
class _Link:
    """What the module knows of one registered connection."""

    status: ConnectionStatus = "disconnected"
    fault: ConnectionFault | None = None


@attrs.frozen
class _ConnectionRegistered:
    pass


@attrs.frozen
class _ConnectionStatusSet:
    index: int
    status: ConnectionStatus


@attrs.frozen
class _ConnectionFaultSet:
    index: int
    fault: ConnectionFault | None


_Links = tuple[_Link, ...]


def _register(links: _Links, action: _ConnectionRegistered) -> _Links:
    return (*links, _Link())


def _replaced(links: _Links, index: int, link: _Link) -> _Links:
    return links if link == links[index] else (*links[:index], link, *links[index + 1 :])


def _set_status(links: _Links, action: _ConnectionStatusSet) -> _Links:
    return _replaced(links, action.index, attrs.evolve(links[action.index], status=action.status))


def _set_fault(links: _Links, action: _ConnectionFaultSet) -> _Links:
    return _replaced(links, action.index, attrs.evolve(links[action.index], fault=action.fault))


def _overall(links: _Links) -> ConnectionStatus:
    statuses = [link.status for link in links]
    if statuses and all(status == "connected" for status in statuses):
        return "connected"
    if "connecting" in statuses or "connected" in statuses:
        return "connecting"
    return "disconnected"


def _first_fault(links: _Links) -> ConnectionFault | None:
    return next((link.fault for link in links if link.fault is not None), None)


def _identity(value: Any) -> Any:
    return value


class WebSocket:
    """The WebSocket module: registered connections, opened and closed together.

    Use :func:`create_websocket`. Also an async context manager:
    ``async with websocket:`` connects, and disconnects on exit.
    """

    def __init__(
        self,
        *,
        reconnect: ReconnectPolicy = DEFAULT_RECONNECT,
        open_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
    ) -> None:
        self._reconnect = reconnect
        self._open_timeout = open_timeout
        self._ping_interval = ping_interval
        self._connections: list[ManagedConnection] = []
        self._store: Store[_Links] = Store(
            reducer_from_table(
                {
                    _ConnectionRegistered: _register,
                    _ConnectionStatusSet: _set_status,
                    _ConnectionFaultSet: _set_fault,
                }
            ),
            (),
        )

    @property
    def status(self) -> Getter[ConnectionStatus]:
        """``disconnected`` | ``connecting`` | ``connected`` for all connections together."""
        return self._store.getter("status", _identity, _overall)

    @property
    def last_error(self) -> Getter[ConnectionFault | None]:
        """Why a connection is not open: the fault of its last drop or failed attempt.

        The first registered connection's that has one; None before ``connect()`` and
        once all are open (``disconnect()`` leaves it as it was). ``fault.final`` says
        the module gave up (status ``disconnected``); otherwise it is reconnecting.
        """
        return self._store.getter("last_error", _identity, _first_fault)

    @property
    def connections(self) -> tuple[ManagedConnection, ...]:
        """The registered connections, in registration order."""
        return tuple(self._connections)

    def chats_transport(
        self,
        url: str,
        session_token: str,
        *,
        renew_session_token: Callable[[], Awaitable[str]] | None = None,
    ) -> ManagedConnection:
        """Register a connection to ``url`` authenticated by ``session_token``.

        Called by ``create_chats``; the connection opens with :meth:`connect`.
        ``renew_session_token`` returns a fresh session token when the server refuses
        this one, or it is about to expire (``User.fresh_session_token``).
        """
        index = len(self._connections)
        self._store.dispatch(_ConnectionRegistered())
        connection = ManagedConnection(
            url,
            session_token,
            status=self._store.getter(("connection", index), lambda s: s[index].status, _identity),
            on_status=lambda status: self._store.dispatch(_ConnectionStatusSet(index, status)),
            on_fault=lambda fault: self._store.dispatch(_ConnectionFaultSet(index, fault)),
            reconnect=self._reconnect,
            open_timeout=self._open_timeout,
            ping_interval=self._ping_interval,
            renew_session_token=renew_session_token,
        )
        self._connections.append(connection)
        return connection

    async def connect(self) -> None:
        """Open every registered connection; return when all are connected.

        Raises :class:`~chats_store.AuthenticationError` when the server refuses
        the session token (and no token provider gives one it accepts),
        :class:`~chats_store.ConnectFailedError` when a connection cannot be opened
        within the open time-out; then every connection is closed again.
        """
        try:
            await asyncio.gather(*(connection.open() for connection in self._connections))
        except BaseException:
            await self.disconnect()
            raise

    async def disconnect(self) -> None:
        """Close every connection and stop reconnecting."""
        await asyncio.gather(*(connection.close() for connection in self._connections))

    async def __aenter__(self) -> WebSocket:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.disconnect()


def create_websocket(
    *,
    reconnect: ReconnectPolicy = DEFAULT_RECONNECT,
    open_timeout: float = 10.0,
    ping_interval: float | None = 20.0,
) -> WebSocket:
    """The WebSocket module: register modules with it, then ``await connect()``.

    ``open_timeout`` bounds each connection attempt, each call of a token provider
    and ``connect()``; ``ping_interval`` (seconds, None to disable) keeps idle
    connections alive and detects dead ones; ``reconnect``: the delays between
    attempts (:class:`ReconnectPolicy`).
    """
    return WebSocket(reconnect=reconnect, open_timeout=open_timeout, ping_interval=ping_interval)
