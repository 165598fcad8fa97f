"""The WebSocket handshake: subprotocol and session token, refused with a clear HTTP status."""

from __future__ import annotations

import asyncio
import logging
import time
from http import HTTPStatus
from typing import Any

import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin, Subprotocol

from chats_store import __version__
from chats_store.errors import ErrorCode
from chats_store.protocol import BEARER_SUBPROTOCOL_PREFIX, FEATURES, PROTOCOL_VERSION
from chats_store.server import (
    ChatServer,
    mint_chat_token,
    mint_membership_token,
    mint_session_token,
    run_server,
)
from chats_store.server.gate import as_refusal, redact_headers, refusal
from chats_store.tokens import SESSION_AUDIENCE
from tests.server.conftest import (
    OTHER_SECRET,
    SECRET,
    ClientFactory,
    alg_none_token,
    claims_for,
    forged_token,
    hs512_token,
    read_hello,
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
    assert body.startswith("unsupported_protocol: ") and PROTOCOL_VERSION in body


# Browsers: the token as a subprotocol, the Origin allow-list --------------------------------


def _bearer(token: str) -> list[Subprotocol]:
    return [Subprotocol(PROTOCOL_VERSION), Subprotocol(BEARER_SUBPROTOCOL_PREFIX + token)]


async def test_a_browser_authenticates_with_the_bearer_subprotocol(
    server: ChatServer, server_frames_checked: Any
) -> None:
    async with connect(server.url, subprotocols=_bearer(server.session_token("ann"))) as ws:
        assert ws.subprotocol == PROTOCOL_VERSION  # never the token's
        assert ws.response is not None
        assert "bearer" not in str(ws.response.headers)
        hello = await read_hello(ws)

    assert hello == {
        "type": "hello",
        "server": f"chats_store/{__version__}",
        "protocol": PROTOCOL_VERSION,
        "features": list(FEATURES),
    }
    assert server_frames_checked.frames and not server_frames_checked.verify()  # the schema's


async def test_a_bad_token_in_the_subprotocol_is_401(server: ChatServer) -> None:
    status, body = await _refused_offering(server, _bearer("not-a-jwt"))

    assert status == 401 and body.startswith("invalid_token: ")


async def test_two_tokens_are_400_whichever_way_they_come(server: ChatServer) -> None:
    token = server.session_token("ann")
    status, body = await _refused_offering(
        server, _bearer(token), headers={"Authorization": f"Bearer {token}"}
    )

    assert status == 400
    assert body.startswith("invalid_token: the request has 1 Authorization headers and 1 bearer")


async def _refused_offering(
    server: ChatServer,
    subprotocols: list[Subprotocol],
    headers: dict[str, str] | None = None,
    origin: str | None = None,
) -> tuple[int, str]:
    with pytest.raises(InvalidStatus) as caught:
        async with connect(
            server.url,
            subprotocols=subprotocols,
            additional_headers=headers,
            origin=Origin(origin) if origin else None,
            open_timeout=2,
        ):
            pass
    response = caught.value.response
    return response.status_code, bytes(response.body).decode()


async def test_a_browser_origin_not_listed_is_403_one_listed_connects() -> None:
    async with run_server(secret=SECRET, origins=["https://Chat.Example.com"]) as server:
        token = server.session_token("ann")
        status, body = await _refused_offering(
            server, _bearer(token), origin="https://evil.example"
        )
        assert status == 403 and body.startswith("origin_not_allowed: ")
        async with connect(
            server.url, subprotocols=_bearer(token), origin=Origin("https://chat.example.com")
        ) as ws:
            await read_hello(ws)


async def test_by_default_browsers_are_refused_and_programs_are_not(server: ChatServer) -> None:
    token = server.session_token("ann")
    status, _ = await _refused_offering(server, _bearer(token), origin="http://localhost:8000")
    assert status == 403
    async with connect(server.url, subprotocols=_bearer(token)) as ws:  # no Origin
        await read_hello(ws)


@pytest.mark.parametrize("origin", ["chat.example.com", "https://chat.example.com/", "*", ""])
async def test_an_origin_that_is_not_one_is_a_clear_error(origin: str) -> None:
    with pytest.raises(ValueError, match="is not an origin: write it as a browser sends it"):
        async with run_server(secret=SECRET, origins=[origin]):
            pass


async def test_no_token_reaches_the_debug_log(
    server: ChatServer, caplog: pytest.LogCaptureFixture
) -> None:
    token = server.session_token("ann")
    with caplog.at_level(logging.DEBUG):
        async with connect(server.url, subprotocols=_bearer(token)) as ws:
            await read_hello(ws)
        headers = {"Authorization": f"Bearer {token}"}
        async with connect(
            server.url, subprotocols=[Subprotocol(PROTOCOL_VERSION)], additional_headers=headers
        ) as ws:
            await read_hello(ws)

    logged = "\n".join(  # the server's; the client's own log shows what it sent
        record.getMessage() for record in caplog.records if record.name.startswith("websockets.s")
    )
    assert "< Sec-WebSocket-Protocol: chats_store.v1, chats_store.bearer.[redacted]" in logged
    assert "< Authorization: Bearer [redacted]" in logged
    assert token not in logged and token.split(".")[2] not in logged


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("Authorization", "Bearer s3cret", "Bearer [redacted]"),
        ("authorization", "s3cret", "[redacted]"),
        ("Sec-WebSocket-Protocol", "chats_store.v1,chats_store.bearer.s3cret", None),
        ("Host", "s3cret.example", "s3cret.example"),
    ],
)
def test_the_redaction_hides_what_a_token_could_be_in(
    name: str, value: str, shown: str | None
) -> None:
    record = logging.LogRecord(
        "websockets.server.chats_store", 10, "", 0, "< %s: %s", (name, value), None
    )
    redact_headers().filter(record)
    if shown is None:
        assert record.getMessage() == f"< {name}: chats_store.v1, chats_store.bearer.[redacted]"
    else:
        assert record.getMessage() == f"< {name}: {shown}"


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


async def test_a_request_that_is_no_websocket_handshake_is_refused_with_a_code(
    server: ChatServer,
) -> None:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(
        b"GET / HTTP/1.1\r\nHost: h\r\nSec-WebSocket-Protocol: chats_store.v1\r\n"
        b"Authorization: Bearer " + server.session_token("ann").encode() + b"\r\n\r\n"
    )
    answer = await asyncio.wait_for(reader.read(4096), 2)
    writer.close()

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 426 ")
    assert body.startswith(b"invalid_handshake: not a valid WebSocket handshake (")
    assert b"Content-Type: text/plain; charset=utf-8" in head


def test_an_accepted_handshake_or_a_refusal_is_left_as_it_is() -> None:
    from websockets.datastructures import Headers
    from websockets.http11 import Response

    accepted = Response(101, "Switching Protocols", Headers(), b"")
    refused = refusal(HTTPStatus.FORBIDDEN, ErrorCode.ORIGIN_NOT_ALLOWED, "no")
    assert as_refusal(accepted) is None and as_refusal(refused) is None
    failed = as_refusal(Response(500, "Internal Server Error", Headers(), b"Failed.\nSee log.\n"))
    assert failed is not None and failed.body == b"internal_error: Failed. See log.\n"
    assert failed.headers["Retry-After"] == "1"
