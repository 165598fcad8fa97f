"""TkBridge with the real Tk (under Xvfb when there is no display) against the real
server and a second client: the scenarios of tests/gui/scenarios.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

tkinter = pytest.importorskip("tkinter", reason="this Python has no tkinter")

from chats_store.gui.tk import TkBridge  # noqa: E402 - after the skip
from tests.gui import scenarios  # noqa: E402
from tests.gui.network import ChatNet  # noqa: E402
from tests.gui.toolkits import TkToolkit  # noqa: E402


@pytest.fixture
def tk(tk_root: Any) -> Iterator[TkToolkit]:
    toolkit = TkToolkit(tk_root)
    yield toolkit
    toolkit.window.destroy()


def test_tk_values_arrive_on_the_gui_thread(tk: TkToolkit, net: ChatNet) -> None:
    scenarios.values_arrive_on_the_gui_thread(tk, net)


def test_tk_a_mainloop_started_two_seconds_late_gets_everything(
    tk: TkToolkit, net: ChatNet
) -> None:
    scenarios.a_main_loop_started_late_gets_everything(tk, net)


def test_tk_a_slow_view_does_not_stall_the_store(tk: TkToolkit, net: ChatNet) -> None:
    scenarios.a_slow_view_does_not_stall_the_store(tk, net)


def test_tk_calls_from_the_wrong_thread_raise(tk: TkToolkit, net: ChatNet) -> None:
    scenarios.calls_from_the_wrong_thread_raise(tk, net)


def test_tk_a_destroyed_window_disposes_its_bindings(tk: TkToolkit, net: ChatNet) -> None:
    scenarios.a_destroyed_owner_disposes_its_bindings(tk, net)


def test_tk_destroying_the_bridges_window_closes_it(tk: TkToolkit, net: ChatNet) -> None:
    bridge = TkBridge(tk.window, net.store)
    binding = bridge.bind(net.ann.get_chat_messages("lobby"), print)
    tk.window.destroy()
    assert bridge.closed and binding.disposed
    with pytest.raises(RuntimeError, match="the bridge is closed"):
        bridge.bind(net.ann.get_chat_messages("lobby"), print)
