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
* Within a scope, tracked getters are grouped by their *input function* (the
  same function object: the Chats facade gives all getters of a chat one
  function that returns the chat's state object). The store calls it once per
  group and dispatch, and skips the whole group when it returns the same object
  as last time. A getter made with a ``field`` (the one attribute of the input
  its projection reads: each of the facade's per-chat getters) is looked at only
  when that attribute is another object than at the group's last refresh; one
  ``getattr`` per attribute stands for all its getters. Each getter looked at
  projects its value and compares it with ``is`` first, ``==`` second (tuples of
  different lengths are told apart without ``==``, which would scan them), and
  emits only when the value really changed.
* An emission calls each subscriber's own ``on_next`` straight from a cached
  tuple (no reactivex ``AutoDetachObserver`` in between, no copy).
* Middleware (``Store.add_middleware``: action logs, recorders) costs one
  truthiness test of an empty tuple per dispatch when none is set, and one call
  per middleware and dispatched action otherwise.
* A derived getter (``Store.derive``) is tracked, like the getters it reads, in
  the scopes of its sources (in each of their stores); its input function reads
  its sources' values and returns the previous tuple of them when every one is
  the same object, so its projection runs only when a source's value changed.

So a dispatch costs the reducer plus one input call per group of the changed
scope, one ``getattr`` per attribute read by its getters, one projection per
getter of a changed attribute (or of no field) and one call per value delivered,
whatever the total number of live getters. For the Chats module's incoming
message that is 1 input call, 6 ``getattr`` and 1 projection (the messages');
``benchmarks/README.md`` has figures.

A projection that raises never reaches the code that dispatched: it is logged on
the ``chats_store.core`` logger, that getter keeps its previous value (and is
tried again when its input, or for a getter of a field that attribute, next
changes), and every other getter is refreshed.

Threading: a Store belongs to one asyncio loop, the one that runs its effects
(``Store.affinity``, a :class:`~chats_store.core.affinity.LoopAffinity`);
subscribing from another thread raises :class:`~chats_store.errors.WrongThreadError`.
GUI threads reach the store through :mod:`chats_store.gui`.
"""

from __future__ import annotations

import logging
import operator
import weakref
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar, cast, overload

from reactivex import Observable, abc
from reactivex.disposable import Disposable
from reactivex.scheduler import CurrentThreadScheduler

from chats_store.core.affinity import LoopAffinity
from chats_store.core.reducer import Command, Reducer

__all__ = ["EventStream", "Getter", "Middleware", "Store"]

S = TypeVar("S")
I = TypeVar("I")  # noqa: E741 - the conventional name for a getter's input type
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")
D = TypeVar("D")

logger = logging.getLogger("chats_store.core")


class _Unset:
    __slots__ = ()


_UNSET: Any = _Unset()

_NO_INPUT: Any = _Unset()
"""What a getter of a field keeps as its input while the input is None."""


def _read(input_: Any, field: str | None) -> Any:
    """What a getter of ``field`` reads of ``input_``: the input itself for None, else
    that attribute (``_NO_INPUT`` while the input is None)."""
    if field is None:
        return input_
    return _NO_INPUT if input_ is None else getattr(input_, field)


def _refuse_commands(command: Command) -> None:
    raise RuntimeError(
        f"the store produced {command!r} but has no command interpreter; "
        "pass interpreter= to Store or call Store.set_interpreter"
    )


def _equal(value: object, current: object) -> bool:
    """``value == current``, except that tuples of different lengths differ at once.

    CPython compares two tuples item by item even when their lengths differ, so
    ``==`` between a chat's messages tuple and the same tuple plus one new message
    walks the whole history (about 2.5 µs per 1,000 messages, more with cold
    caches). For exact tuples, different lengths mean different values.
    """
    if type(value) is tuple and type(current) is tuple and len(value) != len(current):
        return False
    return bool(value == current)


def _ignore(value: object) -> None:
    """The ``on_next`` of a detached subscriber (and of ``subscribe()`` without one)."""


class _Subscriber(Generic[T]):
    """One subscription to a getter: the subscriber's own ``on_next``, called directly.

    Detaching replaces ``on_next`` by a no-op. An emission that sees the
    subscribers change under it finishes over these records (see ``Getter._emit``),
    so a subscriber disposed by an earlier one receives nothing more, as with
    reactivex's ``AutoDetachObserver``.
    """

    __slots__ = ("on_next",)

    def __init__(self, on_next: Callable[[T], None]) -> None:
        self.on_next = on_next


Home = tuple["Store[Any]", Hashable | None]
"""Where a getter is tracked while it has subscribers: a store and a scope of it."""


class _Broadcast(Observable[T_co], Generic[T_co]):
    """A hot observable that hands each value straight to its subscribers' own
    ``on_next``: the delivery rules of :class:`Getter` and :class:`EventStream`.

    * Subscribers are called in the order they subscribed, from a cached tuple of
      their functions (no reactivex ``AutoDetachObserver`` in between, no copy per
      value); it is rebuilt on the first emission after a change.
    * A subscriber that raises is logged on the ``chats_store.core`` logger and
      detached; the others still receive the value.
    * Disposing a subscription stops its emissions at once, even in the middle of an
      emission to several subscribers.
    * Nothing ever completes nor fails: ``on_error`` and ``on_completed`` are never
      called.
    """

    __slots__ = ("_records", "_subscribers", "_targets")

    def __init__(self) -> None:
        super().__init__()
        # Ordered, removal in O(1). ``_targets`` caches the subscribers' functions as
        # a tuple, ``_records`` the matching records; both are rebuilt on the first
        # emission after a change (``_targets`` is None then), never copied per emission.
        self._subscribers: dict[_Subscriber[Any], None] = {}
        self._records: tuple[_Subscriber[Any], ...] = ()
        self._targets: tuple[Callable[[Any], None], ...] | None = ()

    def _emit(self, value: Any) -> None:
        targets = self._targets
        if targets is None:
            subscribers = self._records = tuple(self._subscribers)
            targets = self._targets = tuple([subscriber.on_next for subscriber in subscribers])
        records = self._records
        # The subscribers' own functions, called straight from a tuple; any subscribe
        # or detach meanwhile resets ``_targets``, and the rest goes the careful way.
        for done, on_next in enumerate(targets, 1):
            try:
                on_next(value)
            except Exception:
                logger.exception("a subscriber raised; it has been detached")
                self._detach(records[done - 1])
            if self._targets is not targets:
                self._emit_rest(value, records[done:])
                return

    def _emit_rest(self, value: Any, subscribers: tuple[_Subscriber[Any], ...]) -> None:
        """Emit to ``subscribers`` that are still attached (a detached one has a no-op)."""
        for subscriber in subscribers:
            try:
                subscriber.on_next(value)
            except Exception:
                logger.exception("a subscriber raised; it has been detached")
                self._detach(subscriber)

    def _attach(self, subscriber: _Subscriber[Any]) -> None:
        self._subscribers[subscriber] = None
        self._targets = None

    def _detach(self, subscriber: _Subscriber[Any]) -> None:
        if subscriber not in self._subscribers:
            return
        del self._subscribers[subscriber]
        subscriber.on_next = _ignore
        self._targets = None
        if not self._subscribers:
            self._unwatched()

    def _unwatched(self) -> None:
        """Called when the last subscriber has gone."""

    def _check_thread(self) -> None:
        """Raise where subscribing from the current thread is not allowed."""

    def subscribe(
        self,
        on_next: abc.ObserverBase[T_co] | abc.OnNext[T_co] | None = None,
        on_error: abc.OnError | None = None,
        on_completed: abc.OnCompleted | None = None,
        *,
        scheduler: abc.SchedulerBase | None = None,
    ) -> abc.DisposableBase:
        """Subscribe an observer or an ``on_next`` callback (see ``Observable.subscribe``).

        Like reactivex, the subscription runs on the current thread's trampoline.
        Raises :class:`~chats_store.errors.WrongThreadError` where the stream belongs
        to another thread (a getter: off its store's loop).
        """
        self._check_thread()
        if isinstance(on_next, abc.ObserverBase) or callable(getattr(on_next, "on_next", None)):
            on_next = cast(abc.ObserverBase[T_co], on_next).on_next
        subscriber: _Subscriber[Any] = _Subscriber(on_next or _ignore)
        trampoline = CurrentThreadScheduler.singleton()
        if trampoline.schedule_required():
            trampoline.schedule(lambda _scheduler, _state: self._attach(subscriber))
        else:
            self._attach(subscriber)
        return Disposable(lambda: self._detach(subscriber))

    def _subscribe_core(
        self, observer: abc.ObserverBase[T_co], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        self._check_thread()
        subscriber: _Subscriber[Any] = _Subscriber(observer.on_next)
        self._attach(subscriber)
        return Disposable(lambda: self._detach(subscriber))


class EventStream(_Broadcast[T]):
    """A stream of values with no current one (the server's events): each value
    passed to :meth:`emit` goes to the subscribers of that moment, under the rules of
    :class:`Getter`'s deliveries (see ``_Broadcast``). A subscriber misses what came
    before it. Not thread-safe: subscribe and dispose on the thread that emits, or
    before anything is emitted (the Chats module subscribes to its connection's
    events when it is built)."""

    __slots__ = ()

    def emit(self, value: T) -> None:
        """Hand ``value`` to every current subscriber."""
        self._emit(value)


class Getter(_Broadcast[T_co], Generic[T_co]):
    """The spec's ``IGetter<T>``: an observable of one selected value.

    Contract:

    * ``value`` is the current value, read synchronously at any time.
    * A new subscriber immediately receives the current value, then every change.
    * It emits only when the value changes (``is`` first, then ``==``); an equal
      but new object is not emitted and does not replace the old one, so the
      emitted objects are stable for views that compare by identity.
    * An exception raised by a subscriber is logged on the ``chats_store.core``
      logger and detaches that subscriber; it never breaks the store or other views.
      One raised by the projection during a dispatch is logged too; the getter keeps
      its previous value (reading ``value`` raises it again) and tries again when
      its input next changes.
    * Disposing a subscription stops its emissions at once, even in the middle of
      an emission to several subscribers.
    * Covariant: a ``Getter[Literal["a"] | None]`` is a ``Getter[str | None]``.

    Getters are created by their module (``chats.get_chat_status(chat_id)``), which
    memoizes them: the same arguments give the same object. Applications build
    their own with :meth:`Store.select` and :meth:`Store.derive`.

    Deliveries call each subscriber's ``on_next`` directly (no reactivex
    ``AutoDetachObserver``: a Python call and an object to load less per value).
    Getters never complete nor fail, so ``on_error`` and ``on_completed`` are never
    called. Subscribe on the thread of the store's loop
    (:class:`~chats_store.errors.WrongThreadError` otherwise).
    """

    __slots__ = (
        "_field",
        "_homes",
        "_input",
        "_input_of",
        "_project",
        "_store",
        "_value",
        "scope",
    )

    def __init__(
        self,
        store: Store[Any],
        input_of: Callable[[Any], Any],
        project: Callable[[Any], T_co],
        scope: Hashable | None,
        *,
        homes: tuple[Home, ...] | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__()
        self._store = store
        self._input_of = input_of
        self._project = project
        self._field = field
        self.scope = scope
        self._homes: tuple[Home, ...] = ((store, scope),) if homes is None else homes
        self._input: Any = _UNSET
        self._value: T_co = _UNSET

    @property
    def value(self) -> T_co:
        """The current value (always that of the store's current state)."""
        self._refresh()
        return self._value

    def _refresh(self) -> None:
        input_ = self._input_of(self._store.state)
        read = _read(input_, self._field)
        if read is not self._input:
            self._update(input_, read)

    def _update(self, input_: Any, read: Any) -> None:
        """Project a new input; keep the old value if equal, else store and emit it.

        ``read`` is what the projection reads of ``input_``: the input itself, or for a
        getter of a field that attribute (kept instead of the whole input, so that a
        getter passed over by dispatches holds no older state than its value comes
        from). A projection that raises leaves the getter as it was (its error
        reaches the reader of ``value``, or the store's refresh, which logs it).
        """
        value = self._project(input_)
        self._input = read
        current = self._value
        if value is current or _equal(value, current):
            return
        self._value = value
        if self._subscribers:
            self._emit(value)

    def _attach(self, subscriber: _Subscriber[Any]) -> None:
        if not self._subscribers:
            self._refresh()
            for store, scope in self._homes:
                store._track(self, scope)
        super()._attach(subscriber)
        try:
            subscriber.on_next(self._value)
        except Exception:
            logger.exception("a subscriber raised; it has been detached")
            self._detach(subscriber)

    def _unwatched(self) -> None:
        for store, scope in self._homes:
            store._untrack(self, scope)

    def _check_thread(self) -> None:
        for store, _scope in self._homes:
            store.affinity.check_thread("subscribing to a getter")


class _Group:
    """The tracked getters of one scope that share one input function.

    ``input`` is the input they were last refreshed with: the input function runs
    once per dispatch for the whole group, and the group is skipped when it
    returns that same object.

    Getters that read one attribute of the input (``Store.getter(..., field=)``) are
    kept by that attribute in ``fields`` (names) and ``members`` (their getters, in
    the same order); ``seen`` holds each attribute's object as of the last refresh.
    While an attribute is the same object, its getters are not even looked at. All
    of them are rebuilt when ``seen`` is None (after a getter is tracked or untracked,
    and while the input is None): that refresh looks at every getter.
    """

    __slots__ = ("fields", "getters", "input", "input_of", "members", "others", "seen")

    def __init__(self, input_of: Callable[[Any], Any]) -> None:
        self.input_of = input_of
        self.input: Any = _UNSET
        self.getters: dict[Getter[Any], None] = {}
        self.fields: tuple[str, ...] = ()
        self.members: tuple[tuple[Getter[Any], ...], ...] = ()
        self.others: tuple[Getter[Any], ...] = ()  # the getters of no field
        self.seen: list[Any] | None = None

    def changed(self) -> None:
        """The getters tracked changed: rebuild the tuples on the next refresh."""
        self.seen = None

    def plan(self, input_: Any) -> None:
        """Rebuild ``fields``, ``members``, ``others`` and ``seen`` for ``input_``
        (``seen`` stays None while the input is None)."""
        by_field: dict[str | None, list[Getter[Any]]] = {}
        for getter in self.getters:
            by_field.setdefault(getter._field, []).append(getter)
        self.others = tuple(by_field.pop(None, ()))
        self.fields = cast(tuple[str, ...], tuple(by_field))
        self.members = tuple(tuple(members) for members in by_field.values())
        self.seen = None if input_ is None else [getattr(input_, name) for name in self.fields]


class _Scope:
    """The groups of one scope, by ``id`` of their input function (held by the group)."""

    __slots__ = ("groups", "targets")

    def __init__(self) -> None:
        self.groups: dict[int, _Group] = {}
        self.targets: tuple[_Group, ...] | None = ()  # cached tuple, None when stale


def _refresh_scope(scope: _Scope, state: Any) -> None:
    """Bring every tracked getter of ``scope`` up to date with ``state``; emit changes.

    An input function or projection that raises is logged and skipped: the getters it
    feeds keep their previous values, the others are refreshed, the dispatch goes on.
    """
    groups = scope.targets
    if groups is None:
        groups = scope.targets = tuple(scope.groups.values())
    for group in groups:
        try:
            input_ = group.input_of(state)
        except Exception:
            logger.exception("a getter's input raised; its getters keep their previous values")
            continue
        if input_ is group.input:
            continue
        group.input = input_
        seen = group.seen
        if seen is None or input_ is None:
            group.plan(input_)  # and every getter is looked at
            for at, name in enumerate(group.fields):
                _refresh_getters(group.members[at], input_, _read(input_, name))
        else:
            # Only the getters of the attributes that are other objects than last time.
            for at, name in enumerate(group.fields):
                read = getattr(input_, name)
                if read is not seen[at]:
                    seen[at] = read
                    _refresh_getters(group.members[at], input_, read)
        if group.others:
            _refresh_getters(group.others, input_, input_)


def _refresh_getters(getters: tuple[Getter[Any], ...], input_: Any, read: Any) -> None:
    """Project ``input_`` for each of ``getters``, of which they read ``read`` (see
    ``Getter._update``); emit the values that changed."""
    for getter in getters:
        # Already current if a subscriber read its ``.value`` earlier in this dispatch.
        if read is getter._input:
            continue
        try:
            value = getter._project(input_)
        except Exception:
            logger.exception("a getter's projection raised; it keeps its previous value")
            continue
        getter._input = read
        current = getter._value
        if value is current or _equal(value, current):
            continue
        getter._value = value
        getter._emit(value)  # a tracked getter has subscribers


Middleware = Callable[[Any, Any], None]
"""A function ``(action, state)`` called after each reduce (see ``Store.add_middleware``)."""


class Store(Generic[S]):
    """A Redux-style store: one state, a pure reducer, commands run by an interpreter.

    ``dispatch`` is synchronous: when it returns, the state is reduced, every
    tracked getter whose value changed has emitted, and every command has been
    handed to the interpreter. An action dispatched while another one is being
    processed (for instance from a subscriber) is queued and processed right
    after, in order, so subscribers always see states in dispatch order.
    A reducer or interpreter that raises is a bug: the error propagates to the
    caller of the outermost ``dispatch`` and actions queued meanwhile are dropped.
    ``affinity``: the loop the store belongs to; by default its own, bound to the
    loop running when it is created (if any).
    """

    def __init__(
        self,
        reducer: Reducer[S],
        initial_state: S,
        *,
        scope_of: Callable[[Any], Hashable | None] = lambda action: None,
        interpreter: Callable[[Command], None] = _refuse_commands,
        affinity: LoopAffinity | None = None,
    ) -> None:
        self._reducer = reducer
        self._state = initial_state
        self._scope_of = scope_of
        self._interpreter = interpreter
        self._dispatching = False
        self._queue: deque[Any] = deque()
        self._middleware: tuple[Middleware, ...] = ()
        self._unscoped = _Scope()
        self._scoped: dict[Hashable, _Scope] = {}
        # Weak: a getter nobody holds and nobody subscribes to may be collected. The
        # keys of ``getter`` (the module's own) and of ``select``/``derive`` (the
        # application's) live apart, so neither can replace the other's getters.
        self._getters: weakref.WeakValueDictionary[Hashable, Getter[Any]] = (
            weakref.WeakValueDictionary()
        )
        self._custom: weakref.WeakValueDictionary[Hashable, Getter[Any]] = (
            weakref.WeakValueDictionary()
        )
        self.affinity = LoopAffinity("this store") if affinity is None else affinity
        """The asyncio loop the store belongs to (shared by stores passed the same one)."""

    @property
    def state(self) -> S:
        """The current state (immutable; replaced, never mutated, by dispatch)."""
        return self._state

    def set_interpreter(self, interpreter: Callable[[Command], None]) -> None:
        """Set the function that carries out the commands the reducer returns."""
        self._interpreter = interpreter

    def add_middleware(self, middleware: Callable[[Any, S], None]) -> Callable[[], None]:
        """Call ``middleware(action, state)`` after every reduce; returns its remover.

        It observes, it does not intercept: it runs once per dispatched action
        (queued ones included, in order), right after the reducer, with the new
        state (the same object as before when the action changed nothing), before
        the getters emit and the commands run. Middlewares run in the order they
        were added. One that raises is logged on the ``chats_store.core`` logger and
        removed; the store goes on. Calling the returned function removes it (again:
        no effect). A store without middleware pays one test of an empty tuple per
        dispatch.
        """
        self._middleware = (*self._middleware, middleware)

        def remove() -> None:
            self._middleware = tuple(m for m in self._middleware if m is not middleware)

        return remove

    def _run_middleware(self, action: Any, state: S) -> None:
        for middleware in self._middleware:
            try:
                middleware(action, state)
            except Exception:
                logger.exception("a store middleware raised; it has been removed")
                self._middleware = tuple(m for m in self._middleware if m is not middleware)

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
        field: str | None = None,
    ) -> Getter[T]:
        """The module's getter for ``key``, created on first use and memoized afterwards.

        This is the key space of the module that owns the store (the Chats facade,
        the WebSocket module); applications build their getters with :meth:`select`
        and :meth:`derive`, whose keys live apart and can never replace these.

        Memoized while alive: as long as anyone holds or subscribes to the getter,
        the same ``key`` returns the same object.

        ``input_of`` must be cheap (an attribute or dict lookup) and return the
        same object while the relevant part of the state is unchanged; ``project``
        turns that input into the value. ``scope`` says which actions can change
        the input (see ``scope_of`` in the module docstring); ``None`` means any.
        Getters of one scope should pass the *same* ``input_of`` object when they
        read the same input (the Chats facade passes one function per chat): the
        store then runs it once per dispatch for all of them.

        ``field`` says that ``project`` reads only that attribute of the input (and
        whether the input is None), so that its value is the same while the attribute
        is the same object: while it is, a dispatch does not even look at the getter
        (a new input whose attribute is unchanged leaves the getter's value as it is),
        and the getter holds that attribute, not the input it came from (an older
        chat state, say). A projection given a ``field`` it does not keep to may miss
        changes.
        """
        getter = self._getters.get(key)
        if getter is None:
            getter = Getter(self, input_of, project, scope, field=field)
            self._getters[key] = getter
        return cast(Getter[T], getter)

    def select(
        self,
        input_of: Callable[[S], I],
        project: Callable[[I], T],
        *,
        scope: Hashable | None = None,
        key: Hashable | None = None,
    ) -> Getter[T]:
        """A getter of the state: reselect's ``createSelector`` over one input selector.

        ``input_of(state)`` picks the input (cheap, and the same object while that
        part of the state is unchanged: ``state.chats.get(chat_id)``); ``project``
        turns it into the value, and runs only when the input is another object.
        ``scope``: which actions can change the input (for the Chats module, a chat
        id: then changes in other chats cost this getter nothing); None means any
        action. ``key``: memoize the getter under it (while anyone holds it), in the
        application's key space, apart from the module's (:meth:`getter`).
        """
        if key is not None:
            existing = self._custom.get(key)
            if existing is not None:
                return cast(Getter[T], existing)
        getter: Getter[T] = Getter(self, input_of, project, scope)
        if key is not None:
            self._custom[key] = getter
        return getter

    @overload
    def derive(
        self, a: Getter[A], /, *, project: Callable[[A], T], key: Hashable | None = None
    ) -> Getter[T]: ...

    @overload
    def derive(
        self,
        a: Getter[A],
        b: Getter[B],
        /,
        *,
        project: Callable[[A, B], T],
        key: Hashable | None = None,
    ) -> Getter[T]: ...

    @overload
    def derive(
        self,
        a: Getter[A],
        b: Getter[B],
        c: Getter[C],
        /,
        *,
        project: Callable[[A, B, C], T],
        key: Hashable | None = None,
    ) -> Getter[T]: ...

    @overload
    def derive(
        self,
        a: Getter[A],
        b: Getter[B],
        c: Getter[C],
        d: Getter[D],
        /,
        *,
        project: Callable[[A, B, C, D], T],
        key: Hashable | None = None,
    ) -> Getter[T]: ...

    @overload
    def derive(
        self,
        a: Getter[Any],
        b: Getter[Any],
        c: Getter[Any],
        d: Getter[Any],
        e: Getter[Any],
        /,
        *sources: Getter[Any],
        project: Callable[..., T],
        key: Hashable | None = None,
    ) -> Getter[T]: ...

    def derive(
        self, *sources: Getter[Any], project: Callable[..., T], key: Hashable | None = None
    ) -> Getter[T]:
        """A getter computed from other getters: ``project(*their values)``, memoized.

        reselect's ``createSelector`` over getters: ``project`` runs only when one of
        the sources' values is another object than last time (getters keep their old
        object when a new value is equal, so "changed" means changed), the result is
        compared like any getter's (it emits only on change), and ``value`` works
        with or without subscribers. Sources may be any getters, of this store or of
        another (the WebSocket module's ``status``, another derived getter): while
        subscribed, the derived getter is tracked in each source's scope, so a change
        in another chat costs it nothing, and it is refreshed once per dispatch after
        its sources, never with a mix of old and new values. ``key``: memoize it
        under that key, in the application's key space (see :meth:`select`).

        Typed for up to four sources (``project``'s parameters are checked against
        their values); five or more are accepted untyped. Raises ``TypeError`` when
        a source is not a :class:`Getter`.
        """
        if key is not None:
            existing = self._custom.get(key)
            if existing is not None:
                return cast(Getter[T], existing)
        if not sources:
            raise TypeError("derive() needs at least one source getter, then project=")
        for source in sources:
            if not isinstance(source, Getter):
                raise TypeError(
                    f"derive() takes getters as sources, not {type(source).__name__}; "
                    "to compute a value from the state, use Store.select(input_of, project)"
                )
        homes = _homes_of(sources)
        if len(sources) == 1:
            getter: Getter[T] = Getter(
                self, _value_of(sources[0]), project, homes[0][1], homes=homes
            )
        else:
            getter = Getter(self, _values_of(sources), _spread(project), homes[0][1], homes=homes)
        if key is not None:
            self._custom[key] = getter
        return getter

    def _apply(self, action: Any) -> None:
        step = self._reducer(self._state, action)
        state = step.state
        if self._middleware:
            self._run_middleware(action, state)
        if state is not self._state:
            self._state = state
            self._notify(state, self._scope_of(action))
        for command in step.commands:
            self._interpreter(command)

    def _notify(self, state: S, scope: Hashable | None) -> None:
        if scope is None:
            for entry in (*self._scoped.values(), self._unscoped):
                _refresh_scope(entry, state)
            return
        scoped = self._scoped.get(scope)
        if scoped is not None:
            _refresh_scope(scoped, state)
        if self._unscoped.groups:
            _refresh_scope(self._unscoped, state)

    def _track(self, getter: Getter[Any], scope: Hashable | None) -> None:
        if scope is None:
            entry = self._unscoped
        elif scope in self._scoped:
            entry = self._scoped[scope]
        else:
            entry = self._scoped[scope] = _Scope()
        input_of = getter._input_of
        group = entry.groups.get(id(input_of))
        if group is None:
            group = entry.groups[id(input_of)] = _Group(input_of)
            entry.targets = None
        group.getters[getter] = None
        group.changed()

    def _untrack(self, getter: Getter[Any], scope: Hashable | None) -> None:
        entry = self._unscoped if scope is None else self._scoped.get(scope)
        if entry is None:
            return
        key = id(getter._input_of)
        group = entry.groups.get(key)
        if group is None or getter not in group.getters:
            return
        del group.getters[getter]
        group.changed()
        if not group.getters:
            del entry.groups[key]
            entry.targets = None
            if not entry.groups and scope is not None:
                del self._scoped[scope]


def _homes_of(sources: Sequence[Getter[Any]]) -> tuple[Home, ...]:
    """Where a getter derived from ``sources`` must be tracked: every source's homes.

    A store's unscoped home covers its scoped ones (unscoped getters are refreshed
    by every dispatch), so those are dropped.
    """
    homes: dict[tuple[int, Hashable | None], Home] = {}
    for source in sources:
        for store, scope in source._homes:
            homes.setdefault((id(store), scope), (store, scope))
    unscoped = {id(store) for store, scope in homes.values() if scope is None}
    return tuple(
        (store, scope)
        for store, scope in homes.values()
        if scope is None or id(store) not in unscoped
    )


def _value_of(source: Getter[T]) -> Callable[[object], T]:
    """The input of a getter derived from one source: that source's current value."""

    def input_of(_state: object) -> T:
        source._refresh()
        return source._value

    return input_of


def _values_of(sources: Sequence[Getter[Any]]) -> Callable[[object], tuple[Any, ...]]:
    """The input of a getter derived from several: their values, the same tuple if unchanged.

    reselect's argument memoization: a new tuple only when some value is another
    object, so the store's identity check on the input skips the projection.
    """
    sources = tuple(sources)
    last: list[tuple[Any, ...]] = []

    def input_of(_state: object) -> tuple[Any, ...]:
        for source in sources:
            source._refresh()
        values = tuple([source._value for source in sources])
        if last:
            previous = last[0]
            if all(map(operator.is_, values, previous)):
                return previous
            last[0] = values
        else:
            last.append(values)
        return values

    return input_of


def _spread(project: Callable[..., T]) -> Callable[[tuple[Any, ...]], T]:
    def spread(values: tuple[Any, ...]) -> T:
        return project(*values)

    return spread
