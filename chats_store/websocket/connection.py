"""One managed WebSocket connection: handshake, requests, pushes, reconnects (runtime).

A thin asyncio shell around the sans-I/O :class:`~chats_store.protocol.ClientProtocol`,
as ``websockets`` itself is built. It is the Chats module's
:class:`~chats_store.chats.transport.ChatsTransport`.

Reconnects reuse ``websockets``' own loop (``async for connection in connect(...)``)
with tuned delays: the first retry after a drop happens at once, then after a
jittered sub-second delay, growing exponentially only while attempts keep
failing, and the growth resets after a success. A handshake the server refuses
(401/403: bad or expired session token) is fatal: no retry loop, the connection
stays ``disconnected`` and ``last_error`` says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Generator, Sequence
from functools import partial

from reactivex import Observable
from reactivex.subject import Subject
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import backoff
from websockets.client import process_exception as retry_network_errors
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from chats_store.chats.actions import Failure, ServerEvent
from chats_store.chats.commands import ChatReply, ChatRequest
from chats_store.chats.model import ConnectionStatus
from chats_store.errors import AuthenticationError, ConnectFailedError, ProtocolError
from chats_store.protocol import (
    MAX_SERVER_FRAME_SIZE,
    PROTOCOL_VERSION,
    ClientProtocol,
    EventReceived,
    ReplyReceived,
)

__all__ = ["ManagedConnection"]

logger = logging.getLogger("chats_store.websocket")

PROTOCOL_ERROR_CLOSE_CODE = 1002


def _process_exception(error: Exception) -> Exception | None:
    """Retry network failures, server errors and 429; a refused token (401/403) is final."""
    if isinstance(error, InvalidStatus):
        status = error.response.status_code
        if status in (401, 403):
            body = (
                error.response.body.decode(errors="replace").strip() if error.response.body else ""
            )
            return AuthenticationError(
                f"the server refused the session token (HTTP {status}"
                f"{': ' + body if body else ''}) - create the user module with a fresh token"
            )
        if status >= 500 or status == 429:
            return None  # server trouble or too many connections: it may pass, retry
        return error
    return retry_network_errors(error)


class ManagedConnection:
    """A connection to one URL, reconnecting until closed; the Chats transport.

    ``status`` is reported through ``on_status`` (the WebSocket module keeps the
    getters); ``events`` emits server pushes; ``request`` returns a reply or a
    :class:`Failure`, never raises for network trouble.
    """

    def __init__(
        self,
        url: str,
        session_token: str,
        *,
        status: Observable[ConnectionStatus],
        on_status: Callable[[ConnectionStatus], None],
        reconnect_delays: Callable[[], Generator[float]],
        open_timeout: float,
        ping_interval: float | None,
    ) -> None:
        self.url = url
        self._session_token = session_token
        self._status = status
        self._on_status = on_status
        self._reconnect_delays = reconnect_delays
        self._open_timeout = open_timeout
        self._ping_interval = ping_interval
        self._events: Subject[ServerEvent] = Subject()
        self._connection: ClientConnection | None = None
        self._protocol = ClientProtocol()
        self._replies: dict[int, asyncio.Future[ChatReply | Failure]] = {}
        self._task: asyncio.Task[None] | None = None
        self._opened: asyncio.Event | None = None
        self._closing = False
        self.last_error: Exception | None = None
        """Why the connection stopped for good (a refused token, say), or None."""

    @property
    def status(self) -> Observable[ConnectionStatus]:
        return self._status

    @property
    def events(self) -> Observable[ServerEvent]:
        return self._events

    # Lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Start connecting (and reconnecting); return once connected.

        Raises :class:`AuthenticationError` if the server refuses the session
        token and :class:`ConnectFailedError` if no connection could be opened
        within the open time-out; the connection is then closed.
        """
        if self._task is not None and not self._task.done():
            if self._connection is not None:
                return
        else:
            self._closing = False
            self.last_error = None
            self._opened = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())
        assert self._opened is not None and self._task is not None
        opened = asyncio.ensure_future(self._opened.wait())
        try:
            await asyncio.wait(
                (opened, self._task),
                timeout=self._open_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            opened.cancel()
        if self._connection is not None:
            return
        error = self.last_error
        await self.close()
        if isinstance(error, ConnectFailedError):
            raise error
        raise ConnectFailedError(
            f"could not connect to {self.url} within {self._open_timeout} s"
            + (f": {error}" if error is not None else "")
        ) from error

    async def close(self) -> None:
        """Close the connection and stop reconnecting; status becomes disconnected."""
        self._closing = True
        task, self._task = self._task, None
        if self._connection is not None:
            await self._connection.close()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        self._on_status("connecting")
        try:
            async for connection in connect(
                self.url,
                additional_headers={"Authorization": f"Bearer {self._session_token}"},
                subprotocols=[Subprotocol(PROTOCOL_VERSION)],
                max_size=MAX_SERVER_FRAME_SIZE,
                open_timeout=self._open_timeout,
                ping_interval=self._ping_interval,
                reconnect_delays=self._reconnect_delays,
                process_exception=_process_exception,
            ):
                await self._serve(connection)
                if self._closing:
                    break
                self._on_status("connecting")
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.last_error = error
            logger.warning("connection to %s stopped: %s", self.url, error)
        finally:
            self._on_status("disconnected")

    async def _serve(self, connection: ClientConnection) -> None:
        self._connection = connection
        self._on_status("connected")
        assert self._opened is not None
        self._opened.set()
        try:
            async for data in connection:
                try:
                    self._protocol.receive_data(data)
                except ProtocolError as error:
                    logger.warning("closing the connection to %s: %s", self.url, error)
                    # A close reason is at most 123 bytes of UTF-8.
                    reason = str(error).encode()[:120].decode(errors="ignore")
                    await connection.close(error.close_code or PROTOCOL_ERROR_CLOSE_CODE, reason)
                    break
                finally:
                    self._deliver(self._protocol.events_received())
        except ConnectionClosed:
            pass
        finally:
            self._connection = None
            self._deliver(self._protocol.fail_pending("connection_lost"))

    def _deliver(self, received: Sequence[ReplyReceived | EventReceived]) -> None:
        for item in received:
            if isinstance(item, ReplyReceived):
                reply = self._replies.get(item.request_id)
                if reply is not None and not reply.done():
                    reply.set_result(item.result)
            else:
                try:
                    self._events.on_next(item.event)
                except Exception:
                    logger.exception("a subscriber to server events raised")

    # Requests ------------------------------------------------------------------------

    async def request(self, request: ChatRequest, timeout: float) -> ChatReply | Failure:
        """Send ``request`` and return its reply or a :class:`Failure` (see ChatsTransport)."""
        connection = self._connection
        if connection is None:
            return Failure("connection_lost", "not_connected", "the WebSocket is not connected")
        protocol = self._protocol
        try:
            request_id = protocol.send_request(request)
        except ProtocolError as error:
            return Failure("refused", error.code, str(error))
        reply: asyncio.Future[ChatReply | Failure] = asyncio.get_running_loop().create_future()
        self._replies[request_id] = reply
        try:
            try:
                for text in protocol.data_to_send():
                    await connection.send(text)
            except ConnectionClosed:
                pass  # _serve fails every pending reply when the connection ends
            return await asyncio.wait_for(asyncio.shield(reply), timeout)
        except TimeoutError:
            abandoned = protocol.abandon(request_id)
            return abandoned.result if abandoned is not None else await reply
        finally:
            self._replies.pop(request_id, None)


def reconnect_delays(
    first_delay: float, min_delay: float, max_delay: float, factor: float
) -> Callable[[], Generator[float]]:
    """A ``reconnect_delays`` factory for ``websockets.connect`` with these bounds."""
    return partial(
        backoff,
        initial_delay=first_delay,
        min_delay=min_delay,
        max_delay=max_delay,
        factor=factor,
    )
