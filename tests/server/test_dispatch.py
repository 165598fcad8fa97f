"""Requests reach the core's thread and come back in order; the event loop never waits for it.

On the real server: another process holding the database's write lock delays
requests (a clear result within ``busy_timeout``, ``server_busy`` past it) while the
loop keeps running; a connection's replies keep the order of its requests, the
gateway's own error replies included; a resume sends the stored frames as pushed.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from chats_store.chats.actions import Failure, Resumption
from chats_store.chats.commands import JoinRequest, PostMessageRequest, ResumeRequest
from chats_store.chats.model import Message
from chats_store.errors import ErrorCode
from chats_store.protocol import ReplyReceived
from chats_store.server import run_server
from tests.server.conftest import SECRET, ClientFactory, open_client

_LOCKER = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
connection.execute("COMMIT")
"""


@asynccontextmanager
async def _write_lock(database: Path, seconds: float) -> AsyncIterator[None]:
    """Another process holds the database's write lock for ``seconds`` from now."""
    with subprocess.Popen(
        [sys.executable, "-c", _LOCKER, str(database), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    ) as locker:
        assert locker.stdout is not None
        assert await asyncio.to_thread(locker.stdout.readline) == "locked\n"
        try:
            yield
        finally:
            await asyncio.to_thread(locker.wait, 10)


async def _largest_stall(until: asyncio.Future[object]) -> float:
    """How late, at most, a 10 ms sleep woke up until ``until`` is done."""
    largest = 0.0
    while not until.done():
        began = time.monotonic()
        await asyncio.sleep(0.01)
        largest = max(largest, time.monotonic() - began - 0.01)
    return largest


async def test_a_write_lock_of_another_process_delays_a_post_without_blocking_the_loop(
    tmp_path: Path,
) -> None:
    database = tmp_path / "chats.sqlite3"
    async with run_server(db=database, secret=SECRET) as server, AsyncExitStack() as stack:
        alice = await open_client(stack, server, "alice")
        await alice.join("c1")
        async with _write_lock(database, 1.0):
            began = time.monotonic()
            post = asyncio.ensure_future(alice.post("c1", "m1", "waits for the lock"))
            stall = await _largest_stall(post)
            message = await post
        waited = time.monotonic() - began

    assert message.content == "waits for the lock"  # delayed, not failed
    assert waited > 0.5  # it did wait for the lock
    assert stall < 0.5  # while the loop went on (on the loop, it would be the whole second)


async def test_a_lock_held_past_busy_timeout_answers_server_busy(tmp_path: Path) -> None:
    database = tmp_path / "chats.sqlite3"
    async with (
        run_server(db=database, secret=SECRET, busy_timeout=0.2) as server,
        AsyncExitStack() as stack,
    ):
        alice = await open_client(stack, server, "alice")
        await alice.join("c1")
        async with _write_lock(database, 1.0):
            refused = await alice.refused(PostMessageRequest("c1", "m1", "hi"), "server_busy")
        again = await alice.post("c1", "m1", "hi")  # nothing was applied: the id is free

    assert "was not applied - retry later" in refused.detail
    assert again.content == "hi"


async def test_replies_keep_the_order_of_the_requests_the_gateways_own_included(
    stack: AsyncExitStack,
) -> None:
    server = await stack.enter_async_context(
        run_server(secret=SECRET, rate_limit=0.01, rate_burst=3)
    )
    alice = await open_client(stack, server, "alice")
    await alice.join("c1")
    posts = [await alice.send(PostMessageRequest("c1", f"m{n}", "hi")) for n in range(3)]
    refused = await alice.reply(posts[-1])  # past the burst: refused by the gateway at once

    order = [item.request_id for item in alice.log if isinstance(item, ReplyReceived)]
    assert order[-3:] == posts  # after the replies of the core, still owed when it was made
    assert isinstance(refused, Failure) and refused.code == ErrorCode.RATE_LIMITED
    assert isinstance(alice.replies.get(posts[0]), Message)


async def test_a_resume_sends_each_missed_event_as_the_very_text_that_was_pushed(
    client: ClientFactory,
) -> None:
    alice, bob = await client("alice"), await client("bob")
    joined = await alice.join("c1")
    await bob.join("c1")
    await alice.drop_events()
    await bob.post("c1", "m1", "héllo, \u2603")
    pushed = await alice.connection.recv()

    ann_again = await client("alice")
    request_id = await ann_again.send(
        ResumeRequest("c1", joined.membership, joined.last_seq, joined.epoch)
    )
    while True:  # read the raw reply, before the protocol decodes it
        text = await ann_again.connection.recv()
        assert isinstance(text, str)
        if text.startswith(f'{{"type":"ok","id":{request_id},'):
            break
    ann_again.protocol.receive_data(text)
    (item,) = ann_again.protocol.events_received()

    assert isinstance(pushed, str) and pushed in text
    resumption = item.result  # type: ignore[union-attr]
    assert isinstance(resumption, Resumption) and resumption.snapshot is None
    assert [event.seq for event in resumption.events][-1] == json.loads(pushed)["seq"]


async def test_join_requests_of_one_connection_in_a_burst_are_all_answered(
    bulk_server: object, stack: AsyncExitStack
) -> None:
    server = bulk_server
    alice = await open_client(stack, server, "alice")  # type: ignore[arg-type]
    ids = [
        await alice.send(JoinRequest(f"c{n}", server.chat_token("alice", f"c{n}")))  # type: ignore[attr-defined]
        for n in range(300)  # more than a connection may have in the worker at once
    ]
    replies = [await alice.reply(request_id) for request_id in ids]

    assert all(not isinstance(reply, Failure) for reply in replies)
