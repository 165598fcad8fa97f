"""``QtBridge``: the GUI bridge for Qt applications (PySide6).

Values and call outcomes reach the GUI thread through a queued signal of a
``QObject`` that lives on the GUI thread: the store's thread only emits the signal
(thread-safe in Qt), Qt posts it to the GUI thread's event queue, and the slot drains
the bridge's mailbox there. Events posted before ``app.exec()`` starts wait in the
queue, so an event loop started late still gets everything. One signal is in flight
at a time, whatever the number of values.

Needs PySide6 (``pip install PySide6-Essentials``); importing :mod:`chats_store`
never imports Qt, only this module does.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, Qt, QThread, Signal, Slot

from chats_store.errors import WrongThreadError
from chats_store.gui.bridge import GuiBridge
from chats_store.gui.loop import StoreLoop

__all__ = ["QtBridge"]


class _Receiver(QObject):
    """Lives on the GUI thread; its queued ``woken`` signal runs ``drain`` there.

    Owned by the application (its parent), so the store's thread may let go of it,
    and it holds the bridge weakly: nothing of the GUI is freed off the GUI thread.
    """

    woken = Signal()

    def __init__(self, drain: Callable[[], None], app: QObject) -> None:
        super().__init__(app)
        self._drain = weakref.WeakMethod(drain)
        self.woken.connect(self._on_woken, Qt.ConnectionType.QueuedConnection)

    @Slot()
    def _on_woken(self) -> None:
        drain = self._drain()
        if drain is not None:
            drain()

    def wake(self) -> None:
        """Any thread: post ``woken`` to the GUI thread (nothing once deleted)."""
        with contextlib.suppress(RuntimeError):  # deleted by close(): nobody to wake
            self.woken.emit()


class QtBridge(GuiBridge):
    """The bridge of a Qt application: create it on the GUI thread, after the QApplication.

    ``bind(getter, on_value, owner=widget)`` disposes the binding when ``widget`` is
    destroyed (``destroyed`` signal: a window with ``WA_DeleteOnClose``, or
    ``deleteLater()``); otherwise dispose it, or ``close()`` the bridge, when the
    view closes.

    Raises ``RuntimeError`` without a ``QApplication`` and :class:`WrongThreadError`
    off the Qt GUI thread.
    """

    def __init__(self, store_loop: StoreLoop) -> None:
        app = QCoreApplication.instance()
        if app is None:
            raise RuntimeError("QtBridge needs a QApplication: create it first")
        if QThread.currentThread() is not app.thread():
            raise WrongThreadError(
                "QtBridge must be created on the Qt GUI thread (the QApplication's thread)"
            )
        self._receiver = _Receiver(self._drain, app)
        super().__init__(store_loop, self._receiver.wake)

    def _watch_owner(self, owner: Any, dispose: Callable[[], None]) -> None:
        if not isinstance(owner, QObject):
            raise TypeError(f"owner must be a QObject (a widget), not {type(owner).__name__}")
        owner.destroyed.connect(lambda *_: dispose())

    def close(self) -> None:
        """Dispose every binding and stop delivering; closing twice is harmless."""
        if not self.closed:
            super().close()
            self._receiver.deleteLater()
