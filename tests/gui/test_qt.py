"""QtBridge with the real Qt (PySide6, offscreen) against the real server and a second
client: the scenarios of tests/gui/scenarios.py, plus Qt's own checks."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("PySide6.QtWidgets", reason="PySide6 is not installed")

from chats_store import WrongThreadError
from chats_store.gui.qt import QtBridge
from tests.gui import scenarios
from tests.gui.network import ChatNet
from tests.gui.toolkits import QtToolkit


@pytest.fixture
def qt(qt_app: Any) -> QtToolkit:
    return QtToolkit(qt_app)


def test_qt_values_arrive_on_the_gui_thread(qt: QtToolkit, net: ChatNet) -> None:
    scenarios.values_arrive_on_the_gui_thread(qt, net)


def test_qt_an_event_loop_started_two_seconds_late_gets_everything(
    qt: QtToolkit, net: ChatNet
) -> None:
    scenarios.a_main_loop_started_late_gets_everything(qt, net)


def test_qt_a_slow_view_does_not_stall_the_store(qt: QtToolkit, net: ChatNet) -> None:
    scenarios.a_slow_view_does_not_stall_the_store(qt, net)


def test_qt_calls_from_the_wrong_thread_raise(qt: QtToolkit, net: ChatNet) -> None:
    scenarios.calls_from_the_wrong_thread_raise(qt, net)
    with pytest.raises(WrongThreadError, match="Qt GUI thread"):
        scenarios.in_other_thread(lambda: QtBridge(net.store))


def test_qt_a_destroyed_window_disposes_its_bindings(qt: QtToolkit, net: ChatNet) -> None:
    scenarios.a_destroyed_owner_disposes_its_bindings(qt, net)
