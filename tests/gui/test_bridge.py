"""The toolkit-independent bridge (chats_store.gui.bridge) with a hand-driven toolkit:
conflation, disposal, call outcomes, errors. The real toolkits: test_qt.py, test_tk.py."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chats_store.chats.actions import ConnectionStatusChanged
from chats_store.chats.model import ChatsState
from chats_store.chats.reducer import reduce_chats
from chats_store.core.store import Getter, Store
from chats_store.gui.bridge import GuiBridge
from chats_store.gui.loop import StoreLoop


class HandDriven(GuiBridge):
    """A bridge whose "toolkit" is the test: it counts wakes and drains when told."""

    def __init__(self, store_loop: StoreLoop) -> None:
        self.wakes = 0
        self.owners: dict[object, Callable[[], None]] = {}
        super().__init__(store_loop, self._count_wake)

    def _count_wake(self) -> None:
        self.wakes += 1

    def _watch_owner(self, owner: Any, dispose: Callable[[], None]) -> None:
        self.owners[owner] = dispose


@pytest.fixture
def store_loop() -> Iterator[StoreLoop]:
    with StoreLoop() as store_loop:
        yield store_loop


@pytest.fixture
def store(store_loop: StoreLoop) -> Store[ChatsState]:
    async def make() -> Store[ChatsState]:
        return Store(reduce_chats, ChatsState(), interpreter=lambda command: None)

    return store_loop.run(make())


def connection(store: Store[ChatsState]) -> Getter[str]:
    return store.select(lambda state: state.connection, lambda status: status)


def dispatch(store_loop: StoreLoop, store: Store[ChatsState], *statuses: str) -> None:
    async def go() -> None:
        for status in statuses:
            store.dispatch(ConnectionStatusChanged(status))  # type: ignore[arg-type]

    store_loop.run(go())


def settle(store_loop: StoreLoop) -> None:
    """Let the store's loop run what was scheduled on it."""
    store_loop.run(asyncio.sleep(0))


def test_values_are_conflated_into_the_latest_and_one_wake(
    store_loop: StoreLoop, store: Store[ChatsState]
) -> None:
    bridge = HandDriven(store_loop)
    seen: list[str] = []
    bridge.bind(connection(store), seen.append)
    settle(store_loop)
    dispatch(store_loop, store, *(["connecting", "connected", "disconnected"] * 7), "connected")

    assert bridge.wakes == 1  # one wake for the whole burst
    bridge._drain()
    assert seen == ["connected"]  # the replay and 22 changes: only the latest
    dispatch(store_loop, store, "connecting")
    bridge._drain()
    assert seen == ["connected", "connecting"] and bridge.wakes == 2


def test_a_disposed_binding_receives_nothing_even_from_the_mailbox(
    store_loop: StoreLoop, store: Store[ChatsState]
) -> None:
    bridge = HandDriven(store_loop)
    seen: list[str] = []
    getter = connection(store)
    binding = bridge.bind(getter, seen.append, owner="window")
    settle(store_loop)

    bridge.owners["window"]()  # the window is destroyed
    bridge._drain()
    settle(store_loop)
    assert seen == [] and binding.disposed
    assert store_loop.run(_subscribers(getter)) == 0
    binding.dispose()  # again: harmless


async def _subscribers(getter: Getter[Any]) -> int:
    return len(getter._subscribers)


def test_a_binding_disposed_before_it_subscribed_never_subscribes(
    store_loop: StoreLoop, store: Store[ChatsState]
) -> None:
    bridge = HandDriven(store_loop)
    getter = connection(store)
    block = threading.Event()
    store_loop.call_soon(block.wait, 5)  # keep the loop busy: bind's subscription waits
    binding = bridge.bind(getter, print)
    binding.dispose()
    block.set()
    settle(store_loop)
    assert store_loop.run(_subscribers(getter)) == 0


def test_a_raising_view_is_logged_and_its_binding_disposed(
    store_loop: StoreLoop, store: Store[ChatsState], caplog: pytest.LogCaptureFixture
) -> None:
    bridge = HandDriven(store_loop)
    others: list[str] = []

    def broken(value: str) -> None:
        raise ValueError(value)

    binding = bridge.bind(connection(store), broken)
    bridge.bind(connection(store), others.append)
    settle(store_loop)
    with caplog.at_level(logging.ERROR, logger="chats_store.gui"):
        bridge._drain()

    assert binding.disposed and others == ["disconnected"]
    assert "a bound view raised" in caplog.records[0].getMessage()


def test_call_outcomes_and_done_callbacks_run_when_drained(store_loop: StoreLoop) -> None:
    bridge = HandDriven(store_loop)
    order: list[str] = []
    call = bridge.call(asyncio.sleep(0, result="done"))
    call.add_done_callback(lambda future: order.append(f"first {future.result()}"))
    deadline = time.monotonic() + 5
    while not call.done():
        assert time.monotonic() < deadline
        time.sleep(0.001)
    assert order == []  # only the GUI thread's drain runs callbacks

    bridge._drain()
    call.add_done_callback(lambda future: order.append("added later"))
    bridge._drain()
    assert order == ["first done", "added later"]

    failing = bridge.call(_fail())
    failing.add_done_callback(lambda future: order.append(type(future.exception()).__name__))
    _wait(failing.done)
    bridge._drain()
    assert order[-1] == "KeyError"
    with pytest.raises(KeyError):
        failing.result()


async def _fail() -> None:
    raise KeyError("no such thing")


def _wait(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.001)


def test_a_raising_done_callback_is_logged_and_the_next_one_runs(
    store_loop: StoreLoop, caplog: pytest.LogCaptureFixture
) -> None:
    bridge = HandDriven(store_loop)
    ran: list[int] = []
    call = bridge.call(asyncio.sleep(0))
    call.add_done_callback(lambda future: 1 / 0)  # type: ignore[arg-type, return-value]
    call.add_done_callback(lambda future: ran.append(1))
    _wait(call.done)
    with caplog.at_level(logging.ERROR, logger="chats_store.gui"):
        bridge._drain()
    assert ran == [1] and "done-callback raised" in caplog.records[0].getMessage()


def test_a_closed_bridge_refuses_and_closes_the_coroutine(
    store_loop: StoreLoop, store: Store[ChatsState]
) -> None:
    bridge = HandDriven(store_loop)
    binding = bridge.bind(connection(store), print)
    bridge.close()
    bridge.close()  # again: harmless
    assert binding.disposed

    coroutine = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="the bridge is closed; create a new one"):
        bridge.call(coroutine)
    assert coroutine.cr_frame is None  # closed: no "never awaited" warning
    with pytest.raises(RuntimeError, match="the bridge is closed"):
        bridge.bind(connection(store), print)


def test_a_bridge_on_a_stopped_loop_says_so() -> None:
    store_loop = StoreLoop()
    bridge = HandDriven(store_loop)
    store_loop.stop()
    with pytest.raises(RuntimeError, match="the store's loop is stopped"):
        bridge.call(asyncio.sleep(0))
