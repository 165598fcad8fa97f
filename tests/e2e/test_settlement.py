"""Every call settles within a bound, against the real server (issue 10's hangs).

The scenarios live in ``tests/chats/settlement.py``; here they run against the
reference server through a :class:`~chats_store.testing.faults.FaultProxy`, which
holds a client's requests on their way up: right after a reconnect (the chat stays
``reloading`` with its resume request held), or at any moment (calls in flight).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest

from chats_store import (
    Chats,
    ChatsConfig,
    ReconnectPolicy,
    WebSocket,
    create_chats,
    create_user,
    create_websocket,
)
from chats_store.server import ChatServer, run_server
from chats_store.testing.faults import FaultProxy
from tests.chats import settlement
from tests.e2e.conftest import SECRET

FAST = ReconnectPolicy(first_delay=0.05, min_delay=0.05, max_delay=0.2)


@attrs.define
class ProxiedWorld:
    """The reference server behind a fault proxy, as a ``ResyncWorld``."""

    server: ChatServer
    proxy: FaultProxy
    websockets: dict[Chats, WebSocket] = attrs.Factory(dict)

    async def joined(self, user_id: str, chat_id: str = "c1", **options: Any) -> Chats:
        new_message_id = options.pop("new_message_id", None)
        websocket = create_websocket(open_timeout=settlement.BOUND, reconnect=FAST)
        chats = create_chats(
            user_module=create_user(self.server.session_token(user_id)),
            websocket_module=websocket,
            config=ChatsConfig(
                host=self.proxy.address, request_timeout=settlement.BOUND, **options
            ),
            **({} if new_message_id is None else {"new_message_id": new_message_id}),
        )
        self.websockets[chats] = websocket
        await websocket.connect()
        await chats.join_chat(self.server.chat_token(user_id, chat_id))
        return chats

    async def reloading(self, chats: Chats) -> None:
        dropped = False

        def hold_once_back(status: str) -> None:
            nonlocal dropped
            if status != "connected":
                dropped = True
            elif dropped and not self.proxy.paused:
                self.proxy.pause("up")  # the resume request the reconnect sends waits here

        subscription = self.websockets[chats].status.subscribe(hold_once_back)
        try:
            assert self.proxy.cut_all() == 1
            await settlement.eventually(
                lambda: (
                    self.proxy.is_paused("up") and chats.get_chat_status("c1").value == "reloading"
                )
            )
        finally:
            subscription.dispose()

    def hold(self) -> None:
        self.proxy.pause("up")

    def release(self) -> None:
        self.proxy.resume("up")

    async def close(self) -> None:
        self.proxy.resume()
        for chats, websocket in self.websockets.items():
            await websocket.disconnect()
            await chats.close()


@pytest.fixture
async def world() -> AsyncIterator[ProxiedWorld]:
    async with (
        run_server(secret=SECRET) as server,
        FaultProxy(server.host, server.port) as proxy,
    ):
        world = ProxiedWorld(server, proxy)
        try:
            yield world
        finally:
            await world.close()


@pytest.mark.parametrize("scenario", settlement.RESYNC_SCENARIOS, ids=lambda s: s.__name__)
async def test_a_call_during_a_resync_settles(world: ProxiedWorld, scenario: Any) -> None:
    await scenario(world)


async def test_close_settles_every_call_in_flight(world: ProxiedWorld) -> None:
    await settlement.close_with_calls_in_flight(world, world.server.chat_token("ann", "c2"))


async def test_a_duplicate_message_id_is_refused(world: ProxiedWorld) -> None:
    await settlement.a_duplicate_message_id(world)
