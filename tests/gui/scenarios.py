"""The GUI bridge scenarios, run by test_qt.py and test_tk.py with each real toolkit.

A ``Toolkit`` drives one toolkit's real event loop on the test's main thread (the GUI
thread); every scenario has ann's store on its own loop and bob posting through the
real server (``tests/gui/network.py``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import pytest

from chats_store import ChatSummary, Message, WrongThreadError
from chats_store.gui.bridge import GuiBridge
from chats_store.gui.loop import StoreLoop
from tests.gui.network import CHAT, ChatNet, TickProbe
from tests.gui.toolkits import Predicate

T = TypeVar("T")


class Toolkit(Protocol):
    def bridge(self, store: StoreLoop) -> GuiBridge:
        """A bridge of this toolkit, created on the GUI thread."""

    def run_until(self, predicate: Predicate, timeout: float = 5.0) -> None:
        """Run the toolkit's event loop until ``predicate()``; AssertionError on time-out."""

    def widget(self) -> Any:
        """A new window (to own bindings)."""

    def destroy(self, widget: Any) -> None:
        """Close ``widget`` as a user would; it is destroyed once the event loop runs."""


def contents(messages: Sequence[Message] | None) -> list[str]:
    return [message.content for message in messages or ()]


def run_for(toolkit: Toolkit, seconds: float) -> None:
    """Run the toolkit's event loop for ``seconds``."""
    deadline = time.monotonic() + seconds
    toolkit.run_until(lambda: time.monotonic() >= deadline, timeout=seconds + 5)


def in_other_thread(function: Callable[[], T]) -> T:
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="worker") as pool:
        return pool.submit(function).result(timeout=5)


def values_arrive_on_the_gui_thread(toolkit: Toolkit, net: ChatNet) -> None:
    bridge = toolkit.bridge(net.store)
    gui = threading.get_ident()
    threads: list[int] = []
    shown: list[list[str]] = []
    rows: list[ChatSummary] = []
    sent: list[Message] = []

    def show(messages: Sequence[Message] | None) -> None:
        threads.append(threading.get_ident())
        shown.append(contents(messages))

    def row(summary: ChatSummary) -> None:
        threads.append(threading.get_ident())
        rows.append(summary)

    bridge.bind(net.ann.get_chat_messages(CHAT), show)
    bridge.bind(net.ann.get_chat_summary(CHAT), row)
    net.bob_says("hello ann", "how are you?")
    call = bridge.call(net.ann.send_message(CHAT, "fine, thanks"))
    call.add_done_callback(
        lambda future: (threads.append(threading.get_ident()), sent.append(future.result()))
    )

    expected = ["hello ann", "how are you?", "fine, thanks"]
    toolkit.run_until(
        lambda: bool(sent and shown and shown[-1] == expected and rows[-1].unread_count == 2)
    )
    assert set(threads) == {gui}
    assert sent[0].content == "fine, thanks" and sent[0].status == "ready"
    assert rows[-1].last_message is not None and rows[-1].members_amount == 2
    bridge.close()


def a_main_loop_started_late_gets_everything(toolkit: Toolkit, net: ChatNet) -> None:
    bridge = toolkit.bridge(net.store)
    shown: list[list[str]] = []
    sent: list[Message] = []
    bridge.bind(net.ann.get_chat_messages(CHAT), lambda messages: shown.append(contents(messages)))
    call = bridge.call(net.ann.send_message(CHAT, "before the loop"))
    call.add_done_callback(lambda future: sent.append(future.result()))
    net.bob_says("one", "two")
    net.ann_holds(3)
    time.sleep(2.0)  # a splash screen, settings loading: no GUI event loop yet
    assert shown == [] and sent == []

    toolkit.run_until(lambda: bool(shown and sent))
    assert sorted(shown[-1]) == ["before the loop", "one", "two"]
    assert len(shown) == 1  # every value of the wait conflated into the latest
    assert sent[0].status == "ready"
    bridge.close()


def a_slow_view_does_not_stall_the_store(toolkit: Toolkit, net: ChatNet) -> None:
    bridge = toolkit.bridge(net.store)
    renders: list[list[str]] = []
    ticks: list[int] = []  # how often the store's loop woke during each render
    probe = TickProbe(net.store)

    def render(messages: Sequence[Message] | None) -> None:
        before = probe.ticks
        time.sleep(0.3)  # a slow view
        ticks.append(probe.ticks - before)
        renders.append(contents(messages))

    bridge.bind(net.ann.get_chat_messages(CHAT), render)
    toolkit.run_until(lambda: renders == [[]])
    burst = [f"message {n}" for n in range(20)]
    net.bob_says(*burst, wait=False)

    toolkit.run_until(lambda: bool(renders) and renders[-1] == burst, timeout=15)
    probe.stop()
    # A render that blocked the store's loop would leave its count at 0; one that does
    # not sees about 30 wake-ups, fewer when the machine or a collection pauses the
    # process (a timing threshold would fail then: the property is that it ran).
    assert max(ticks) >= 10, f"the store's loop barely ran during the renders: {ticks}"
    assert len(renders) <= 6, f"{len(renders)} renders for a burst of 20: no conflation"
    bridge.close()


def calls_from_the_wrong_thread_raise(toolkit: Toolkit, net: ChatNet) -> None:
    bridge = toolkit.bridge(net.store)
    messages = net.ann.get_chat_messages(CHAT)

    with pytest.raises(WrongThreadError, match="on the GUI thread that created the bridge"):
        in_other_thread(lambda: bridge.bind(messages, print))
    with pytest.raises(WrongThreadError, match=r"GuiBridge\.call"):
        in_other_thread(lambda: bridge.call(net.ann.send_message(CHAT, "from a worker")))
    with pytest.raises(WrongThreadError, match="a Chats action must run on the asyncio loop"):
        asyncio.run(net.ann.send_message(CHAT, "from the GUI thread"))
    with pytest.raises(WrongThreadError, match="subscribing to a getter"):
        messages.subscribe(print)

    slow = bridge.call(asyncio.sleep(0.3, result="late"))
    with pytest.raises(concurrent.futures.InvalidStateError, match="would block the GUI thread"):
        slow.result()
    results: list[str] = []
    slow.add_done_callback(lambda future: results.append(future.result()))
    toolkit.run_until(lambda: results == ["late"])
    assert slow.result() == "late"
    assert net.store.run(_contents(net.ann)) == []  # nothing was sent
    bridge.close()


async def _contents(chats: Any) -> list[str]:
    return contents(chats.get_chat_messages(CHAT).value)


async def _subscribers(getter: Any) -> int:
    return len(getter._subscribers)


def a_destroyed_owner_disposes_its_bindings(toolkit: Toolkit, net: ChatNet) -> None:
    bridge = toolkit.bridge(net.store)
    window = toolkit.widget()
    getter = net.ann.get_chat_messages(CHAT)
    shown: list[list[str]] = []
    bridge.bind(getter, lambda messages: shown.append(contents(messages)), owner=window)
    toolkit.run_until(lambda: shown == [[]])
    assert net.store.run(_subscribers(getter)) == 1

    toolkit.destroy(window)
    run_for(toolkit, 0.1)
    net.bob_says("after the close")
    net.ann_holds(1)
    run_for(toolkit, 0.2)
    assert shown == [[]]
    assert net.store.run(_subscribers(getter)) == 0
    bridge.close()
