"""The Chats effects: the only code of the module that does I/O (runtime).

:class:`ChatsEffects` is the interpreter of the commands the reducer returns. A
:class:`SendRequest` becomes a task that sends the request through the
transport, turns the reply or failure into an outcome action with the pure
:func:`outcome_of`, dispatches it, and then settles the facade call waiting for
it. :class:`SettleCall` settles a call without sending anything.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from chats_store.chats.actions import Failure
from chats_store.chats.commands import Outcome, SendRequest, SettleCall, outcome_of
from chats_store.chats.transport import ChatsTransport
from chats_store.core.reducer import Command

__all__ = ["ChatsEffects"]

logger = logging.getLogger("chats_store.chats.effects")


class ChatsEffects:
    """Runs Chats commands against a transport and reports outcomes as actions."""

    def __init__(
        self,
        transport: ChatsTransport,
        dispatch: Callable[[Any], None],
        request_timeout: float,
    ) -> None:
        self._transport = transport
        self._dispatch = dispatch
        self._request_timeout = request_timeout
        self._calls: dict[int, asyncio.Future[Outcome]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def expect(self, call_id: int) -> asyncio.Future[Outcome]:
        """A future settled with the outcome of call ``call_id``.

        Must be called before the intent carrying ``call_id`` is dispatched.
        """
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._calls[call_id] = future
        future.add_done_callback(lambda _: self._calls.pop(call_id, None))
        return future

    def run(self, command: Command) -> None:
        """Carry out ``command`` (the store's interpreter)."""
        if isinstance(command, SendRequest):
            task = asyncio.get_running_loop().create_task(self._send(command))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif isinstance(command, SettleCall):
            self._settle(command.call_id, command.outcome)
        else:
            raise TypeError(f"the Chats effects cannot run {command!r}")

    async def close(self) -> None:
        """Cancel every request in flight and wait for them to stop."""
        tasks = tuple(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _send(self, command: SendRequest) -> None:
        try:
            result = await self._transport.request(command.request, self._request_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            logger.exception("the transport raised instead of returning a Failure")
            result = Failure("connection_lost", "transport_error", str(error))
        outcome = outcome_of(command.call_id, command.request, result)
        try:
            self._dispatch(outcome)
        finally:
            self._settle(command.call_id, outcome)

    def _settle(self, call_id: int, outcome: Outcome) -> None:
        future = self._calls.pop(call_id, None)
        if future is not None and not future.done():
            future.set_result(outcome)
