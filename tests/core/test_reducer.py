"""The pure half of the core: ``Step``, ``Command`` and ``reducer_from_table``.

What the rest of the package relies on:

* an action is routed to the case reducer registered for its *exact* class;
* an action whose class is not in the table leaves the state *identical* (``is``),
  with no commands: that is what lets getters skip work;
* a case reducer may return a bare state (no commands) or a ``Step``; both come
  out as a ``Step`` whose ``state`` is the very object the case returned.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chats_store.chats.actions import MessagePosted
from chats_store.chats.model import ChatsState, Message
from chats_store.chats.reducer import reduce_chats
from chats_store.core.reducer import NO_COMMANDS, Command, Reducer, Step, reducer_from_table

# A tiny slice: the state is a frozen record, each action has its own case reducer.


@attrs.frozen
class Counter:
    value: int = 0
    log: tuple[str, ...] = ()


@attrs.frozen
class Add:
    amount: int


@attrs.frozen
class Rename:
    label: str


@attrs.frozen
class Ping:
    """Changes nothing but asks the runtime to do something."""

    tag: str


@attrs.frozen
class Unknown:
    """Registered nowhere."""


class AddSubclass(Add):
    """Not registered: only the exact class ``Add`` is."""


@attrs.frozen
class Say(Command):
    text: str


def add(state: Counter, action: Add) -> Counter:
    return attrs.evolve(state, value=state.value + action.amount)


def rename(state: Counter, action: Rename) -> Step[Counter]:
    next_state = attrs.evolve(state, log=(*state.log, action.label))
    return Step(next_state, (Say(f"renamed to {action.label}"), Say("done")))


def ping(state: Counter, action: Ping) -> Step[Counter]:
    return Step(state, (Say(action.tag),))


TABLE: dict[type, Any] = {Add: add, Rename: rename, Ping: ping}


@pytest.fixture
def reduce() -> Any:
    return reducer_from_table(TABLE)


# Routing ---------------------------------------------------------------------------


def test_routes_each_action_to_the_case_of_its_class() -> None:
    seen: list[tuple[str, object, object]] = []

    def case_a(state: object, action: object) -> object:
        seen.append(("a", state, action))
        return state

    def case_b(state: object, action: object) -> object:
        seen.append(("b", state, action))
        return state

    reduce = reducer_from_table({Add: case_a, Rename: case_b})
    state = Counter()
    first, second = Add(1), Rename("x")

    reduce(state, first)
    reduce(state, second)

    assert seen == [("a", state, first), ("b", state, second)]


def test_routes_by_exact_class_not_by_subclass() -> None:
    called: list[object] = []

    def case(state: Counter, action: Add) -> Counter:
        called.append(action)
        return state

    reduce = reducer_from_table({Add: case})
    state = Counter()

    step = reduce(state, AddSubclass(5))

    assert called == []
    assert step.state is state
    assert step.commands == ()


def test_the_table_is_copied_when_the_reducer_is_built() -> None:
    table: dict[type, Any] = {Add: add}
    reduce = reducer_from_table(table)
    table[Rename] = rename
    del table[Add]
    state = Counter()

    assert reduce(state, Add(2)).state == Counter(2)
    assert reduce(state, Rename("ignored")).state is state


def test_an_empty_table_leaves_every_state_identical() -> None:
    reduce: Reducer[Counter] = reducer_from_table({})
    state = Counter(3)

    step = reduce(state, Add(1))

    assert step.state is state
    assert step.commands is NO_COMMANDS


# Unknown actions -------------------------------------------------------------------


@pytest.mark.parametrize("action", [Unknown(), object(), None, "Add", 42, Add])
def test_an_unknown_action_returns_the_identical_state_and_no_commands(
    reduce: Any, action: object
) -> None:
    state = Counter(7, ("a",))

    step = reduce(state, action)

    assert isinstance(step, Step)
    assert step.state is state
    assert step.commands == ()


@given(st.lists(st.sampled_from([Unknown(), AddSubclass(1), object(), 0])))
def test_any_sequence_of_unknown_actions_keeps_the_same_object(actions: list[object]) -> None:
    reduce = reducer_from_table(TABLE)
    state = start = Counter(1)
    for action in actions:
        state = reduce(state, action).state
    assert state is start


def test_the_chats_reducer_returns_the_identical_state_for_unknown_actions() -> None:
    state = ChatsState()

    assert reduce_chats(state, Unknown()).state is state
    assert reduce_chats(state, object()).state is state


def test_the_chats_reducer_returns_the_identical_state_for_a_chat_not_joined() -> None:
    state = ChatsState()
    message = Message("m1", "nowhere", "u1", "hi", "ready", seq=1)

    step = reduce_chats(state, MessagePosted("nowhere", 1, message))

    assert step.state is state
    assert step.commands == ()


# Bare state versus Step ------------------------------------------------------------


def test_a_bare_state_is_wrapped_in_a_step_without_commands(reduce: Any) -> None:
    state = Counter()

    step = reduce(state, Add(2))

    assert isinstance(step, Step)
    assert step.state == Counter(2)
    assert step.commands is NO_COMMANDS


def test_the_wrapped_state_is_the_object_the_case_returned() -> None:
    produced: list[Counter] = []

    def case(state: Counter, action: Add) -> Counter:
        result = Counter(action.amount)
        produced.append(result)
        return result

    step = reducer_from_table({Add: case})(Counter(), Add(9))

    assert step.state is produced[0]


def test_a_case_returning_its_input_keeps_the_state_identical() -> None:
    reduce = reducer_from_table({Add: lambda state, action: state})
    state = Counter(4)

    assert reduce(state, Add(1)).state is state


def test_a_step_is_passed_through_with_its_commands_in_order(reduce: Any) -> None:
    state = Counter()

    step = reduce(state, Rename("x"))

    assert step.state == Counter(0, ("x",))
    assert step.commands == (Say("renamed to x"), Say("done"))


def test_the_step_object_a_case_returns_is_returned_as_is() -> None:
    made: list[Step[Counter]] = []

    def case(state: Counter, action: Ping) -> Step[Counter]:
        made.append(Step(state, (Say(action.tag),)))
        return made[-1]

    step = reducer_from_table({Ping: case})(Counter(), Ping("p"))

    assert step is made[0]


def test_a_step_may_keep_the_state_identical_and_still_carry_commands(reduce: Any) -> None:
    state = Counter(1)

    step = reduce(state, Ping("hello"))

    assert step.state is state
    assert step.commands == (Say("hello"),)


def test_a_state_that_is_falsy_is_still_a_state() -> None:
    reduce = reducer_from_table({Add: lambda state, action: state + action.amount})

    step = reduce(-1, Add(1))

    assert step.state == 0
    assert step.commands == ()


# Step and Command as values --------------------------------------------------------


def test_step_defaults_to_no_commands_and_is_frozen() -> None:
    step = Step(Counter())

    assert step.commands is NO_COMMANDS
    assert NO_COMMANDS == ()
    with pytest.raises(AttributeError):
        step.state = Counter(1)  # type: ignore[misc]


def test_a_step_unpacks_as_the_state_and_the_commands() -> None:
    state, commands = Step(Counter(1), (Say("a"),))

    assert state == Counter(1)
    assert commands == (Say("a"),)


def test_steps_and_commands_compare_by_value() -> None:
    assert Step(Counter(1), (Say("a"),)) == Step(Counter(1), (Say("a"),))
    assert Step(Counter(1), (Say("a"),)) != Step(Counter(1), (Say("b"),))


def test_the_command_base_has_no_instance_dict() -> None:
    assert Command.__slots__ == ()
    assert not hasattr(Say("x"), "__dict__")
