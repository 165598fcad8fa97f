"""The message log before issue 6: one tuple copied on every change (the baseline).

A verbatim copy of ``chats_store.chats.model.MessageLog`` as it was, renamed
``TupleLog``, so that ``workloads.py`` measures the old approach and the new one in
the same run.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

import attrs

from chats_store.chats.model import Message


def _message_seq(message: Message) -> int:
    assert message.seq is not None
    return message.seq


@attrs.frozen
class TupleLog:
    """A chat's messages in display order: confirmed by ``seq``, then pending.

    Pending messages (``seq`` is None: sending, interrupted, or deleting one of
    those) always sit after every confirmed message, in creation order. Lookups
    by id scan from the newest end, where user actions and pushes land.
    """

    items: tuple[Message, ...] = ()

    def __iter__(self) -> Iterator[Message]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def _confirmed_count(self) -> int:
        items = self.items
        index = len(items)
        while index and items[index - 1].seq is None:
            index -= 1
        return index

    def _position(self, message_id: str) -> int:
        items = self.items
        for index in range(len(items) - 1, -1, -1):
            if items[index].id == message_id:
                return index
        return -1

    def find(self, message_id: str) -> Message | None:
        """The message with ``message_id``, or None."""
        index = self._position(message_id)
        return self.items[index] if index >= 0 else None

    @property
    def last_confirmed_seq(self) -> int:
        """The highest message ``seq`` held, 0 when there is none."""
        count = self._confirmed_count()
        return _message_seq(self.items[count - 1]) if count else 0

    def append_pending(self, message: Message) -> TupleLog:
        """Add a message not yet confirmed by the server at the end."""
        return TupleLog((*self.items, message))

    def replace(self, message: Message) -> TupleLog:
        """Put ``message`` in place of the message with the same id.

        A confirmed ``message`` replacing a pending entry (a rollback to a version
        the server confirmed meanwhile) moves to its ``seq`` position.
        """
        index = self._position(message.id)
        if index < 0:
            return self
        items = self.items
        if message.seq is not None and items[index].seq is None:
            return self.confirm(message)
        return TupleLog((*items[:index], message, *items[index + 1 :]))

    def remove(self, message_id: str) -> TupleLog:
        """Drop the message with ``message_id`` (the same log if it is absent)."""
        index = self._position(message_id)
        if index < 0:
            return self
        items = self.items
        return TupleLog((*items[:index], *items[index + 1 :]))

    def confirm(self, message: Message) -> TupleLog:
        """Insert or replace a server-confirmed ``message`` at its ``seq`` position.

        A pending copy with the same id (the local echo) is removed, so a message
        shows once whatever order its reply and its push arrive in. A confirmed
        copy is found by ``seq`` (binary search): the server never changes a
        message's ``seq``, so the same message always lands on the same place.
        """
        seq = _message_seq(message)
        items = self.items
        confirmed = self._confirmed_count()
        for index in range(len(items) - 1, confirmed - 1, -1):
            if items[index].id == message.id:
                items = (*items[:index], *items[index + 1 :])
                break
        index = bisect_left(items, seq, 0, confirmed, key=_message_seq)
        if index < confirmed and items[index].seq == seq:
            if items is self.items and items[index] == message:
                return self  # the same message again (an ack after its push): unchanged
            return TupleLog((*items[:index], message, *items[index + 1 :]))
        return TupleLog((*items[:index], message, *items[index:]))
