"""An overloaded server answers handshakes HTTP 503 with a spread ``Retry-After``."""

from __future__ import annotations

import asyncio
import random
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from chats_store.chats.actions import Failure
from chats_store.chats.commands import PostMessageRequest
from chats_store.protocol import PROTOCOL_VERSION
from chats_store.server import run_server
from chats_store.server.overload import MAX_BACKLOG, Overload
from tests.server.conftest import SECRET, handshake_headers, open_client
from tests.server.test_dispatch import _write_lock


class _Worker:
    def __init__(self, backlog: float) -> None:
        self.backlog = backlog


def _overload(backlog: float) -> Overload:
    return Overload(_Worker(backlog), randomness=random.Random(7))  # type: ignore[arg-type]


def test_a_server_within_its_bound_is_not_overloaded() -> None:
    assert _overload(backlog=MAX_BACKLOG / 2).retry_after() is None


def test_a_worker_behind_asks_for_a_spread_delay() -> None:
    assert 1 <= _overload(backlog=MAX_BACKLOG + 0.1).retry_after() <= 6  # type: ignore[operator]
    behind = _overload(backlog=5.2)
    delays = {behind.retry_after() for _ in range(50)}
    assert delays <= set(range(6, 13)) and len(delays) > 3  # [base, 2 base], spread


async def test_while_the_core_is_behind_a_handshake_gets_503_with_retry_after(
    tmp_path: Path,
) -> None:
    database = tmp_path / "chats.sqlite3"
    async with run_server(db=database, secret=SECRET) as server:
        async with asyncio.timeout(30):
            async with AsyncExitStack() as stack:
                alice = await open_client(stack, server, "alice")
                await alice.join("c1")
                async with _write_lock(database, MAX_BACKLOG + 1.5):
                    post = await alice.send(PostMessageRequest("c1", "m1", "waits"))
                    await asyncio.sleep(MAX_BACKLOG + 0.5)  # the post waits in the worker
                    with pytest.raises(InvalidStatus) as refused:
                        await connect(
                            server.url,
                            subprotocols=[Subprotocol(PROTOCOL_VERSION)],
                            additional_headers=handshake_headers(server.session_token("bob")),
                        )
                assert not isinstance(await alice.reply(post), Failure)
                await open_client(stack, server, "bob")  # once caught up, welcome

    response = refused.value.response
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 1
    assert response.body.startswith(b"server_busy: the server is overloaded")
