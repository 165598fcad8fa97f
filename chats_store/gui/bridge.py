"""What every GUI bridge shares: bindings, calls, and the mailbox between two threads.

A bridge is created on the GUI thread and used only there. It crosses to the store's
loop (a :class:`~chats_store.gui.loop.StoreLoop`) in both directions without ever
blocking either side:

* ``bind(getter, on_value)`` subscribes on the store's loop; each value the getter
  emits is put in a mailbox, and the toolkit is asked to run ``on_value`` with it on
  the GUI thread. Values are **conflated**: a binding holds only the latest value not
  yet delivered, so a slow view gets few calls in a burst, always ending with the
  last value, and the store's loop never waits for the view.
* ``call(coroutine)`` runs an action on the store's loop and returns a
  :class:`CallFuture` whose done-callbacks run on the GUI thread; its ``result()``
  never blocks.
* A binding is disposed by ``Binding.dispose()``, by ``close()`` (all of them), or
  when the ``owner`` widget it was bound with is destroyed; nothing reaches its
  ``on_value`` afterwards, even a value already in the mailbox.

A toolkit's bridge gives a ``wake`` function (called from the store's thread when
the mailbox stops being empty: have ``_drain`` run on the GUI thread; it must hold
nothing of the GUI) and implements ``_watch_owner`` (call a function when a widget
is destroyed). The store's thread holds only the mailbox and the bindings'
store-side slots, never a widget or a view callback. A call from another
thread than the GUI thread raises :class:`~chats_store.errors.WrongThreadError`; an
``on_value`` or done-callback that raises is logged on the ``chats_store.gui``
logger, and the binding that raised is disposed, as the store does with getter
subscribers.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

from reactivex.abc import DisposableBase

from chats_store.core.store import Getter
from chats_store.errors import WrongThreadError
from chats_store.gui.loop import StoreLoop

__all__ = ["Binding", "CallFuture", "GuiBridge"]

T = TypeVar("T")

logger = logging.getLogger("chats_store.gui")


class _Unset:
    __slots__ = ()


_UNSET: Any = _Unset()


class _Mailbox:
    """The store's side of a bridge: values and finished calls waiting for the GUI thread.

    It holds nothing of the GUI (no widget, no view callback, no toolkit object that
    must die on the GUI thread; ``wake`` must not hold one either): what the store's
    thread lets go of may be freed there, and Tk, for one, aborts the process when
    one of its objects is freed off its thread.
    """

    __slots__ = ("lock", "pending", "wake")

    def __init__(self, wake: Callable[[], None]) -> None:
        self.lock = threading.Lock()
        self.pending: list[_Slot[Any] | concurrent.futures.Future[Any]] = []
        self.wake = wake

    def post(self, item: _Slot[Any] | concurrent.futures.Future[Any]) -> None:
        """Any thread: add ``item``; wake the GUI thread if the mailbox was empty."""
        with self.lock:
            self.pending.append(item)
            first = len(self.pending) == 1
        if first:
            self.wake()

    def take(self) -> list[tuple[_Slot[Any] | concurrent.futures.Future[Any], Any]]:
        """GUI thread: everything posted, each slot with its latest value (then reset)."""
        with self.lock:
            pending, self.pending = self.pending, []
            taken: list[tuple[_Slot[Any] | concurrent.futures.Future[Any], Any]] = []
            for item in pending:
                if isinstance(item, _Slot):
                    taken.append((item, item.latest))
                    item.latest = _UNSET
                    item.queued = False
                else:
                    taken.append((item, None))
        return taken


class _Slot(Generic[T]):
    """The store's side of one binding: its subscription and its latest value."""

    __slots__ = ("disposed", "getter", "latest", "mailbox", "queued", "subscription")

    def __init__(self, getter: Getter[T], mailbox: _Mailbox) -> None:
        self.getter = getter
        self.mailbox = mailbox
        self.latest: T = _UNSET  # guarded by the mailbox's lock
        self.queued = False  # guarded by the mailbox's lock
        self.subscription: DisposableBase | None = None  # store's thread only
        self.disposed = False  # set on the GUI thread, read on the store's

    def subscribe(self) -> None:
        """Store's thread."""
        if not self.disposed:
            self.subscription = self.getter.subscribe(self.post)

    def unsubscribe(self) -> None:
        """Store's thread."""
        subscription, self.subscription = self.subscription, None
        if subscription is not None:
            subscription.dispose()

    def post(self, value: T) -> None:
        """Store's thread: keep ``value`` as the latest; queue the slot once."""
        mailbox = self.mailbox
        with mailbox.lock:
            self.latest = value
            if self.queued:
                return
            self.queued = True
            mailbox.pending.append(self)
            first = len(mailbox.pending) == 1
        if first:
            mailbox.wake()


class Binding(Generic[T]):
    """One getter bound to one GUI callback (see :meth:`GuiBridge.bind`)."""

    __slots__ = ("_bridge", "_on_value", "_slot")

    def __init__(self, bridge: GuiBridge, slot: _Slot[T], on_value: Callable[[T], None]) -> None:
        self._bridge = bridge
        self._slot = slot
        self._on_value = on_value

    @property
    def disposed(self) -> bool:
        """True once disposed (by ``dispose``, its owner's destruction, ``close``)."""
        return self._slot.disposed

    def dispose(self) -> None:
        """Stop delivering at once (GUI thread); unsubscribe on the store's loop."""
        self._bridge._check_thread("Binding.dispose")
        self._bridge._forget(self)

    def _deliver(self, value: T) -> None:
        if self._slot.disposed:
            return
        try:
            self._on_value(value)
        except Exception:
            logger.exception("a bound view raised; its binding has been disposed")
            self._bridge._forget(self)


class CallFuture(Generic[T]):
    """The outcome of :meth:`GuiBridge.call`, read on the GUI thread without blocking.

    ``add_done_callback(fn)`` runs ``fn(future)`` on the GUI thread once the call has
    finished (also when added afterwards); ``result()`` and ``exception()`` raise
    ``concurrent.futures.InvalidStateError`` while it is running instead of blocking
    the GUI thread.
    """

    __slots__ = ("_bridge", "_callbacks", "_finished", "_future")

    def __init__(self, bridge: GuiBridge, future: concurrent.futures.Future[T]) -> None:
        self._bridge = bridge
        self._future = future
        self._callbacks: list[Callable[[CallFuture[T]], None]] = []
        self._finished = False  # the completion has been delivered on the GUI thread

    def done(self) -> bool:
        """True once the call has finished (succeeded, failed or been cancelled)."""
        return self._future.done()

    def _finished_future(self, method: str) -> concurrent.futures.Future[T]:
        if not self._future.done():
            raise concurrent.futures.InvalidStateError(
                f"CallFuture.{method}() before the call finished would block the GUI "
                "thread: use add_done_callback(fn), which runs fn(future) on the GUI "
                "thread when it is done"
            )
        return self._future

    def result(self) -> T:
        """The call's return value, or its exception raised; the call must be done."""
        return self._finished_future("result").result()

    def exception(self) -> BaseException | None:
        """The call's exception (None if it succeeded); the call must be done."""
        return self._finished_future("exception").exception()

    def cancel(self) -> bool:
        """Cancel the call if it is still running (its coroutine gets CancelledError)."""
        return self._future.cancel()

    def add_done_callback(self, callback: Callable[[CallFuture[T]], None]) -> None:
        """Run ``callback(self)`` on the GUI thread when the call is done."""
        self._bridge._check_thread("CallFuture.add_done_callback")
        self._callbacks.append(callback)
        if self._finished:
            self._bridge._expect(self)
            self._bridge._mailbox.post(self._future)

    def _complete(self) -> None:
        """GUI thread: the call is done; run the callbacks not run yet, in order."""
        self._finished = True
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:
                logger.exception("a call's done-callback raised")


class GuiBridge(ABC):
    """Calls and getter values between one GUI thread and a :class:`StoreLoop`.

    Create it on the GUI thread (the toolkit's own subclass: ``QtBridge``,
    ``TkBridge``); every method must be called there. Coroutines given to
    :meth:`call` run on the store's thread: they must not touch (nor hold) widgets.
    """

    def __init__(self, store_loop: StoreLoop, wake: Callable[[], None]) -> None:
        """``wake``: called from the store's thread when the mailbox stops being empty;
        it must have :meth:`_drain` run on the GUI thread, and hold no GUI object."""
        self.store_loop = store_loop
        self._thread_id = threading.get_ident()
        self._thread_name = threading.current_thread().name
        self._mailbox = _Mailbox(wake)
        self._bindings: dict[_Slot[Any], Binding[Any]] = {}
        self._calls: dict[concurrent.futures.Future[Any], CallFuture[Any]] = {}
        self.closed = False

    @abstractmethod
    def _watch_owner(self, owner: Any, dispose: Callable[[], None]) -> None:
        """GUI thread: call ``dispose()`` when the widget ``owner`` is destroyed."""

    # Public API (GUI thread) -----------------------------------------------------

    def bind(
        self, getter: Getter[T], on_value: Callable[[T], None], *, owner: Any = None
    ) -> Binding[T]:
        """Call ``on_value(value)`` on the GUI thread with the getter's values.

        First the current value, then the latest of each change, conflated (a view
        busy rendering gets only the newest value when it is ready again).
        ``owner``: a widget whose destruction disposes the binding.
        """
        self._check_open("bind")
        slot = _Slot(getter, self._mailbox)
        binding = Binding(self, slot, on_value)
        if owner is not None:
            self._watch_owner(owner, lambda: self._forget(binding))
        self._bindings[slot] = binding
        self.store_loop.call_soon(slot.subscribe)
        return binding

    def call(self, coroutine: Coroutine[Any, Any, T]) -> CallFuture[T]:
        """Run ``coroutine`` (an action: ``chats.send_message(...)``) on the store's loop.

        Returns at once with a :class:`CallFuture`; its done-callbacks run on the GUI
        thread.
        """
        try:
            self._check_open("call")
        except BaseException:
            coroutine.close()
            raise
        future = self.store_loop.submit(coroutine)
        call = CallFuture(self, future)
        self._expect(call)
        future.add_done_callback(self._mailbox.post)  # holds the mailbox, not the bridge
        return call

    def close(self) -> None:
        """Dispose every binding and stop delivering; closing twice is harmless."""
        self._check_thread("GuiBridge.close")
        if self.closed:
            return
        for binding in list(self._bindings.values()):
            self._forget(binding)
        self.closed = True
        self._calls.clear()
        self._mailbox.take()

    # Internals -------------------------------------------------------------------

    def _check_thread(self, what: str) -> None:
        if threading.get_ident() != self._thread_id:
            raise WrongThreadError(
                f"{what} must be called on the GUI thread that created the bridge (thread "
                f"{self._thread_name!r}), not on thread {threading.current_thread().name!r}; "
                "on the store's loop, use the getters and actions directly"
            )

    def _check_open(self, what: str) -> None:
        self._check_thread(f"GuiBridge.{what}")
        if self.closed:
            raise RuntimeError(f"GuiBridge.{what}: the bridge is closed; create a new one")
        if not self.store_loop.is_running:
            raise RuntimeError(f"GuiBridge.{what}: the store's loop is stopped")

    def _expect(self, call: CallFuture[Any]) -> None:
        if not self.closed:
            self._calls[call._future] = call

    def _forget(self, binding: Binding[Any]) -> None:
        """GUI thread: dispose ``binding`` (again: no effect)."""
        slot = binding._slot
        if slot.disposed:
            return
        slot.disposed = True
        self._bindings.pop(slot, None)
        if self.store_loop.is_running:
            self.store_loop.call_soon(slot.unsubscribe)

    def _drain(self) -> None:
        """GUI thread: deliver what the mailbox holds (each binding's latest value once)."""
        for item, value in self._mailbox.take():
            if isinstance(item, _Slot):
                binding = self._bindings.get(item)
                if binding is not None:
                    binding._deliver(value)
            else:
                call = self._calls.pop(item, None)
                if call is not None:
                    call._complete()
