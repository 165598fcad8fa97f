"""The runtime half of the core: the Store and its getters (reactivex observables).

Cost model, which the rest of the package relies on:

* ``dispatch`` runs the pure reducer once. If the state object is unchanged
  (``is``), nothing else happens.
* Only getters that currently have subscribers are *tracked*; an unsubscribed
  getter costs nothing per dispatch and computes ``.value`` lazily on read.
* Tracked getters are indexed by *scope* (for the Chats module, a chat id). The
  store asks ``scope_of(action)`` which scope an action can change; the getters of
  other scopes are not even looked at. ``None`` means "any scope" (rare actions
  such as a connection status change).
* A tracked getter first extracts its *input* (for a chat getter, the chat's
  state object) and stops if it is the same object as last time; only then does
  it project its value and compare with ``is`` first, ``==`` second, and emit only
  when the value really changed.

So a dispatch costs the reducer plus O(getters of the changed scope), whatever
the total number of live getters.

Threading: a Store belongs to one thread (in practice the asyncio loop that runs
its effects). Views on another thread use ``observe_on`` with their scheduler.
"""

from __future__ import annotations

import logging
import weakref
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar, cast

from reactivex import Observable, abc
from reactivex.disposable import Disposable

from chats_store.core.reducer import Command, Reducer

__all__ = ["Getter", "Store"]

S = TypeVar("S")
I = TypeVar("I")  # noqa: E741 - the conventional name for a getter's input type
T = TypeVar("T")

logger = logging.getLogger("chats_store.core")


class _Unset:
    __slots__ = ()


_UNSET: Any = _Unset()


def _refuse_commands(command: Command) -> None:
    raise RuntimeError(
        f"the store produced {command!r} but has no command interpreter; "
        "pass interpreter= to Store or call Store.set_interpreter"
    )


class Getter(Observable[T], Generic[T]):
    """The spec's ``IGetter<T>``: an observable of one selected value.

    Contract:

    * ``value`` is the current value, read synchronously at any time.
    * A new subscriber immediately receives the current value, then every change.
    * It emits only when the value changes (``is`` first, then ``==``); an equal
      but new object is not emitted and does not replace the old one, so the
      emitted objects are stable for views that compare by identity.
    * An exception raised by a subscriber is logged on the ``chats_store.core``
      logger and detaches that subscriber; it never breaks the store or other views.

    Getters are created by their module (``chats.get_chat_status(chat_id)``), which
    memoizes them: the same arguments give the same object.
    """

    def __init__(
        self,
        store: Store[Any],
        input_of: Callable[[Any], Any],
        project: Callable[[Any], T],
        scope: Hashable | None,
    ) -> None:
        super().__init__()
        self._store = store
        self._input_of = input_of
        self._project = project
        self.scope = scope
        self._observers: list[abc.ObserverBase[T]] = []
        self._input: Any = _UNSET
        self._value: T = _UNSET

    @property
    def value(self) -> T:
        """The current value (always that of the store's current state)."""
        self._refresh(self._store.state)
        return self._value

    def _refresh(self, state: Any) -> None:
        input_ = self._input_of(state)
        if input_ is self._input:
            return
        self._input = input_
        value = self._project(input_)
        current = self._value
        if value is current or value == current:
            return
        self._value = value
        for observer in tuple(self._observers):
            self._emit(observer, value)

    def _emit(self, observer: abc.ObserverBase[T], value: T) -> None:
        try:
            observer.on_next(value)
        except Exception:
            logger.exception("a getter subscriber raised; it has been detached")
            self._detach(observer)

    def _detach(self, observer: abc.ObserverBase[T]) -> None:
        try:
            self._observers.remove(observer)
        except ValueError:
            return
        if not self._observers:
            self._store._untrack(self)

    def _subscribe_core(
        self, observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        if not self._observers:
            self._refresh(self._store.state)
            self._store._track(self)
        self._observers.append(observer)
        self._emit(observer, self._value)
        return Disposable(lambda: self._detach(observer))


class Store(Generic[S]):
    """A Redux-style store: one state, a pure reducer, commands run by an interpreter.

    ``dispatch`` is synchronous: when it returns, the state is reduced, every
    tracked getter whose value changed has emitted, and every command has been
    handed to the interpreter. An action dispatched while another one is being
    processed (for instance from a subscriber) is queued and processed right
    after, in order, so subscribers always see states in dispatch order.
    A reducer or interpreter that raises is a bug: the error propagates to the
    caller of the outermost ``dispatch`` and actions queued meanwhile are dropped.
    """

    def __init__(
        self,
        reducer: Reducer[S],
        initial_state: S,
        *,
        scope_of: Callable[[Any], Hashable | None] = lambda action: None,
        interpreter: Callable[[Command], None] = _refuse_commands,
    ) -> None:
        self._reducer = reducer
        self._state = initial_state
        self._scope_of = scope_of
        self._interpreter = interpreter
        self._dispatching = False
        self._queue: deque[Any] = deque()
        self._unscoped: dict[Getter[Any], None] = {}
        self._scoped: dict[Hashable, dict[Getter[Any], None]] = {}
        # Weak: a getter nobody holds and nobody subscribes to may be collected.
        self._getters: weakref.WeakValueDictionary[Hashable, Getter[Any]] = (
            weakref.WeakValueDictionary()
        )

    @property
    def state(self) -> S:
        """The current state (immutable; replaced, never mutated, by dispatch)."""
        return self._state

    def set_interpreter(self, interpreter: Callable[[Command], None]) -> None:
        """Set the function that carries out the commands the reducer returns."""
        self._interpreter = interpreter

    def dispatch(self, action: Any) -> None:
        """Reduce ``action``, notify the getters that changed, run its commands."""
        if self._dispatching:
            self._queue.append(action)
            return
        self._dispatching = True
        try:
            self._apply(action)
            while self._queue:
                self._apply(self._queue.popleft())
        finally:
            self._queue.clear()
            self._dispatching = False

    def getter(
        self,
        key: Hashable,
        input_of: Callable[[S], I],
        project: Callable[[I], T],
        *,
        scope: Hashable | None = None,
    ) -> Getter[T]:
        """The getter for ``key``, created on first use and memoized afterwards.

        Memoized while alive: as long as anyone holds or subscribes to the getter,
        the same ``key`` returns the same object.

        ``input_of`` must be cheap (an attribute or dict lookup) and return the
        same object while the relevant part of the state is unchanged; ``project``
        turns that input into the value. ``scope`` says which actions can change
        the input (see ``scope_of`` in the module docstring); ``None`` means any.
        """
        getter = self._getters.get(key)
        if getter is None:
            getter = Getter(self, input_of, project, scope)
            self._getters[key] = getter
        return cast(Getter[T], getter)

    def _apply(self, action: Any) -> None:
        step = self._reducer(self._state, action)
        if step.state is not self._state:
            self._state = step.state
            self._notify(step.state, self._scope_of(action))
        for command in step.commands:
            self._interpreter(command)

    def _notify(self, state: S, scope: Hashable | None) -> None:
        if scope is None:
            for getters in tuple(self._scoped.values()):
                for getter in tuple(getters):
                    getter._refresh(state)
        else:
            scoped = self._scoped.get(scope)
            if scoped:
                for getter in tuple(scoped):
                    getter._refresh(state)
        if self._unscoped:
            for getter in tuple(self._unscoped):
                getter._refresh(state)

    def _track(self, getter: Getter[Any]) -> None:
        if getter.scope is None:
            self._unscoped[getter] = None
        else:
            self._scoped.setdefault(getter.scope, {})[getter] = None

    def _untrack(self, getter: Getter[Any]) -> None:
        if getter.scope is None:
            self._unscoped.pop(getter, None)
            return
        scoped = self._scoped.get(getter.scope)
        if scoped is not None:
            scoped.pop(getter, None)
            if not scoped:
                del self._scoped[getter.scope]
