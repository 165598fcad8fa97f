"""The WebSocket module against the real reference server: status, failures, reconnects."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from chats_store import (
    ActionCallError,
    ChatsConfig,
    ConnectFailedError,
    ConnectionLostError,
    create_chats,
    create_user,
    create_websocket,
)
from chats_store.chats.actions import ChatSnapshot, MessagePosted
from chats_store.chats.commands import JoinRequest
from chats_store.errors import ErrorCode
from chats_store.server import mint_session_token, run_server
from tests.e2e.conftest import WAIT, network

SECRET = "websocket-module-secret-long-enough-for-hs256"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_connect_fails_clearly_when_no_server_listens() -> None:
    websocket = create_websocket(open_timeout=0.5)
    chats = create_chats(
        user_module=create_user(mint_session_token(SECRET, "ann")),
        websocket_module=websocket,
        config=ChatsConfig(host=f"127.0.0.1:{free_port()}"),
    )
    with pytest.raises(ConnectFailedError, match="could not connect"):
        await websocket.connect()
    assert websocket.status.value == "disconnected"
    await chats.close()


async def test_reconnects_after_the_server_restarts() -> None:
    port = free_port()
    websocket = create_websocket(open_timeout=2.0)
    chats = create_chats(
        user_module=create_user(mint_session_token(SECRET, "ann")),
        websocket_module=websocket,
        config=ChatsConfig(host=f"127.0.0.1:{port}", request_timeout=2.0),
    )
    statuses: list[str] = []
    websocket.status.subscribe(statuses.append)
    async with run_server(port=port, secret=SECRET) as server:
        await websocket.connect()
        await chats.join_chat(server.chat_token("ann", "c1"))
        sending = asyncio.ensure_future(chats.send_message("c1", "in flight at shutdown"))
        await asyncio.sleep(0)
    # The server stopped with the send in flight: it ends ready or interrupted, never sending.
    outcome = (await asyncio.gather(sending, return_exceptions=True))[0]
    assert not isinstance(outcome, BaseException) or isinstance(outcome, ConnectionLostError)
    (message,) = chats.get_chat_messages("c1").value or ()
    assert message.status in ("ready", "interrupted")
    with pytest.raises(ActionCallError) as raised:
        await chats.send_message("c1", "while reconnecting")
    assert raised.value.code == ErrorCode.NOT_CONNECTED
    async with run_server(port=port, secret=SECRET):
        loop = asyncio.get_running_loop()
        started = loop.time()
        while websocket.status.value != "connected":
            assert loop.time() - started < 5, statuses
            await asyncio.sleep(0.01)
    assert statuses[:3] == ["disconnected", "connecting", "connected"]
    assert "connecting" in statuses[3:] and statuses[-2:] != ["disconnected", "disconnected"]
    await websocket.disconnect()
    await chats.close()


async def test_a_raising_events_subscriber_does_not_keep_a_push_from_the_next(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """On the reference server over loopback: a subscriber to a connection's events
    that raises is logged and detached; the subscriber after it still gets the push
    (a reactivex ``Subject`` would have stopped at the raise)."""
    async with network(rate_limit=None) as net:
        websocket = create_websocket(open_timeout=WAIT)
        config = ChatsConfig(host=net.server.address)
        transport = websocket.chats_transport(config.url, net.server.session_token("bob"))
        raised: list[object] = []
        received: list[object] = []

        def bad(event: object) -> None:
            raised.append(event)
            raise RuntimeError("a broken view")

        transport.events.subscribe(bad)
        transport.events.subscribe(received.append)
        await websocket.connect()
        try:
            joined = await transport.request(
                JoinRequest("c1", net.server.chat_token("bob", "c1")), WAIT
            )
            assert isinstance(joined, ChatSnapshot), joined
            ann = await net.joined("ann")
            with caplog.at_level(logging.ERROR, logger="chats_store.core"):
                for content in ("first", "second"):
                    await ann.chats.send_message("c1", content)
                deadline = asyncio.get_running_loop().time() + WAIT
                # Both pushes, not just two events: ann's arrival is one of them.
                while sum(isinstance(e, MessagePosted) for e in received) < 2:
                    assert asyncio.get_running_loop().time() < deadline, received
                    await asyncio.sleep(0.01)
        finally:
            await websocket.disconnect()
    # The first event (ann's arrival) went to both; ``bad`` was detached after it.
    assert len(raised) == 1 and received[0] is raised[0]
    assert [e.message.content for e in received if isinstance(e, MessagePosted)] == [
        "first",
        "second",
    ]
    assert any("a subscriber raised" in r.getMessage() for r in caplog.records)
