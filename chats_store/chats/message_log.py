"""A chat's messages: :class:`MessageLog` and the :class:`MessageSequence` it shows (pure).

Persistent and chunked: a new version of a long history shares every chunk of
messages it did not change with the version it was made from, so a new message
costs the same in a long history as in a short one. No version ever changes what
another holds or finds (see the id index in :class:`MessageLog`).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate, chain
from typing import TYPE_CHECKING, TypeAlias, cast, overload

if TYPE_CHECKING:
    from chats_store.chats.model import Message

__all__ = ["EMPTY_LOG", "MessageLog", "MessageSequence"]

_CHUNK = 32
"""Most messages per chunk of a :class:`MessageLog` (the unit an edit copies)."""
# Small: copying a chunk touches every message in it (a reference count each), and in a
# client with many chats those are rarely in the CPU's cache when a message arrives. An
# edit in the middle copies a group of up to _GROUP chunks besides; an append copies a
# last group of at most _TRAILING.

_GROUP = 64
"""Most chunks per group: the confirmed messages are a tuple of groups of chunks."""

_TRAILING = 8
"""Most chunks the last group gathers as messages are appended in order: then it joins
the group before it (when that has room) and the next chunk starts a new last group, so
an append copies a group of a few chunks rather than one of up to ``_GROUP``."""

# Message is only a name here (model imports this module): quoted where it is evaluated.
_Chunk: TypeAlias = tuple["Message", ...]
_Group: TypeAlias = tuple[_Chunk, ...]
_Groups: TypeAlias = tuple[_Group, ...]


def _message_seq(message: Message) -> int:
    assert message.seq is not None
    return message.seq


def _first_seq(chunk: _Chunk) -> int:
    return _message_seq(chunk[0])


def _group_first_seq(group: _Group) -> int:
    return _message_seq(group[0][0])


class MessageSequence(Sequence["Message"]):
    """An immutable sequence of messages: what ``get_chat_messages`` emits.

    It holds the confirmed messages in two levels, groups of at most ``_GROUP``
    chunks of at most ``_CHUNK`` messages (both shared between versions), followed
    by the pending ones, so a new version of a long history copies one chunk, one
    group and the (short) tuple of groups, not every message. It behaves like a
    tuple of its messages: iteration, ``len``, indexing (a slice gives a tuple),
    and it compares equal to, and hashes like, a tuple or another
    ``MessageSequence`` with the same messages. ``==`` checks identity, then
    length, then shared groups and chunks by identity, so comparing two versions
    of a long history does not walk it.
    """

    __slots__ = ("_confirmed", "_flat", "_groups", "_hash", "_pending", "_starts")

    _groups: _Groups
    _confirmed: int
    _pending: tuple[Message, ...]
    _flat: tuple[_Chunk, ...] | None
    _starts: list[int] | None
    _hash: int | None

    def __new__(cls, messages: Iterable[Message] = ()) -> MessageSequence:
        """A sequence of ``messages`` as given (MessageLog builds its own)."""
        items = tuple(messages)
        return _sequence(_grouped(_chunked(items)), len(items), ())

    @property
    def _chunks(self) -> tuple[_Chunk, ...]:
        """Every chunk in order (computed once per version, for indexing)."""
        flat = self._flat
        if flat is None:
            flat = self._flat = tuple(chain.from_iterable(self._groups))
        return flat

    def __len__(self) -> int:
        return self._confirmed + len(self._pending)

    def __iter__(self) -> Iterator[Message]:
        groups = self._groups
        if len(groups) == 1 and len(groups[0]) == 1 and not self._pending:
            return iter(groups[0][0])
        return chain(chain.from_iterable(chain.from_iterable(groups)), self._pending)

    def __reversed__(self) -> Iterator[Message]:
        yield from reversed(self._pending)
        for group in reversed(self._groups):
            for chunk in reversed(group):
                yield from reversed(chunk)

    @overload
    def __getitem__(self, index: int) -> Message: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Message, ...]: ...

    def __getitem__(self, index: int | slice) -> Message | tuple[Message, ...]:
        if isinstance(index, slice):
            return tuple(self)[index]
        size = len(self)
        if index < 0:
            index += size
        if not 0 <= index < size:
            raise IndexError("message index out of range")
        confirmed = self._confirmed
        if index >= confirmed:
            return self._pending[index - confirmed]
        last = self._groups[-1][-1]
        if index >= confirmed - len(last):
            return last[index - confirmed + len(last)]
        chunks = self._chunks
        starts = self._starts
        if starts is None:
            starts = self._starts = [0, *accumulate(len(chunk) for chunk in chunks)]
        at = bisect_right(starts, index) - 1
        return chunks[at][index - starts[at]]

    def __eq__(self, other: object) -> bool:
        if other is self:
            return True
        if isinstance(other, MessageSequence):
            # Lengths first, without two calls of __len__: versions of a history mostly
            # differ in length, and the store compares each new version with the last.
            if other._confirmed + len(other._pending) != self._confirmed + len(self._pending):
                return False
            mine, theirs = self._groups, other._groups
            if mine is theirs:
                return self._pending == other._pending
            # Skip the groups, then the chunks, both share (the same objects), then
            # compare message by message.
            start = 0
            for a, b in zip(mine, theirs, strict=False):
                if a is not b:
                    break
                start += 1
            my_chunks = tuple(chain.from_iterable(mine[start:]))
            their_chunks = tuple(chain.from_iterable(theirs[start:]))
            start = 0
            for c, d in zip(my_chunks, their_chunks, strict=False):
                if c is not d:
                    break
                start += 1
            rest = chain(chain.from_iterable(my_chunks[start:]), self._pending)
            other_rest = chain(chain.from_iterable(their_chunks[start:]), other._pending)
            return all(a is b or a == b for a, b in zip(rest, other_rest, strict=True))
        if isinstance(other, tuple):
            return len(other) == len(self) and tuple(self) == other
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple(self))
        return self._hash

    def __repr__(self) -> str:
        return f"MessageSequence({tuple(self)!r})"


def _sequence(groups: _Groups, confirmed: int, pending: tuple[Message, ...]) -> MessageSequence:
    sequence = object.__new__(MessageSequence)
    sequence._groups = groups
    sequence._confirmed = confirmed
    sequence._pending = pending
    sequence._flat = None
    sequence._starts = None
    sequence._hash = None
    return sequence


def _chunked(items: tuple[Message, ...]) -> tuple[_Chunk, ...]:
    size = _CHUNK
    if len(items) <= size:
        return (items,) if items else ()
    return tuple(items[start : start + size] for start in range(0, len(items), size))


def _grouped(chunks: tuple[_Chunk, ...]) -> _Groups:
    """``chunks`` in groups of ``_GROUP``, the last chunk in a group of its own when the
    group it would end has more than ``_TRAILING``: the appends that follow (a joined
    chat's new messages) then copy a short group (see :func:`_appended`)."""
    size = _GROUP
    groups = [chunks[start : start + size] for start in range(0, len(chunks), size)]
    if groups and len(groups[-1]) > _TRAILING:
        last = groups.pop()
        groups += (last[:-1], last[-1:])
    return tuple(groups)


def _splice(groups: _Groups, at: int, chunk_at: int, chunks: tuple[_Chunk, ...]) -> _Groups:
    """``groups`` with the chunk at (``at``, ``chunk_at``) replaced by ``chunks`` (0 to 2)."""
    group = groups[at]
    new = (*group[:chunk_at], *chunks, *group[chunk_at + 1 :])
    if not new:
        return (*groups[:at], *groups[at + 1 :])
    if len(new) > _GROUP:
        half = len(new) // 2
        return (*groups[:at], new[:half], new[half:], *groups[at + 1 :])
    return (*groups[:at], new, *groups[at + 1 :])


_Index: TypeAlias = dict[str, int]
"""Message id -> ``seq``, shared by the versions of a log and only ever added to
(see MessageLog)."""

_MISS = (-1, -1, -1)


class MessageLog:
    """A chat's messages in display order: confirmed by ``seq``, then pending.

    Pending messages (``seq`` is None: sending, interrupted, or deleting one of
    those) always sit after every confirmed message, in creation order.

    Persistent and chunked in two levels: the confirmed messages live in chunks
    of at most 32, grouped by at most 64 (a new message at the end goes into the
    last chunk, or starts a new one), so appending, editing or removing a message
    copies one chunk, one group and the tuple of groups (a few references per
    2,048 messages), whatever the history's length. New chunks gather in a last
    group of at most 8 before it joins the one before it, so what an append
    copies is mostly one chunk. ``items`` is an immutable
    :class:`MessageSequence` of all of them.

    Lookups by id check the (few) pending messages, then ask the log's index from
    id to ``seq`` and binary-search that ``seq``, and the message found there must
    have that id. The index is a dict shared by a log and the versions made from it,
    which entries are only ever added to, never changed or removed: a new confirmed
    message adds its id, so a new version costs one entry, not a copy of the index.
    A version may find in the index
    ids it never held (a removed message, one only a later or a sibling version
    holds): the check of the message at that ``seq`` tells them apart, so each
    version finds exactly its own messages. When an id turns up with another
    ``seq`` than its entry's (a server would never do that; two sibling versions
    may), the new version drops the index and scans instead. :meth:`keep_newest`
    starts a fresh index when the entries outnumber the live messages.
    """

    __slots__ = ("_index", "items")

    items: MessageSequence
    _index: _Index | None

    def __init__(self, items: Iterable[Message] = ()) -> None:
        items = tuple(items)
        confirmed = len(items)
        while confirmed and items[confirmed - 1].seq is None:
            confirmed -= 1
        head = items[:confirmed]
        object.__setattr__(
            self, "items", _sequence(_grouped(_chunked(head)), confirmed, items[confirmed:])
        )
        object.__setattr__(self, "_index", _index_of(head))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"MessageLog is immutable (cannot set {name!r})")

    def __iter__(self) -> Iterator[Message]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MessageLog):
            return NotImplemented
        return other is self or other.items == self.items

    def __hash__(self) -> int:
        return hash(self.items)

    def __repr__(self) -> str:
        return f"MessageLog(items={tuple(self.items)!r})"

    def __reduce__(self) -> tuple[type[MessageLog], tuple[tuple[Message, ...]]]:
        return (MessageLog, (tuple(self.items),))

    # Internals ---------------------------------------------------------------

    @staticmethod
    def _make(
        groups: _Groups,
        confirmed: int,
        pending: tuple[Message, ...],
        index: _Index | None,
    ) -> MessageLog:
        log = object.__new__(MessageLog)
        object.__setattr__(log, "items", _sequence(groups, confirmed, pending))
        object.__setattr__(log, "_index", index)
        return log

    def _pending_position(self, message_id: str) -> int:
        pending = self.items._pending
        for index in range(len(pending) - 1, -1, -1):
            if pending[index].id == message_id:
                return index
        return -1

    def _place(self, seq: int) -> tuple[int, int]:
        """(group, chunk) where ``seq`` is or would go (the first chunk if before all)."""
        groups = self.items._groups
        at = len(groups) - 1
        if _group_first_seq(groups[at]) > seq:
            at = max(bisect_right(groups, seq, key=_group_first_seq) - 1, 0)
        group = groups[at]
        chunk_at = len(group) - 1
        if _first_seq(group[chunk_at]) > seq:
            chunk_at = max(bisect_right(group, seq, key=_first_seq) - 1, 0)
        return at, chunk_at

    def _locate_seq(self, seq: int) -> tuple[int, int, int]:
        """(group, chunk, offset) of the confirmed message with ``seq``, or (-1, -1, -1)."""
        groups = self.items._groups
        # After the last one: no search (an id the index knows from a later version).
        if not groups or _message_seq(groups[-1][-1][-1]) < seq:
            return _MISS
        at, chunk_at = self._place(seq)
        chunk = self.items._groups[at][chunk_at]
        offset = bisect_left(chunk, seq, key=_message_seq)
        if offset < len(chunk) and chunk[offset].seq == seq:
            return at, chunk_at, offset
        return _MISS

    def _locate(self, message_id: str) -> tuple[int, int, int]:
        """(group, chunk, offset) of the confirmed message ``message_id``, or (-1, -1, -1)."""
        groups = self.items._groups
        index = self._index
        if index is not None:
            seq = index.get(message_id)
            if seq is None:
                return _MISS
            at, chunk_at, offset = self._locate_seq(seq)
            if at >= 0 and groups[at][chunk_at][offset].id == message_id:
                return at, chunk_at, offset
            return _MISS
        for at in range(len(groups) - 1, -1, -1):
            group = groups[at]
            for chunk_at in range(len(group) - 1, -1, -1):
                chunk = group[chunk_at]
                for offset in range(len(chunk) - 1, -1, -1):
                    if chunk[offset].id == message_id:
                        return at, chunk_at, offset
        return _MISS

    def _with_chunk(
        self, at: int, chunk_at: int, chunk: _Chunk, index: _Index | None
    ) -> MessageLog:
        items = self.items
        groups = items._groups
        size = items._confirmed + len(chunk) - len(groups[at][chunk_at])
        new_groups = _splice(groups, at, chunk_at, (chunk,) if chunk else ())
        return MessageLog._make(new_groups, size, items._pending, index)

    # Public interface --------------------------------------------------------

    def find(self, message_id: str) -> Message | None:
        """The message with ``message_id``, or None."""
        if self.items._pending:
            position = self._pending_position(message_id)
            if position >= 0:
                return self.items._pending[position]
        at, chunk_at, offset = self._locate(message_id)
        return self.items._groups[at][chunk_at][offset] if at >= 0 else None

    @property
    def last_confirmed_seq(self) -> int:
        """The highest message ``seq`` held, 0 when there is none."""
        groups = self.items._groups
        return _message_seq(groups[-1][-1][-1]) if groups else 0

    @property
    def first_confirmed_seq(self) -> int | None:
        """The lowest message ``seq`` held, None when there is none."""
        groups = self.items._groups
        return _message_seq(groups[0][0][0]) if groups else None

    @property
    def confirmed_count(self) -> int:
        """How many confirmed messages the log holds (pending ones not counted)."""
        return self.items._confirmed

    @property
    def pending(self) -> tuple[Message, ...]:
        """The messages not confirmed by the server, in creation order."""
        return self.items._pending

    def changes_since(self, older: MessageLog) -> tuple[list[Message], list[Message]]:
        """What differs from ``older``: the messages of this log that ``older`` does not
        hold (new ones and new versions), and those of ``older`` this log does not hold.

        Messages are told apart by identity, chunks first: versions of one history
        share their unchanged chunks, so the cost is that of the chunks that changed,
        whatever the history's length.
        """
        mine = (*self.items._chunks, self.items._pending)
        theirs = (*older.items._chunks, older.items._pending)
        shared = {id(chunk) for chunk in mine} & {id(chunk) for chunk in theirs}
        my_rest = [m for chunk in mine if id(chunk) not in shared for m in chunk]
        their_rest = [m for chunk in theirs if id(chunk) not in shared for m in chunk]
        # What the two have in common at the start and at the end (a message appended,
        # edited or removed changes one place), then the rest by identity.
        start, limit = 0, min(len(my_rest), len(their_rest))
        while start < limit and my_rest[start] is their_rest[start]:
            start += 1
        my_end, their_end = len(my_rest), len(their_rest)
        while (
            my_end > start
            and their_end > start
            and my_rest[my_end - 1] is their_rest[their_end - 1]
        ):
            my_end -= 1
            their_end -= 1
        my_rest, their_rest = my_rest[start:my_end], their_rest[start:their_end]
        my_ids = {id(m) for m in my_rest}
        their_ids = {id(m) for m in their_rest}
        return (
            [m for m in my_rest if id(m) not in their_ids],
            [m for m in their_rest if id(m) not in my_ids],
        )

    def keep_newest(self, limit: int) -> MessageLog:
        """The log without its oldest confirmed messages beyond ``limit`` (pending ones stay).

        The same log when it holds at most ``limit`` confirmed messages. Costs one
        chunk, one group and the tuple of groups, plus, now and then, a fresh id
        index (when the current one holds twice as many ids as the log), so the
        memory of a long run stays bounded.
        """
        items = self.items
        drop = items._confirmed - max(limit, 0)
        if drop <= 0:
            return self
        kept = items._confirmed - drop
        groups = items._groups
        if kept == 0:
            new_groups: _Groups = ()
        else:
            at = 0
            while True:
                group = groups[at]
                size = sum(map(len, group))
                if size > drop:
                    break
                drop -= size
                at += 1
            chunk_at = 0
            while len(group[chunk_at]) <= drop:
                drop -= len(group[chunk_at])
                chunk_at += 1
            new_groups = ((group[chunk_at][drop:], *group[chunk_at + 1 :]), *groups[at + 1 :])
        index = self._index
        if index is not None and len(index) > 2 * max(kept, _CHUNK):
            index = _index_of(tuple(chain.from_iterable(chain.from_iterable(new_groups))))
        return MessageLog._make(new_groups, kept, items._pending, index)

    def append_pending(self, message: Message) -> MessageLog:
        """Add a message not yet confirmed by the server at the end."""
        items = self.items
        return MessageLog._make(
            items._groups, items._confirmed, (*items._pending, message), self._index
        )

    def replace(self, message: Message) -> MessageLog:
        """Put ``message`` in place of the message with the same id.

        A confirmed ``message`` replacing a pending entry (a rollback to a version
        the server confirmed meanwhile) moves to its ``seq`` position.
        """
        items = self.items
        position = self._pending_position(message.id)
        if position >= 0:
            if message.seq is not None:
                return self.confirm(message)
            pending = items._pending
            return MessageLog._make(
                items._groups,
                items._confirmed,
                (*pending[:position], message, *pending[position + 1 :]),
                self._index,
            )
        at, chunk_at, offset = self._locate(message.id)
        if at < 0:
            return self
        chunk = items._groups[at][chunk_at]
        index = self._index if message.seq == chunk[offset].seq else None
        return self._with_chunk(
            at, chunk_at, (*chunk[:offset], message, *chunk[offset + 1 :]), index
        )

    def remove(self, message_id: str) -> MessageLog:
        """Drop the message with ``message_id`` (the same log if it is absent)."""
        items = self.items
        position = self._pending_position(message_id)
        if position >= 0:
            pending = items._pending
            return MessageLog._make(
                items._groups,
                items._confirmed,
                (*pending[:position], *pending[position + 1 :]),
                self._index,
            )
        at, chunk_at, offset = self._locate(message_id)
        if at < 0:
            return self
        chunk = items._groups[at][chunk_at]
        return self._with_chunk(at, chunk_at, (*chunk[:offset], *chunk[offset + 1 :]), self._index)

    def confirm(self, message: Message) -> MessageLog:
        """Insert or replace a server-confirmed ``message`` at its ``seq`` position.

        A pending copy with the same id (the local echo) is removed, so a message
        shows once whatever order its reply and its push arrive in. A confirmed
        copy is found by ``seq`` (binary search): the server never changes a
        message's ``seq``, so the same message always lands on the same place.
        """
        seq = message.seq
        assert seq is not None, "confirm takes a confirmed message"
        items = self.items
        pending = items._pending
        if pending:
            position = self._pending_position(message.id)
            if position >= 0:
                pending = (*pending[:position], *pending[position + 1 :])
        else:
            position = -1
        index = self._index
        if index is not None and index.setdefault(message.id, seq) != seq:
            index = None  # two seqs for one id: stop trusting the index
        groups = items._groups
        size = items._confirmed
        if not groups:
            return MessageLog._make((((message,),),), 1, pending, index)
        # Most confirmed messages arrive in order, after every other: no search then.
        if groups[-1][-1][-1].seq < seq:  # type: ignore[operator]  # a confirmed seq
            return MessageLog._make(_appended(groups, message), size + 1, pending, index)
        at, chunk_at = self._place(seq)
        group = groups[at]
        chunk = group[chunk_at]
        offset = bisect_left(chunk, seq, key=_message_seq)
        if offset < len(chunk) and chunk[offset].seq == seq:
            if position < 0 and chunk[offset] == message:
                return self  # the same message again (an ack after its push): unchanged
            new = (*chunk[:offset], message, *chunk[offset + 1 :])
            return MessageLog._make(_splice(groups, at, chunk_at, (new,)), size, pending, index)
        new = (*chunk[:offset], message, *chunk[offset:])
        size += 1
        if len(new) <= _CHUNK:
            return MessageLog._make(_splice(groups, at, chunk_at, (new,)), size, pending, index)
        half = len(new) // 2
        return MessageLog._make(
            _splice(groups, at, chunk_at, (new[:half], new[half:])), size, pending, index
        )


def _appended(groups: _Groups, message: Message) -> _Groups:
    """``groups`` with ``message`` after every message: in the last chunk, or a new one
    when that is full, in the last group while it has fewer than ``_TRAILING`` chunks,
    else in a new group (the last one joining the one before it if they fit in one)."""
    # Concatenations (noqa: RUF005) rather than ``(*chunk, message)``, which builds a
    # list first: each copy of a chunk touches every message in it (its reference count),
    # and each copy of a group every chunk in it.
    group = groups[-1]
    chunk = group[-1]
    if len(chunk) < _CHUNK:
        return groups[:-1] + (group[:-1] + (chunk + (message,),),)  # noqa: RUF005
    started: _Group = ((message,),)
    if len(group) < _TRAILING:
        return groups[:-1] + (group + started,)  # noqa: RUF005
    if len(groups) > 1 and len(groups[-2]) + len(group) <= _GROUP:
        return groups[:-2] + (groups[-2] + group, started)  # noqa: RUF005
    return groups + (started,)  # noqa: RUF005


def _index_of(messages: Sequence[Message]) -> _Index | None:
    """A fresh id -> seq index of confirmed ``messages`` (None if an id repeats)."""
    # A comprehension: quicker than dict(zip(map(attrgetter(...), ...))), which calls
    # a getter per attribute and builds a pair per message (a join's 10,000 messages).
    index = {message.id: message.seq for message in messages}
    seqs = index.values()
    # all(seqs): no None in a pass that compares nothing (a seq 0 makes it look again).
    if len(index) == len(messages) and (all(seqs) or None not in seqs):
        return cast(_Index, index)
    return None  # the same id twice, or a pending one among them: scan


EMPTY_LOG = MessageLog()
