"""The Chats facade and effects end to end over the in-memory transport.

(The same scenarios run against the real reference server in tests/e2e.)
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import attrs
import pytest

from chats_store import (
    ActionCallError,
    CallCancelledError,
    ChatContext,
    Chats,
    ChatsConfig,
    ConnectionLostError,
    ErrorCode,
    Message,
    RequestTimeoutError,
    ServerRefusedError,
    SyncStatuses,
    create_chats,
    create_user,
)
from chats_store.chats.action_log import read_action_log, replay
from tests.chats import settlement
from tests.chats.conftest import World, settle


def record(getter: Any) -> list[Any]:
    values: list[Any] = []
    getter.subscribe(values.append)
    return values


def messages_of(world_client: Any, chat_id: str = "c1") -> tuple[Message, ...]:
    value = world_client.chats.get_chat_messages(chat_id).value
    assert value is not None
    return value  # type: ignore[no-any-return]


async def test_join_returns_ready_context_with_history(world: World) -> None:
    for n in range(3):
        world.server.post("c1", "bob", f"hello {n}", f"b{n}")
    client = await world.client("ann")
    token = world.server.chat_token("ann", "c1", metadata={"role": "guest"})
    statuses = record(client.chats.get_chat_status("c1"))
    syncing = record(client.chats.is_chat_syncing("c1"))
    context = await client.chats.join_chat(token)
    assert isinstance(context, ChatContext)
    assert context.status == "ready"
    assert [m.content for m in context.messages] == ["hello 0", "hello 1", "hello 2"]
    assert [m.seq for m in context.messages] == [2, 3, 4]  # bob's join to post took seq 1
    assert context.members_amount == 2
    assert dict(context.member_metadata or {}) == {"role": "guest"}
    assert context.restrictions == ()
    assert context.sync_statuses == SyncStatuses("idle", "idle")
    assert statuses == [None, "loading", "ready"]
    assert syncing == [False, True, False]
    assert client.chats.chats_ids.value == ("c1",)
    metadata = client.chats.get_client_chat_member_metadata("c1").value
    assert metadata is not None
    with pytest.raises(TypeError):
        metadata["role"] = "admin"  # type: ignore[index]


async def test_send_is_optimistic_then_ready_and_reaches_others(world: World) -> None:
    bob = await world.joined("bob")
    ann = await world.joined("ann")
    world.server.hold()
    sending = world.start(ann.chats.send_message("c1", "hi bob"))
    await settle()
    (pending,) = messages_of(ann)
    assert (pending.status, pending.seq, pending.author_id) == ("sending", None, "ann")
    world.server.release()
    sent = await sending
    assert sent.id == pending.id
    assert sent.status == "ready" and sent.seq is not None
    await settle()
    assert messages_of(ann) == (sent,)
    (received,) = messages_of(bob)
    assert (received.id, received.content, received.status) == (sent.id, "hi bob", "ready")
    assert bob.chats.get_chat_members_amount("c1").value == 2


async def test_failed_send_is_interrupted_and_resend_keeps_its_id(world: World) -> None:
    ann = await world.joined("ann")
    world.server.refuse_next("server_error", "disk full")
    with pytest.raises(ServerRefusedError) as raised:
        await ann.chats.send_message("c1", "keep me")
    assert raised.value.code == "server_error"
    (interrupted,) = messages_of(ann)
    assert interrupted.status == "interrupted" and interrupted.content == "keep me"
    resent = await ann.chats.resend_message("c1", interrupted.id)
    assert resent.id == interrupted.id and resent.status == "ready"
    assert [m.id for m in world.server.history("c1")] == [interrupted.id]


async def test_resend_after_lost_ack_creates_no_duplicate(world: World) -> None:
    ann = await world.joined("ann")
    world.server.hold()
    sending = world.start(ann.chats.send_message("c1", "once"))
    await settle()
    ann.websocket.drop()
    with pytest.raises(ConnectionLostError):
        await sending
    (interrupted,) = messages_of(ann)
    assert interrupted.status == "interrupted"
    world.server.release()  # the server did store it; only the reply was lost
    assert len(world.server.history("c1")) == 1
    await ann.websocket.connect()
    resent = await ann.chats.resend_message("c1", interrupted.id)
    assert resent.id == interrupted.id
    assert [m.id for m in world.server.history("c1")] == [interrupted.id]
    assert [m.status for m in messages_of(ann)] == ["ready"]


async def test_request_timeout_interrupts_the_send(world: World) -> None:
    ann = await world.joined("ann")
    world.server.hold()
    chats: Any = ann.chats
    chats._effects._request_timeout = 0.05
    with pytest.raises(RequestTimeoutError):
        await ann.chats.send_message("c1", "slow")
    assert [m.status for m in messages_of(ann)] == ["interrupted"]


async def test_update_shows_updating_then_ready_and_reaches_others(world: World) -> None:
    bob = await world.joined("bob")
    ann = await world.joined("ann")
    sent = await ann.chats.send_message("c1", "draft")
    world.server.hold()
    updating = world.start(ann.chats.update_message("c1", sent.id, "final"))
    await settle()
    (shown,) = messages_of(ann)
    assert (shown.status, shown.content) == ("updating", "final")
    world.server.release()
    updated = await updating
    assert (updated.status, updated.content, updated.seq) == ("ready", "final", sent.seq)
    assert updated.edited_at is not None
    await settle()
    assert [(m.content, m.status) for m in messages_of(bob)] == [("final", "ready")]


async def test_failed_update_restores_previous_content(world: World) -> None:
    ann = await world.joined("ann")
    sent = await ann.chats.send_message("c1", "draft")
    world.server.refuse_next("server_error")
    with pytest.raises(ServerRefusedError):
        await ann.chats.update_message("c1", sent.id, "final")
    assert messages_of(ann) == (sent,)


async def test_delete_shows_deleting_then_removes_everywhere(world: World) -> None:
    bob = await world.joined("bob")
    ann = await world.joined("ann")
    sent = await ann.chats.send_message("c1", "oops")
    await settle()
    world.server.hold()
    deleting = world.start(ann.chats.delete_message("c1", sent.id))
    await settle()
    assert [m.status for m in messages_of(ann)] == ["deleting"]
    world.server.release()
    deleted = await deleting
    assert deleted == sent
    await settle()
    assert messages_of(ann) == () and messages_of(bob) == ()


async def test_failed_delete_restores_the_message(world: World) -> None:
    ann = await world.joined("ann")
    sent = await ann.chats.send_message("c1", "stay")
    world.server.refuse_next("server_error")
    with pytest.raises(ServerRefusedError):
        await ann.chats.delete_message("c1", sent.id)
    assert messages_of(ann) == (sent,)


async def test_deleting_an_interrupted_message_never_sent_succeeds(world: World) -> None:
    ann = await world.joined("ann")
    world.server.refuse_next("server_error")
    with pytest.raises(ServerRefusedError):
        await ann.chats.send_message("c1", "never arrived")
    (interrupted,) = messages_of(ann)
    await ann.chats.delete_message("c1", interrupted.id)
    assert messages_of(ann) == ()


async def test_connection_loss_interrupts_sends_and_rolls_back_updates(world: World) -> None:
    ann = await world.joined("ann")
    sent = await ann.chats.send_message("c1", "draft")
    world.server.hold()
    updating = world.start(ann.chats.update_message("c1", sent.id, "final"))
    sending = world.start(ann.chats.send_message("c1", "second"))
    await settle()
    assert [m.status for m in messages_of(ann)] == ["updating", "sending"]
    ann.websocket.drop()
    for call in (updating, sending):
        with pytest.raises(ConnectionLostError):
            await call
    assert [(m.content, m.status) for m in messages_of(ann)] == [
        ("draft", "ready"),
        ("second", "interrupted"),
    ]


async def test_leave_returns_last_context_and_clears_getters(world: World) -> None:
    ann = await world.joined("ann")
    await ann.chats.send_message("c1", "bye")
    status = record(ann.chats.get_chat_status("c1"))
    context = await ann.chats.leave_chat("c1")
    assert context.chat_id == "c1" and context.status == "ready"
    assert [m.content for m in context.messages] == ["bye"]
    assert status == ["ready", None]
    assert ann.chats.chats_ids.value == ()
    assert ann.chats.get_chat_messages("c1").value is None
    assert ann.chats.get_chat_members_amount("c1").value is None
    assert ann.chats.is_chat_syncing("c1").value is False


async def test_mute_updates_target_restrictions_live(world: World) -> None:
    moderator = await world.joined("mod", permissions=("send", "moderate"))
    ann = await world.joined("ann")
    restrictions = record(ann.chats.get_client_chat_member_restrictions("c1"))
    await moderator.chats.mute_chat_member("c1", "ann", 10, reason="calm down")
    await settle()
    (mute,) = restrictions[-1]
    assert (mute.kind, mute.reason) == ("mute", "calm down")
    assert mute.until is not None
    await moderator.chats.unmute_chat_member("c1", "ann")
    await settle()
    assert restrictions[-1] == ()
    assert (await ann.chats.send_message("c1", "free again")).status == "ready"


async def test_kick_removes_the_chat_from_the_target(world: World) -> None:
    moderator = await world.joined("mod", permissions=("send", "moderate"))
    ann = await world.joined("ann")
    assert moderator.chats.get_chat_members_amount("c1").value == 2
    chats_ids = record(ann.chats.chats_ids)
    await moderator.chats.kick_chat_member("c1", "ann", reason="bye")
    await settle()
    assert chats_ids == [("c1",), ()]
    assert moderator.chats.get_chat_members_amount("c1").value == 1
    await ann.chats.join_chat(world.server.chat_token("ann", "c1"))
    assert ann.chats.get_chat_status("c1").value == "ready"


async def test_load_older_messages_prepends_history(world: World) -> None:
    for n in range(150):
        world.server.post("c1", "bob", f"m{n}", f"b{n}")
    ann = await world.joined("ann")
    assert messages_of(ann)[0].content == "m50"
    assert len(messages_of(ann)) == 100
    sync = record(ann.chats.get_chat_sync_statuses("c1"))
    world.server.hold()
    loading = world.start(ann.chats.load_older_messages("c1", limit=30))
    await settle()
    assert sync[-1] == SyncStatuses(messages="loading", members="idle")
    assert ann.chats.is_chat_syncing("c1").value is True
    world.server.release()
    older = await loading
    assert [m.content for m in older] == [f"m{n}" for n in range(20, 50)]
    assert [m.content for m in messages_of(ann)] == [f"m{n}" for n in range(20, 150)]
    assert sync[-1] == SyncStatuses()
    rest = await ann.chats.load_older_messages("c1", limit=200)
    assert len(rest) == 20
    assert await ann.chats.load_older_messages("c1") == ()
    seqs = [m.seq for m in messages_of(ann)]
    assert seqs == sorted(seqs) and len(seqs) == 150


async def test_getters_are_memoized_and_emit_only_on_change(world: World) -> None:
    ann = await world.joined("ann")
    await ann.chats.join_chat(world.server.chat_token("ann", "c2"))
    assert ann.chats.get_chat_messages("c1") is ann.chats.get_chat_messages("c1")
    assert ann.chats.chats_ids is ann.chats.chats_ids
    c2_messages = record(ann.chats.get_chat_messages("c2"))
    c2_status = record(ann.chats.get_chat_status("c2"))
    c1_messages = record(ann.chats.get_chat_messages("c1"))
    for n in range(3):
        await ann.chats.send_message("c1", f"n{n}")
    assert len(c2_messages) == 1 and len(c2_status) == 1
    assert [len(v) for v in c1_messages] == [0, 1, 1, 2, 2, 3, 3]


async def test_sends_reach_the_server_in_the_order_they_were_made(world: World) -> None:
    ann = await world.joined("ann")
    world.server.hold()
    calls = [world.start(ann.chats.send_message("c1", f"n{n}")) for n in range(3)]
    await settle()
    posts = [r for _, r in world.server.requests if type(r).__name__ == "PostMessageRequest"]
    assert len(posts) == 1, "later sends wait until the first is answered"
    assert [m.status for m in messages_of(ann)] == ["sending"] * 3
    world.server.release()
    sent = [await call for call in calls]
    assert [m.content for m in world.server.history("c1")] == ["n0", "n1", "n2"]
    assert [m.seq for m in sent] == sorted(m.seq or 0 for m in sent)


def test_max_messages_in_memory_must_be_positive() -> None:
    from chats_store import ChatsConfig

    assert ChatsConfig(host="h").max_messages_in_memory is None
    assert ChatsConfig(host="h", max_messages_in_memory=1).max_messages_in_memory == 1
    for wrong in (0, -5, True):
        with pytest.raises(ValueError, match="max_messages_in_memory"):
            ChatsConfig(host="h", max_messages_in_memory=wrong)


# Every call settles (issue 10): close(), async with, a duplicate id ---------------------


@attrs.define
class InMemoryHolding:
    """The in-memory server as a ``HoldingWorld`` of ``tests/chats/settlement.py``."""

    world: World

    async def joined(self, user_id: str, chat_id: str = "c1", **options: Any) -> Chats:
        client = await self.world.client(user_id, **options)
        await client.chats.join_chat(self.world.server.chat_token(user_id, chat_id))
        return client.chats

    def hold(self) -> None:
        self.world.server.hold()

    def release(self) -> None:
        self.world.server.release()

    async def reloading(self, chats: Chats) -> None:
        """Drop the client's connection, then reconnect it with the server holding
        requests: its resumes (and what it sends meanwhile) wait for :meth:`release`."""
        (client,) = (client for client in self.world.clients if client.chats is chats)
        client.websocket.drop()
        self.world.server.hold()
        await client.websocket.connect()


@pytest.mark.parametrize("scenario", settlement.RESYNC_SCENARIOS, ids=lambda s: s.__name__)
async def test_a_call_during_a_resync_settles(world: World, scenario: Any) -> None:
    await scenario(InMemoryHolding(world))


async def test_close_settles_every_call_in_flight_and_rolls_it_back(world: World) -> None:
    await settlement.close_with_calls_in_flight(
        InMemoryHolding(world), world.server.chat_token("ann", "c2")
    )


async def test_a_duplicate_message_id_is_refused(world: World) -> None:
    await settlement.a_duplicate_message_id(InMemoryHolding(world))


async def test_every_action_after_close_raises_module_closed(world: World) -> None:
    ann = await world.joined("ann")
    sent = await ann.chats.send_message("c1", "hi")
    await ann.chats.close()
    await ann.chats.close()  # idempotent
    chats = ann.chats
    calls = {
        "join_chat": lambda: chats.join_chat(world.server.chat_token("ann", "c2")),
        "leave_chat": lambda: chats.leave_chat("c1"),
        "send_message": lambda: chats.send_message("c1", "late"),
        "resend_message": lambda: chats.resend_message("c1", sent.id),
        "update_message": lambda: chats.update_message("c1", sent.id, "late"),
        "delete_message": lambda: chats.delete_message("c1", sent.id),
        "load_older_messages": lambda: chats.load_older_messages("c1"),
        "block_chat_member": lambda: chats.block_chat_member("c1", "bob", 5),
        "unblock_chat_member": lambda: chats.unblock_chat_member("c1", "bob"),
        "mute_chat_member": lambda: chats.mute_chat_member("c1", "bob", 5),
        "unmute_chat_member": lambda: chats.unmute_chat_member("c1", "bob"),
        "kick_chat_member": lambda: chats.kick_chat_member("c1", "bob"),
    }
    state = chats.store.state
    requests = len(world.server.requests)
    for action, call in calls.items():
        with pytest.raises(ActionCallError) as raised:
            await call()
        error = raised.value
        assert (type(error), error.action, error.code) == (
            ActionCallError,
            action,
            ErrorCode.MODULE_CLOSED,
        )
        assert "create_chats" in error.detail
    assert chats.store.state is state and len(world.server.requests) == requests


async def test_async_with_closes_the_module(world: World) -> None:
    ann = await world.joined("ann")
    world.server.hold()
    async with ann.chats as chats:
        assert chats is ann.chats
        sending = world.start(chats.send_message("c1", "cut short"))
        await settle()
    with pytest.raises(CallCancelledError) as raised:
        await asyncio.wait_for(sending, settlement.BOUND)
    assert raised.value.code == ErrorCode.MODULE_CLOSED
    assert [(m.content, m.status) for m in messages_of(ann)] == [("cut short", "interrupted")]
    with pytest.raises(ActionCallError):
        await ann.chats.send_message("c1", "after")


async def test_close_writes_the_cancellations_to_the_action_log(
    world: World, tmp_path: Path
) -> None:
    """The outcomes of the cancelled calls are dispatched, so a replay shows the rollback."""
    path = tmp_path / "actions.jsonl"
    websocket = world.server.websocket()
    chats = create_chats(
        user_module=create_user(world.server.session_token("ann")),
        websocket_module=websocket,
        config=ChatsConfig(host="memory"),
        action_log=path,
    )
    await websocket.connect()
    await chats.join_chat(world.server.chat_token("ann", "c1"))
    world.server.hold()
    sending = world.start(chats.send_message("c1", "logged"))
    await settle()
    await chats.close()
    with pytest.raises(CallCancelledError):
        await sending
    with path.open() as lines:
        log = read_action_log(lines)
    *_, (entry, state) = replay(log)
    assert type(entry.action).__name__ == "MessageSendFailed"
    assert entry.action.failure.code == ErrorCode.MODULE_CLOSED
    assert [m.status for m in state.chats["c1"].messages] == ["interrupted"]
