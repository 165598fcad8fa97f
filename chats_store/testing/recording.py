"""Record every action a store dispatches and every state it reaches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from chats_store.chats.facade import Chats
from chats_store.core.store import Store

__all__ = ["Recording", "record_store"]

S = TypeVar("S")


class Recording(Generic[S]):
    """What a store did since :func:`record_store`: ``actions`` and ``states`` in order.

    ``states[0]`` is the state when recording started; ``states[i + 1]`` is the
    state right after ``actions[i]`` was reduced (the same object as
    ``states[i]`` when the action changed nothing). :meth:`stop` (or leaving a
    ``with`` block) stops recording and keeps what was recorded.
    """

    def __init__(self, store: Store[S]) -> None:
        self.store = store
        self.actions: list[Any] = []
        self.states: list[S] = [store.state]
        self._remove: Callable[[], None] | None = store.add_middleware(self._record)

    def _record(self, action: Any, state: S) -> None:
        self.actions.append(action)
        self.states.append(state)

    def of_type(self, kind: type[Any]) -> list[Any]:
        """The recorded actions that are instances of ``kind``."""
        return [action for action in self.actions if isinstance(action, kind)]

    def stop(self) -> None:
        """Stop recording (idempotent)."""
        if self._remove is not None:
            self._remove()
            self._remove = None

    def __enter__(self) -> Recording[S]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def record_store(target: Store[S] | Chats) -> Recording[Any]:
    """Start recording ``target`` (a :class:`Store`, or a :class:`Chats` module's store)."""
    store: Store[Any] = target.store if isinstance(target, Chats) else target
    return Recording(store)
