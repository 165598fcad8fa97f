"""Moderation enforced by the server: permissions, mute, kick, block, expiry."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest

from chats_store.chats.actions import (
    MembersAmountChanged,
    OwnRestrictionsChanged,
    RemovedFromChat,
)
from chats_store.chats.commands import (
    DeleteMessageRequest,
    EditMessageRequest,
    HistoryRequest,
    JoinRequest,
    ModerationMeasure,
    ModerationRequest,
    PostMessageRequest,
)
from chats_store.chats.model import Restriction
from chats_store.errors import ErrorCode
from chats_store.server import ChatServer, run_server
from tests.server.conftest import SECRET, ClientFactory, RawClient, open_client

MODERATOR = ("send", "moderate")


async def _room(client: ClientFactory) -> tuple[RawClient, RawClient]:
    """A moderator (alice) and a member (bob) in chat c1, events read (last_seq 2)."""
    alice, bob = await client("alice"), await client("bob")
    await alice.join("c1", permissions=MODERATOR)
    await bob.join("c1")
    await alice.drop_events()
    return alice, bob


@pytest.mark.parametrize("measure", ["mute", "unmute", "kick", "block", "unblock"])
async def test_moderation_needs_the_moderate_permission(
    client: ClientFactory, measure: ModerationMeasure
) -> None:
    alice, bob = await _room(client)

    await bob.refused(ModerationRequest("c1", "alice", measure, 5), ErrorCode.PERMISSION_DENIED)
    await alice.no_event()


async def test_moderation_checks_its_target_and_arguments(client: ClientFactory) -> None:
    alice, _ = await _room(client)

    await alice.refused(ModerationRequest("c1", "alice", "mute", 5), "moderation_target_is_self")
    await alice.refused(ModerationRequest("c1", "nobody", "mute", 5), ErrorCode.MEMBER_NOT_FOUND)
    await alice.refused(ModerationRequest("c1", "nobody", "kick"), ErrorCode.MEMBER_NOT_FOUND)
    await alice.refused(ModerationRequest("c1", "bob", "mute", -1), ErrorCode.INVALID_DURATION)
    await alice.refused(
        ModerationRequest("c1", "bob", "mute", 5, "x" * 257), ErrorCode.INVALID_REQUEST
    )
    await alice.refused(ModerationRequest("c2", "bob", "mute", 5), ErrorCode.CHAT_NOT_JOINED)


async def test_a_measure_the_server_does_not_know_is_unknown_measure(
    client: ClientFactory,
) -> None:
    """Measures may grow within v1: a client tells an older server by this code."""
    alice = await client("alice")
    await alice.join("c1", permissions=["send", "moderate"])
    frame = {"type": "moderate", "id": 7, "chat_id": "c1", "member_id": "bob", "measure": "ban"}

    await alice.connection.send(json.dumps(frame))
    reply = json.loads(await alice.connection.recv())

    assert reply["type"] == "error" and reply["id"] == 7
    assert reply["code"] == ErrorCode.UNKNOWN_MEASURE
    assert "'ban'" in reply["message"] and "mute" in reply["message"]


async def test_a_muted_member_reads_but_cannot_post_until_unmuted(client: ClientFactory) -> None:
    alice, bob = await _room(client)
    await bob.post("c1", "before")
    await alice.drop_events()
    await bob.drop_events()

    assert await alice.ok(ModerationRequest("c1", "bob", "mute", 0, "spam")) is None

    assert await bob.next_event() == OwnRestrictionsChanged(
        "c1", 4, (Restriction("mute", None, "spam"),)
    )
    await alice.no_event()  # only the target hears of it
    failure = await bob.refused(PostMessageRequest("c1", "m1", "hi"), ErrorCode.MEMBER_MUTED)
    assert "permanently" in failure.detail
    await bob.refused(EditMessageRequest("c1", "before", "x"), ErrorCode.MEMBER_MUTED)
    await alice.post("c1", "m2")
    assert (await bob.next_event()).seq == 5  # type: ignore[union-attr]
    assert len(await bob.ok(HistoryRequest("c1", 100, 10))) == 2
    assert await bob.ok(DeleteMessageRequest("c1", "before")) is None  # may still delete

    await alice.ok(ModerationRequest("c1", "bob", "unmute"))

    await bob.drop_events()
    await bob.post("c1", "m3")
    rejoined = await bob.join("c1")
    assert rejoined.restrictions == ()


async def test_a_muted_members_repeat_of_an_earlier_post_is_answered_as_a_repeat(
    client: ClientFactory,
) -> None:
    alice, bob = await _room(client)
    original = await bob.post("c1", "m1", "hello")
    await bob.post("c1", "m2", "gone soon")
    await bob.ok(DeleteMessageRequest("c1", "m2"))
    await alice.post("c1", "a1")
    await alice.ok(ModerationRequest("c1", "bob", "mute", 0))
    await alice.drop_events()
    await bob.drop_events()

    assert await bob.ok(PostMessageRequest("c1", "m1", "hello")) == original
    await bob.refused(PostMessageRequest("c1", "m2", "again"), ErrorCode.MESSAGE_NOT_FOUND)
    await bob.refused(PostMessageRequest("c1", "a1", "mine"), ErrorCode.MESSAGE_ID_TAKEN)
    await bob.refused(PostMessageRequest("c1", "m3", "new"), ErrorCode.MEMBER_MUTED)
    await alice.no_event()
    await alice.ok(ModerationRequest("c1", "bob", "unmute"))
    await bob.drop_events()
    assert (await bob.post("c1", "m3", "new")).seq == 9  # the refused posts took no seq


async def test_the_join_snapshot_carries_active_restrictions(client: ClientFactory) -> None:
    alice, bob = await _room(client)
    await alice.ok(ModerationRequest("c1", "bob", "mute", 60, "calm down"))

    snapshot = await bob.join("c1")

    (restriction,) = snapshot.restrictions
    assert (restriction.kind, restriction.reason) == ("mute", "calm down")
    assert restriction.until is not None


async def test_unmute_of_a_member_not_muted_changes_nothing(client: ClientFactory) -> None:
    alice, bob = await _room(client)

    assert await alice.ok(ModerationRequest("c1", "bob", "unmute")) is None
    assert await alice.ok(ModerationRequest("c1", "bob", "unblock")) is None
    await bob.no_event()


async def test_a_kicked_member_is_removed_and_may_rejoin(client: ClientFactory) -> None:
    alice, bob = await _room(client)
    carol = await client("carol")
    await carol.join("c1")
    await alice.drop_events()
    await bob.drop_events()

    await alice.ok(ModerationRequest("c1", "bob", "kick", None, "rude"))

    assert await bob.next_event() == RemovedFromChat("c1", "kicked", "rude")
    assert await alice.next_event() == MembersAmountChanged("c1", 4, 2)
    assert await carol.next_event() == MembersAmountChanged("c1", 4, 2)
    await bob.refused(PostMessageRequest("c1", "m1", "hi"), ErrorCode.CHAT_NOT_JOINED)
    await alice.post("c1", "m2")
    await bob.no_event()

    snapshot = await bob.join("c1")
    assert snapshot.members_amount == 3


async def test_a_blocked_member_is_removed_and_cannot_rejoin_until_unblocked(
    client: ClientFactory,
) -> None:
    alice, bob = await _room(client)
    await bob.drop_events()

    await alice.ok(ModerationRequest("c1", "bob", "block", 0, "troll"))

    assert await bob.next_event() == OwnRestrictionsChanged(
        "c1", 3, (Restriction("block", None, "troll"),)
    )
    assert await bob.next_event() == RemovedFromChat("c1", "blocked", "troll")
    assert await alice.next_event() == MembersAmountChanged("c1", 4, 1)
    await bob.refused(PostMessageRequest("c1", "m1", "hi"), ErrorCode.CHAT_NOT_JOINED)
    token = bob.server.chat_token("bob", "c1")
    await bob.refused(JoinRequest("c1", token), ErrorCode.MEMBER_BLOCKED)

    await alice.ok(ModerationRequest("c1", "bob", "unblock"))

    snapshot = await bob.join("c1")
    assert (snapshot.members_amount, snapshot.restrictions) == (2, ())


async def test_a_non_member_can_be_blocked_in_advance(client: ClientFactory) -> None:
    alice, _ = await _room(client)
    mallory = await client("mallory")

    await alice.ok(ModerationRequest("c1", "mallory", "block", 0))

    await mallory.refused(
        JoinRequest("c1", mallory.server.chat_token("mallory", "c1")), ErrorCode.MEMBER_BLOCKED
    )
    await alice.no_event()  # the members amount did not change


async def test_every_connection_of_the_target_is_told(client: ClientFactory) -> None:
    alice, bob = await _room(client)
    bob_laptop = await client("bob")
    await bob_laptop.join("c1")
    await bob.drop_events()

    await alice.ok(ModerationRequest("c1", "bob", "kick"))

    assert await bob.next_event() == RemovedFromChat("c1", "kicked", None)
    assert await bob_laptop.next_event() == RemovedFromChat("c1", "kicked", None)


# Expiry: one moderation "minute" lasts 0.05 s on the `server` fixture ------------------


async def test_a_mute_expires_and_the_target_is_told(client: ClientFactory) -> None:
    alice, bob = await _room(client)
    await bob.drop_events()

    await alice.ok(ModerationRequest("c1", "bob", "mute", 4))  # 0.2 s

    muted = await bob.next_event()
    assert isinstance(muted, OwnRestrictionsChanged)
    assert [r.kind for r in muted.restrictions] == ["mute"]
    await bob.refused(PostMessageRequest("c1", "m1", "hi"), ErrorCode.MEMBER_MUTED)
    assert await bob.next_event(timeout=2) == OwnRestrictionsChanged("c1", 4, ())
    await bob.post("c1", "m1")


async def test_a_block_expires_and_the_member_may_rejoin(client: ClientFactory) -> None:
    alice, bob = await _room(client)

    await alice.ok(ModerationRequest("c1", "bob", "block", 1))  # 0.05 s
    token = bob.server.chat_token("bob", "c1")
    await bob.refused(JoinRequest("c1", token), ErrorCode.MEMBER_BLOCKED)
    await asyncio.sleep(0.1)

    snapshot = await bob.join("c1")
    assert snapshot.restrictions == ()


async def test_a_new_mute_replaces_the_old_one_and_its_timer(client: ClientFactory) -> None:
    alice, bob = await _room(client)
    await alice.ok(ModerationRequest("c1", "bob", "mute", 2))  # 0.1 s
    await alice.ok(ModerationRequest("c1", "bob", "mute", 0))  # permanent
    await asyncio.sleep(0.2)

    await bob.refused(PostMessageRequest("c1", "m1", "hi"), ErrorCode.MEMBER_MUTED)
    events = [e for e in await bob.collect() if isinstance(e, OwnRestrictionsChanged)]
    assert events[-1].restrictions == (Restriction("mute", None, None),)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def clocked() -> AsyncIterator[tuple[ChatServer, FakeClock]]:
    clock = FakeClock()
    async with run_server(secret=SECRET, clock=clock) as server:
        yield server, clock


async def test_expiry_is_checked_at_use_by_the_server_clock(
    clocked: tuple[ChatServer, FakeClock], stack: AsyncExitStack
) -> None:
    server, clock = clocked
    alice, bob = await open_client(stack, server, "alice"), await open_client(stack, server, "bob")
    await alice.join("c1", permissions=MODERATOR)
    await bob.join("c1")
    await alice.ok(ModerationRequest("c1", "bob", "mute", 10))  # ten real minutes

    muted = await bob.refused(PostMessageRequest("c1", "m1", "hi"), ErrorCode.MEMBER_MUTED)
    assert "UTC" in muted.detail
    clock.now += 10 * 60

    await bob.post("c1", "m1")  # the timer has not fired, but the mute is over
    assert (await bob.join("c1")).restrictions == ()


async def test_blocks_of_made_up_ids_stop_at_the_chat_s_cap(stack: AsyncExitStack) -> None:
    server = await stack.enter_async_context(run_server(secret=SECRET, max_restrictions_per_chat=3))
    moderator = await open_client(stack, server, "mod")
    await moderator.join("c1", permissions=("send", "moderate"))
    for ghost in ("ghost1", "ghost2", "ghost3"):
        await moderator.ok(ModerationRequest("c1", ghost, "block", 60))

    refused = await moderator.refused(
        ModerationRequest("c1", "ghost4", "block", 60), ErrorCode.TOO_MANY_RESTRICTIONS
    )
    await moderator.ok(ModerationRequest("c1", "ghost1", "unblock"))
    await moderator.ok(ModerationRequest("c1", "ghost4", "block", 60))

    assert "already holds 3 mutes and blocks" in refused.detail
