"""The pure half of the core: steps, commands and reducers built from tables.

A reducer is ``(state, action) -> Step``: the next state and the commands (effects
as values) the runtime must carry out. Case reducers, one per action class, may
return a bare state when they have no commands; :func:`reducer_from_table` turns a
``{ActionClass: case_reducer}`` table into a reducer, like Redux Toolkit's
``createSlice``. An action whose class is not in the table leaves the state
*identical* (the same object), which is what lets getters skip work with ``is``.

This module imports nothing from asyncio, websockets or reactivex.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, NamedTuple, TypeVar

__all__ = ["NO_COMMANDS", "CaseReducer", "Command", "Reducer", "Step", "reducer_from_table"]

S = TypeVar("S")


class Command:
    """Base class of effects-as-data: a value the runtime's interpreter carries out."""

    __slots__ = ()


NO_COMMANDS: tuple[Command, ...] = ()


class Step(NamedTuple, Generic[S]):
    """The result of reducing one action: the next state and the commands to run.

    An immutable pair (a named tuple, made once per dispatch): it unpacks as
    ``state, commands = reducer(state, action)``.
    """

    state: S
    commands: tuple[Command, ...] = NO_COMMANDS


CaseReducer = Callable[[S, Any], "S | Step[S]"]
Reducer = Callable[[S, Any], Step[S]]


def reducer_from_table(table: Mapping[type, CaseReducer[S]]) -> Reducer[S]:
    """Build a reducer that routes each action to the case reducer of its exact class.

    Lookup is by ``type(action)`` in a dict, so the cost does not grow with the
    table; subclasses are not matched, which keeps "one obvious place per
    transition" true.
    """
    cases = dict(table)

    def reduce(state: S, action: Any) -> Step[S]:
        case = cases.get(type(action))
        if case is None:
            return Step(state)
        result = case(state, action)
        return result if isinstance(result, Step) else Step(result)

    return reduce
