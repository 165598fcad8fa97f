"""Drivers of the real toolkits' event loops, on the caller's (GUI) thread.

``QtToolkit`` runs a ``QEventLoop`` (what ``app.exec()`` runs), ``TkToolkit`` Tk's
``mainloop``, each until a condition holds. PySide6 and tkinter are imported only
when a driver is made.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from chats_store.gui.bridge import GuiBridge
from chats_store.gui.loop import StoreLoop

Predicate = Callable[[], bool]


class QtToolkit:
    """Qt's event loop; windows are ``QWidget``s deleted when closed."""

    def __init__(self, app: Any) -> None:
        from PySide6 import QtCore, QtWidgets

        self.app, self.core, self.widgets = app, QtCore, QtWidgets

    def bridge(self, store: StoreLoop) -> GuiBridge:
        from chats_store.gui.qt import QtBridge

        return QtBridge(store)

    def run_until(self, predicate: Predicate, timeout: float = 5.0) -> None:
        """Run the event loop until ``predicate()``; AssertionError on time-out."""
        deadline = time.monotonic() + timeout
        loop = self.core.QEventLoop()
        timer = self.core.QTimer()
        timer.setInterval(10)
        timer.timeout.connect(lambda: (predicate() or time.monotonic() > deadline) and loop.quit())
        timer.start()
        loop.exec()
        timer.stop()
        assert predicate(), f"still false after {timeout} s"

    def widget(self) -> Any:
        window = self.widgets.QWidget()
        window.setAttribute(self.core.Qt.WidgetAttribute.WA_DeleteOnClose)
        window.show()
        return window

    def destroy(self, widget: Any) -> None:
        widget.close()  # WA_DeleteOnClose: deleted by the event loop, "destroyed" emitted


class TkToolkit:
    """Tk's main loop; ``window`` is the app's main window, a ``Toplevel`` of ``root``."""

    def __init__(self, root: Any) -> None:
        import tkinter

        self.tkinter = tkinter
        self.root = root
        self.window = tkinter.Toplevel(root)

    def bridge(self, store: StoreLoop) -> GuiBridge:
        from chats_store.gui.tk import TkBridge

        return TkBridge(self.window, store)

    def run_until(self, predicate: Predicate, timeout: float = 5.0) -> None:
        """Run ``mainloop`` until ``predicate()``; AssertionError on time-out."""
        deadline = time.monotonic() + timeout

        def check() -> None:
            if predicate() or time.monotonic() > deadline:
                self.root.quit()
            else:
                self.root.after(10, check)

        self.root.after(0, check)
        self.root.mainloop()
        assert predicate(), f"still false after {timeout} s"

    def widget(self) -> Any:
        return self.tkinter.Toplevel(self.root)

    def destroy(self, widget: Any) -> None:
        widget.destroy()
