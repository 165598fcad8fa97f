"""Resumable membership: the credential a join returns, and resume requests."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import jwt
import pytest

from chats_store.chats.actions import (
    ChatSnapshot,
    MembersAmountChanged,
    MessageEdited,
    MessagePosted,
    MessageRemoved,
    OwnMetadataChanged,
    OwnRestrictionsChanged,
    Resumption,
)
from chats_store.chats.commands import (
    DeleteMessageRequest,
    EditMessageRequest,
    LeaveRequest,
    ModerationRequest,
    ResumeRequest,
)
from chats_store.chats.model import Restriction
from chats_store.errors import ErrorCode
from chats_store.protocol import ReplyReceived
from chats_store.server import (
    MEMBERSHIP_TTL,
    ChatServer,
    mint_chat_token,
    mint_membership_token,
    run_server,
    verify_membership_token,
)
from chats_store.tokens import CHAT_AUDIENCE, MEMBERSHIP_AUDIENCE, SESSION_AUDIENCE
from tests.server.conftest import (
    SECRET,
    ClientFactory,
    RawClient,
    alg_none_token,
    claims_for,
    forged_token,
    hs512_token,
    open_client,
    rs256_header_token,
)

MODERATOR = ("send", "moderate")


def _claims(token: str | None) -> dict[str, Any]:
    assert token is not None
    claims: dict[str, Any] = jwt.decode(
        token, SECRET.encode(), algorithms=["HS256"], audience=MEMBERSHIP_AUDIENCE
    )
    return claims


async def _resume(client: RawClient, snapshot: ChatSnapshot | Resumption) -> Resumption:
    assert snapshot.membership is not None
    result = await client.ok(ResumeRequest("c1", snapshot.membership, snapshot.last_seq))
    assert isinstance(result, Resumption)
    return result


# The credential --------------------------------------------------------------------------


async def test_a_join_returns_a_membership_credential(client: ClientFactory) -> None:
    bob = await client("bob")

    snapshot = await bob.join("c1", metadata={"role": "guest"})

    claims = _claims(snapshot.membership)
    assert claims.keys() == {"sub", "chat", "aud", "iat", "exp", "permissions", "metadata"}
    assert (claims["sub"], claims["chat"], claims["aud"]) == ("bob", "c1", MEMBERSHIP_AUDIENCE)
    assert (claims["permissions"], claims["metadata"]) == (["send"], {"role": "guest"})
    assert claims["exp"] - claims["iat"] == MEMBERSHIP_TTL == 7 * 24 * 3600
    assert abs(claims["iat"] - time.time()) < 5
    assert jwt.get_unverified_header(snapshot.membership)["alg"] == "HS256"


async def test_the_membership_ttl_is_configurable(stack: AsyncExitStack) -> None:
    server = await stack.enter_async_context(run_server(secret=SECRET, membership_ttl=60))
    bob = await open_client(stack, server, "bob")

    snapshot = await bob.join("c1")
    claims = _claims(snapshot.membership)
    resumption = await _resume(bob, snapshot)

    assert claims["exp"] - claims["iat"] == 60
    refreshed = _claims(resumption.membership)
    assert refreshed["exp"] - refreshed["iat"] == 60


# What a resume returns --------------------------------------------------------------------


async def test_a_resume_returns_every_event_the_member_missed_in_seq_order(
    client: ClientFactory,
) -> None:
    alice, bob, carol = await client("alice"), await client("bob"), await client("carol")
    await alice.join("c1", permissions=MODERATOR)  # seq 1
    snapshot = await bob.join("c1")  # seq 2
    await carol.join("c1")  # seq 3
    await bob.connection.close()
    await alice.post("c1", "m1", "hello")  # seq 4
    edited = await alice.ok(EditMessageRequest("c1", "m1", "hello, all"))  # seq 5
    await alice.post("c1", "m2", "oops")  # seq 6: erased from the log by its deletion
    await alice.ok(DeleteMessageRequest("c1", "m2"))  # seq 7
    await alice.ok(ModerationRequest("c1", "bob", "mute", 0, "quiet"))  # seq 8: bob's own
    await alice.ok(ModerationRequest("c1", "carol", "mute", 0))  # seq 9: carol's own
    await alice.ok(ModerationRequest("c1", "carol", "kick"))  # seq 10
    await alice.drop_events()

    bob = await client("bob")
    resumption = await _resume(bob, snapshot)

    mute = Restriction("mute", None, "quiet")
    assert resumption.events == (
        MembersAmountChanged("c1", 3, 3),
        MessagePosted("c1", 4, edited),  # the edit replaced the posted content in the log
        MessageEdited("c1", 5, edited),
        MessageRemoved("c1", 7, "m2"),
        OwnRestrictionsChanged("c1", 8, (mute,)),
        MembersAmountChanged("c1", 10, 2),
    )
    assert resumption.snapshot is None
    assert (resumption.members_amount, resumption.last_seq) == (2, 10)
    assert (dict(resumption.member_metadata), resumption.restrictions) == ({}, (mute,))
    assert _claims(resumption.membership)["exp"] >= _claims(snapshot.membership)["exp"]
    grant = verify_membership_token(SECRET.encode(), resumption.membership)
    assert (grant.user_id, grant.chat_id) == ("bob", "c1")
    await alice.no_event()  # a resume is not a new member: no members_amount_changed


async def test_a_resumed_connection_gets_the_reply_then_the_live_events(
    client: ClientFactory,
) -> None:
    alice, bob = await client("alice"), await client("bob")
    await alice.join("c1")
    snapshot = await bob.join("c1")
    await bob.connection.close()
    missed = await alice.post("c1", "m1")

    bob = await client("bob")
    resumption = await _resume(bob, snapshot)
    live = await alice.post("c1", "m2")

    assert resumption.events == (MessagePosted("c1", 3, missed),)
    assert await bob.next_event() == MessagePosted("c1", 4, live)
    assert isinstance(bob.log[0], ReplyReceived)
    own = await bob.post("c1", "m3")  # the resumed connection may act in the chat
    again = await _resume(bob, resumption)  # resuming twice on one connection is harmless
    assert again.events == (MessagePosted("c1", 4, live), MessagePosted("c1", 5, own))


async def test_a_resume_while_connected_elsewhere_does_not_disturb_the_others(
    client: ClientFactory,
) -> None:
    alice, phone = await client("alice"), await client("bob")
    await alice.join("c1")
    snapshot = await phone.join("c1")
    await alice.drop_events()

    laptop = await client("bob")
    resumption = await _resume(laptop, snapshot)
    message = await alice.post("c1", "m1")

    assert resumption.events == ()
    assert resumption.members_amount == 2
    assert await phone.next_event() == MessagePosted("c1", 3, message)
    assert await laptop.next_event() == MessagePosted("c1", 3, message)
    assert await alice.next_event() == MessagePosted("c1", 3, message)
    await alice.no_event()


async def test_a_metadata_change_made_elsewhere_is_in_the_resume(client: ClientFactory) -> None:
    laptop = await client("bob")
    snapshot = await laptop.join("c1", metadata={"role": "guest"})
    await laptop.connection.close()
    phone = await client("bob")
    await phone.join("c1", metadata={"role": "host"})  # seq 2, private to bob

    laptop = await client("bob")
    resumption = await _resume(laptop, snapshot)

    assert resumption.events == (OwnMetadataChanged("c1", 2, {"role": "host"}),)
    assert resumption.member_metadata == {"role": "host"}
    assert _claims(resumption.membership)["metadata"] == {"role": "host"}


async def test_a_mute_that_expired_while_offline_is_in_the_resume(client: ClientFactory) -> None:
    alice, bob = await client("alice"), await client("bob")
    await alice.join("c1", permissions=MODERATOR)
    snapshot = await bob.join("c1")
    await bob.connection.close()
    await alice.ok(ModerationRequest("c1", "bob", "mute", 1))  # 0.05 s in these tests
    await asyncio.sleep(0.2)

    bob = await client("bob")
    resumption = await _resume(bob, snapshot)

    (muted, lifted) = resumption.events
    assert isinstance(muted, OwnRestrictionsChanged) and muted.seq == 3
    assert [r.kind for r in muted.restrictions] == ["mute"]
    assert lifted == OwnRestrictionsChanged("c1", 4, ())
    assert resumption.restrictions == ()
    await bob.post("c1", "m1")


# Too far behind: a snapshot instead --------------------------------------------------------


async def test_more_missed_events_than_the_limit_get_a_snapshot(stack: AsyncExitStack) -> None:
    server = await stack.enter_async_context(run_server(secret=SECRET, max_resume_events=3))
    alice = await open_client(stack, server, "alice")
    bob = await open_client(stack, server, "bob")
    await alice.join("c1")
    snapshot = await bob.join("c1")
    messages = [await alice.post("c1", f"m{i}") for i in range(3)]

    just_enough = await _resume(bob, snapshot)
    messages.append(await alice.post("c1", "m3"))
    too_many = await _resume(bob, snapshot)

    assert [e.message for e in just_enough.events] == messages[:3]  # type: ignore[union-attr]
    assert just_enough.snapshot is None
    assert too_many.events == ()
    assert too_many.snapshot is not None
    assert too_many.snapshot.messages == tuple(messages)
    assert too_many.snapshot.last_seq == too_many.last_seq == 6
    assert too_many.snapshot.membership == too_many.membership
    assert too_many.members_amount == too_many.snapshot.members_amount == 2


async def test_a_resume_from_before_the_trimmed_log_gets_a_snapshot(
    stack: AsyncExitStack,
) -> None:
    server = await stack.enter_async_context(run_server(secret=SECRET, keep_events=5))
    alice = await open_client(stack, server, "alice")
    bob = await open_client(stack, server, "bob")
    await alice.join("c1")
    snapshot = await bob.join("c1")
    messages = [await alice.post("c1", f"m{i}") for i in range(10)]  # seqs 3..12

    old = await _resume(bob, snapshot)
    recent = await bob.ok(ResumeRequest("c1", old.membership, 8))

    assert old.snapshot is not None and old.events == ()
    assert old.snapshot.messages == tuple(messages)
    assert [e.seq for e in recent.events] == [9, 10, 11, 12]


async def test_a_resume_never_serves_superseded_content(client: ClientFactory) -> None:
    alice, bob = await client("alice"), await client("bob")
    await alice.join("c1")
    away = await bob.join("c1")  # seq 2
    await bob.connection.close()
    await alice.post("c1", "m1", "the original text")  # seq 3
    await alice.ok(EditMessageRequest("c1", "m1", "a first fix"))  # seq 4
    edited = await alice.ok(EditMessageRequest("c1", "m1", "the final text"))  # seq 5

    bob = await client("bob")
    resumption = await _resume(bob, away)

    assert resumption.events == (MessagePosted("c1", 3, edited), MessageEdited("c1", 5, edited))
    for event in resumption.events:
        assert isinstance(event, MessagePosted | MessageEdited)
        assert event.message.content == "the final text"


async def test_a_resume_from_before_the_members_own_join_gets_a_snapshot(
    client: ClientFactory,
) -> None:
    alice, carol = await client("alice"), await client("carol")
    await alice.join("c1")  # seq 1
    await alice.post("c1", "m1", "the original text")  # seq 2
    edited = await alice.ok(EditMessageRequest("c1", "m1", "the final text"))  # seq 3
    joined = await carol.join("c1")  # seq 4
    await alice.post("c1", "m2", "after carol")  # seq 5

    from_zero = await carol.ok(ResumeRequest("c1", joined.membership, 0))
    from_her_join = await _resume(carol, joined)

    assert from_zero.events == () and from_zero.snapshot is not None
    assert from_zero.snapshot.messages[0] == edited
    assert [e.seq for e in from_her_join.events] == [5]


async def test_a_resume_from_the_future_gets_a_snapshot(client: ClientFactory) -> None:
    bob = await client("bob")
    snapshot = await bob.join("c1")

    resumption = await bob.ok(ResumeRequest("c1", snapshot.membership, 99))
    huge = await bob.ok(ResumeRequest("c1", snapshot.membership, 2**70))  # past SQLite's ints

    assert resumption.snapshot is not None
    assert resumption.last_seq == 1
    assert huge.snapshot is not None


# Refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["leave", "kick", "block", "expired block"])
async def test_a_member_who_is_gone_cannot_resume(client: ClientFactory, how: str) -> None:
    alice, bob = await client("alice"), await client("bob")
    await alice.join("c1", permissions=MODERATOR)
    snapshot = await bob.join("c1")
    if how == "leave":
        await bob.ok(LeaveRequest("c1"))
    elif how == "kick":
        await alice.ok(ModerationRequest("c1", "bob", "kick"))
    elif how == "block":
        await alice.ok(ModerationRequest("c1", "bob", "block", 0))
    else:
        await alice.ok(ModerationRequest("c1", "bob", "block", 1))  # 0.05 s
        await asyncio.sleep(0.1)

    bob = await client("bob")
    code = ErrorCode.MEMBER_BLOCKED if how == "block" else ErrorCode.NOT_A_MEMBER
    failure = await bob.refused(ResumeRequest("c1", snapshot.membership, 2), code)

    assert failure.detail
    await bob.refused(LeaveRequest("c1"), ErrorCode.CHAT_NOT_JOINED)  # not attached


def _bad_credentials(server: ChatServer) -> list[tuple[str, str, str]]:
    membership = claims_for(MEMBERSHIP_AUDIENCE, "bob", "c1")
    past = time.time() - MEMBERSHIP_TTL - 60
    return [
        ("garbage", "not-a-jwt", ErrorCode.INVALID_TOKEN),
        ("forged", forged_token(membership), ErrorCode.INVALID_TOKEN),
        ("expired", mint_membership_token(SECRET, "bob", "c1", now=past), ErrorCode.EXPIRED_TOKEN),
        ("other user's", server.membership_token("alice", "c1"), ErrorCode.INVALID_TOKEN),
        ("wrong chat", server.membership_token("bob", "c2"), ErrorCode.INVALID_TOKEN),
        ("alg none", alg_none_token(membership), ErrorCode.INVALID_TOKEN),
        ("HS512", hs512_token(membership), ErrorCode.INVALID_TOKEN),
        ("RS256", rs256_header_token(membership), ErrorCode.INVALID_TOKEN),
        ("a chat token", mint_chat_token(SECRET, "bob", "c1"), ErrorCode.INVALID_TOKEN),
        ("a session token", server.session_token("bob"), ErrorCode.INVALID_TOKEN),
        (
            "chat-token claims",
            jwt.encode(claims_for(CHAT_AUDIENCE, "bob", "c1"), SECRET, algorithm="HS256"),
            ErrorCode.INVALID_TOKEN,
        ),
        (
            "session-token claims",
            jwt.encode(claims_for(SESSION_AUDIENCE, "bob"), SECRET, algorithm="HS256"),
            ErrorCode.INVALID_TOKEN,
        ),
    ]


async def test_a_resume_with_a_bad_credential_is_refused(
    client: ClientFactory, server: ChatServer
) -> None:
    alice, bob = await client("alice"), await client("bob")
    await alice.join("c1")
    await bob.join("c1")
    await alice.join("c2")
    await alice.drop_events()
    await bob.connection.close()
    bob = await client("bob")

    for name, token, code in _bad_credentials(server):
        failure = await bob.refused(ResumeRequest("c1", token, 0), code)
        assert failure.detail, name

    await bob.refused(LeaveRequest("c1"), ErrorCode.CHAT_NOT_JOINED)  # none attached it
    await alice.no_event()
    resumption = await bob.ok(ResumeRequest("c1", server.membership_token("bob", "c1"), 0))
    assert resumption.members_amount == 2  # a good one still works


async def test_a_negative_since_seq_is_refused(client: ClientFactory, server: ChatServer) -> None:
    bob = await client("bob")
    await bob.join("c1")

    await bob.refused(
        ResumeRequest("c1", server.membership_token("bob", "c1"), -1), ErrorCode.INVALID_REQUEST
    )


# Restarts ------------------------------------------------------------------------------------


async def test_a_resume_works_across_a_server_restart(tmp_path: Path) -> None:
    db = tmp_path / "chats.sqlite3"
    async with (
        run_server(db=db, secret=SECRET, seconds_per_minute=0.1) as server,
        AsyncExitStack() as stack,
    ):
        alice = await open_client(stack, server, "alice")
        bob = await open_client(stack, server, "bob")
        await alice.join("c1", permissions=MODERATOR)
        snapshot = await bob.join("c1")
        await bob.connection.close()
        posted = await alice.post("c1", "m1", "while you were away")
        await alice.ok(ModerationRequest("c1", "bob", "mute", 1))  # 1 minute: 0.1 s

    await asyncio.sleep(0.15)  # the mute expires while the server is down
    async with (
        run_server(db=db, secret=SECRET, seconds_per_minute=0.1) as server,
        AsyncExitStack() as stack,
    ):
        bob = await open_client(stack, server, "bob")
        resumption = await _resume(bob, snapshot)
        events = list(resumption.events) + await bob.collect()

    assert events[0] == MessagePosted("c1", 3, posted)
    assert isinstance(events[1], OwnRestrictionsChanged) and events[1].seq == 4
    assert events[2:] == [OwnRestrictionsChanged("c1", 5, ())]
    assert resumption.restrictions == ()


async def test_a_database_from_before_the_event_log_is_migrated(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite3"
    with sqlite3.connect(db) as connection:
        connection.executescript(
            "CREATE TABLE chats (chat_id TEXT PRIMARY KEY, last_seq INTEGER NOT NULL);"
            "INSERT INTO chats VALUES ('c1', 7);"
            "CREATE TABLE memberships (chat_id TEXT NOT NULL, user_id TEXT NOT NULL, "
            "permissions TEXT NOT NULL, metadata TEXT NOT NULL, joined_at REAL NOT NULL, "
            "PRIMARY KEY (chat_id, user_id));"
            "INSERT INTO memberships VALUES ('c1', 'bob', '[\"send\"]', '{}', 0);"
        )
    connection.close()

    async with run_server(db=db, secret=SECRET) as server, AsyncExitStack() as stack:
        bob = await open_client(stack, server, "bob")
        behind = await bob.ok(ResumeRequest("c1", server.membership_token("bob", "c1"), 3))
        current = await bob.ok(ResumeRequest("c1", behind.membership, 7))

    assert behind.snapshot is not None  # the old events were never logged
    assert (current.snapshot, current.events, current.last_seq) == (None, (), 7)
