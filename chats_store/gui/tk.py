"""``TkBridge``: the GUI bridge for tkinter applications.

Tk may be called only from the thread that created it, and only while its main loop
runs; ``after`` itself is a Tk call. So the store's thread never calls Tk: it puts
values and call outcomes in the bridge's mailbox, a thread-safe queue, and the Tk
thread drains it with an ``after`` timer every ``poll_interval`` seconds. A timer
set before ``mainloop()`` starts fires when it does: a main loop started late still
gets everything, and the store's loop never waits for Tk.
"""

from __future__ import annotations

import contextlib
import tkinter
from collections.abc import Callable
from typing import Any

from chats_store.gui.bridge import GuiBridge
from chats_store.gui.loop import StoreLoop

__all__ = ["TkBridge"]


def _polled() -> None:
    """The mailbox's wake: nothing to do, the Tk thread polls (never a Tk call from here)."""


class TkBridge(GuiBridge):
    """The bridge of a Tk application: create it on the Tk thread, with its root window.

    ``bind(getter, on_value, owner=widget)`` disposes the binding when ``widget`` is
    destroyed (its ``<Destroy>`` event). Destroying ``root`` closes the bridge.
    ``poll_interval``: seconds between two drains of the mailbox (the most a value
    waits once the Tk loop is idle).
    """

    def __init__(
        self, root: tkinter.Misc, store_loop: StoreLoop, *, poll_interval: float = 0.02
    ) -> None:
        if not poll_interval > 0:
            raise ValueError(f"poll_interval must be positive, not {poll_interval!r}")
        super().__init__(store_loop, _polled)
        self._root = root
        self._interval_ms = max(1, round(poll_interval * 1000))
        self._watch_owner(root, self.close)
        self._timer = root.after(self._interval_ms, self._poll)

    def _poll(self) -> None:
        self._drain()
        if not self.closed:
            self._timer = self._root.after(self._interval_ms, self._poll)

    def _watch_owner(self, owner: Any, dispose: Callable[[], None]) -> None:
        if not isinstance(owner, tkinter.Misc):
            raise TypeError(f"owner must be a Tk widget, not {type(owner).__name__}")

        def on_destroy(event: tkinter.Event[Any]) -> None:
            if event.widget is owner:  # a toplevel also sees its children's <Destroy>
                dispose()

        owner.bind("<Destroy>", on_destroy, add="+")

    def close(self) -> None:
        """Dispose every binding and stop polling; closing twice is harmless."""
        if self.closed:
            return
        super().close()
        with contextlib.suppress(tkinter.TclError):  # a root being destroyed takes its timers
            self._root.after_cancel(self._timer)
