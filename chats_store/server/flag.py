"""A lighter ``asyncio.Event`` for what the server keeps per connection.

An ``asyncio.Event`` allocates its waiters' deque (about 600 bytes) when it is made;
each connection has a few events that are rarely waited on, for as long as it is
open. :class:`Flag` allocates nothing until a coroutine waits.
"""

from __future__ import annotations

import asyncio

__all__ = ["Flag"]


class Flag:
    """``asyncio.Event``'s ``set``, ``clear``, ``is_set`` and ``wait``, for the event
    loop's thread (see the module). Any number of coroutines may wait; one that is
    cancelled while waiting leaves the others waiting."""

    __slots__ = ("_value", "_waiter")

    def __init__(self, value: bool = False) -> None:
        self._value = value
        self._waiter: asyncio.Future[None] | None = None

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        """Set the flag and wake every coroutine waiting for it."""
        self._value = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> None:
        """Return once the flag is set (at once if it is)."""
        if self._value:
            return
        if self._waiter is None:
            self._waiter = asyncio.get_running_loop().create_future()
        # Shielded: cancelling one waiter must not cancel the future the others await.
        await asyncio.shield(self._waiter)
