"""QtBridge with the real Qt (PySide6, offscreen) against the real server and a second
client: the scenarios of tests/gui/scenarios.py, plus Qt's own checks."""

from __future__ import annotations

import time
from typing import Any

import pytest

QtCore = pytest.importorskip("PySide6.QtCore", reason="PySide6 is not installed")
QtWidgets = pytest.importorskip("PySide6.QtWidgets")

from chats_store import WrongThreadError  # noqa: E402 - after the skip
from chats_store.gui.bridge import GuiBridge  # noqa: E402
from chats_store.gui.loop import StoreLoop  # noqa: E402
from chats_store.gui.qt import QtBridge  # noqa: E402
from tests.gui import scenarios  # noqa: E402
from tests.gui.conftest import ChatNet, Predicate  # noqa: E402


class Qt:
    """Qt's event loop on the test's thread (a QEventLoop, as ``app.exec()`` runs one)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def bridge(self, store: StoreLoop) -> GuiBridge:
        return QtBridge(store)

    def run_until(self, predicate: Predicate, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        loop = QtCore.QEventLoop()
        timer = QtCore.QTimer()
        timer.setInterval(10)
        timer.timeout.connect(lambda: (predicate() or time.monotonic() > deadline) and loop.quit())
        timer.start()
        loop.exec()
        timer.stop()
        assert predicate(), f"still false after {timeout} s"

    def widget(self) -> Any:
        window = QtWidgets.QWidget()
        window.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        window.show()
        return window

    def destroy(self, widget: Any) -> None:
        widget.close()  # WA_DeleteOnClose: deleted by the event loop, "destroyed" emitted


@pytest.fixture
def qt(qt_app: Any) -> Qt:
    return Qt(qt_app)


def test_qt_values_arrive_on_the_gui_thread(qt: Qt, net: ChatNet) -> None:
    scenarios.values_arrive_on_the_gui_thread(qt, net)


def test_qt_an_event_loop_started_two_seconds_late_gets_everything(qt: Qt, net: ChatNet) -> None:
    scenarios.a_main_loop_started_late_gets_everything(qt, net)


def test_qt_a_slow_view_does_not_stall_the_store(qt: Qt, net: ChatNet) -> None:
    scenarios.a_slow_view_does_not_stall_the_store(qt, net)


def test_qt_calls_from_the_wrong_thread_raise(qt: Qt, net: ChatNet) -> None:
    scenarios.calls_from_the_wrong_thread_raise(qt, net)
    with pytest.raises(WrongThreadError, match="Qt GUI thread"):
        scenarios.in_other_thread(lambda: QtBridge(net.store))


def test_qt_a_destroyed_window_disposes_its_bindings(qt: Qt, net: ChatNet) -> None:
    scenarios.a_destroyed_owner_disposes_its_bindings(qt, net)
