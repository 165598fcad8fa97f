"""The connection against hostile servers on loopback: bounded retries, causes the app sees.

Each server here is a few lines of raw ``websockets`` that complete the handshake and
then misbehave (the reference server never does this). Each test bounds what the
client does about it and prints the figure (``pytest -s`` shows them).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from chats_store import (
    CallCancelledError,
    ChatsConfig,
    ConnectFailedError,
    ConnectionLostError,
    create_chats,
    create_user,
    create_websocket,
)
from chats_store.chats.actions import ChatSnapshot, MessagePosted
from chats_store.chats.commands import JoinRequest, ResumeRequest
from chats_store.chats.model import Message
from chats_store.errors import ErrorCode
from chats_store.protocol import (
    MAX_SERVER_FRAME_SIZE,
    PROTOCOL_VERSION,
    decode_request,
    encode_event,
    encode_reply,
)
from chats_store.server import mint_chat_token, mint_session_token
from chats_store.websocket.connection import ConnectionFault
from chats_store.websocket.module import ReconnectPolicy, WebSocket

SECRET = "hostile-servers-secret-long-enough-for-hs256"
Handler = Callable[[ServerConnection], Awaitable[None]]


@contextlib.asynccontextmanager
async def hostile(handler: Handler, process_request: Any = None) -> AsyncIterator[str]:
    """A raw server speaking the subprotocol, run by ``handler``; yields ``host:port``."""
    async with serve(
        handler,
        "127.0.0.1",
        0,
        subprotocols=[Subprotocol(PROTOCOL_VERSION)],
        process_request=process_request,
        max_size=None,
        compression=None,  # cheap frames: the client's work is what the tests measure
    ) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"127.0.0.1:{port}"


def client(address: str, **options: Any) -> tuple[WebSocket, Any]:
    websocket = create_websocket(**{"open_timeout": 2.0, **options})
    chats = create_chats(
        user_module=create_user(mint_session_token(SECRET, "ann")),
        websocket_module=websocket,
        config=ChatsConfig(host=address, request_timeout=5.0),
    )
    return websocket, chats


def snapshot_reply(request_id: int) -> str:
    return encode_reply(
        request_id, ChatSnapshot((), 1, {}, (), last_seq=0, membership="membership-credential")
    )


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "still false"
        await asyncio.sleep(0.01)


async def faults_until(
    handler: Handler, done: Callable[[WebSocket, list[ConnectionFault]], bool]
) -> list[ConnectionFault]:
    """The faults a client reports (``last_error``, None left out) against a server run
    by ``handler``, once ``done(websocket, faults)`` holds."""
    async with hostile(handler) as address:
        websocket, chats = client(address)
        reported: list[ConnectionFault | None] = []
        websocket.last_error.subscribe(reported.append)

        def faults() -> list[ConnectionFault]:
            return [fault for fault in reported if fault is not None]

        await websocket.connect()
        await eventually(lambda: done(websocket, faults()))
        await websocket.disconnect()
        await chats.close()
    return faults()


async def test_a_server_that_breaks_the_protocol_after_each_handshake_gets_few_retries() -> None:
    """Issue 11: the backoff reset at each handshake (about 6,000 reconnections in 6 s)."""
    handshakes: list[float] = []

    async def garbage(connection: ServerConnection) -> None:
        handshakes.append(time.monotonic())
        await connection.send("this is not json")
        await connection.wait_closed()

    window = 3.0
    async with hostile(garbage) as address:
        websocket, chats = client(address)
        faults: list[Any] = []
        websocket.last_error.subscribe(faults.append)
        await websocket.connect()
        await asyncio.sleep(window)
        await websocket.disconnect()
        await chats.close()
    print(f"\nprotocol breaker: {len(handshakes)} handshakes in {window} s (issue: ~6,000 in 6 s)")
    assert len(handshakes) <= 6
    seen = [fault for fault in faults if fault is not None]
    assert seen and all(fault.code == ErrorCode.INVALID_JSON for fault in seen)
    assert seen[0].close_code == 1007 and not seen[0].final
    assert "the server broke the protocol" in seen[0].detail


async def test_a_call_in_flight_when_the_server_breaks_the_protocol_names_the_cause() -> None:
    async def answer_with(connection: ServerConnection, text: Callable[[int], str | bytes]) -> None:
        request_id, _ = decode_request(await connection.recv())
        await connection.send(text(request_id), text=True)
        await connection.wait_closed()

    cases = [
        (lambda _: "{not json", ErrorCode.CONNECTION_LOST, "is not valid JSON"),
        (lambda _: b'{"type": "ok\xff"}', ErrorCode.CONNECTION_LOST, "is not valid UTF-8"),
        (
            lambda request_id: json.dumps({"type": "ok", "id": request_id, "result": 5}),
            ErrorCode.INVALID_FRAME,  # the reply that broke the protocol: its request's code
            "malformed frame",
        ),
    ]
    for text, code, words in cases:

        async def handler(connection: ServerConnection, text: Any = text) -> None:
            await answer_with(connection, text)

        async with hostile(handler) as address:
            websocket, chats = client(address)
            await websocket.connect()
            with pytest.raises(ConnectionLostError) as raised:
                await chats.join_chat(mint_chat_token(SECRET, "ann", "c1"))
            await websocket.disconnect()
            await chats.close()
        assert raised.value.code == code
        assert (
            "the server broke the protocol" in raised.value.detail and words in raised.value.detail
        )


async def test_a_text_frame_that_is_not_utf8_closes_with_1007_and_the_client_reconnects() -> None:
    handshakes = []

    async def broken_text(connection: ServerConnection) -> None:
        handshakes.append(connection)
        if len(handshakes) == 1:
            await connection.send(b'{"type": "\xc3\x28"}', text=True)
        await connection.wait_closed()

    seen = await faults_until(
        broken_text,
        lambda websocket, _: len(handshakes) == 2 and websocket.status.value == "connected",
    )
    assert seen[0].code == ErrorCode.INVALID_FRAME and seen[0].close_code == 1007
    assert "a text frame is not valid UTF-8 (invalid continuation byte at byte 10)" in (
        seen[0].detail
    )
    assert handshakes[0].close_code == 1007


async def test_a_message_in_too_many_fragments_closes_with_1009() -> None:
    """websockets' own cap (4,096): empty fragments would not count towards max_size."""

    async def shredded(connection: ServerConnection) -> None:
        await connection.send(["{"] + [""] * 5_000 + ["}"])
        await connection.wait_closed()

    fault, *_ = await faults_until(shredded, lambda _, faults: bool(faults))
    assert fault.code == ErrorCode.FRAME_TOO_LARGE and fault.close_code == 1009
    assert "a message came in more than 4096 fragments" in fault.detail


async def test_a_reply_in_fragments_is_read_whole() -> None:
    async def fragmented(connection: ServerConnection) -> None:
        request_id, _ = decode_request(await connection.recv())
        reply = snapshot_reply(request_id)
        await connection.send([reply[:10], reply[10:20], reply[20:]])
        await connection.wait_closed()

    async with hostile(fragmented) as address:
        websocket, chats = client(address)
        await websocket.connect()
        await chats.join_chat(mint_chat_token(SECRET, "ann", "c1"))
        status = chats.get_chat_status("c1").value
        await websocket.disconnect()
        await chats.close()
    assert status == "ready"


async def test_a_frame_too_large_is_named_in_the_error_and_in_last_error() -> None:
    async def huge(connection: ServerConnection) -> None:
        request_id, _ = decode_request(await connection.recv())
        padding = "x" * MAX_SERVER_FRAME_SIZE
        await connection.send(json.dumps({"type": "ok", "id": request_id, "result": padding}))
        await connection.wait_closed()

    async with hostile(huge) as address:
        websocket, chats = client(address)
        await websocket.connect()
        with pytest.raises(ConnectionLostError) as raised:
            await chats.join_chat(mint_chat_token(SECRET, "ann", "c1"))
        fault = websocket.last_error.value
        await websocket.disconnect()
        await chats.close()
    assert raised.value.code == ErrorCode.FRAME_TOO_LARGE
    assert fault is not None and fault.code == ErrorCode.FRAME_TOO_LARGE
    assert fault.close_code == 1009 and str(MAX_SERVER_FRAME_SIZE) in fault.detail


async def test_retry_after_on_a_refused_handshake_is_honoured() -> None:
    attempts: list[float] = []

    def refuse(connection: ServerConnection, request: Request) -> Response:
        attempts.append(time.monotonic())
        response = connection.respond(
            HTTPStatus.TOO_MANY_REQUESTS, "too_many_connections: come back later\n"
        )
        response.headers["Retry-After"] = "1"
        return response

    async with hostile(lambda connection: connection.wait_closed(), refuse) as address:
        websocket, chats = client(address, open_timeout=2.6)
        with pytest.raises(ConnectFailedError, match="HTTP 429"):
            await websocket.connect()
        fault = websocket.last_error.value
        await chats.close()
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    print(f"\n429 with Retry-After: 1: {len(attempts)} attempts in 2.6 s, gaps {gaps}")
    assert 2 <= len(attempts) <= 3 and all(gap >= 1.0 for gap in gaps)
    assert fault is not None and fault.code == ErrorCode.TOO_MANY_CONNECTIONS
    assert "come back later" in fault.detail


async def test_a_resumption_too_large_is_asked_once_and_the_chat_is_given_up() -> None:
    """Issue 11: a resumption over the frame limit closed with 1009, and each reconnection
    asked the same again (369 to 406 reconnections in 20 s, the chat stuck reloading)."""
    resumes: list[float] = []
    connections = 0

    async def server(connection: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        async for data in connection:
            request_id, request = decode_request(data)
            if isinstance(request, JoinRequest):
                await connection.send(snapshot_reply(request_id))
                await connection.close(1012, "restarting")
            elif isinstance(request, ResumeRequest):
                resumes.append(time.monotonic())
                padding = "x" * MAX_SERVER_FRAME_SIZE
                await connection.send(json.dumps({"type": "ok", "id": request_id, "p": padding}))

    async with hostile(server) as address:
        websocket, chats = client(
            address, reconnect=ReconnectPolicy(first_delay=0.05, min_delay=0.05)
        )
        await websocket.connect()
        await chats.join_chat(mint_chat_token(SECRET, "ann", "c1"))
        await eventually(lambda: chats.get_chat_removal("c1").value is not None)
        await asyncio.sleep(1.0)  # time for a storm, if there were one
        removal = chats.get_chat_removal("c1").value
        status = websocket.status.value
        await websocket.disconnect()
        await chats.close()
    print(f"\nresumption too large: {len(resumes)} resume(s), {connections} connections")
    assert len(resumes) == 1 and connections <= 3
    assert removal is not None and removal.reason == "resync_failed"
    assert removal.detail is not None and removal.detail.startswith("frame_too_large: ")
    assert status == "connected"


async def test_events_pushed_before_a_join_reply_are_capped_and_fail_the_join_clearly() -> None:
    """Issue 11: 40,000 events buffered while a chat loaded blocked the loop for 7 s."""
    count = 40_000
    events = [
        encode_event(MessagePosted("c1", seq, Message(f"m{seq}", "c1", "bob", "hi", "ready", seq)))
        for seq in range(1, count + 1)
    ]

    async def flood(connection: ServerConnection) -> None:
        async for data in connection:
            request_id, _ = decode_request(data)
            for event in events:
                await connection.send(event)
            await connection.send(snapshot_reply(request_id))

    async with hostile(flood) as address:
        websocket, chats = client(address)
        await websocket.connect()
        started = time.perf_counter()
        with pytest.raises(CallCancelledError) as raised:
            await chats.join_chat(mint_chat_token(SECRET, "ann", "c1"))
        elapsed = time.perf_counter() - started
        await websocket.disconnect()
        await chats.close()
    print(f"\n{count} events pushed before the join reply: the join failed in {elapsed:.2f} s")
    assert raised.value.code == ErrorCode.TOO_MANY_EVENTS
    assert "more than 10000 events" in raised.value.detail
    assert elapsed < 5.0
    assert chats.chats_ids.value == ()
