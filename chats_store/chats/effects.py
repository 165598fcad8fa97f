"""The Chats effects: the only code of the module that does I/O (runtime).

:class:`ChatsEffects` is the interpreter of the commands the reducer returns. A
:class:`SendRequest` becomes a task that sends the request through the
transport, turns the reply or failure into an outcome action with the pure
:func:`outcome_of`, dispatches it, and then settles the facade call waiting for
it. :class:`SettleCall` settles a call without sending anything. A call is settled
once, by the first of the two that comes. :class:`DispatchLater` arms a timer (one per
key: a new one replaces the old) that dispatches its action when it fires.

Closing is done the Elm way: each request still in flight is cancelled, and its
cancellation comes back as an outcome (``Failure("cancelled", "module_closed", ...)``)
that is dispatched like any other, so the reducer rolls back what the call changed
optimistically (a send becomes ``interrupted``, an update restores the content) and
releases what waited behind it (the next queued send is cancelled the same way).
A call still waiting after that is settled with :class:`CallCancelledError`.

Write-ahead: before a request leaves, the effects ask ``write_ahead`` (the state
file's :meth:`~chats_store.chats.persistence.StateFile.unrecorded`, when the module
has one) whether its record is committed; a request whose record is not does not
leave, and its outcome reports that failure.

Every reply feeds the module's :class:`~chats_store.chats.server_clock.ServerClock`
with the server times it holds, the ``server_time`` of a join or resume bounded by
the request's round trip, before its outcome is dispatched.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from chats_store.chats.actions import Failure
from chats_store.chats.commands import (
    ChatReply,
    ChatRequest,
    DispatchLater,
    Outcome,
    SendRequest,
    SettleCall,
    outcome_of,
)
from chats_store.chats.server_clock import ServerClock, latest_server_time
from chats_store.chats.transport import ChatsTransport
from chats_store.core.reducer import Command
from chats_store.errors import CallCancelledError, ErrorCode

__all__ = ["CLOSED", "ChatsEffects", "WriteAhead"]

logger = logging.getLogger("chats_store.chats.effects")

CLOSED = Failure(
    "cancelled",
    ErrorCode.MODULE_CLOSED,
    "the Chats module was closed (Chats.close()) before this call finished - its request "
    "may or may not have reached the server",
)
"""The failure of every call still in flight when the module closes."""

WriteAhead = Callable[[ChatRequest], Failure | None]
"""Why a request must not leave yet (its record is not committed), or None."""


class ChatsEffects:
    """Runs Chats commands against a transport and reports outcomes as actions."""

    def __init__(
        self,
        transport: ChatsTransport,
        dispatch: Callable[[Any], None],
        request_timeout: float,
        server_clock: ServerClock,
        write_ahead: WriteAhead | None = None,
    ) -> None:
        self._transport = transport
        self._dispatch = dispatch
        self._request_timeout = request_timeout
        self._server_clock = server_clock
        self._write_ahead = write_ahead
        self._calls: dict[int, tuple[str, asyncio.Future[Outcome]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._closed = False

    def expect(self, call_id: int, action: str) -> asyncio.Future[Outcome]:
        """A future settled with the outcome of call ``call_id`` of facade ``action``.

        Must be called before the intent carrying ``call_id`` is dispatched.
        """
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._calls[call_id] = (action, future)
        future.add_done_callback(lambda _: self._calls.pop(call_id, None))
        return future

    def run(self, command: Command) -> None:
        """Carry out ``command`` (the store's interpreter)."""
        if isinstance(command, SendRequest):
            if self._closed:
                # Closing: a request released by a cancelled one (the next queued send)
                # is cancelled too, without being sent.
                self._report(command, CLOSED)
                return
            unrecorded = None if self._write_ahead is None else self._write_ahead(command.request)
            if unrecorded is not None:
                self._report(command, unrecorded)
                return
            task = asyncio.get_running_loop().create_task(self._send(command))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif isinstance(command, SettleCall):
            self._settle(command.call_id, command.outcome)
        elif isinstance(command, DispatchLater):
            if self._closed:
                return
            previous = self._timers.pop(command.key, None)
            if previous is not None:
                previous.cancel()
            self._timers[command.key] = asyncio.get_running_loop().call_later(
                command.delay, self._fire, command
            )
        else:
            raise TypeError(f"the Chats effects cannot run {command!r}")

    def _fire(self, timer: DispatchLater) -> None:
        self._timers.pop(timer.key, None)
        self._dispatch(timer.action)

    async def close(self) -> None:
        """Cancel every timer and every request in flight, report each request as
        cancelled, settle every call.

        Idempotent. After it, requests are never sent: each comes back cancelled.
        """
        self._closed = True
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        tasks = tuple(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for call_id, (action, future) in tuple(self._calls.items()):
            if not future.done():
                future.set_exception(CallCancelledError(action, CLOSED.code, CLOSED.detail))
            self._calls.pop(call_id, None)

    async def _send(self, command: SendRequest) -> None:
        result: ChatReply | Failure
        clock = self._server_clock
        try:
            sent = clock.local()
            result = await self._transport.request(command.request, self._request_timeout)
            if not isinstance(result, Failure):
                received = clock.local()
                clock.answered(getattr(result, "server_time", None), sent, received)
                clock.saw(latest_server_time(result), received)
        except asyncio.CancelledError:
            if not self._closed:
                raise  # cancelled from outside (the loop shutting down): nothing to report
            result = CLOSED
        except Exception as error:
            logger.exception("the transport raised instead of returning a Failure")
            result = Failure("connection_lost", "transport_error", str(error))
        self._report(command, result)

    def _report(self, command: SendRequest, result: ChatReply | Failure) -> None:
        """Dispatch the outcome of ``command`` for ``result``, then settle its call."""
        outcome = outcome_of(command.call_id, command.request, result)
        try:
            self._dispatch(outcome)
        finally:
            self._settle(command.call_id, outcome)

    def _settle(self, call_id: int, outcome: Outcome) -> None:
        entry = self._calls.pop(call_id, None)
        if entry is not None and not entry[1].done():
            entry[1].set_result(outcome)
