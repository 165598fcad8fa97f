"""The gate: caps on connections and handshakes, handshake rates, headers, pings, refusals."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from http import HTTPStatus
from pathlib import Path
from typing import Any

import jwt
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from chats_store.errors import ErrorCode
from chats_store.protocol import PROTOCOL_VERSION
from chats_store.server import ChatServer, ServerLimits, run_server
from chats_store.server.gate import GuardedConnection, address_key, refusal
from chats_store.tokens import SESSION_AUDIENCE
from tests.server.conftest import (
    SECRET,
    claims_for,
    handshake_headers,
    read_hello,
    server_process,
)

# Refusals --------------------------------------------------------------------------------


def test_a_refusal_is_its_code_and_message_as_plain_text() -> None:
    response = refusal(HTTPStatus.TOO_MANY_REQUESTS, ErrorCode.RATE_LIMITED, "slow down", 0.2)

    assert (response.status_code, response.body) == (429, b"rate_limited: slow down\n")
    assert response.headers["Retry-After"] == "1"  # whole seconds, at least 1
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert (
        refusal(HTTPStatus.SERVICE_UNAVAILABLE, "busy", "later", 2.5).headers["Retry-After"] == "3"
    )
    assert (
        refusal(HTTPStatus.UNAUTHORIZED, "invalid_token", "no").headers["WWW-Authenticate"]
        == 'Bearer realm="chats_store"'
    )


def test_a_429_or_503_without_retry_after_is_a_bug() -> None:
    with pytest.raises(ValueError, match="retry_after"):
        refusal(HTTPStatus.SERVICE_UNAVAILABLE, ErrorCode.SERVER_BUSY, "busy")


@pytest.mark.parametrize(
    ("peername", "key"),
    [
        (("203.0.113.7", 5000), "203.0.113.7"),
        (("2001:db8:1:2:3:4:5:6", 5000, 0, 0), "2001:db8:1:2::/64"),
        (("2001:db8:1:2:ffff::1", 5000, 0, 0), "2001:db8:1:2::/64"),
        (("::ffff:203.0.113.7", 5000, 0, 0), "203.0.113.7"),
        ("", "local"),
    ],
)
def test_an_ipv6_address_counts_by_its_64_network(peername: object, key: str) -> None:
    assert address_key(peername) == key


# The token -------------------------------------------------------------------------------


async def _status(server: ChatServer, headers: list[tuple[str, str]] | dict[str, str]) -> Response:
    with pytest.raises(InvalidStatus) as caught:
        async with connect(
            server.url,
            subprotocols=[Subprotocol(PROTOCOL_VERSION)],
            additional_headers=headers,
            open_timeout=2,
        ):
            pass
    return caught.value.response


async def test_two_authorization_headers_are_a_clean_400(
    server: ChatServer, caplog: pytest.LogCaptureFixture
) -> None:
    token = server.session_token("alice")

    response = await _status(
        server, [("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")]
    )

    assert response.status_code == 400
    assert response.body.startswith(b"invalid_token: the request has 2 Authorization headers")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_user_id_longer_than_moderation_accepts_is_refused(server: ChatServer) -> None:
    claims = claims_for(SESSION_AUDIENCE, "u" * 129)
    token = jwt.encode(claims, SECRET.encode(), algorithm="HS256")

    response = await _status(server, handshake_headers(token))

    assert response.status_code == 401
    assert b"1 to 128 characters" in response.body


# Headers ---------------------------------------------------------------------------------


async def _raw_answer(server: ChatServer, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(request)
        with suppress(ConnectionError):
            await writer.drain()
        return await asyncio.wait_for(reader.read(), 3)
    finally:
        writer.close()


async def test_a_header_block_over_the_limit_is_431_before_it_is_parsed(
    server: ChatServer,
) -> None:
    filler = b"".join(b"X-Filler-%d: %s\r\n" % (n, b"f" * 1000) for n in range(20))

    answer = await _raw_answer(server, b"GET / HTTP/1.1\r\nHost: h\r\n" + filler)

    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b"headers_too_large: the request line and headers are over 16384 bytes" in answer


async def test_too_many_headers_are_431(server: ChatServer) -> None:
    headers = [(f"X-Header-{n}", "x") for n in range(70)]
    headers.append(("Authorization", f"Bearer {server.session_token('alice')}"))

    response = await _status(server, headers)

    assert response.status_code == 431
    assert b"headers_too_large: the request has" in response.body


# Caps on handshakes in progress and open connections ---------------------------------------


@asynccontextmanager
async def _limited(**limits: object) -> AsyncIterator[ChatServer]:
    settings = ServerLimits(**limits)  # type: ignore[arg-type]
    async with run_server(secret=SECRET, limits=settings) as server:
        yield server


@asynccontextmanager
async def _half_open(server: ChatServer, count: int) -> AsyncIterator[None]:
    """``count`` TCP connections that start a request and never finish it."""
    writers = []
    for _ in range(count):
        _, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(b"GET / HTTP/1.1\r\n")
        writers.append(writer)
    await asyncio.sleep(0.05)
    try:
        yield
    finally:
        for writer in writers:
            writer.close()


async def _opened(server: ChatServer, user_id: str, stack: AsyncExitStack) -> ClientConnection:
    connection = await stack.enter_async_context(
        connect(
            server.url,
            subprotocols=[Subprotocol(PROTOCOL_VERSION)],
            additional_headers=handshake_headers(server.session_token(user_id)),
            open_timeout=2,
        )
    )
    await read_hello(connection)
    return connection


async def test_handshakes_in_progress_past_the_cap_of_an_address_are_429_at_once() -> None:
    async with _limited(max_handshakes_per_ip=3) as server, AsyncExitStack() as stack:
        async with _half_open(server, 3):
            answer = await _raw_answer(server, b"")
            assert answer.startswith(b"HTTP/1.1 429 ")
            assert b"Retry-After: 1" in answer
            assert b"too_many_handshakes: your address has 3 handshakes in progress" in answer
        await asyncio.sleep(0.05)
        assert await _opened(server, "alice", stack)  # their places are free again


async def test_handshakes_in_progress_past_the_global_cap_are_503_at_once() -> None:
    async with _limited(max_handshakes=2) as server, _half_open(server, 2):
        answer = await _raw_answer(server, b"")

        assert answer.startswith(b"HTTP/1.1 503 ")
        assert b"server_busy: the server has 2 handshakes in progress" in answer


async def test_connections_past_the_cap_of_an_address_are_429() -> None:
    async with _limited(max_connections_per_ip=2) as server, AsyncExitStack() as stack:
        first = await _opened(server, "alice", stack)
        await _opened(server, "bob", stack)

        response = await _status(server, handshake_headers(server.session_token("carol")))
        await first.close()
        await asyncio.sleep(0.05)

        assert response.status_code == 429 and response.headers["Retry-After"] == "1"
        assert response.body.startswith(b"too_many_connections: your address already has 2")
        assert await _opened(server, "carol", stack)


async def test_connections_past_the_global_cap_are_503() -> None:
    async with _limited(max_connections=2) as server, AsyncExitStack() as stack:
        await _opened(server, "alice", stack)
        await _opened(server, "bob", stack)

        response = await _status(server, handshake_headers(server.session_token("carol")))

        assert response.status_code == 503 and "Retry-After" in response.headers
        assert response.body.startswith(b"server_busy: the server holds 2 connections")


# Handshake rates ---------------------------------------------------------------------------


async def test_a_user_reconnecting_in_a_loop_is_slowed_down_others_are_not() -> None:
    limits = {"handshake_rate_per_user": 1.0, "handshake_burst_per_user": 3}
    async with _limited(**limits) as server:
        for _ in range(3):
            async with AsyncExitStack() as stack:
                await _opened(server, "looper", stack)

        response = await _status(server, handshake_headers(server.session_token("looper")))
        async with AsyncExitStack() as stack:
            assert await _opened(server, "bystander", stack)

    assert response.status_code == 429 and response.headers["Retry-After"] == "1"
    assert response.body.startswith(
        b"too_many_handshakes: user 'looper' opened connections faster than 1 per second"
    )


async def test_handshakes_from_one_address_past_its_rate_are_429() -> None:
    limits = {"handshake_rate_per_ip": 0.5, "handshake_burst_per_ip": 2}
    async with _limited(**limits) as server:
        for user in ("a", "b"):
            async with AsyncExitStack() as stack:
                await _opened(server, user, stack)

        response = await _status(server, handshake_headers(server.session_token("c")))

    assert response.status_code == 429 and response.headers["Retry-After"] == "2"
    assert b"your address opened connections faster than 0.5 per second" in response.body


# Pings --------------------------------------------------------------------------------------


async def test_a_ping_flood_is_closed_with_1008_and_others_go_on(server: ChatServer) -> None:
    async with AsyncExitStack() as stack:
        flooder = await _opened(server, "mallory", stack)
        bystander = await _opened(server, "alice", stack)

        with suppress(ConnectionClosed):
            for index in range(40):  # past the burst of 20
                await flooder.ping(str(index))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(flooder.recv(), 2)

        assert flooder.close_code == 1008
        assert "ping flood" in (flooder.close_reason or "")
        assert await asyncio.wait_for(await bystander.ping(), 2) >= 0


async def test_a_flooder_that_never_closes_is_dropped_after_the_close_timeout(
    server: ChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The close for a ping flood half-closes the connection and discards what comes
    next; a peer that never closes its side is dropped once the close timeout ends."""
    opened = GuardedConnection.__init__

    def with_a_short_close_timeout(self: GuardedConnection, *args: Any, **kwargs: Any) -> None:
        opened(self, *args, **kwargs)
        self.close_timeout = 0.5

    monkeypatch.setattr(GuardedConnection, "__init__", with_a_short_close_timeout)
    _, writer = await _raw_opened(server, "mallory")
    assert await _seconds_until_dropped(writer) < 3
    writer.close()


async def test_the_close_for_a_ping_flood_is_not_lost_to_pings_still_coming(
    server: ChatServer,
) -> None:
    """Pings that reach the server after it closed for a flood do not reset the
    connection: the client's writes go on without an error (a client whose write
    fails on a reset drops the connection, with the close unread: 1006), and the
    client, reading only then, finds the close (1008)."""
    loop = asyncio.get_running_loop()
    with socket.create_connection((server.host, server.port)) as peer:
        peer.setblocking(False)
        handshake = _handshake(server, "mallory")
        await loop.sock_sendall(peer, b"".join(handshake.data_to_send()))
        await asyncio.sleep(0.2)  # the handshake's response and the hello, left unread
        ping = Frame(Opcode.PING, b"p").serialize(mask=True)
        await loop.sock_sendall(peer, ping * 40)  # past the burst of 20
        for _ in range(3):  # a reset would fail a write here, as it fails a client's
            await asyncio.sleep(0.1)  # the server closed meanwhile
            await loop.sock_sendall(peer, ping * 10)
        received = b""
        with suppress(OSError):
            while chunk := await asyncio.wait_for(loop.sock_recv(peer, 65536), 2):
                received += chunk
    handshake.receive_data(received)
    frames = [event for event in handshake.events_received() if isinstance(event, Frame)]
    close = Close.parse(frames[-1].data) if frames and frames[-1].opcode is Opcode.CLOSE else None
    assert close is not None and close.code == 1008, frames
    assert "ping flood" in close.reason


def _handshake(server: ChatServer, user_id: str) -> ClientProtocol:
    """A sans-I/O client of ``user_id`` whose handshake request waits to be sent."""
    handshake = ClientProtocol(parse_uri(server.url), subprotocols=[Subprotocol(PROTOCOL_VERSION)])
    request = handshake.connect()
    request.headers.update(handshake_headers(server.session_token(user_id)))
    handshake.send_request(request)
    return handshake


async def _raw_opened(
    server: ChatServer, user_id: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection of ``user_id`` past its WebSocket handshake (and the hello
    frame), for a peer that writes frames of its own."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    handshake = _handshake(server, user_id)
    writer.write(b"".join(handshake.data_to_send()))
    while not any(isinstance(event, Frame) for event in handshake.events_received()):
        data = await asyncio.wait_for(reader.read(65536), 2)
        assert data, "the server ended the handshake"
        handshake.receive_data(data)
    return reader, writer


async def _seconds_until_dropped(writer: asyncio.StreamWriter) -> float:
    """Send pings every 10 ms, whatever comes back, until a write fails on the reset
    that answers it once the server dropped the connection: the seconds that took."""
    loop = asyncio.get_running_loop()
    ping = Frame(Opcode.PING, b"p").serialize(mask=True)
    began = loop.time()
    while loop.time() - began < 5:
        try:
            writer.write(ping)
            await writer.drain()
        except (ConnectionResetError, BrokenPipeError):
            return loop.time() - began
        await asyncio.sleep(0.01)
    raise AssertionError("the server kept the connection for 5 s")


# Memory, measured on a server process of its own ----------------------------------------------


async def test_half_open_handshakes_with_large_headers_cost_the_server_little(
    tmp_path: Path,
) -> None:
    with server_process(tmp_path) as served:
        server = served.server
        before = served.peak_mib
        filler = b"".join(b"X-Filler-%d: %s\r\n" % (n, b"f" * 8000) for n in range(100))
        writers = []
        for _ in range(200):  # each sends 800 KB of headers, and never ends them
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: h\r\n" + filler)
            writers.append((reader, writer))
        await asyncio.sleep(1.0)
        growth = served.peak_mib - before
        answers = [await _answer(reader) for reader, _ in writers]
        for _, writer in writers:
            writer.transport.abort()

    assert growth < 30, f"the server grew {growth:.0f} MiB for 160 MB of headers"
    assert {answer[:13] for answer in answers} <= {b"HTTP/1.1 431 ", b"HTTP/1.1 429 ", b"reset"}


async def _answer(reader: asyncio.StreamReader) -> bytes:
    """What the server answered before it closed: a status line, or ``reset`` (a socket
    closed with unread data resets the connection, and its answer may be lost)."""
    try:
        return await asyncio.wait_for(reader.read(100), 3) or b"reset"
    except (ConnectionResetError, BrokenPipeError):  # a reset seen by the unflushed write
        return b"reset"
