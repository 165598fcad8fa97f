"""An acknowledged post survives a power loss; without ``durable`` it may not.

The power loss is simulated by :class:`tests.server.power_loss.PowerLossDisk`: the
real server runs on a database whose every write and sync is observed below SQLite
(a VFS shim), and a power loss at any instant leaves each file as it was at its last
sync. The test takes that image while clients are posting, having first noted
which posts had been acknowledged; the image is then opened like a database found
after the power came back. Every post acknowledged before the instant must be in
it. The same run without ``durable`` (``synchronous=NORMAL``: no sync at commit)
shows what the test can see: acknowledged posts are gone.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

from chats_store.chats.commands import JoinRequest, PostMessageRequest
from chats_store.server import run_server
from chats_store.server.database import ChatDatabase
from chats_store.testing._backstage import live_messages
from tests.server.conftest import SECRET, open_client
from tests.server.power_loss import PowerLossDisk

SENDERS = 5
POSTS_BEFORE_THE_LOSS = 60


async def _lost_at_a_power_loss(tmp_path: Path, *, durable: bool) -> tuple[int, int, int]:
    """(posts acknowledged before the power loss, of them lost, syncs seen)."""
    database = tmp_path / "chats.sqlite3"
    acknowledged: list[str] = []
    with PowerLossDisk() as disk:
        async with (
            run_server(db=database, secret=SECRET, rate_limit=None, durable=durable) as server,
            AsyncExitStack() as stack,
        ):
            senders = [await open_client(stack, server, f"sender-{i}") for i in range(SENDERS)]
            for sender in senders:
                await sender.ok(JoinRequest("c1", server.chat_token(sender.user_id, "c1")))
            loss = asyncio.get_running_loop().create_future()

            async def post(sender_index: int) -> None:
                sender = senders[sender_index]
                for n in range(10_000):
                    message_id = f"{sender.user_id}-{n}"
                    await sender.ok(PostMessageRequest("c1", message_id, "kept?"))
                    acknowledged.append(message_id)
                    if len(acknowledged) >= POSTS_BEFORE_THE_LOSS and not loss.done():
                        # The acks first, then the image: each ack counted was sent
                        # after its commit returned, so before this instant.
                        loss.set_result(
                            (tuple(acknowledged), disk.crash(database, tmp_path / "after"))
                        )
                    if loss.done():
                        return

            await asyncio.gather(*(post(i) for i in range(SENDERS)))
            acknowledged_before, crashed = loss.result()
    after = ChatDatabase(crashed)
    try:
        kept = {message.id for message in live_messages(after, "c1")}
    finally:
        after.close()
    lost = [message_id for message_id in acknowledged_before if message_id not in kept]
    return len(acknowledged_before), len(lost), disk.syncs


async def test_no_acknowledged_post_is_lost_at_a_power_loss(tmp_path: Path) -> None:
    acknowledged, lost, syncs = await _lost_at_a_power_loss(tmp_path, durable=True)

    assert acknowledged >= POSTS_BEFORE_THE_LOSS
    assert lost == 0
    assert syncs > 0


async def test_without_durable_acknowledged_posts_are_lost_at_a_power_loss(
    tmp_path: Path,
) -> None:
    acknowledged, lost, _ = await _lost_at_a_power_loss(tmp_path, durable=False)

    # No sync at commit: the WAL is synced only at a checkpoint, which this few
    # posts do not reach, so the posts acknowledged are on no stable storage.
    assert acknowledged >= POSTS_BEFORE_THE_LOSS
    assert lost > 0
