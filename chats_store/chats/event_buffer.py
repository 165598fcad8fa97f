"""``EventBuffer``: the server events a chat keeps while it loads, appended in O(1) (pure).

A chat that is ``loading`` or ``reloading`` keeps the events pushed meanwhile and
applies them, in order, once its snapshot or resumption is in. Rebuilding a tuple
for each event made that quadratic, a loop blocked for seconds by a flood. A
buffer is a prefix of a list it shares with the buffers made from it, as a Go slice
shares its array: appending to the newest buffer writes past every prefix in use
and costs O(1); appending to an older one (the list has grown past it) copies its
prefix first. No buffer ever sees its contents change.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import islice
from typing import overload

__all__ = ["EMPTY_BUFFER", "EventBuffer"]


class EventBuffer(Sequence[object]):
    """An immutable sequence of events; :meth:`appended` makes a longer one.

    It behaves like a tuple of its events: iteration, ``len``, indexing (a slice
    gives a tuple), and it compares equal to, and hashes like, a tuple or another
    buffer with the same events.
    """

    __slots__ = ("_items", "_length")

    def __init__(self, events: Sequence[object] = ()) -> None:
        self._items: list[object] = list(events)
        self._length = len(self._items)

    @classmethod
    def _prefix(cls, items: list[object], length: int) -> EventBuffer:
        buffer = cls.__new__(cls)
        buffer._items = items
        buffer._length = length
        return buffer

    def appended(self, event: object) -> EventBuffer:
        """This buffer with ``event`` at the end (O(1) when appending to the newest)."""
        length = self._length
        if not length:
            items = [event]  # a list of its own: the empty buffer is shared by every chat
        elif len(self._items) != length:  # a longer buffer shares the list: copy our part
            items = [*self._items[:length], event]
        else:
            items = self._items
            items.append(event)
        return EventBuffer._prefix(items, length + 1)

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[object]:
        return islice(self._items, self._length)

    @overload
    def __getitem__(self, index: int) -> object: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[object, ...]: ...

    def __getitem__(self, index: int | slice) -> object:
        if isinstance(index, slice):
            return tuple(self)[index]
        if not -self._length <= index < self._length:
            raise IndexError("event buffer index out of range")
        return self._items[index % self._length]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, EventBuffer):
            if self._items is other._items and self._length == other._length:
                return True
            return self._length == other._length and tuple(self) == tuple(other)
        if isinstance(other, tuple):
            return self._length == len(other) and tuple(self) == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"EventBuffer({list(self)!r})"


EMPTY_BUFFER = EventBuffer()
"""The buffer of a chat that holds no events."""
