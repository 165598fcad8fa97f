"""End to end: real clients, through the public API only, against the real reference server.

Every test starts ``run_server`` on a free loopback port and drives clients made
with ``create_user`` / ``create_websocket`` / ``create_chats``, as a new user would.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from chats_store import (
    ActionCallError,
    AuthenticationError,
    CallCancelledError,
    ChatsConfig,
    ErrorCode,
    Message,
    ServerRefusedError,
    SyncStatuses,
    create_chats,
    create_user,
    create_websocket,
)
from chats_store.chats.commands import PostMessageRequest
from chats_store.protocol import PROTOCOL_VERSION
from chats_store.server import mint_chat_token, mint_session_token
from tests.e2e.conftest import SECRET, WAIT, Net, eventually, network
from tests.server.conftest import read_hello

# Every action and getter, two clients ----------------------------------------------------


async def test_two_clients_chat_through_the_server(net: Net) -> None:
    ann = await net.joined("ann", metadata={"role": "host"})
    bob_status: list[Any] = []
    bob = await net.client("bob")
    bob.chats.get_chat_status("c1").subscribe(bob_status.append)
    context = await bob.chats.join_chat(net.server.chat_token("bob", "c1"))
    assert context.status == "ready" and context.members_amount == 2
    assert bob_status == [None, "loading", "ready"]
    await eventually(lambda: ann.chats.get_chat_members_amount("c1").value == 2)
    assert ann.chats.chats_ids.value == ("c1",)
    assert dict(ann.chats.get_client_chat_member_metadata("c1").value or {}) == {"role": "host"}
    assert ann.chats.get_client_chat_member_restrictions("c1").value == ()
    assert ann.chats.get_chat_sync_statuses("c1").value == SyncStatuses()
    assert ann.chats.is_chat_syncing("c1").value is False

    sent = await ann.chats.send_message("c1", "hello bob")
    assert sent.status == "ready" and sent.seq is not None and sent.author_id == "ann"
    await eventually(lambda: [m.id for m in bob.messages()] == [sent.id])

    reply = await bob.chats.send_message("c1", "hi ann")
    await eventually(lambda: [m.content for m in ann.messages()] == ["hello bob", "hi ann"])

    updated = await ann.chats.update_message("c1", sent.id, "hello, bob")
    assert updated.content == "hello, bob" and updated.seq == sent.seq
    await eventually(lambda: bob.messages()[0].content == "hello, bob")

    deleted = await bob.chats.delete_message("c1", reply.id)
    assert deleted.id == reply.id
    await eventually(lambda: [m.id for m in ann.messages()] == [sent.id])
    assert [m.id for m in bob.messages()] == [sent.id]

    left = await bob.chats.leave_chat("c1")
    assert left.chat_id == "c1"
    assert bob.chats.chats_ids.value == ()
    await eventually(lambda: ann.chats.get_chat_members_amount("c1").value == 1)


async def test_websocket_status_getter_and_context_manager(net: Net) -> None:
    websocket = create_websocket()
    chats = create_chats(
        user_module=create_user(net.server.session_token("ann")),
        websocket_module=websocket,
        config=ChatsConfig(host=net.server.address),
    )
    statuses: list[str] = []
    websocket.status.subscribe(statuses.append)
    async with websocket:
        assert websocket.status.value == "connected"
        await chats.join_chat(net.server.chat_token("ann", "c1"))
    assert statuses == ["disconnected", "connecting", "connected", "disconnected"]
    with pytest.raises(ActionCallError) as raised:
        await chats.send_message("c1", "after disconnect")
    assert raised.value.code == ErrorCode.NOT_CONNECTED
    await chats.close()


# Spec errors that can happen against a real server ---------------------------------------


async def test_not_connected(net: Net) -> None:
    ann = await net.client("ann", connect=False)
    with pytest.raises(ActionCallError) as raised:
        await ann.chats.join_chat(net.server.chat_token("ann", "c1"))
    assert raised.value.code == ErrorCode.NOT_CONNECTED


async def test_forged_token_is_refused_by_the_server(net: Net) -> None:
    ann = await net.client("ann")
    forged = jwt.encode(
        {"sub": "ann", "chat": "c1", "aud": "chats_store:chat", "exp": 4_000_000_000},
        "another-secret-of-at-least-thirty-two-bytes",
        algorithm="HS256",
    )
    with pytest.raises(ServerRefusedError) as raised:
        await ann.chats.join_chat(forged)
    assert raised.value.code == ErrorCode.INVALID_TOKEN
    assert ann.chats.chats_ids.value == ()


async def test_alg_none_token_is_refused_by_the_server(net: Net) -> None:
    ann = await net.client("ann")
    unsigned = jwt.encode(
        {"sub": "ann", "chat": "c1", "aud": "chats_store:chat", "exp": 4_000_000_000},
        None,
        algorithm="none",
    )
    with pytest.raises(ServerRefusedError) as raised:
        await ann.chats.join_chat(unsigned)
    assert raised.value.code == ErrorCode.INVALID_TOKEN


def expired_chat_token(user_id: str, chat_id: str) -> str:
    return mint_chat_token(SECRET, user_id, chat_id, now=time.time() - 1_000)


async def test_token_expired_by_the_server_clock(net: Net) -> None:
    """A client whose clock is late judges by the server's clock (its session token's
    ``iat`` says the server's clock is at least that): refused locally."""
    websocket = create_websocket(open_timeout=WAIT)
    chats = create_chats(
        user_module=create_user(net.server.session_token("ann")),
        websocket_module=websocket,
        config=ChatsConfig(host=net.server.address),
        clock=lambda: time.time() - 2_000,
    )
    await websocket.connect()
    with pytest.raises(ActionCallError) as raised:
        await chats.join_chat(expired_chat_token("ann", "c1"))
    assert raised.value.code == ErrorCode.EXPIRED_TOKEN
    await websocket.disconnect()
    await chats.close()


@pytest.mark.parametrize(
    ("make_token", "code"),
    [
        (lambda s: "garbage", ErrorCode.INVALID_TOKEN),
        (lambda s: expired_chat_token("ann", "c1"), ErrorCode.EXPIRED_TOKEN),
        (lambda s: s.chat_token("bob", "c1"), ErrorCode.INVALID_TOKEN),
        (lambda s: s.session_token("ann"), ErrorCode.INVALID_TOKEN),
    ],
    ids=["garbage", "expired", "other-users", "session-as-chat"],
)
async def test_bad_join_tokens(net: Net, make_token: Any, code: ErrorCode) -> None:
    ann = await net.client("ann")
    with pytest.raises(ActionCallError) as raised:
        await ann.chats.join_chat(make_token(net.server))
    assert raised.value.code == code


async def test_already_joined(net: Net) -> None:
    ann = await net.joined("ann")
    with pytest.raises(ActionCallError) as raised:
        await ann.chats.join_chat(net.server.chat_token("ann", "c1"))
    assert raised.value.code == ErrorCode.ALREADY_JOINED


async def test_leave_during_loading_fails_the_join(net: Net) -> None:
    ann = await net.client("ann")
    join = asyncio.ensure_future(ann.chats.join_chat(net.server.chat_token("ann", "c1")))
    await asyncio.sleep(0)
    assert ann.chats.get_chat_status("c1").value == "loading"
    await ann.chats.leave_chat("c1")
    with pytest.raises(CallCancelledError) as raised:
        await join
    assert raised.value.code == ErrorCode.CHAT_LEFT_DURING_JOIN
    assert ann.chats.chats_ids.value == ()
    context = await ann.chats.join_chat(net.server.chat_token("ann", "c1"))
    assert context.status == "ready"


async def test_bad_session_token_is_a_clear_end_state(net: Net) -> None:
    expired = mint_session_token(SECRET, "ann", now=time.time() - 10_000)
    websocket = create_websocket(open_timeout=WAIT)
    chats = create_chats(
        user_module=create_user(expired),
        websocket_module=websocket,
        config=ChatsConfig(host=net.server.address),
    )
    with pytest.raises(AuthenticationError, match="session token"):
        await websocket.connect()
    assert websocket.status.value == "disconnected"
    await chats.close()


# Moderation -----------------------------------------------------------------------


async def test_moderation_needs_permission(net: Net) -> None:
    await net.joined("bob")
    ann = await net.joined("ann")
    for call in (
        ann.chats.mute_chat_member("c1", "bob", 5),
        ann.chats.kick_chat_member("c1", "bob"),
        ann.chats.block_chat_member("c1", "bob", 0),
    ):
        with pytest.raises(ServerRefusedError) as raised:
            await call
        assert raised.value.code == ErrorCode.PERMISSION_DENIED


async def test_mute_is_enforced_and_shown_live(net: Net) -> None:
    mod = await net.joined("mod", permissions=["send", "moderate"])
    ann = await net.joined("ann")
    await mod.chats.mute_chat_member("c1", "ann", 10, reason="calm down")
    await eventually(lambda: bool(ann.chats.get_client_chat_member_restrictions("c1").value))
    (mute,) = ann.chats.get_client_chat_member_restrictions("c1").value or ()
    assert (mute.kind, mute.reason) == ("mute", "calm down") and mute.until is not None
    with pytest.raises(ActionCallError) as raised:
        await ann.chats.send_message("c1", "let me talk")
    assert raised.value.code == ErrorCode.MEMBER_MUTED
    await mod.chats.unmute_chat_member("c1", "ann")
    await eventually(lambda: ann.chats.get_client_chat_member_restrictions("c1").value == ())
    assert (await ann.chats.send_message("c1", "thanks")).status == "ready"


async def test_mute_expires_on_the_server_clock(server_db: str) -> None:
    async with network(server_db, seconds_per_minute=0.1) as fast:
        mod = await fast.joined("mod", permissions=["send", "moderate"])
        ann = await fast.joined("ann")
        await mod.chats.mute_chat_member("c1", "ann", 1)
        await eventually(lambda: bool(ann.chats.get_client_chat_member_restrictions("c1").value))
        await eventually(lambda: ann.chats.get_client_chat_member_restrictions("c1").value == ())
        assert (await ann.chats.send_message("c1", "free")).status == "ready"


async def test_kick_removes_and_allows_rejoin(net: Net) -> None:
    mod = await net.joined("mod", permissions=["send", "moderate"])
    ann = await net.joined("ann")
    await mod.chats.kick_chat_member("c1", "ann", reason="out")
    await eventually(lambda: ann.chats.chats_ids.value == ())
    await eventually(lambda: mod.chats.get_chat_members_amount("c1").value == 1)
    await ann.chats.join_chat(net.server.chat_token("ann", "c1"))
    assert ann.chats.get_chat_status("c1").value == "ready"


async def test_block_removes_and_prevents_rejoin_until_unblocked(net: Net) -> None:
    mod = await net.joined("mod", permissions=["send", "moderate"])
    ann = await net.joined("ann")
    await mod.chats.block_chat_member("c1", "ann", 0, reason="spam")
    await eventually(lambda: ann.chats.chats_ids.value == ())
    with pytest.raises(ServerRefusedError) as raised:
        await ann.chats.join_chat(net.server.chat_token("ann", "c1"))
    assert raised.value.code == ErrorCode.MEMBER_BLOCKED
    await mod.chats.unblock_chat_member("c1", "ann")
    await ann.chats.join_chat(net.server.chat_token("ann", "c1"))


# Authors, moderators and messages ---------------------------------------------------------


async def test_only_authors_edit_and_moderators_delete_others(net: Net) -> None:
    mod = await net.joined("mod", permissions=["send", "moderate"])
    ann = await net.joined("ann")
    bob = await net.joined("bob")
    sent = await ann.chats.send_message("c1", "ann's words")
    await eventually(lambda: len(bob.messages()) == 1 and len(mod.messages()) == 1)
    with pytest.raises(ActionCallError) as raised:
        await bob.chats.update_message("c1", sent.id, "bob's words")
    assert raised.value.code == ErrorCode.NOT_MESSAGE_AUTHOR
    with pytest.raises(ServerRefusedError) as refused:
        await bob.chats.delete_message("c1", sent.id)
    assert refused.value.code == ErrorCode.PERMISSION_DENIED
    assert [m.status for m in bob.messages()] == ["ready"], "a refused delete rolls back"
    await mod.chats.delete_message("c1", sent.id)
    await eventually(lambda: ann.messages() == () and bob.messages() == ())


async def test_a_repeated_send_is_deduplicated_by_message_id(net: Net) -> None:
    ann = await net.joined("ann")
    bob = await net.joined("bob")
    (connection,) = ann.websocket.connections
    request = PostMessageRequest("c1", "client-made-id", "only once")
    first = await connection.request(request, WAIT)
    second = await connection.request(request, WAIT)
    assert isinstance(first, Message) and first == second
    await asyncio.sleep(0.1)
    assert [m.id for m in bob.messages()] == ["client-made-id"]
    carl = await net.joined("carl")
    assert [m.id for m in carl.messages()] == ["client-made-id"]


async def test_history_paging(bulk_net: Net) -> None:
    net = bulk_net  # 130 sends at once: past the default rate limit (20/s, bursts of 50)
    ann = await net.joined("ann")
    for n in range(130):
        await ann.chats.send_message("c1", f"m{n}")
    bob = await net.joined("bob")
    assert [m.content for m in bob.messages()] == [f"m{n}" for n in range(30, 130)]
    syncing: list[bool] = []
    bob.chats.is_chat_syncing("c1").subscribe(syncing.append)
    older = await bob.chats.load_older_messages("c1", limit=20)
    assert [m.content for m in older] == [f"m{n}" for n in range(10, 30)]
    assert syncing == [False, True, False]
    rest = await bob.chats.load_older_messages("c1", limit=50)
    assert len(rest) == 10
    assert [m.content for m in bob.messages()] == [f"m{n}" for n in range(130)]
    assert await bob.chats.load_older_messages("c1") == ()


async def test_max_messages_in_memory_keeps_the_newest_and_pages_back(bulk_net: Net) -> None:
    net = bulk_net
    ann = await net.joined("ann")
    for n in range(40):
        await ann.chats.send_message("c1", f"m{n}")
    bob = await net.client("bob", max_messages_in_memory=10)
    await bob.chats.join_chat(net.server.chat_token("bob", "c1"))
    assert [m.content for m in bob.messages()] == [f"m{n}" for n in range(30, 40)]
    for n in range(40, 45):
        await ann.chats.send_message("c1", f"m{n}")
    await eventually(lambda: bob.messages()[-1].content == "m44")
    assert [m.content for m in bob.messages()] == [f"m{n}" for n in range(35, 45)]
    # The oldest held message moved up: paging back asks before it.
    older = await bob.chats.load_older_messages("c1", limit=5)
    assert [m.content for m in older] == [f"m{n}" for n in range(30, 35)]
    assert [m.content for m in bob.messages()] == [f"m{n}" for n in range(30, 45)]
    # Our own message is held while pending, then the next change trims back to 10.
    await bob.chats.send_message("c1", "from bob")
    assert [m.content for m in bob.messages()] == [*(f"m{n}" for n in range(36, 45)), "from bob"]


async def test_history_survives_a_server_restart(each_db: str) -> None:
    db = each_db
    async with network(db=db) as first:
        ann = await first.joined("ann")
        sent = [await ann.chats.send_message("c1", f"kept {n}") for n in range(3)]
        await ann.chats.update_message("c1", sent[0].id, "kept 0, edited")
        await ann.chats.delete_message("c1", sent[1].id)
    async with network(db=db) as second:
        bob = await second.joined("bob")
        assert [(m.id, m.content) for m in bob.messages()] == [
            (sent[0].id, "kept 0, edited"),
            (sent[2].id, "kept 2"),
        ]
        assert bob.chats.get_chat_members_amount("c1").value == 2, "ann's membership persisted"


async def test_a_misbehaving_client_does_not_affect_others(net: Net) -> None:
    ann = await net.joined("ann")
    bob = await net.joined("bob")
    headers = {"Authorization": f"Bearer {net.server.session_token('mallory')}"}
    async with connect(
        net.server.url, additional_headers=headers, subprotocols=[Subprotocol(PROTOCOL_VERSION)]
    ) as raw:
        await read_hello(raw)
        await raw.send('{"type": "post", "id": 1, "chat_id": 42}')
        answer = await asyncio.wait_for(raw.recv(), WAIT)
        assert '"error"' in str(answer)
        await raw.send("this is not json")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(raw.recv(), WAIT)
        assert raw.close_code == 1007
    sent = await ann.chats.send_message("c1", "still here")
    await eventually(lambda: [m.id for m in bob.messages()] == [sent.id])
