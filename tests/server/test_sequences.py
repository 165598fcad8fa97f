"""The sequences docs/protocol.md spells out ("Sequences worth knowing"), on the wire."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from chats_store.chats.actions import (
    MembersAmountChanged,
    MessageEdited,
    MessagePosted,
    OwnRestrictionsChanged,
    RemovedFromChat,
    Resumption,
)
from chats_store.chats.commands import EditMessageRequest, ModerationRequest, ResumeRequest
from chats_store.protocol import MAX_FRAME_SIZE, PROTOCOL_VERSION
from chats_store.server import ChatServer
from tests.server.conftest import ClientFactory, handshake_headers, read_hello


async def test_a_block_pushes_the_restriction_then_the_removal(client: ClientFactory) -> None:
    mod, bob, ann = await client("mod"), await client("bob"), await client("ann")
    await mod.join("c1", permissions=["send", "moderate"])
    await bob.join("c1")
    await ann.join("c1")
    await mod.drop_events()
    await bob.drop_events()
    await ann.drop_events()

    await mod.ok(ModerationRequest("c1", "bob", "block", 0, "spam"))

    restricted, removed = await bob.next_event(), await bob.next_event()
    assert isinstance(restricted, OwnRestrictionsChanged)
    assert [r.kind for r in restricted.restrictions] == ["block"]
    assert isinstance(removed, RemovedFromChat) and removed.reason == "blocked"
    (amount,) = await ann.collect()
    assert isinstance(amount, MembersAmountChanged) and amount.members_amount == 2


async def test_a_resumption_with_a_snapshot_carries_the_credential_twice(
    client: ClientFactory,
) -> None:
    ann = await client("ann")
    await ann.join("c1")
    await ann.post("c1", "m1")
    again = await client("ann")
    membership = ann.server.membership_token("ann", "c1")

    await again.send(ResumeRequest("c1", membership, 0))  # before the join: a snapshot
    raw = json.loads(await again.connection.recv())

    result = raw["result"]
    assert result["events"] == [] and result["snapshot"] is not None
    assert result["membership"] == result["snapshot"]["membership"]


async def test_a_resume_after_an_edit_replays_the_post_with_new_content_then_the_edit(
    client: ClientFactory,
) -> None:
    ann = await client("ann")
    snapshot = await ann.join("c1")
    posted = await ann.post("c1", "m1", "first")
    await ann.ok(EditMessageRequest("c1", "m1", "second"))
    again = await client("ann")

    resumption = await again.ok(ResumeRequest("c1", snapshot.membership, snapshot.last_seq))

    assert isinstance(resumption, Resumption)
    post, edit = resumption.events
    assert isinstance(post, MessagePosted) and post.seq == posted.seq
    assert post.message.content == "second" and post.message.edited_at is not None
    assert isinstance(edit, MessageEdited) and edit.seq > post.seq


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_the_frame_limit_applies_after_decompression(
    server: ChatServer, compression: str | None
) -> None:
    async with AsyncExitStack() as stack:
        connection = await stack.enter_async_context(
            connect(
                server.url,
                subprotocols=[Subprotocol(PROTOCOL_VERSION)],
                additional_headers=handshake_headers(server.session_token("ann")),
                compression=compression,
            )
        )
        assert ("permessage-deflate" in str(connection.response.headers)) == bool(compression)
        await read_hello(connection)
        padding = "a" * MAX_FRAME_SIZE  # compresses to a few hundred bytes
        await connection.send(json.dumps({"type": "leave", "id": 1, "chat_id": padding}))
        with pytest.raises(ConnectionClosed):
            await connection.recv()

    assert connection.close_code == 1009
