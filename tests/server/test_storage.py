"""The storage contract (``ChatStorage``), on each engine: SQLite and PostgreSQL.

Two handles on one database stand for two server processes sharing it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from chats_store.chats.model import Message, Restriction
from chats_store.server.storage import Member, Membership, StorageBusyError
from tests.server.conftest import Storage

Open = Callable[..., Storage]


def _take_seqs(storage: Storage, chat_id: str, count: int) -> list[int]:
    with storage.transaction():
        return [storage.next_seq(chat_id) for _ in range(count)]


def _fail_after_a_seq(storage: Storage, chat_id: str) -> None:
    with storage.transaction():
        storage.next_seq(chat_id)
        raise KeyError("refused")


def _last_seq(storage: Storage, chat_id: str) -> int:
    with storage.transaction():
        return storage.last_seq(chat_id)


def test_a_nested_transaction_rolls_back_alone_and_the_outer_one_all(open_db: Open) -> None:
    storage = open_db()
    with storage.transaction():
        storage.next_seq("c1")
        with pytest.raises(KeyError):
            _fail_after_a_seq(storage, "c1")
        storage.next_seq("c2")
    assert (_last_seq(storage, "c1"), _last_seq(storage, "c2")) == (1, 1)

    with pytest.raises(KeyError):
        _fail_after_a_seq(storage, "c1")
    assert _last_seq(storage, "c1") == 1


def test_what_one_process_commits_another_reads(open_db: Open) -> None:
    first, second = open_db(), open_db()
    _take_seqs(first, "c1", 2)
    assert _last_seq(second, "c1") == 2
    assert _take_seqs(second, "c1", 1) == [3]


def test_writers_in_several_processes_give_a_chat_one_order(open_db: Open) -> None:
    handles = [open_db() for _ in range(3)]
    taken: list[list[int]] = [[] for _ in handles]

    def write(index: int) -> None:
        for _ in range(20):
            taken[index] += _take_seqs(handles[index], "c1", 1)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(handles))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(seq for seqs in taken for seq in seqs) == list(range(1, 61))
    assert all(seqs == sorted(seqs) for seqs in taken)
    assert _last_seq(handles[0], "c1") == 60


def test_a_lock_held_by_another_process_past_busy_timeout_is_storage_busy(open_db: Open) -> None:
    storage, other = open_db(busy_timeout=0.05), open_db()
    with other.transaction():
        other.next_seq("c1")
        with pytest.raises(StorageBusyError, match="another process"):
            _take_seqs(storage, "c1", 1)
    assert _take_seqs(storage, "c1", 1) == [2]  # free again; the busy one applied nothing


def test_a_lock_released_within_busy_timeout_only_delays(open_db: Open) -> None:
    storage, other = open_db(busy_timeout=5), open_db()
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with other.transaction():
            other.next_seq("c1")
            holding.set()
            release.wait()

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait()
    threading.Timer(0.2, release.set).start()
    assert _take_seqs(storage, "c1", 1) == [2]
    holder.join()


@pytest.mark.parametrize("value", [-1, True])
def test_busy_timeout_must_be_0_or_more_seconds(open_db: Open, value: object) -> None:
    with pytest.raises(ValueError, match="busy_timeout"):
        open_db(busy_timeout=value)


def test_a_database_keeps_its_epoch_across_reopening_until_a_new_one_is_started(
    open_db: Open,
) -> None:
    first = open_db()
    epoch = first.epoch
    _take_seqs(first, "c1", 3)
    first.close()

    reopened = open_db()
    assert reopened.epoch == epoch
    new = reopened.start_new_epoch()
    assert new != epoch and reopened.epoch == new
    reopened.close()
    assert open_db().epoch == new


def _message(chat_id: str, message_id: str, seq: int) -> Message:
    return Message(
        id=message_id,
        chat_id=chat_id,
        author_id="ann",
        content="hello",
        status="ready",
        seq=seq,
        created_at=1.0,
    )


def test_a_post_seq_is_taken_only_for_an_id_the_chat_does_not_have(open_db: Open) -> None:
    storage, other = open_db(), open_db()
    with storage.transaction():
        assert storage.next_post_seq("c1", "m1") is None  # the chat has taken no seq
        assert storage.next_seq("c1") == 1
        assert storage.next_post_seq("c1", "m1") == 2
        storage.insert_message(_message("c1", "m1", 2))
        assert storage.next_post_seq("c1", "m1") is None
        storage.next_seq("c2")
        assert storage.next_post_seq("c2", "m1") == 2  # ids are per chat
    with storage.transaction():
        storage.delete_message("c1", "m1")
    # A deleted message keeps its id; nothing was taken by the refused ones.
    with other.transaction():
        assert other.next_post_seq("c1", "m1") is None
        assert other.last_seq("c1") == 2
        assert other.next_post_seq("c1", "m2") == 3


def test_a_member_is_read_with_its_restrictions_mute_first(open_db: Open) -> None:
    storage = open_db()
    membership = Membership("c1", "ann", frozenset({"send"}), {"role": "guest"}, 4)
    with storage.transaction():
        assert storage.member("c1", "ann") is None
        storage.save_membership(membership, 1.0)
        assert storage.member("c1", "ann") == Member(membership, ())
        storage.save_restriction("c1", "ann", Restriction("block", None, "spam"))
        storage.save_restriction("c1", "ann", Restriction("mute", 99.0, None))
        storage.save_restriction("c1", "bob", Restriction("mute", None, None))
        assert storage.member("c1", "ann") == Member(
            membership, (Restriction("mute", 99.0, None), Restriction("block", None, "spam"))
        )
        assert storage.member("c1", "bob") is None  # restricted, not a member
        assert storage.member("c2", "ann") is None
