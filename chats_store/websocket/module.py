"""``create_websocket``: the connection manager the other modules register with (runtime).

Modules register the connection they need when they are created
(``create_chats`` registers ``ws://host`` or ``wss://host`` with the user's
session token); ``await websocket.connect()`` opens them all, and
``websocket.status`` is one getter for the whole:

* ``connected`` when every registered connection is open,
* ``connecting`` while any is opening or reconnecting after a drop,
* ``disconnected`` before ``connect()``, after ``disconnect()``, or when the
  server refused the session token.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

import attrs

from chats_store.chats.model import ConnectionStatus
from chats_store.core.reducer import reducer_from_table
from chats_store.core.store import Getter, Store
from chats_store.websocket.connection import ManagedConnection, reconnect_delays

__all__ = ["ReconnectPolicy", "WebSocket", "create_websocket"]


@attrs.frozen
class ReconnectPolicy:
    """Delays (seconds) between reconnection attempts after a drop.

    The first retry after a drop is immediate; if it fails, the next waits a
    random time up to ``first_delay`` (jitter, so that many clients do not come
    back at once), then ``min_delay`` growing by ``factor`` up to ``max_delay``
    while attempts keep failing. A successful connection resets the sequence.
    The defaults bring a chat back within about a second after a short outage.
    """

    first_delay: float = 0.5
    min_delay: float = 0.5
    max_delay: float = 10.0
    factor: float = 1.618


@attrs.frozen
class _ConnectionRegistered:
    pass


@attrs.frozen
class _ConnectionStatusSet:
    index: int
    status: ConnectionStatus


def _register(
    statuses: tuple[ConnectionStatus, ...], action: _ConnectionRegistered
) -> tuple[ConnectionStatus, ...]:
    return (*statuses, "disconnected")


def _set_status(
    statuses: tuple[ConnectionStatus, ...], action: _ConnectionStatusSet
) -> tuple[ConnectionStatus, ...]:
    if statuses[action.index] == action.status:
        return statuses
    return (*statuses[: action.index], action.status, *statuses[action.index + 1 :])


def _overall(statuses: tuple[ConnectionStatus, ...]) -> ConnectionStatus:
    if statuses and all(status == "connected" for status in statuses):
        return "connected"
    if "connecting" in statuses or "connected" in statuses:
        return "connecting"
    return "disconnected"


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
        reconnect: ReconnectPolicy = ReconnectPolicy(),
        open_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
    ) -> None:
        self._reconnect = reconnect
        self._open_timeout = open_timeout
        self._ping_interval = ping_interval
        self._connections: list[ManagedConnection] = []
        self._store: Store[tuple[ConnectionStatus, ...]] = Store(
            reducer_from_table(
                {_ConnectionRegistered: _register, _ConnectionStatusSet: _set_status}
            ),
            (),
        )

    @property
    def status(self) -> Getter[ConnectionStatus]:
        """``disconnected`` | ``connecting`` | ``connected`` for all connections together."""
        return self._store.getter("status", _identity, _overall)

    @property
    def connections(self) -> tuple[ManagedConnection, ...]:
        """The registered connections, in registration order."""
        return tuple(self._connections)

    def chats_transport(self, url: str, session_token: str) -> ManagedConnection:
        """Register a connection to ``url`` authenticated by ``session_token``.

        Called by ``create_chats``; the connection opens with :meth:`connect`.
        """
        index = len(self._connections)
        self._store.dispatch(_ConnectionRegistered())
        connection = ManagedConnection(
            url,
            session_token,
            status=self._store.getter(("connection", index), lambda s: s[index], _identity),
            on_status=lambda status: self._store.dispatch(_ConnectionStatusSet(index, status)),
            reconnect_delays=reconnect_delays(
                self._reconnect.first_delay,
                self._reconnect.min_delay,
                self._reconnect.max_delay,
                self._reconnect.factor,
            ),
            open_timeout=self._open_timeout,
            ping_interval=self._ping_interval,
        )
        self._connections.append(connection)
        return connection

    async def connect(self) -> None:
        """Open every registered connection; return when all are connected.

        Raises :class:`~chats_store.AuthenticationError` when the server refuses
        the session token, :class:`~chats_store.ConnectFailedError` when a
        connection cannot be opened within the open time-out; then every
        connection is closed again.
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
    reconnect: ReconnectPolicy = ReconnectPolicy(),
    open_timeout: float = 10.0,
    ping_interval: float | None = 20.0,
) -> WebSocket:
    """The WebSocket module: register modules with it, then ``await connect()``.

    ``open_timeout`` bounds each connection attempt and ``connect()``;
    ``ping_interval`` (seconds, None to disable) keeps idle connections alive and
    detects dead ones.
    """
    return WebSocket(reconnect=reconnect, open_timeout=open_timeout, ping_interval=ping_interval)
