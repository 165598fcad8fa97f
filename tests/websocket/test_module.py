"""The WebSocket module against the real reference server: status, failures, reconnects."""

from __future__ import annotations

import asyncio
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
from chats_store.errors import ErrorCode
from chats_store.server import mint_session_token, run_server

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
