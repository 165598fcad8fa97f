"""What the server stores survives a restart on the same database, on each engine."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import AsyncExitStack
from pathlib import Path

from chats_store.chats.actions import OwnRestrictionsChanged
from chats_store.chats.commands import (
    DeleteMessageRequest,
    EditMessageRequest,
    HistoryRequest,
    JoinRequest,
    ModerationRequest,
    PostMessageRequest,
)
from chats_store.errors import ErrorCode
from chats_store.server import run_server
from tests.server.conftest import SECRET, open_client


async def test_messages_memberships_restrictions_and_seqs_survive_a_restart(each_db: str) -> None:
    db = each_db

    async with run_server(db=db, secret=SECRET) as server, AsyncExitStack() as stack:
        alice = await open_client(stack, server, "alice")
        bob = await open_client(stack, server, "bob")
        carol = await open_client(stack, server, "carol")
        await alice.join("c1", permissions=("send", "moderate"), metadata={"role": "host"})
        await bob.join("c1")
        await carol.join("c1")
        kept = await bob.post("c1", "m1", "first")
        await bob.post("c1", "m2", "second")
        edited = await bob.ok(EditMessageRequest("c1", "m1", "first, edited"))
        await bob.ok(DeleteMessageRequest("c1", "m2"))
        await alice.ok(ModerationRequest("c1", "bob", "mute", 0, "quiet"))
        await alice.ok(ModerationRequest("c1", "carol", "block", 0))
        rejoined = await alice.join(
            "c1", permissions=("send", "moderate"), metadata={"role": "host"}
        )
        last_seq = rejoined.last_seq

    async with run_server(db=db, secret=SECRET) as server, AsyncExitStack() as stack:
        alice = await open_client(stack, server, "alice")
        bob = await open_client(stack, server, "bob")
        carol = await open_client(stack, server, "carol")

        snapshot = await alice.join(
            "c1", permissions=("send", "moderate"), metadata={"role": "host"}
        )
        assert snapshot.last_seq == last_seq
        assert snapshot.members_amount == 2  # alice and bob; carol was blocked
        assert snapshot.member_metadata == {"role": "host"}
        assert snapshot.messages == (edited,)
        assert edited.seq == kept.seq

        bob_snapshot = await bob.join("c1")
        assert [(r.kind, r.reason) for r in bob_snapshot.restrictions] == [("mute", "quiet")]
        await bob.refused(PostMessageRequest("c1", "m3", "x"), ErrorCode.MEMBER_MUTED)
        await carol.refused(
            JoinRequest("c1", server.chat_token("carol", "c1")), ErrorCode.MEMBER_BLOCKED
        )
        # The deleted message's id is still taken.
        await bob.refused(PostMessageRequest("c1", "m2", "again"), ErrorCode.MESSAGE_NOT_FOUND)
        message = await alice.post("c1", "m4")
        assert message.seq == last_seq + 1
        assert await alice.ok(HistoryRequest("c1", 100, 10)) == (edited, message)


async def test_a_timed_mute_left_over_from_a_previous_run_still_expires(each_db: str) -> None:
    db = each_db
    async with (
        run_server(db=db, secret=SECRET, seconds_per_minute=0.1) as server,
        AsyncExitStack() as stack,
    ):
        alice = await open_client(stack, server, "alice")
        bob = await open_client(stack, server, "bob")
        await alice.join("c1", permissions=("send", "moderate"))
        await bob.join("c1")
        await alice.ok(ModerationRequest("c1", "bob", "mute", 10))  # 1 s

    async with (
        run_server(db=db, secret=SECRET, seconds_per_minute=0.1) as server,
        AsyncExitStack() as stack,
    ):
        bob = await open_client(stack, server, "bob")
        snapshot = await bob.join("c1")
        assert [r.kind for r in snapshot.restrictions] == ["mute"]
        event = await bob.next_event()
        assert event == OwnRestrictionsChanged("c1", snapshot.last_seq + 1, ())
        await bob.post("c1", "m1")


async def test_the_database_is_in_wal_mode(tmp_path: Path) -> None:
    db = tmp_path / "chats.sqlite3"
    async with run_server(db=db, secret=SECRET):
        await asyncio.sleep(0)
    with sqlite3.connect(db) as connection:
        (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
    connection.close()
    assert mode == "wal"
