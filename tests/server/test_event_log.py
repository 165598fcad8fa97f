"""The event log, on each engine: what it keeps, for whom, and its trim policy."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from chats_store.chats.actions import (
    MessageEdited,
    MessagePosted,
    MessageRemoved,
    OwnRestrictionsChanged,
)
from chats_store.chats.commands import DeleteMessageRequest, EditMessageRequest
from chats_store.chats.model import Message
from chats_store.protocol import decode_event, encode_event
from chats_store.server import run_server
from chats_store.server.database import DEFAULT_KEEP_EVENTS
from tests.server.conftest import SECRET, Storage, open_client


@pytest.fixture
def db(open_db: Callable[..., Storage]) -> Storage:
    return open_db(keep_events=10)


def _post(db: Storage, chat_id: str, message_id: str, content: str = "x") -> str:
    with db.transaction():
        seq = db.next_seq(chat_id)
        message = Message(message_id, chat_id, "alice", content, "ready", seq, 1.0)
        db.insert_message(message)
        frame = encode_event(MessagePosted(chat_id, seq, message))
        db.log_event(chat_id, seq, frame, message_id=message_id)
    return frame


def test_the_default_keeps_10_000_events() -> None:
    assert DEFAULT_KEEP_EVENTS == 10_000


def test_events_come_back_in_seq_order_and_private_ones_only_to_their_target(
    db: Storage,
) -> None:
    first = _post(db, "c1", "m1")
    with db.transaction():
        seq = db.next_seq("c1")
        private = encode_event(OwnRestrictionsChanged("c1", seq, ()))
        db.log_event("c1", seq, private, target="bob")
    second = _post(db, "c1", "m2")
    _post(db, "c2", "m3")

    assert db.missed_frames("c1", "bob", 0, 100) == (first, private, second)
    assert db.missed_frames("c1", "carol", 0, 100) == (first, second)
    assert db.missed_frames("c1", "carol", 1, 100) == (second,)
    assert db.missed_frames("c1", "carol", 3, 100) == ()
    assert db.missed_frames("c1", "bob", 0, 2) is None  # more than the limit


def test_the_log_keeps_at_least_the_last_events_and_raises_its_floor(db: Storage) -> None:
    frames = [_post(db, "c1", f"m{i}") for i in range(1, 36)]  # seqs 1..35

    floor = db.log_floor("c1")
    kept = db.missed_frames("c1", "bob", floor, 100)

    assert 0 < floor <= 35 - 10  # at least the last 10 kept
    assert kept == tuple(frames[floor:])
    assert db.missed_frames("c1", "bob", floor - 1, 100) is None
    assert [decode_event(f).seq for f in kept][-10:] == list(range(26, 36))  # type: ignore[union-attr]
    assert db.log_floor("c2") == 0


def test_deleting_a_message_erases_its_content_from_the_log(
    open_db: Callable[..., Storage], each_db: str, tmp_path: Path
) -> None:
    db = open_db()
    _post(db, "c1", "m1", "a secret that was deleted")
    kept = _post(db, "c1", "m2", "kept")
    with db.transaction():
        seq = db.next_seq("c1")
        db.delete_message("c1", "m1")
        db.erase_message_events("c1", "m1")
        removed = encode_event(MessageRemoved("c1", seq, "m1"))
        db.log_event("c1", seq, removed)
    db.close()

    reopened = open_db()
    with reopened.transaction():
        assert reopened.missed_frames("c1", "bob", 0, 100) == (kept, removed)
        stored = reopened.message("c1", "m1")
    assert stored is not None and stored.deleted and stored.message.content == ""
    reopened.close()
    if each_db.endswith(".sqlite3"):  # PostgreSQL keeps dead row versions until VACUUM
        for file in tmp_path.iterdir():
            assert b"a secret that was deleted" not in file.read_bytes()


def test_editing_a_message_replaces_its_events_in_the_log(db: Storage) -> None:
    _post(db, "c1", "m1", "the original text")
    for content in ("a first fix", "the final text"):
        with db.transaction():
            seq = db.next_seq("c1")
            edited = Message("m1", "c1", "alice", content, "ready", 1, 1.0, edited_at=2.0)
            db.edit_message("c1", "m1", content, 2.0)
            db.supersede_message_events(MessagePosted("c1", 1, edited))
            db.append_event(MessageEdited("c1", seq, edited))

    frames = db.missed_frames("c1", "bob", 0, 100)
    assert frames is not None

    assert [decode_event(frame) for frame in frames] == [
        MessagePosted("c1", 1, edited),
        MessageEdited("c1", 3, edited),
    ]
    assert not any("the original text" in f or "a first fix" in f for f in frames)


def _files_hold(directory: Path, text: str) -> list[str]:
    """The files of ``directory`` whose raw bytes hold ``text``."""
    return [f.name for f in directory.iterdir() if text.encode() in f.read_bytes()]


async def test_edited_and_deleted_content_leaves_the_files_while_the_server_runs(
    tmp_path: Path,
) -> None:
    async with (
        run_server(db=tmp_path / "chats.sqlite3", secret=SECRET) as server,
        AsyncExitStack() as stack,
    ):
        alice = await open_client(stack, server, "alice")
        await alice.join("c1")
        await alice.post("c1", "m1", "the original text")
        await alice.post("c1", "m2", "the deleted text")
        assert _files_hold(tmp_path, "the original text") == ["chats.sqlite3-wal"]

        await alice.ok(EditMessageRequest("c1", "m1", "the final text"))
        await alice.ok(DeleteMessageRequest("c1", "m2"))

        assert _files_hold(tmp_path, "the original text") == []
        assert _files_hold(tmp_path, "the deleted text") == []
        assert _files_hold(tmp_path, "the final text") == ["chats.sqlite3"]
        assert (tmp_path / "chats.sqlite3-wal").stat().st_size == 0


@pytest.mark.parametrize("keep", [0, -1, 1.5, True])
def test_keep_events_must_be_a_positive_integer(
    open_db: Callable[..., Storage], keep: object
) -> None:
    with pytest.raises(ValueError, match="keep_events"):
        open_db(keep_events=keep)
