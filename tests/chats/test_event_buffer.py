"""EventBuffer: a tuple of events that grows in O(1) and never changes under its readers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chats_store.chats.event_buffer import EMPTY_BUFFER, EventBuffer


def test_it_reads_like_the_tuple_of_its_events() -> None:
    buffer = EMPTY_BUFFER.appended("a").appended("b").appended("c")

    assert list(buffer) == ["a", "b", "c"] and len(buffer) == 3
    assert buffer == ("a", "b", "c") and buffer == EventBuffer(["a", "b", "c"])
    assert buffer != ("a", "b") and buffer != ["a", "b", "c"]
    assert hash(buffer) == hash(("a", "b", "c"))
    assert (buffer[0], buffer[-1], buffer[1:]) == ("a", "c", ("b", "c"))
    with pytest.raises(IndexError):
        buffer[3]
    assert repr(buffer) == "EventBuffer(['a', 'b', 'c'])"


def test_an_older_buffer_never_sees_what_was_appended_to_a_newer_one() -> None:
    one = EMPTY_BUFFER.appended(1)
    two = one.appended(2)
    other = one.appended("x")  # appended to an older buffer: a copy of its part

    assert (tuple(one), tuple(two), tuple(other)) == ((1,), (1, 2), (1, "x"))
    assert EMPTY_BUFFER == () and len(EMPTY_BUFFER) == 0
    assert tuple(EMPTY_BUFFER.appended("alone")) == ("alone",)


@given(st.lists(st.tuples(st.integers(min_value=0, max_value=30), st.integers())))
def test_any_history_of_appends_is_the_same_as_with_tuples(
    appends: list[tuple[int, int]],
) -> None:
    """Append to any earlier version, in any order: each version stays its own tuple."""
    buffers: list[EventBuffer] = [EMPTY_BUFFER]
    tuples: list[tuple[object, ...]] = [()]
    for version, event in appends:
        index = version % len(buffers)
        buffers.append(buffers[index].appended(event))
        tuples.append((*tuples[index], event))
    assert [tuple(buffer) for buffer in buffers] == tuples
    assert buffers == [EventBuffer(list(t)) for t in tuples]
