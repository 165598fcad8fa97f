"""Flag: asyncio.Event's behaviour, nothing allocated until a coroutine waits."""

from __future__ import annotations

import asyncio

from chats_store.server.flag import Flag


async def test_wait_returns_at_once_when_set() -> None:
    flag = Flag(True)
    assert flag.is_set()
    await asyncio.wait_for(flag.wait(), 1)


async def test_set_wakes_every_waiter_and_clear_makes_them_wait_again() -> None:
    flag = Flag()
    waiters = [asyncio.create_task(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(waiter.done() for waiter in waiters)
    flag.set()
    await asyncio.wait_for(asyncio.gather(*waiters), 1)
    flag.clear()
    assert not flag.is_set()
    later = asyncio.create_task(flag.wait())
    await asyncio.sleep(0.01)
    assert not later.done()
    flag.set()
    await asyncio.wait_for(later, 1)


async def test_a_cancelled_waiter_leaves_the_others_waiting() -> None:
    flag = Flag()
    cancelled = asyncio.create_task(flag.wait())
    other = asyncio.create_task(flag.wait())
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    assert cancelled.cancelled() and not other.done()
    flag.set()
    await asyncio.wait_for(other, 1)
