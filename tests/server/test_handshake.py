"""The WebSocket handshake: subprotocol and session token, refused with a clear HTTP status."""

from __future__ import annotations

import time

import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from chats_store.errors import ErrorCode
from chats_store.protocol import PROTOCOL_VERSION
from chats_store.server import (
    ChatServer,
    mint_chat_token,
    mint_membership_token,
    mint_session_token,
    run_server,
)
from chats_store.tokens import SESSION_AUDIENCE
from tests.server.conftest import (
    OTHER_SECRET,
    SECRET,
    ClientFactory,
    alg_none_token,
    claims_for,
    forged_token,
    hs512_token,
    rs256_header_token,
)


async def _refused(
    server: ChatServer, headers: dict[str, str] | None, subprotocol: bool = True
) -> tuple[int, str]:
    with pytest.raises(InvalidStatus) as caught:
        async with connect(
            server.url,
            subprotocols=[Subprotocol(PROTOCOL_VERSION)] if subprotocol else None,
            additional_headers=headers,
            open_timeout=2,
        ):
            pass
    response = caught.value.response
    return response.status_code, bytes(response.body).decode()


async def test_a_connection_with_a_valid_session_token_is_accepted(server: ChatServer) -> None:
    headers = {"Authorization": f"Bearer {server.session_token('alice')}"}
    async with connect(
        server.url, subprotocols=[Subprotocol(PROTOCOL_VERSION)], additional_headers=headers
    ) as connection:
        assert connection.subprotocol == PROTOCOL_VERSION


async def test_no_token_is_401(server: ChatServer) -> None:
    status, body = await _refused(server, None)

    assert status == 401
    assert "Authorization: Bearer" in body


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Basic YWxpY2U6cHc=", "Bearer"),
        ("Bearer ", "Bearer"),
        ("Bearer not-a-jwt", ErrorCode.INVALID_TOKEN),
        (f"Bearer {mint_session_token(OTHER_SECRET, 'alice')}", "signature"),
        (f"Bearer {mint_chat_token(SECRET, 'alice', 'c1')}", "audience"),
        (f"Bearer {mint_session_token(SECRET, 'alice', now=time.time() - 7200)}", "expired"),
        (
            "Bearer "
            + jwt.encode(
                {"sub": "alice", "aud": SESSION_AUDIENCE, "exp": time.time() + 60},
                key=None,
                algorithm="none",
            ),
            ErrorCode.INVALID_TOKEN,
        ),
        (f"Bearer {alg_none_token(claims_for(SESSION_AUDIENCE, 'alice'))}", "algorithm"),
        (f"Bearer {hs512_token(claims_for(SESSION_AUDIENCE, 'alice'))}", "algorithm"),
        (f"Bearer {rs256_header_token(claims_for(SESSION_AUDIENCE, 'alice'))}", "algorithm"),
        (f"Bearer {mint_membership_token(SECRET, 'alice', 'c1')}", "audience"),
        (f"Bearer {forged_token(claims_for(SESSION_AUDIENCE, 'alice'))}", "signature"),
    ],
    ids=[
        "basic auth",
        "empty bearer",
        "not a jwt",
        "forged",
        "chat token",
        "expired",
        "alg none",
        "alg none (claims)",
        "HS512",
        "RS256",
        "membership credential",
        "forged (claims)",
    ],
)
async def test_a_bad_session_token_is_401_with_the_reason(
    server: ChatServer, header: str, reason: str
) -> None:
    status, body = await _refused(server, {"Authorization": header})

    assert status == 401
    assert reason in body


async def test_a_token_in_the_url_is_not_accepted(server: ChatServer) -> None:
    token = server.session_token("alice")
    with pytest.raises(InvalidStatus) as caught:
        async with connect(
            f"{server.url}/?token={token}", subprotocols=[Subprotocol(PROTOCOL_VERSION)]
        ):
            pass

    assert caught.value.response.status_code == 401


async def test_the_subprotocol_is_required(server: ChatServer) -> None:
    headers = {"Authorization": f"Bearer {server.session_token('alice')}"}

    status, body = await _refused(server, headers, subprotocol=False)

    assert status == 400
    assert PROTOCOL_VERSION in body


async def test_a_refused_handshake_does_not_hurt_connected_clients(
    server: ChatServer, client: ClientFactory
) -> None:
    alice = await client("alice")
    await alice.join("c1")

    await _refused(server, {"Authorization": "Bearer junk"})

    await alice.post("c1", "m1")


async def test_run_server_refuses_a_short_or_missing_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        async with run_server(secret="short"):
            pass
    monkeypatch.delenv("CHATS_STORE_SECRET", raising=False)
    with pytest.raises(ValueError, match="CHATS_STORE_SECRET"):
        async with run_server():
            pass


async def test_run_server_reads_the_secret_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHATS_STORE_SECRET", SECRET)
    async with run_server() as server:
        assert server.port > 0
        assert server.url == f"ws://127.0.0.1:{server.port}"
        assert server.address == f"127.0.0.1:{server.port}"


async def test_the_server_stops_cleanly_with_clients_connected(client: ClientFactory) -> None:
    async with run_server(secret=SECRET) as other:
        alice = await client("alice", on=other)
        await alice.join("c1")
    await alice.connection.wait_closed()
    assert alice.connection.close_code == 1001
