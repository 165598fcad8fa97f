"""MessageLog and MessageSequence: ordering, persistence, the chunked layout."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chats_store.chats import message_log
from chats_store.chats.message_log import MessageLog, MessageSequence
from chats_store.chats.model import Message


def confirmed(message_id: str, seq: int, content: str = "text") -> Message:
    return Message(message_id, "c1", "alice", content, "ready", seq=seq)


def pending(message_id: str, content: str = "text") -> Message:
    return Message(message_id, "c1", "me", content, "sending")


def ids(log: MessageLog) -> list[str]:
    return [message.id for message in log]


def assert_well_ordered(log: MessageLog) -> None:
    """Confirmed messages strictly by seq, then every pending one; ids unique."""
    items = log.items
    seqs = [message.seq for message in items]
    confirmed_count = len([seq for seq in seqs if seq is not None])
    assert all(seq is not None for seq in seqs[:confirmed_count]), seqs
    confirmed_seqs = [seq for seq in seqs[:confirmed_count] if seq is not None]
    assert confirmed_seqs == sorted(set(confirmed_seqs)), seqs
    assert len({message.id for message in items}) == len(items), ids(log)


# MessageLog ------------------------------------------------------------------------


def test_confirm_orders_by_seq_whatever_the_arrival_order() -> None:
    log = MessageLog().confirm(confirmed("b", 5)).confirm(confirmed("a", 2))
    log = log.confirm(confirmed("c", 9)).confirm(confirmed("d", 3))
    assert ids(log) == ["a", "d", "b", "c"]
    assert log.last_confirmed_seq == 9


def test_confirm_puts_confirmed_messages_before_pending_ones() -> None:
    log = MessageLog().append_pending(pending("p1")).append_pending(pending("p2"))
    log = log.confirm(confirmed("a", 4)).confirm(confirmed("b", 1))
    assert ids(log) == ["b", "a", "p1", "p2"]
    assert log.last_confirmed_seq == 4


def test_confirm_replaces_the_pending_echo() -> None:
    log = MessageLog().append_pending(pending("p1", "hello")).append_pending(pending("p2"))
    log = log.confirm(confirmed("x", 1))
    log = log.confirm(msgspec.structs.replace(confirmed("p1", 2, "hello"), author_id="me"))
    assert ids(log) == ["x", "p1", "p2"]
    echo = log.find("p1")
    assert echo is not None
    assert (echo.seq, echo.status) == (2, "ready")


def test_confirm_of_a_message_already_confirmed_replaces_it_in_place() -> None:
    log = MessageLog().confirm(confirmed("a", 1)).confirm(confirmed("b", 2, "old"))
    log = log.confirm(confirmed("c", 3)).confirm(confirmed("b", 2, "new"))
    assert ids(log) == ["a", "b", "c"]
    assert [message.content for message in log][1] == "new"


def test_confirm_with_a_duplicate_seq_replaces_the_message_at_that_seq() -> None:
    log = MessageLog().confirm(confirmed("a", 1)).confirm(confirmed("b", 2))
    log = log.confirm(confirmed("z", 2))
    assert ids(log) == ["a", "z"]


def test_append_pending_keeps_creation_order() -> None:
    log = MessageLog().confirm(confirmed("a", 1))
    log = log.append_pending(pending("p1")).append_pending(pending("p2"))
    assert ids(log) == ["a", "p1", "p2"]
    assert log.last_confirmed_seq == 1


def test_replace_keeps_the_position_and_an_absent_id_changes_nothing() -> None:
    log = MessageLog().confirm(confirmed("a", 1)).append_pending(pending("p1"))
    replaced = log.replace(msgspec.structs.replace(pending("p1"), status="interrupted"))
    assert ids(replaced) == ["a", "p1"]
    assert [message.status for message in replaced] == ["ready", "interrupted"]
    assert log.replace(pending("nope")) is log


def test_remove_drops_the_message_and_an_absent_id_changes_nothing() -> None:
    log = MessageLog().confirm(confirmed("a", 1)).confirm(confirmed("b", 2))
    log = log.append_pending(pending("p1"))
    assert ids(log.remove("b")) == ["a", "p1"]
    assert ids(log.remove("p1")) == ["a", "b"]
    assert log.remove("nope") is log


def test_find_and_len_and_iteration() -> None:
    log = MessageLog().confirm(confirmed("a", 1)).append_pending(pending("p1"))
    assert log.find("a") == confirmed("a", 1)
    assert log.find("p1") == pending("p1")
    assert log.find("nope") is None
    assert len(log) == 2
    assert list(log) == list(log.items)


def test_an_empty_log_has_last_confirmed_seq_zero() -> None:
    assert MessageLog().last_confirmed_seq == 0
    assert MessageLog().append_pending(pending("p1")).last_confirmed_seq == 0
    assert len(MessageLog()) == 0


def test_replace_of_a_pending_message_by_its_confirmed_version_moves_it() -> None:
    """A rollback to the version the server pushed meanwhile lands at its seq."""
    log = MessageLog().confirm(confirmed("a", 1)).confirm(confirmed("b", 5))
    log = log.append_pending(pending("p1")).append_pending(pending("p2"))
    log = log.replace(msgspec.structs.replace(pending("p2"), seq=3, status="ready"))
    assert_well_ordered(log)
    assert ids(log) == ["a", "p2", "b", "p1"]


# Property: any sequence of operations keeps the log well ordered ------------------------

MESSAGE_IDS = [f"m{i}" for i in range(8)]
# A message id always comes back with the same seq (the server assigns it once).
SEQ_OF = {message_id: index * 3 + 1 for index, message_id in enumerate(MESSAGE_IDS)}

operations = st.lists(
    st.tuples(
        st.sampled_from(("confirm", "confirm_other_at_seq", "append_pending", "remove")),
        st.sampled_from(MESSAGE_IDS),
        st.integers(min_value=1, max_value=30),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(operations)
def test_any_sequence_of_operations_keeps_the_log_ordered(
    ops: list[tuple[str, str, int]],
) -> None:
    log = MessageLog()
    for operation, message_id, seq in ops:
        before = log
        if operation == "confirm":
            log = log.confirm(confirmed(message_id, SEQ_OF[message_id]))
            assert log.find(message_id) == confirmed(message_id, SEQ_OF[message_id])
        elif operation == "confirm_other_at_seq":
            # A server message with a fresh id at an arbitrary seq (a duplicate seq
            # replaces whatever was there).
            fresh = f"x{seq}"
            log = log.confirm(confirmed(fresh, seq))
            assert log.find(fresh) == confirmed(fresh, seq)
        elif operation == "append_pending":
            if log.find(message_id) is None:  # the reducer never appends an id twice
                log = log.append_pending(pending(message_id))
        else:
            log = log.remove(message_id)
            assert log.find(message_id) is None
        assert_well_ordered(log)
        if operation == "remove" and before.find(message_id) is None:
            assert log is before


def test_a_new_version_never_changes_what_an_older_one_finds() -> None:
    """The versions share the id index; an older one still finds only its own messages."""
    log = MessageLog(confirmed(f"m{i}", i + 1) for i in range(10))
    index = log._index
    assert index is not None
    newer = log.confirm(confirmed("new", 100))
    assert newer._index is index and index["new"] == 100  # shared, added to: no copy
    assert log.find("new") is None and newer.find("new") == confirmed("new", 100)
    assert newer.remove("new").find("new") is None and newer.find("new") is not None


def test_an_id_with_two_seqs_makes_the_new_version_scan() -> None:
    log = MessageLog(confirmed(f"m{i}", i + 1) for i in range(10))
    sibling = log.confirm(confirmed("x", 20))
    other = log.confirm(confirmed("x", 30))  # made from the same version, another seq
    assert sibling._index is log._index and other._index is None
    assert sibling.find("x") == confirmed("x", 20) and other.find("x") == confirmed("x", 30)
    assert log.find("x") is None


version_operations = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=10_000),  # the version it is made from (modulo)
        st.sampled_from(("confirm", "remove", "append_pending", "replace", "keep_newest")),
        st.integers(min_value=0, max_value=30),
        st.booleans(),  # which of two seqs the id gets in this version
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(version_operations)
def test_every_version_finds_its_own_messages_whatever_its_siblings_hold(
    ops: list[tuple[int, str, int, bool]],
) -> None:
    """Versions made from any earlier version (a tree, as replays and tests make them)
    share one id index, yet each holds and finds exactly its own messages."""
    with small_chunks():
        versions: list[tuple[MessageLog, tuple[Message, ...]]] = [(MessageLog(), ())]
        for which, operation, number, high in ops:
            log, expected = versions[which % len(versions)]
            message_id = f"m{number}"
            held = next((m for m in expected if m.id == message_id), None)
            message = confirmed(message_id, number * 2 + 1 + (100 if high else 0))
            if operation in ("confirm", "replace"):
                if held is not None and held.seq not in (None, message.seq):
                    continue  # one version never holds an id at two seqs
                log = getattr(log, operation)(message)
                expected = _reference(expected, operation, message)
            elif operation == "remove":
                log, expected = log.remove(message_id), _reference(expected, "remove", message)
            elif operation == "append_pending":
                if held is not None:
                    continue  # the reducer never appends an id twice
                added = pending(message_id)
                log, expected = log.append_pending(added), (*expected, added)
            else:
                log, expected = log.keep_newest(number // 3), _keep_newest(expected, number // 3)
            versions.append((log, expected))
        for log, expected in versions:
            assert tuple(log) == expected
            for number in range(31):
                wanted = next((m for m in expected if m.id == f"m{number}"), None)
                assert log.find(f"m{number}") == wanted


def test_a_log_indexes_a_seq_0_and_scans_past_a_pending_message_among_confirmed_ones() -> None:
    """Only a pending message amid the confirmed ones (or an id twice) drops the index."""
    from_zero = MessageLog([confirmed("a", 0), confirmed("b", 1)])
    amid = MessageLog([confirmed("a", 1), pending("b"), confirmed("c", 2)])

    assert from_zero._index is not None and from_zero._index["a"] == 0
    assert amid._index is None and amid.find("c") == confirmed("c", 2)


# The chunked log behaves exactly like the plain tuple it replaced -------------------------


def _reference(items: tuple[Message, ...], operation: str, message: Message) -> tuple[Message, ...]:
    """The previous MessageLog's algorithms on a plain tuple (the specification)."""
    confirmed_count = len(items)
    while confirmed_count and items[confirmed_count - 1].seq is None:
        confirmed_count -= 1
    position = next((i for i in range(len(items) - 1, -1, -1) if items[i].id == message.id), -1)
    if operation == "append_pending":
        return (*items, message)
    if operation == "remove":
        return items if position < 0 else (*items[:position], *items[position + 1 :])
    if operation == "replace":
        if position < 0:
            return items
        if message.seq is not None and items[position].seq is None:
            operation = "confirm"
        else:
            return (*items[:position], message, *items[position + 1 :])
    assert message.seq is not None
    for index in range(len(items) - 1, confirmed_count - 1, -1):
        if items[index].id == message.id:
            items = (*items[:index], *items[index + 1 :])
            break
    seqs = [m.seq for m in items[:confirmed_count]]
    index = next(
        (i for i, seq in enumerate(seqs) if seq is not None and seq >= message.seq), len(seqs)
    )
    if index < confirmed_count and items[index].seq == message.seq:
        return (*items[:index], message, *items[index + 1 :])
    return (*items[:index], message, *items[index:])


chunked_operations = st.lists(
    st.tuples(
        st.sampled_from(
            ("confirm", "append_pending", "remove", "replace", "replace_pending", "keep_newest")
        ),
        st.integers(min_value=0, max_value=59),
        st.sampled_from(("a", "b")),
    ),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(chunked_operations)
def test_the_chunked_log_matches_the_tuple_algorithms(ops: list[tuple[str, int, str]]) -> None:
    with small_chunks():
        check_against_the_reference(ops)


def check_against_the_reference(ops: list[tuple[str, int, str]]) -> None:
    log = MessageLog()
    expected: tuple[Message, ...] = ()
    for operation, number, content in ops:
        message_id = f"m{number}"
        if operation == "append_pending":
            if log.find(message_id) is not None:
                continue  # the reducer never appends an id twice
            message = pending(message_id, content)
        elif operation == "replace_pending":
            operation, message = "replace", pending(message_id, content)
            current = log.find(message_id)
            if current is not None and current.seq is not None:
                continue  # the reducer never makes a confirmed message pending again
        else:
            message = confirmed(message_id, number * 2 + 1, content)
        before = log
        if operation == "keep_newest":
            log = log.keep_newest(number // 2)
            expected = _keep_newest(expected, number // 2)
            if tuple(before) == expected:
                assert log is before
        else:
            log = getattr(log, operation)(message if operation != "remove" else message_id)
            expected = _reference(expected, operation, message)
        assert tuple(log) == expected
        assert log.items == expected and expected == log.items
        assert len(log) == len(expected)
        assert list(reversed(log.items)) == list(reversed(expected))
        if expected:
            assert log.items[-1] == expected[-1] and log.items[0] == expected[0]
            middle = len(expected) // 2
            assert log.items[middle] == expected[middle]
            assert log.items[-middle - 1] == expected[-middle - 1]
        for known in expected:
            assert log.find(known.id) == known
        assert log.find("absent") is None
        confirmed_seqs = [m.seq for m in expected if m.seq is not None]
        assert log.last_confirmed_seq == (confirmed_seqs[-1] if confirmed_seqs else 0)
        if tuple(before) == expected:
            assert before == log
        assert log == MessageLog(expected)
        assert hash(log.items) == hash(expected)
        assert_changes(log, before)


def assert_changes(log: MessageLog, before: MessageLog) -> None:
    """``changes_since`` is the difference of the two versions, by identity."""
    new, gone = log.changes_since(before)
    kept = {id(m) for m in before}
    held = {id(m) for m in log}
    assert sorted(map(id, new)) == sorted(id(m) for m in log if id(m) not in kept)
    assert sorted(map(id, gone)) == sorted(id(m) for m in before if id(m) not in held)


def _keep_newest(items: tuple[Message, ...], limit: int) -> tuple[Message, ...]:
    """The newest ``limit`` confirmed messages and every pending one (the specification)."""
    confirmed_count = sum(1 for m in items if m.seq is not None)
    return items[max(confirmed_count - limit, 0) :]


@contextmanager
def small_chunks() -> Iterator[None]:
    """Chunks of 4 messages in groups of 4 chunks, appends gathering 2 chunks before
    their group joins the one before it, so that a few dozen messages split, empty and
    join chunks and groups."""
    saved = message_log._CHUNK, message_log._GROUP, message_log._TRAILING
    message_log._CHUNK, message_log._GROUP, message_log._TRAILING = 4, 4, 2
    try:
        yield
    finally:
        message_log._CHUNK, message_log._GROUP, message_log._TRAILING = saved


def test_appends_in_order_copy_a_short_last_group_and_share_the_others() -> None:
    with small_chunks():
        log, expected = MessageLog(), []
        for seq in range(1, 101):
            before = log
            expected.append(confirmed(f"m{seq}", seq))
            log = log.confirm(expected[-1])
            groups = log.items._groups
            assert tuple(log) == tuple(expected)
            assert all(1 <= len(chunk) <= 4 for group in groups for chunk in group)
            assert all(1 <= len(group) <= 4 for group in groups)
            assert len(groups[-1]) <= 2
            assert all(a is b for a, b in zip(groups[:-2], before.items._groups, strict=False))
        # The full last groups joined the ones before them: every other group is full.
        assert [len(group) for group in log.items._groups] == [4, 4, 4, 4, 4, 4, 1]
        assert log == MessageLog(expected)
        assert all(log.find(message.id) is message for message in expected)


def test_message_sequence_behaves_like_a_tuple() -> None:
    messages = tuple(confirmed(f"m{i}", i + 1) for i in range(600))
    log = MessageLog(messages).append_pending(pending("p"))
    items = log.items
    expected = (*messages, pending("p"))
    assert isinstance(items, Sequence)
    assert items == expected and items != expected[:-1] and items != list(expected)
    assert items[1:3] == expected[1:3] and items[-1] == pending("p")
    assert items.index(messages[300]) == 300 and messages[299] in items
    with pytest.raises(IndexError):
        items[601]
    assert repr(items).startswith("MessageSequence((Message(")
    assert MessageSequence(expected) == items
    other = log.confirm(confirmed("new", 1000))
    assert other.items != items and len(other.items) == 602
    assert items == log.items  # unchanged: the same object
    with pytest.raises(AttributeError):
        log.items = items  # type: ignore[misc]


def test_a_long_history_shares_its_chunks_between_versions() -> None:
    log = MessageLog(confirmed(f"m{i}", i + 1) for i in range(10_000))
    appended = log.confirm(confirmed("new", 20_000))
    edited = log.replace(msgspec.structs.replace(log.items[5_000], content="edited"))
    removed = log.remove("m5000")
    old_chunks = log.items._chunks
    assert appended.items._chunks[:-1] == old_chunks[:-1]
    assert all(a is b for a, b in zip(appended.items._chunks[:-1], old_chunks, strict=False))
    shared = sum(a is b for a, b in zip(edited.items._chunks, old_chunks, strict=True))
    assert shared == len(old_chunks) - 1
    assert removed.find("m5000") is None and log.find("m5000") is not None
    assert len(removed) == 9_999 and edited.find("m5000") == msgspec.structs.replace(
        log.items[5_000], content="edited"
    )
    # Two levels (chunks of 32, groups of 64 chunks, the last chunk in a group of its
    # own): an append copies that short group and the short tuple of groups.
    groups = log.items._groups
    assert [len(group) for group in groups] == [64, 64, 64, 64, 56, 1]
    assert appended.items._groups[-1] is not groups[-1]
    assert all(a is b for a, b in zip(groups[:-1], appended.items._groups, strict=False))
    big = MessageLog(confirmed(f"m{i}", i + 1) for i in range(100_000))
    big_appended = big.confirm(confirmed("new", 200_000))
    assert len(big.items._groups) == 50
    assert all(
        a is b for a, b in zip(big.items._groups[:-1], big_appended.items._groups, strict=False)
    )


def test_keep_newest_drops_the_oldest_confirmed_and_bounds_the_index() -> None:
    log = MessageLog(confirmed(f"m{i}", i + 1) for i in range(1_000)).append_pending(pending("p"))
    trimmed = log.keep_newest(300)
    assert len(trimmed) == 301 and trimmed.first_confirmed_seq == 701
    assert trimmed.confirmed_count == 300 and trimmed.last_confirmed_seq == 1_000
    assert trimmed.find("m699") is None and trimmed.find("m700") is not None
    assert trimmed.find("p") == pending("p") and log.find("m0") is not None
    assert trimmed.keep_newest(300) is trimmed
    assert tuple(log.keep_newest(0)) == (pending("p"),)
    # A long run through a bounded log: the shared id index does not grow without bound.
    for seq in range(1_001, 5_001):
        trimmed = trimmed.confirm(confirmed(f"m{seq - 1}", seq)).keep_newest(300)
    assert trimmed.first_confirmed_seq == 4_701 and trimmed.find("m4700") is not None
    assert trimmed._index is not None and len(trimmed._index) <= 2 * 300 + 256


# The public strategies produce what they promise ------------------------------------------
