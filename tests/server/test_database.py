"""The SQLite storage: durability settings, the epoch and its history file.

The contract every engine keeps (transactions, locks, order) is tested on both in
``test_storage.py``."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from chats_store.server.database import HISTORY_SUFFIX, ChatDatabase, restore_database


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "chats.sqlite3"


def _epoch_and_close(path: Path | str) -> str:
    database = ChatDatabase(path)
    try:
        return database.epoch
    finally:
        database.close()


def _take_seqs(database: ChatDatabase, chat_id: str, count: int) -> None:
    with database.transaction():
        for _ in range(count):
            database.next_seq(chat_id)


def _fail_after_a_seq(database: ChatDatabase, chat_id: str) -> None:
    with database.transaction():
        database.next_seq(chat_id)
        raise KeyError("refused")


@pytest.mark.parametrize(("durable", "level"), [(True, 2), (False, 1)])
def test_durable_is_synchronous_full_and_not_durable_normal(
    path: Path, durable: bool, level: int
) -> None:
    database = ChatDatabase(path, durable=durable)
    try:
        assert database._conn.execute("PRAGMA synchronous").fetchone()[0] == level  # FULL, NORMAL
    finally:
        database.close()


# The epoch -----------------------------------------------------------------------------


def test_a_database_keeps_its_epoch_across_reopening(path: Path) -> None:
    database = ChatDatabase(path)
    epoch = database.epoch
    _take_seqs(database, "c1", 5)
    database.close()

    assert epoch and _epoch_and_close(path) == epoch
    assert (path.parent / (path.name + HISTORY_SUFFIX)).read_text().split() == [
        epoch,
        "0" * 19 + "5",
    ]


def test_a_copy_put_back_in_place_starts_a_new_epoch(path: Path, tmp_path: Path) -> None:
    database = ChatDatabase(path)
    _take_seqs(database, "c1", 3)
    copy = tmp_path / "copy.sqlite3"
    with sqlite3.connect(copy) as backup:
        database._conn.backup(backup)
    epoch = database.epoch
    _take_seqs(database, "c1", 4)  # the history goes on past the copy
    database.close()
    shutil.copyfile(copy, path)  # restored by hand: the history file is left as it was

    restored = ChatDatabase(path)
    assert restored.epoch != epoch  # the file counted 7 seqs, the database holds 3
    assert restored.last_seq("c1") == 3
    restored.close()


def test_a_database_without_its_history_file_starts_a_new_epoch(path: Path) -> None:
    epoch = _epoch_and_close(path)
    (path.parent / (path.name + HISTORY_SUFFIX)).unlink()

    assert _epoch_and_close(path) != epoch


def test_an_in_memory_database_is_a_new_history_each_time() -> None:
    assert _epoch_and_close(":memory:") != _epoch_and_close(":memory:")


def test_restore_database_puts_the_copy_in_place_as_a_new_epoch(path: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.sqlite3"
    source = ChatDatabase(copy)
    _take_seqs(source, "c1", 2)
    copied_epoch = source.epoch
    source.close()
    live = ChatDatabase(path)
    _take_seqs(live, "c1", 9)
    live_epoch = live.epoch
    live.close()

    epoch = restore_database(copy, path)

    assert epoch not in (copied_epoch, live_epoch)
    database = ChatDatabase(path)
    assert (database.epoch, database.last_seq("c1")) == (epoch, 2)
    database.close()


def test_the_history_file_never_counts_more_than_was_committed(path: Path) -> None:
    database = ChatDatabase(path)
    _take_seqs(database, "c1", 2)
    with pytest.raises(KeyError):
        _fail_after_a_seq(database, "c1")
    database.close()

    assert (path.parent / (path.name + HISTORY_SUFFIX)).read_text().split()[1] == "0" * 19 + "2"
