"""The runtime half of the core: the ``Store`` and ``Getter`` contract.

The state used here is a small frozen record of *scopes* (think: chats), each a
frozen mapping of keys to values; every action names the scope it changes, and
``scope_of`` reads it, as the Chats facade does with ``chat_id``. Input and
projection functions are instrumented to count how often the store runs them.
"""

from __future__ import annotations

import gc
import logging
import weakref
from collections.abc import Callable, Hashable, Mapping
from types import MappingProxyType
from typing import Any, Generic, TypeVar

import attrs
import pytest
from reactivex import Observer
from reactivex import operators as ops

from chats_store.chats.actions import (
    ChatJoined,
    ChatSnapshot,
    ConnectionStatusChanged,
    JoinChat,
    MessagePosted,
)
from chats_store.chats.model import ChatsState, ChatState, Message
from chats_store.chats.reducer import reduce_chats
from chats_store.chats.selectors import (
    is_syncing_of,
    members_amount_of,
    messages_of,
    metadata_of,
    restrictions_of,
    select_chat_messages,
    status_of,
    sync_statuses_of,
)
from chats_store.core.reducer import Command, Reducer, Step, reducer_from_table
from chats_store.core.store import EventStream, Getter, Store

T = TypeVar("T")
R = TypeVar("R")

Scope = Mapping[str, object]
EMPTY: Scope = MappingProxyType({})


@attrs.frozen
class State:
    scopes: Mapping[str, Scope] = attrs.field(factory=dict)


# Actions -----------------------------------------------------------------------------


@attrs.frozen
class Put:
    """Set ``key`` to ``value`` in ``scope`` (a new state even if the value is equal)."""

    scope: str
    key: str
    value: object


@attrs.frozen
class Both:
    """Set both ``x`` and ``y`` of ``scope`` to ``value`` in one dispatch."""

    scope: str
    value: object


@attrs.frozen
class Copy:
    """Replace ``scope`` by an equal but new mapping (its getters' inputs change)."""

    scope: str


@attrs.frozen
class Nothing:
    """Handled, but returns the identical state."""

    scope: str


@attrs.frozen
class PutEverywhere:
    """No ``scope`` attribute: ``scope_of`` says None, i.e. "any scope"."""

    key: str
    value: object


@attrs.frozen
class Run:
    """Return ``commands``; change ``key`` in ``scope`` too when ``key`` is given."""

    scope: str
    commands: tuple[Command, ...]
    key: str | None = None


@attrs.frozen
class Explode:
    """Its case reducer raises."""

    scope: str


@attrs.frozen
class Say(Command):
    text: str


def _put(state: State, scope: str, key: str, value: object) -> State:
    current = state.scopes.get(scope, EMPTY)
    updated = MappingProxyType({**current, key: value})
    return State({**state.scopes, scope: updated})


def put(state: State, action: Put) -> State:
    return _put(state, action.scope, action.key, action.value)


def both(state: State, action: Both) -> State:
    state = _put(state, action.scope, "x", action.value)
    return _put(state, action.scope, "y", action.value)


def copy(state: State, action: Copy) -> State:
    current = state.scopes.get(action.scope, EMPTY)
    return State({**state.scopes, action.scope: MappingProxyType(dict(current))})


def nothing(state: State, action: Nothing) -> State:
    return state


def put_everywhere(state: State, action: PutEverywhere) -> State:
    for scope in state.scopes:
        state = _put(state, scope, action.key, action.value)
    return state


def run(state: State, action: Run) -> Step[State]:
    if action.key is not None:
        state = _put(state, action.scope, action.key, len(action.commands))
    return Step(state, action.commands)


def explode(state: State, action: Explode) -> State:
    raise ValueError(f"cannot reduce {action!r}")


CASES: dict[type, Callable[[State, Any], State | Step[State]]] = {
    Put: put,
    Both: both,
    Copy: copy,
    Nothing: nothing,
    PutEverywhere: put_everywhere,
    Run: run,
    Explode: explode,
}
reduce_test: Reducer[State] = reducer_from_table(CASES)


def scope_of(action: Any) -> Hashable | None:
    return getattr(action, "scope", None)


def initial() -> State:
    return State({"A": MappingProxyType({"x": 1, "y": 1}), "B": MappingProxyType({"x": 1})})


class Recorder:
    """An interpreter that records every command it is handed."""

    def __init__(self) -> None:
        self.commands: list[Command] = []

    def __call__(self, command: Command) -> None:
        self.commands.append(command)


def make_store(interpreter: Callable[[Command], None] | None = None) -> Store[State]:
    if interpreter is None:
        return Store(reduce_test, initial(), scope_of=scope_of)
    return Store(reduce_test, initial(), scope_of=scope_of, interpreter=interpreter)


class Counted(Generic[T, R]):
    """A function wrapper that counts its calls."""

    def __init__(self, function: Callable[[T], R]) -> None:
        self.function = function
        self.calls = 0

    def __call__(self, argument: T) -> R:
        self.calls += 1
        return self.function(argument)


@attrs.define
class Probe:
    """A getter with instrumented input and projection, and its emissions."""

    getter: Getter[object]
    input_of: Counted[State, Scope | None]
    project: Counted[Scope | None, object]
    seen: list[object] = attrs.field(factory=list)

    @property
    def calls(self) -> int:
        return self.input_of.calls + self.project.calls

    def subscribe(self) -> Any:
        return self.getter.subscribe(self.seen.append)


def probe(store: Store[State], scope: str, key: str, *, scoped: bool = True) -> Probe:
    input_of: Counted[State, Scope | None] = Counted(lambda state: state.scopes.get(scope))
    project: Counted[Scope | None, object] = Counted(
        lambda values: None if values is None else values.get(key)
    )
    getter = store.getter(
        ("probe", scope, key, scoped), input_of, project, scope=scope if scoped else None
    )
    return Probe(getter, input_of, project)


def read(p: Probe) -> object:
    """``p.getter.value`` (a function call, so type checkers do not narrow it)."""
    return p.getter.value


# Replay and change detection -------------------------------------------------------


def test_a_new_subscriber_receives_the_current_value_at_once() -> None:
    store = make_store()
    a = probe(store, "A", "x")

    a.subscribe()

    assert a.seen == [1]


def test_a_later_subscriber_receives_the_value_current_at_its_subscription() -> None:
    store = make_store()
    a = probe(store, "A", "x")
    a.subscribe()
    store.dispatch(Put("A", "x", 2))

    late: list[object] = []
    a.getter.subscribe(late.append)

    assert late == [2]
    assert a.seen == [1, 2]


def test_none_is_replayed_as_a_value() -> None:
    store = make_store()
    missing = probe(store, "C", "x")

    missing.subscribe()

    assert missing.seen == [None]


def test_every_change_is_emitted_in_order() -> None:
    store = make_store()
    a = probe(store, "A", "x")
    a.subscribe()

    for value in (2, 3, 2):
        store.dispatch(Put("A", "x", value))

    assert a.seen == [1, 2, 3, 2]
    assert a.getter.value == 2


def test_no_emission_and_no_work_when_the_state_object_is_unchanged() -> None:
    store = make_store()
    a = probe(store, "A", "x")
    a.subscribe()
    calls = a.calls
    state = store.state

    store.dispatch(Nothing("A"))

    assert store.state is state
    assert a.seen == [1]
    assert a.calls == calls


def test_no_emission_when_the_value_is_the_same_object() -> None:
    store = make_store()
    x, y = probe(store, "A", "x"), probe(store, "A", "y")
    x.subscribe()
    y.subscribe()

    store.dispatch(Put("A", "y", 5))  # a new scope mapping; x's value is the same int

    assert x.seen == [1]
    assert y.seen == [1, 5]


def test_no_emission_when_the_input_is_equal_but_new() -> None:
    store = make_store()
    a = probe(store, "A", "x")
    a.subscribe()

    store.dispatch(Copy("A"))

    assert a.seen == [1]


def test_an_equal_but_new_value_is_not_emitted_and_the_old_object_is_kept() -> None:
    store = make_store()
    first = ["hello"]
    store.dispatch(Put("A", "x", first))
    a = probe(store, "A", "x")
    a.subscribe()

    second = ["hello"]
    store.dispatch(Put("A", "x", second))

    assert len(a.seen) == 1
    assert a.seen[0] is first
    assert a.getter.value is first
    assert store.state.scopes["A"]["x"] is second


def test_without_subscribers_an_equal_but_new_value_keeps_the_old_object_too() -> None:
    store = make_store()
    first = ["hello"]
    store.dispatch(Put("A", "x", first))
    a = probe(store, "A", "x")
    assert a.getter.value is first

    store.dispatch(Put("A", "x", ["hello"]))

    assert a.getter.value is first


def test_values_are_compared_by_identity_before_equality() -> None:
    class NeverEqual:
        """Equality always fails: only the ``is`` check can tell it unchanged."""

        compared = 0

        def __eq__(self, other: object) -> bool:
            NeverEqual.compared += 1
            return False

        __hash__ = object.__hash__

    store = make_store()
    value = NeverEqual()
    store.dispatch(Put("A", "x", value))
    a = probe(store, "A", "x")
    a.subscribe()
    NeverEqual.compared = 0

    store.dispatch(Put("A", "y", 2))  # x's input changes, its value is the same object

    assert a.seen == [value]
    assert NeverEqual.compared == 0


# Memoization ---------------------------------------------------------------------------


def _same(value: object) -> object:
    return value


def test_the_same_key_gives_the_same_getter() -> None:
    store = make_store()
    first: object = store.getter("k", lambda state: state.scopes.get("A"), _same)
    second: object = store.getter("k", lambda state: None, lambda scope: "ignored")
    other: object = store.getter("other", lambda state: None, _same)

    assert second is first
    assert other is not first


def test_a_subscribed_getter_stays_memoized_when_nobody_else_holds_it() -> None:
    store = make_store()
    getter = store.getter(("k",), lambda state: state.scopes.get("A"), _same, scope="A")
    subscription = getter.subscribe(lambda value: None)
    ref = weakref.ref(getter)
    del getter
    gc.collect()

    assert ref() is not None
    assert store.getter(("k",), lambda state: None, _same, scope="A") is ref()
    subscription.dispose()


def test_a_getter_nobody_holds_is_recreated_with_the_current_value() -> None:
    store = make_store()
    getter = probe(store, "A", "x").getter
    ref = weakref.ref(getter)
    del getter
    gc.collect()
    store.dispatch(Put("A", "x", 9))

    again = probe(store, "A", "x").getter

    assert ref() is None
    assert again.value == 9


# Lazy .value without subscribers ---------------------------------------------------------


def test_value_without_subscribers_is_computed_lazily_and_tracks_the_state() -> None:
    store = make_store()
    a = probe(store, "A", "x")
    assert a.calls == 0

    store.dispatch(Put("A", "x", 2))
    store.dispatch(Put("A", "x", 3))
    assert a.calls == 0  # not tracked: dispatches do not touch it

    assert read(a) == 3
    assert (a.input_of.calls, a.project.calls) == (1, 1)

    assert read(a) == 3
    assert a.project.calls == 1  # the input is the same object: no projection

    store.dispatch(Put("A", "x", 4))
    assert a.project.calls == 1
    assert read(a) == 4
    assert a.project.calls == 2


def test_value_with_subscribers_is_kept_current_by_dispatch() -> None:
    store = make_store()
    a = probe(store, "A", "x")
    a.subscribe()

    store.dispatch(Put("A", "x", 2))
    project_calls = a.project.calls

    assert a.getter.value == 2
    assert a.project.calls == project_calls  # read from the cache, not recomputed


def test_value_read_by_a_subscriber_during_a_dispatch_matches_the_state() -> None:
    store = make_store()
    x, y = probe(store, "A", "x"), probe(store, "A", "y")
    read: list[tuple[object, object, object]] = []

    def on_x(value: object) -> None:
        read.append((value, y.getter.value, store.state.scopes["A"]["y"]))

    x.getter.subscribe(on_x)
    y.subscribe()  # tracked too, and refreshed after x

    store.dispatch(PutEverywhere("x", 2))  # x only
    store.dispatch(Both("A", 3))  # x and y in one dispatch

    assert read == [(1, 1, 1), (2, 1, 1), (3, 3, 3)]
    assert y.seen == [1, 3]


# Disposal ---------------------------------------------------------------------------------


def test_disposal_stops_emissions_and_untracks_the_getter() -> None:
    store = make_store()
    a = probe(store, "A", "x")
    subscription = a.subscribe()
    subscription.dispose()
    calls = a.calls

    store.dispatch(Put("A", "x", 2))

    assert a.seen == [1]
    assert a.calls == calls  # untracked: the dispatch did not run its functions
    assert a.getter.value == 2  # and .value is lazy again


def test_disposing_one_subscriber_leaves_the_others_subscribed() -> None:
    store = make_store()
    a = probe(store, "A", "x")
    other: list[object] = []
    first = a.subscribe()
    a.getter.subscribe(other.append)

    first.dispose()
    store.dispatch(Put("A", "x", 2))

    assert a.seen == [1]
    assert other == [1, 2]


def test_disposing_twice_is_harmless() -> None:
    store = make_store()
    a = probe(store, "A", "x")
    first = a.subscribe()
    kept: list[object] = []
    a.getter.subscribe(kept.append)

    first.dispose()
    first.dispose()
    store.dispatch(Put("A", "x", 2))

    assert kept == [1, 2]


def test_a_subscriber_disposed_during_an_emission_receives_nothing_more() -> None:
    store = make_store()
    a = probe(store, "A", "x")
    received: list[object] = []
    subscriptions: list[Any] = []

    def first(value: object) -> None:
        if value == 2:
            subscriptions[1].dispose()

    subscriptions.append(a.getter.subscribe(first))
    subscriptions.append(a.getter.subscribe(received.append))

    store.dispatch(Put("A", "x", 2))
    store.dispatch(Put("A", "x", 3))

    assert received == [1]


def test_resubscribing_after_disposal_replays_the_current_value() -> None:
    store = make_store()
    a = probe(store, "A", "x")
    a.subscribe().dispose()
    store.dispatch(Put("A", "x", 2))

    a.subscribe()
    store.dispatch(Put("A", "x", 3))

    assert a.seen == [1, 2, 3]


# Re-entrant dispatch ----------------------------------------------------------------------


def test_a_dispatch_from_a_subscriber_is_queued_and_processed_in_order() -> None:
    store = make_store()
    a = probe(store, "A", "x")
    log: list[tuple[str, object]] = []
    states_seen_inside: list[object] = []

    def react(value: object) -> None:
        log.append(("react", value))
        if value == 2:
            store.dispatch(Put("A", "x", 3))
            store.dispatch(Put("A", "x", 4))
            # Queued, not applied yet: the current dispatch is still notifying.
            states_seen_inside.append(store.state.scopes["A"]["x"])

    a.getter.subscribe(react)
    a.getter.subscribe(lambda value: log.append(("watch", value)))

    store.dispatch(Put("A", "x", 2))

    assert states_seen_inside == [2]
    assert log == [
        ("react", 1),
        ("watch", 1),
        ("react", 2),
        ("watch", 2),  # every subscriber sees 2 before anyone sees 3
        ("react", 3),
        ("watch", 3),
        ("react", 4),
        ("watch", 4),
    ]
    assert store.state.scopes["A"]["x"] == 4


def test_a_dispatch_from_the_interpreter_is_queued_after_the_current_commands() -> None:
    done: list[Command] = []
    store: Store[State]

    def interpreter(command: Command) -> None:
        done.append(command)
        if command == Say("first"):
            store.dispatch(Run("A", (Say("from the interpreter"),)))

    store = make_store(interpreter)

    store.dispatch(Run("A", (Say("first"), Say("second"))))

    assert done == [Say("first"), Say("second"), Say("from the interpreter")]


def test_a_reducer_error_propagates_and_the_store_keeps_working() -> None:
    store = make_store()
    a = probe(store, "A", "x")
    a.subscribe()

    with pytest.raises(ValueError, match="cannot reduce"):
        store.dispatch(Explode("A"))
    store.dispatch(Put("A", "x", 3))

    assert a.seen == [1, 3]


# A subscriber that raises ---------------------------------------------------------------


class BoomError(Exception):
    pass


def test_a_raising_subscriber_is_logged_and_does_not_break_others_or_the_store(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = make_store()
    a = probe(store, "A", "x")
    b = probe(store, "B", "x")

    def bad(value: object) -> None:
        if value != 1:
            raise BoomError(value)

    a.getter.subscribe(bad)
    a.subscribe()
    b.subscribe()

    with caplog.at_level(logging.ERROR, logger="chats_store.core"):
        store.dispatch(Put("A", "x", 2))

    assert a.seen == [1, 2]
    errors = [r for r in caplog.records if r.name == "chats_store.core"]
    assert len(errors) == 1
    assert errors[0].levelno == logging.ERROR
    assert errors[0].exc_info is not None
    assert isinstance(errors[0].exc_info[1], BoomError)

    store.dispatch(Put("B", "x", 5))
    assert b.seen == [1, 5]
    assert store.state.scopes["A"]["x"] == 2


def test_a_raising_subscriber_is_detached(caplog: pytest.LogCaptureFixture) -> None:
    store = make_store()
    a = probe(store, "A", "x")
    received: list[object] = []

    def bad(value: object) -> None:
        received.append(value)
        if value != 1:
            raise BoomError(value)

    a.getter.subscribe(bad)
    a.subscribe()

    with caplog.at_level(logging.CRITICAL, logger="chats_store.core"):
        store.dispatch(Put("A", "x", 2))
        store.dispatch(Put("A", "x", 3))

    assert a.seen == [1, 2, 3]
    assert received == [1, 2]  # detached after raising on 2


def test_a_subscriber_raising_on_its_replay_is_logged_and_not_tracked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = make_store()
    a = probe(store, "A", "x")

    def bad(value: object) -> None:
        raise BoomError(value)

    with caplog.at_level(logging.CRITICAL, logger="chats_store.core"):
        a.getter.subscribe(bad)
    calls = a.calls
    store.dispatch(Put("A", "x", 2))

    assert a.calls == calls


# Scope indexing -------------------------------------------------------------------------


def test_a_change_in_one_scope_runs_no_function_of_another_scopes_getters() -> None:
    store = make_store()
    a_x, a_y = probe(store, "A", "x"), probe(store, "A", "y")
    b_x, b_y = probe(store, "B", "x"), probe(store, "B", "y")
    for p in (a_x, a_y, b_x, b_y):
        p.subscribe()
    b_calls = (b_x.calls, b_y.calls)
    a_calls = (a_x.calls, a_y.calls)

    for value in range(2, 12):
        store.dispatch(Put("A", "x", value))

    assert (b_x.calls, b_y.calls) == b_calls
    assert a_x.calls > a_calls[0]
    assert a_y.calls > a_calls[1]  # same scope: input checked, value unchanged
    assert a_y.seen == [1]
    assert a_x.seen == [1, *range(2, 12)]


def test_a_scope_without_getters_costs_no_getter_work() -> None:
    store = make_store()
    a = probe(store, "A", "x")
    a.subscribe()
    calls = a.calls

    store.dispatch(Put("C", "x", 1))

    assert a.calls == calls


def test_an_action_without_scope_refreshes_every_scope() -> None:
    store = make_store()
    a, b = probe(store, "A", "z"), probe(store, "B", "z")
    a.subscribe()
    b.subscribe()

    store.dispatch(PutEverywhere("z", 7))

    assert a.seen == [None, 7]
    assert b.seen == [None, 7]


def test_an_unscoped_getter_is_refreshed_by_every_change() -> None:
    store = make_store()
    anywhere = probe(store, "B", "x", scoped=False)
    anywhere.subscribe()
    input_calls = anywhere.input_of.calls

    store.dispatch(Put("A", "x", 2))
    store.dispatch(Put("B", "x", 3))

    assert anywhere.input_of.calls == input_calls + 2
    assert anywhere.seen == [1, 3]


# Commands -------------------------------------------------------------------------------


def test_commands_are_passed_to_the_interpreter_in_order() -> None:
    recorder = Recorder()
    store = make_store(recorder)

    store.dispatch(Run("A", (Say("1"), Say("2"), Say("3")), key="n"))
    store.dispatch(Run("B", (Say("4"),)))

    assert recorder.commands == [Say("1"), Say("2"), Say("3"), Say("4")]


def test_commands_run_after_the_state_is_reduced_and_getters_have_emitted() -> None:
    observed: list[tuple[object, list[object]]] = []
    store: Store[State]
    a: Probe

    def interpreter(command: Command) -> None:
        observed.append((store.state.scopes["A"].get("n"), list(a.seen)))

    store = make_store(interpreter)
    a = probe(store, "A", "n")
    a.subscribe()

    store.dispatch(Run("A", (Say("go"),), key="n"))

    assert observed == [(1, [None, 1])]


def test_commands_of_a_step_that_keeps_the_state_are_still_run() -> None:
    recorder = Recorder()
    store = make_store(recorder)
    state = store.state

    store.dispatch(Run("A", (Say("only a command"),)))

    assert store.state is state
    assert recorder.commands == [Say("only a command")]


def test_a_store_without_interpreter_raises_when_a_command_appears() -> None:
    store = make_store()

    store.dispatch(Put("A", "x", 2))  # no command: fine
    with pytest.raises(RuntimeError, match="interpreter"):
        store.dispatch(Run("A", (Say("nobody runs me"),)))


def test_set_interpreter_installs_the_interpreter() -> None:
    store = make_store()
    recorder = Recorder()

    store.set_interpreter(recorder)
    store.dispatch(Run("A", (Say("x"),)))

    assert recorder.commands == [Say("x")]


# The Chats reducer in a store built like the facade's ------------------------------------

CHAT_PROJECTIONS: dict[str, Callable[[ChatState | None], object]] = {
    "status": status_of,
    "messages": messages_of,
    "members_amount": members_amount_of,
    "sync_statuses": sync_statuses_of,
    "is_syncing": is_syncing_of,
    "metadata": metadata_of,
    "restrictions": restrictions_of,
}


def _message(chat_id: str, seq: int) -> Message:
    return Message(f"{chat_id}-{seq}", chat_id, "u1", f"message {seq}", "ready", seq=seq)


def chat_input(chat_id: str) -> Callable[[ChatsState], ChatState | None]:
    def input_of(state: ChatsState) -> ChatState | None:
        return state.chats.get(chat_id)

    return input_of


def test_a_message_in_chat_a_runs_no_selector_of_chat_b() -> None:
    store: Store[ChatsState] = Store(
        reduce_chats,
        ChatsState(),
        scope_of=lambda action: getattr(action, "chat_id", None),
        interpreter=lambda command: None,
    )
    store.dispatch(ConnectionStatusChanged("connected"))
    for call_id, chat_id in enumerate(("a", "b"), start=1):
        store.dispatch(JoinChat(call_id, chat_id, "token"))
        snapshot = ChatSnapshot((_message(chat_id, 1),), 2, {"role": "member"}, (), 1)
        store.dispatch(ChatJoined(call_id, chat_id, snapshot))

    counted: dict[tuple[str, str], tuple[Counted[Any, Any], Counted[Any, Any]]] = {}
    getters: list[Getter[object]] = []
    for chat_id in ("a", "b"):
        for kind, projection in CHAT_PROJECTIONS.items():
            input_of: Counted[ChatsState, ChatState | None] = Counted(chat_input(chat_id))
            project: Counted[Any, object] = Counted(projection)
            counted[kind, chat_id] = (input_of, project)
            getter = store.getter((kind, chat_id), input_of, project, scope=chat_id)
            getter.subscribe(lambda value: None)
            getters.append(getter)
    before = {key: (i.calls, p.calls) for key, (i, p) in counted.items()}

    for seq in range(2, 6):
        store.dispatch(MessagePosted("a", seq, _message("a", seq)))

    after = {key: (i.calls, p.calls) for key, (i, p) in counted.items()}
    for kind in CHAT_PROJECTIONS:
        assert after[kind, "b"] == before[kind, "b"], kind
        assert after[kind, "a"] != before[kind, "a"], kind
    messages = store.getter(("messages", "a"), lambda state: None, lambda chat: None)
    assert messages.value == select_chat_messages(store.state, "a")
    assert messages.value is not None
    assert [m.seq for m in messages.value] == [1, 2, 3, 4, 5]


# Getters of one attribute of their input (field=) ---------------------------------------


@attrs.frozen
class Card:
    title: object
    body: object


@attrs.frozen
class Board:
    card: Card | None


@attrs.frozen
class Show:
    card: Card | None


def show(board: Board, action: Show) -> Board:
    return Board(action.card)


TITLE, BODY = ["a title"], ["a body"]  # lists: equal values are never the same object


def card_store() -> Store[Board]:
    return Store(
        reducer_from_table({Show: show}), Board(Card(TITLE, BODY)), scope_of=lambda a: "card"
    )


def card_of(board: Board) -> Card | None:
    return board.card


@attrs.define
class FieldProbe:
    """A getter of one attribute of the card, its counted projection, its emissions."""

    getter: Getter[object]
    project: Counted[Card | None, object]
    seen: list[object] = attrs.field(factory=list)

    def subscribe(self) -> Any:
        return self.getter.subscribe(self.seen.append)


def field_probe(store: Store[Board], field: str | None) -> FieldProbe:
    """A getter of the card's attribute ``field`` (of the whole card for None), made
    with ``field=``; all share the input function ``card_of``: they form one group."""

    def project_card(card: Card | None) -> object:
        if card is None or field is None:
            return card
        return getattr(card, field)

    project: Counted[Card | None, object] = Counted(project_card)
    getter = store.getter(field or "card", card_of, project, scope="card", field=field)
    return FieldProbe(getter, project)


def subscribed(store: Store[Board], *probes: FieldProbe) -> None:
    """Subscribe ``probes``, then dispatch once so that their group is refreshed with
    all of them (the first refresh after a getter is tracked looks at every getter)."""
    for p in probes:
        p.subscribe()
    store.dispatch(Show(Card(TITLE, BODY)))


def test_a_getter_of_a_field_is_passed_over_while_that_attribute_is_the_same_object() -> None:
    store = card_store()
    title, body = field_probe(store, "title"), field_probe(store, "body")
    subscribed(store, title, body)
    projections = (title.project.calls, body.project.calls)

    store.dispatch(Show(Card(TITLE, ["another body"])))
    store.dispatch(Show(Card(TITLE, ["a third body"])))

    assert title.project.calls == projections[0]  # its attribute is the same object
    assert body.project.calls == projections[1] + 2
    assert title.seen == [TITLE] and body.seen == [BODY, ["another body"], ["a third body"]]
    assert title.getter.value is TITLE  # read lazily: right, and no emission
    assert title.seen == [TITLE]

    store.dispatch(Show(Card(["a new title"], ["a third body"])))
    assert title.seen == [TITLE, ["a new title"]]
    assert body.seen == [BODY, ["another body"], ["a third body"]]  # equal: not emitted


def test_getters_of_fields_follow_their_input_to_none_and_back() -> None:
    store = card_store()
    title, body = field_probe(store, "title"), field_probe(store, "body")
    subscribed(store, title, body)

    store.dispatch(Show(None))
    # The same attribute objects as before the None: they are still news to the getters.
    store.dispatch(Show(Card(TITLE, BODY)))

    assert title.seen == [TITLE, None, TITLE]
    assert body.seen == [BODY, None, BODY]


def test_a_getter_of_a_field_tracked_later_joins_its_group_up_to_date() -> None:
    store = card_store()
    title = field_probe(store, "title")
    title.subscribe()
    store.dispatch(Show(Card(TITLE, ["body 2"])))
    body = field_probe(store, "body")
    body.subscribe()  # the group the title's getter made, from now on

    store.dispatch(Show(Card(TITLE, ["body 3"])))
    store.dispatch(Show(Card(["title 2"], ["body 3"])))

    assert body.seen == [["body 2"], ["body 3"]]
    assert title.seen == [TITLE, ["title 2"]]


def test_a_getter_of_no_field_beside_getters_of_fields_is_refreshed_by_every_change() -> None:
    store = card_store()
    title, whole = field_probe(store, "title"), field_probe(store, None)
    subscribed(store, title, whole)
    projections = whole.project.calls

    second, third = Card(TITLE, ["body 2"]), Card(TITLE, ["body 3"])
    store.dispatch(Show(second))
    store.dispatch(Show(third))

    assert whole.project.calls == projections + 2
    assert whole.seen == [Card(TITLE, BODY), second, third]  # the first equal: kept
    assert title.seen == [TITLE]


def test_a_getter_passed_over_holds_no_older_input() -> None:
    store = card_store()
    title, body = field_probe(store, "title"), field_probe(store, "body")
    subscribed(store, title, body)
    new_title = ["a new title"]
    older = Card(new_title, ["body 2"])
    store.dispatch(Show(older))  # the title's getter projects this card
    gone = weakref.ref(older)
    del older

    store.dispatch(Show(Card(new_title, ["body 3"])))  # and passes over this one
    gc.collect()

    assert gone() is None  # it keeps the title it read, not the card it came from
    assert title.getter.value is new_title and body.seen[-1] == ["body 3"]


def test_a_raising_projection_of_a_field_is_tried_again_when_that_attribute_changes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = card_store()

    def length_of_title(card: Card | None) -> object:
        if card is None:
            return None
        assert isinstance(card.title, list)
        return 1 / len(card.title)

    project: Counted[Any, object] = Counted(length_of_title)
    getter = store.getter("ratio", card_of, project, scope="card", field="title")
    seen: list[object] = []
    getter.subscribe(seen.append)

    with caplog.at_level(logging.ERROR, logger="chats_store.core"):
        store.dispatch(Show(Card([], BODY)))  # 1 / 0
    assert seen == [1.0]
    assert any("projection raised" in r.getMessage() for r in caplog.records)
    calls = project.calls

    store.dispatch(Show(Card(store.state.card.title if store.state.card else [], ["b"])))
    assert project.calls == calls  # its attribute did not change: not tried
    store.dispatch(Show(Card(["x", "y"], ["b"])))
    assert seen == [1.0, 0.5]


# Projection errors are isolated ----------------------------------------------------------


def raising_probe(store: Store[State], scope: str, key: str) -> Probe:
    """A getter of ``scope``'s ``key`` whose projection raises for the value 0."""
    input_of: Counted[State, Scope | None] = Counted(lambda state: state.scopes.get(scope))

    def project_value(values: Scope | None) -> object:
        value = None if values is None else values.get(key)
        return 1 / value if isinstance(value, int) else value

    project: Counted[Scope | None, object] = Counted(project_value)
    getter = store.getter(("raising", scope, key), input_of, project, scope=scope)
    return Probe(getter, input_of, project)


def test_a_raising_projection_is_logged_and_never_reaches_the_dispatcher(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = make_store()
    bad = raising_probe(store, "A", "x")
    same_scope = probe(store, "A", "y")
    same_group = store.getter(  # the same input function: refreshed in the same group
        ("sibling", "A"), bad.input_of, lambda values: values and values.get("y"), scope="A"
    )
    sibling_seen: list[object] = []
    for p in (bad, same_scope):
        p.subscribe()
    same_group.subscribe(sibling_seen.append)

    with caplog.at_level(logging.ERROR, logger="chats_store.core"):
        store.dispatch(Both("A", 0))  # 1 / 0 in bad's projection

    assert same_scope.seen == [1, 0] and sibling_seen == [1, 0]  # not left stale
    assert bad.seen == [1.0]  # keeps its previous value
    [record] = [r for r in caplog.records if r.name == "chats_store.core"]
    assert "projection raised" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], ZeroDivisionError)
    with pytest.raises(ZeroDivisionError):
        read(bad)  # a reader sees the error

    store.dispatch(Put("A", "x", 4))  # its input changed again: tried again
    assert bad.seen == [1.0, 0.25]


def test_a_raising_source_leaves_its_derived_getter_as_it_was(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = make_store()
    bad = raising_probe(store, "A", "x")
    derived = store.derive(bad.getter, project=lambda value: f"<{value}>")
    seen: list[str] = []
    derived.subscribe(seen.append)
    other = probe(store, "A", "y")
    other.subscribe()

    with caplog.at_level(logging.ERROR, logger="chats_store.core"):
        store.dispatch(Both("A", 0))

    assert seen == ["<1.0>"]
    assert other.seen == [1, 0]
    assert any("input raised" in r.getMessage() for r in caplog.records)
    store.dispatch(Put("A", "x", 2))
    assert seen == ["<1.0>", "<0.5>"]


# Derived getters --------------------------------------------------------------------------


def counted_derive(
    store: Store[State], *sources: Getter[object]
) -> tuple[Getter[Any], Counted[Any, Any]]:
    project: Counted[Any, Any] = Counted(lambda values: values)

    def spread(*values: object) -> object:
        return project(values)

    return store.derive(*sources, project=spread), project


def test_a_derived_getter_recomputes_only_when_a_source_value_changed() -> None:
    store = make_store()
    a_x = probe(store, "A", "x").getter
    derived, project = counted_derive(store, a_x)
    seen: list[object] = []
    derived.subscribe(seen.append)
    assert project.calls == 1

    for value in range(2, 12):
        store.dispatch(Put("B", "x", value))  # another scope
    assert project.calls == 1
    store.dispatch(Put("A", "y", 5))  # the same scope, the source's value unchanged
    store.dispatch(Copy("A"))  # a new but equal input for the source
    assert project.calls == 1
    store.dispatch(Put("A", "x", 2))
    assert project.calls == 2
    assert seen == [(1,), (2,)]


def test_a_derived_getter_of_two_sources_changed_in_one_dispatch_runs_once() -> None:
    store = make_store()
    derived, project = counted_derive(
        store, probe(store, "A", "x").getter, probe(store, "A", "y").getter
    )
    seen: list[object] = []
    derived.subscribe(seen.append)

    store.dispatch(Both("A", 7))

    assert seen == [(1, 1), (7, 7)]  # never a mix of old and new values
    assert project.calls == 2


def test_a_derived_getter_emits_only_on_change_and_keeps_equal_values() -> None:
    store = make_store()
    parity = store.derive(probe(store, "A", "x").getter, project=lambda x: [x % 2])
    seen: list[object] = []
    parity.subscribe(seen.append)
    first = parity.value

    store.dispatch(Put("A", "x", 3))  # odd again: equal, a new list

    assert seen == [[1]]
    assert parity.value is first


def test_a_derived_getter_of_derived_getters_and_its_value_without_subscribers() -> None:
    store = make_store()
    x = probe(store, "A", "x").getter
    double = store.derive(x, project=lambda value: 2 * cast_int(value))
    both = store.derive(x, double, project=lambda a, b: (a, b))

    assert both.value == (1, 2)
    store.dispatch(Put("A", "x", 5))
    assert both.value == (5, 10)
    assert double.value == 10


def cast_int(value: object) -> int:
    assert isinstance(value, int)
    return value


def test_a_derived_getter_is_tracked_in_its_sources_scopes_and_untracked_on_disposal() -> None:
    store = make_store()
    derived, project = counted_derive(
        store, probe(store, "A", "x").getter, probe(store, "B", "x").getter
    )
    seen: list[object] = []
    subscription = derived.subscribe(seen.append)

    store.dispatch(Put("B", "x", 3))
    store.dispatch(Put("C", "x", 3))  # no source in C: nothing runs
    assert seen == [(1, 1), (1, 3)]
    assert project.calls == 2

    subscription.dispose()
    assert not store._scoped  # no scope keeps a group once nobody subscribes
    store.dispatch(Put("A", "x", 4))
    assert project.calls == 2


def test_a_derived_getter_follows_getters_of_another_store() -> None:
    chats, settings = make_store(), make_store()
    derived, project = counted_derive(
        chats, probe(chats, "A", "x").getter, probe(settings, "A", "x").getter
    )
    seen: list[object] = []
    derived.subscribe(seen.append)

    settings.dispatch(Put("A", "x", "dark"))
    chats.dispatch(Put("A", "x", 2))
    settings.dispatch(Put("B", "x", "ignored"))

    assert seen == [(1, 1), (1, "dark"), (2, "dark")]
    assert project.calls == 3


def test_select_builds_a_getter_of_the_state_that_recomputes_on_input_change() -> None:
    store = make_store()
    project: Counted[Any, Any] = Counted(lambda scope: sorted(scope or ()))
    keys = store.select(lambda state: state.scopes.get("A"), project, scope="A")
    seen: list[object] = []
    keys.subscribe(seen.append)

    store.dispatch(Put("B", "z", 1))
    store.dispatch(Put("A", "z", 1))

    assert seen == [["x", "y"], ["x", "y", "z"]]
    assert project.calls == 2


def test_application_keys_never_collide_with_the_modules_keys() -> None:
    store = make_store()
    module = store.getter("chats_ids", lambda state: state.scopes, lambda scopes: "module")
    mine = store.select(lambda state: state.scopes, lambda scopes: "mine", key="chats_ids")
    derived = store.derive(module, project=lambda value: value + "!", key=("derived", "A"))

    assert module.value == "module" and mine.value == "mine"
    assert store.getter("chats_ids", lambda state: None, lambda _: "other") is module
    assert store.select(lambda state: None, lambda _: "other", key="chats_ids") is mine
    assert store.derive(mine, project=str, key=("derived", "A")) is derived
    assert derived.value == "module!"


def test_derive_refuses_what_is_not_a_getter() -> None:
    store = make_store()
    with pytest.raises(TypeError, match="at least one source getter"):
        store.derive(project=lambda: None)
    with pytest.raises(TypeError, match=r"use Store\.select"):
        store.derive(lambda state: state, project=lambda value: value)  # type: ignore[call-overload]


def test_a_getter_is_covariant() -> None:
    from typing import Literal

    store = make_store()
    narrow: Getter[Literal["a"] | None] = store.select(lambda state: state, lambda _: "a")
    wide: Getter[str | None] = narrow  # accepted by mypy --strict: Getter is covariant
    assert wide.value == "a"


# The event stream -----------------------------------------------------------------------


def test_an_event_stream_hands_each_value_to_its_subscribers_of_the_moment() -> None:
    stream: EventStream[int] = EventStream()
    early: list[int] = []
    late: list[int] = []
    stream.subscribe(early.append)
    stream.emit(1)
    stream.subscribe(late.append)  # no replay: an event stream has no current value
    stream.emit(2)

    assert early == [1, 2]
    assert late == [2]


def test_an_event_stream_takes_observers_and_reactivex_operators() -> None:
    stream: EventStream[int] = EventStream()
    seen: list[int] = []
    stream.subscribe(Observer(seen.append))
    doubled: list[int] = []

    def double(value: int) -> int:
        return value * 2

    stream.pipe(ops.map(double)).subscribe(doubled.append)
    stream.emit(3)

    assert seen == [3]
    assert doubled == [6]


def test_a_raising_event_subscriber_is_logged_detached_and_the_next_still_served(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream: EventStream[int] = EventStream()
    received: list[int] = []

    def bad(value: int) -> None:
        received.append(value)
        raise BoomError(value)

    after: list[int] = []
    stream.subscribe(bad)
    stream.subscribe(after.append)
    with caplog.at_level(logging.ERROR, logger="chats_store.core"):
        stream.emit(1)
        stream.emit(2)

    assert received == [1]  # detached after raising
    assert after == [1, 2]  # a reactivex Subject would have stopped at the raise
    (error,) = [r for r in caplog.records if r.name == "chats_store.core"]
    assert error.exc_info is not None and isinstance(error.exc_info[1], BoomError)


def test_an_event_subscriber_disposed_during_an_emission_receives_nothing_more() -> None:
    stream: EventStream[int] = EventStream()
    firsts: list[int] = []
    second: list[int] = []
    subscriptions: list[Any] = []

    def first(value: int) -> None:
        firsts.append(value)
        subscriptions[1].dispose()

    subscriptions.append(stream.subscribe(first))
    subscriptions.append(stream.subscribe(second.append))
    stream.emit(1)
    subscriptions[1].dispose()  # disposing twice is harmless
    stream.emit(2)

    assert firsts == [1, 2]
    assert second == []
