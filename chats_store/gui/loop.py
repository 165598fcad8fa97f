"""``StoreLoop``: an asyncio loop on a thread of its own, where a GUI app's store lives.

Create the ``Chats`` module (and its WebSocket module) *on* that loop, e.g. in a
coroutine passed to :meth:`StoreLoop.run` at start-up, so that they belong to it;
then reach them from the GUI thread through a bridge (:mod:`chats_store.gui.qt`,
:mod:`chats_store.gui.tk`), never directly.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

from chats_store.errors import WrongThreadError

__all__ = ["StoreLoop"]

T = TypeVar("T")


class StoreLoop:
    """An asyncio event loop running on a daemon thread until :meth:`stop`.

    Thread-safe: every method may be called from any thread (``run`` from any thread
    but the loop's own). Also a context manager that stops the loop on exit.
    """

    def __init__(self, name: str = "chats-store") -> None:
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        self.loop.call_soon(started.set)
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()
        started.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @property
    def is_running(self) -> bool:
        """True until :meth:`stop`."""
        return self.loop.is_running() and not self.loop.is_closed()

    def in_loop_thread(self) -> bool:
        """Whether the caller runs on the loop's thread."""
        return threading.current_thread() is self.thread

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coroutine`` on the loop; returns its ``concurrent.futures.Future``.

        Never blocks. Do not call ``.result()`` on it from a GUI callback (a frozen
        window); a bridge's ``call`` delivers the outcome on the GUI thread instead.
        """
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coroutine`` on the loop and wait for its result (start-up, shut-down).

        Blocks the caller: use it before the GUI's main loop starts or after it ends.
        Raises :class:`WrongThreadError` on the loop's own thread (it would wait for
        itself) and ``TimeoutError`` after ``timeout`` seconds.
        """
        if self.in_loop_thread():
            coroutine.close()
            raise WrongThreadError(
                "StoreLoop.run waits for the loop and cannot be called on the loop's own "
                "thread: await the coroutine there instead"
            )
        return self.submit(coroutine).result(timeout)

    def call_soon(self, function: Callable[..., object], *args: object) -> None:
        """Call ``function(*args)`` on the loop's thread, soon; never blocks."""
        self.loop.call_soon_threadsafe(function, *args)

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel the tasks still running on the loop, stop it, join the thread, close it.

        Disconnect and close the modules first (``run(websocket.disconnect())``,
        ``run(chats.close())``); what is left is cancelled. Stopping twice is harmless.
        """
        if self.loop.is_closed():
            return
        if self.thread.is_alive():
            self.run(_cancel_other_tasks(), timeout)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout)
        self.loop.close()

    def __enter__(self) -> StoreLoop:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


async def _cancel_other_tasks() -> None:
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.get_running_loop().shutdown_asyncgens()
