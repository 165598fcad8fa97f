"""The Chats value types: MessageLog ordering, Restriction, SyncStatuses."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chats_store.chats.actions import ChatSnapshot
from chats_store.chats.model import Message, MessageLog, Restriction, SyncStatuses
from chats_store.chats.validation import check_content
from chats_store.testing import strategies


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
    log = log.confirm(attrs.evolve(confirmed("p1", 2, "hello"), author_id="me"))
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
    replaced = log.replace(attrs.evolve(pending("p1"), status="interrupted"))
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
    log = log.replace(attrs.evolve(pending("p2"), seq=3, status="ready"))
    assert_well_ordered(log)
    assert ids(log) == ["a", "p2", "b", "p1"]


# Restriction and SyncStatuses ---------------------------------------------------------


def test_a_permanent_restriction_is_always_active() -> None:
    assert Restriction("mute").is_active(0.0)
    assert Restriction("block", None, "spam").is_active(1e12)


def test_a_timed_restriction_is_active_until_its_end() -> None:
    mute = Restriction("mute", until=100.0)
    assert mute.is_active(99.999)
    assert not mute.is_active(100.0)
    assert not mute.is_active(150.0)


@pytest.mark.parametrize(
    ("messages", "members", "syncing"),
    [
        ("idle", "idle", False),
        ("loading", "idle", True),
        ("idle", "loading", True),
        ("loading", "loading", True),
    ],
)
def test_sync_statuses_is_syncing_while_any_kind_loads(
    messages: str, members: str, syncing: bool
) -> None:
    statuses = SyncStatuses(messages=messages, members=members)  # type: ignore[arg-type]
    assert statuses.is_syncing is syncing


def test_sync_statuses_default_to_idle() -> None:
    assert SyncStatuses() == SyncStatuses("idle", "idle")
    assert not SyncStatuses().is_syncing


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


# The public strategies produce what they promise ------------------------------------------


@settings(max_examples=100, deadline=None)
@given(strategies.contents())
def test_generated_contents_are_accepted_by_send_message(content: str) -> None:
    assert check_content(content, "send_message") == content


@settings(max_examples=100, deadline=None)
@given(strategies.messages("c1"))
def test_generated_messages_are_confirmed_or_pending(message: Message) -> None:
    assert message.chat_id == "c1"
    if message.seq is None:
        assert message.status in ("sending", "interrupted", "deleting")
        assert message.author_id == strategies.CLIENT_ID
    else:
        assert message.status in ("ready", "updating", "deleting")
    assert 1 <= len(message.content) <= 256


@settings(max_examples=100, deadline=None)
@given(strategies.chat_snapshots("c1"))
def test_generated_snapshots_are_consistent(snapshot: ChatSnapshot) -> None:
    seqs = [message.seq or 0 for message in snapshot.messages]
    assert all(1 <= seq <= snapshot.last_seq for seq in seqs)
    assert seqs == sorted(set(seqs))
    assert len({message.id for message in snapshot.messages}) == len(seqs)


@settings(max_examples=100, deadline=None)
@given(strategies.restrictions(), strategies.timestamps())
def test_generated_restrictions_are_active_until_their_end(
    restriction: Restriction, now: float
) -> None:
    assert restriction.is_active(now) == (restriction.until is None or now < restriction.until)
