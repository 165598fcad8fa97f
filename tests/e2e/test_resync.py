"""Reconnect and resync against the real server: nothing lost, nothing duplicated.

A client that drops comes back ``reloading``, resumes each chat with the
membership credential the server issued at join, applies what it missed, and is
``ready`` again with exactly the server's history.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from chats_store import ChatsConfig, ErrorCode, Message, create_chats, create_user, create_websocket
from chats_store.server import mint_session_token
from tests.e2e.conftest import SECRET, WAIT, Client, Net, eventually, network


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def history(client: Client, chat_id: str = "c1") -> list[tuple[str, str]]:
    return [(m.id, m.content) for m in client.messages(chat_id)]


async def reconnect(client: Client) -> None:
    await client.websocket.disconnect()
    await client.websocket.connect()


async def test_a_client_that_was_away_gets_everything_it_missed(net: Net) -> None:
    ann = await net.joined("ann")
    bob = await net.joined("bob")
    first = await bob.chats.send_message("c1", "before")
    second = await bob.chats.send_message("c1", "to be edited")
    third = await bob.chats.send_message("c1", "to be deleted")
    await eventually(lambda: len(ann.messages()) == 3)

    await ann.websocket.disconnect()
    await bob.chats.update_message("c1", second.id, "edited while ann was away")
    await bob.chats.delete_message("c1", third.id)
    fourth = await bob.chats.send_message("c1", "new while ann was away")
    await net.joined("carl")

    statuses: list[Any] = []
    syncing: list[bool] = []
    ann.chats.get_chat_status("c1").subscribe(statuses.append)
    ann.chats.is_chat_syncing("c1").subscribe(syncing.append)
    await ann.websocket.connect()
    await eventually(lambda: ann.chats.get_chat_status("c1").value == "ready" and len(statuses) > 1)
    assert statuses == ["ready", "reloading", "ready"]
    assert syncing == [False, True, False]
    assert history(ann) == [
        (first.id, "before"),
        (second.id, "edited while ann was away"),
        (fourth.id, "new while ann was away"),
    ]
    assert ann.chats.get_chat_members_amount("c1").value == 3
    # Live again: pushes after the resync arrive.
    fifth = await bob.chats.send_message("c1", "welcome back")
    await eventually(lambda: history(ann)[-1] == (fifth.id, "welcome back"))


async def test_the_membership_survives_a_server_restart(each_db: str) -> None:
    """The credential is signed, not stored: a restarted server on the same file resumes it."""
    db = each_db
    port = free_port()
    websocket = create_websocket(open_timeout=WAIT)
    chats = create_chats(
        user_module=create_user(mint_session_token(SECRET, "ann")),
        websocket_module=websocket,
        config=ChatsConfig(host=f"127.0.0.1:{port}", request_timeout=WAIT),
    )
    ann = Client("ann", chats, websocket)
    statuses: list[Any] = []
    async with network(db=db, port=port) as net:
        await websocket.connect()
        await chats.join_chat(net.server.chat_token("ann", "c1"))
        sent = await chats.send_message("c1", "before the restart")
        chats.get_chat_status("c1").subscribe(statuses.append)
    async with network(db=db, port=port) as net:
        bob = await net.joined("bob")
        later = await bob.chats.send_message("c1", "while ann reconnects")
        await eventually(lambda: websocket.status.value == "connected", timeout=5)
        await eventually(lambda: len(ann.messages()) == 2 and statuses[-1] == "ready")
        assert history(ann) == [(sent.id, "before the restart"), (later.id, "while ann reconnects")]
        assert statuses == ["ready", "reloading", "ready"]
        await websocket.disconnect()
        await chats.close()


async def test_a_member_kicked_while_away_loses_the_chat_with_a_reason(net: Net) -> None:
    mod = await net.joined("mod", permissions=["send", "moderate"])
    ann = await net.joined("ann")
    await ann.websocket.disconnect()
    await mod.chats.kick_chat_member("c1", "ann", reason="gone")
    await ann.websocket.connect()
    await eventually(lambda: ann.chats.chats_ids.value == ())
    removal = ann.chats.get_chat_removal("c1").value
    assert removal is not None and removal.reason == "membership_lost"
    assert ErrorCode.NOT_A_MEMBER in (removal.detail or "")
    # Never retried: a later reconnect does not bring it back or loop.
    await reconnect(ann)
    assert ann.chats.chats_ids.value == ()


async def test_auto_resend_delivers_interrupted_messages_once_in_order(net: Net) -> None:
    websocket = create_websocket(open_timeout=WAIT)
    chats = create_chats(
        user_module=create_user(net.server.session_token("ann")),
        websocket_module=websocket,
        config=ChatsConfig(host=net.server.address, request_timeout=WAIT, auto_resend=True),
    )
    await websocket.connect()
    await chats.join_chat(net.server.chat_token("ann", "c1"))
    sends = [asyncio.ensure_future(chats.send_message("c1", f"queued {n}")) for n in range(3)]
    await asyncio.sleep(0)
    await websocket.disconnect()  # the first may or may not have reached the server
    await asyncio.gather(*sends, return_exceptions=True)
    pending = chats.get_chat_messages("c1").value or ()
    assert {m.status for m in pending} <= {"interrupted", "ready"}
    await websocket.connect()
    await eventually(
        lambda: [m.status for m in chats.get_chat_messages("c1").value or ()] == ["ready"] * 3
    )
    bob = await net.joined("bob")
    assert [m.content for m in bob.messages()] == ["queued 0", "queued 1", "queued 2"]
    assert len({m.id for m in bob.messages()}) == 3
    await websocket.disconnect()
    await chats.close()


async def test_manual_resend_after_a_lost_ack_creates_no_duplicate(net: Net) -> None:
    ann = await net.joined("ann")
    sending = asyncio.ensure_future(ann.chats.send_message("c1", "exactly once"))
    await asyncio.sleep(0.01)  # the frame is out; the ack may not be
    await ann.websocket.disconnect()
    outcome = (await asyncio.gather(sending, return_exceptions=True))[0]
    await ann.websocket.connect()
    await eventually(lambda: ann.chats.get_chat_status("c1").value == "ready")
    (message,) = ann.messages()
    if message.status == "interrupted":
        resent: Message = await ann.chats.resend_message("c1", message.id)
        assert resent.id == message.id
    else:
        assert not isinstance(outcome, BaseException) or message.status == "ready"
    bob = await net.joined("bob")
    assert [m.id for m in bob.messages()] == [message.id]


async def test_a_mute_that_expired_while_away_is_gone_after_the_resync(server_db: str) -> None:
    async with network(server_db, seconds_per_minute=0.2) as net:
        mod = await net.joined("mod", permissions=["send", "moderate"])
        ann = await net.joined("ann")
        await mod.chats.mute_chat_member("c1", "ann", 1)
        await eventually(lambda: bool(ann.chats.get_client_chat_member_restrictions("c1").value))
        await ann.websocket.disconnect()
        await asyncio.sleep(0.4)  # the mute expires on the server while ann is away
        assert ann.chats.get_client_chat_member_restrictions("c1").value  # stale until resync
        await ann.websocket.connect()
        await eventually(lambda: ann.chats.get_client_chat_member_restrictions("c1").value == ())
        assert (await ann.chats.send_message("c1", "free")).status == "ready"


@pytest.mark.parametrize("chats_count", [3])
async def test_every_joined_chat_resumes(net: Net, chats_count: int) -> None:
    ann = await net.client("ann")
    bob = await net.client("bob")
    for n in range(chats_count):
        await ann.chats.join_chat(net.server.chat_token("ann", f"c{n}"))
        await bob.chats.join_chat(net.server.chat_token("bob", f"c{n}"))
    await ann.websocket.disconnect()
    for n in range(chats_count):
        await bob.chats.send_message(f"c{n}", f"missed in c{n}")
    await ann.websocket.connect()
    for n in range(chats_count):
        await eventually(
            lambda n=n: [m.content for m in ann.messages(f"c{n}")] == [f"missed in c{n}"]
        )
