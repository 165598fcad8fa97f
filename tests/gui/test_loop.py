"""StoreLoop: an asyncio loop on its own thread, reachable from any other."""

from __future__ import annotations

import asyncio
import threading

import pytest

from chats_store import WrongThreadError
from chats_store.gui.loop import StoreLoop


def test_run_submit_and_call_soon_execute_on_the_loops_thread() -> None:
    with StoreLoop("the-store") as store_loop:
        assert store_loop.is_running and store_loop.thread.name == "the-store"

        async def where() -> str:
            return threading.current_thread().name

        assert store_loop.run(where(), timeout=5) == "the-store"
        assert store_loop.submit(where()).result(timeout=5) == "the-store"
        called = threading.Event()
        store_loop.call_soon(lambda: called.set() if store_loop.in_loop_thread() else None)
        assert called.wait(5)
    assert not store_loop.is_running


def test_run_on_the_loops_own_thread_raises_instead_of_waiting_for_itself() -> None:
    with StoreLoop() as store_loop:

        async def nested() -> None:
            store_loop.run(asyncio.sleep(0))

        with pytest.raises(WrongThreadError, match="await the coroutine there instead"):
            store_loop.run(nested(), timeout=5)


def test_stop_cancels_what_still_runs_and_twice_is_harmless() -> None:
    store_loop = StoreLoop()
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    store_loop.submit(forever())
    store_loop.stop()
    store_loop.stop()
    assert cancelled.is_set()
    assert not store_loop.thread.is_alive() and store_loop.loop.is_closed()
