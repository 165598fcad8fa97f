"""The fault harness (``chats_store.testing.faults``), each knob proven with real sockets.

An echo server shows what the proxy does to bytes; the reference server and a real
chats client show what a cut does to a WebSocket client (status ``connecting``,
then ``connected`` again) and what a cut "between a request and its reply" does
to a send (``interrupted``, never stuck in ``sending``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from chats_store import (
    Chats,
    ChatsConfig,
    ConnectionLostError,
    ReconnectPolicy,
    WebSocket,
    create_chats,
    create_user,
    create_websocket,
)
from chats_store.protocol import PROTOCOL_VERSION
from chats_store.server import ChatServer, run_server
from chats_store.testing.faults import FaultProxy, RestartableServer
from tests.server.conftest import read_hello

SECRET = "fault-harness-secret-long-enough-for-hs256"
WAIT = 3.0
FAST = ReconnectPolicy(first_delay=0.05, min_delay=0.05, max_delay=0.2)


class EchoServer:
    """Echoes every byte; records what it received and how each connection ended."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.endings: list[str] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                self.received += data
                writer.write(data)
                await writer.drain()
            self.endings.append("eof")
            writer.close()
        except ConnectionResetError:
            self.endings.append("reset")
            writer.close()

    async def __aenter__(self) -> EchoServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


@pytest.fixture
async def echo() -> AsyncIterator[EchoServer]:
    async with EchoServer() as server:
        yield server


@pytest.fixture
async def proxy(echo: EchoServer) -> AsyncIterator[FaultProxy]:
    async with FaultProxy("127.0.0.1", echo.port) as running:
        yield running


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]
_opened: list[asyncio.StreamWriter] = []


@pytest.fixture(autouse=True)
async def _close_streams() -> AsyncIterator[None]:
    """Close every stream a test dialled (an unclosed StreamWriter warns)."""
    yield
    for writer in _opened:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    _opened.clear()


async def dial(proxy: FaultProxy) -> Stream:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    _opened.append(writer)
    return reader, writer


async def roundtrip(stream: Stream, data: bytes = b"ping") -> bytes:
    reader, writer = stream
    writer.write(data)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(data)), WAIT)


async def assert_reset(stream: Stream) -> None:
    """The peer reset the connection: reading fails with ECONNRESET (no clean EOF)."""
    reader, writer = stream
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(10), WAIT)
    writer.close()


async def eventually(check: object, timeout: float = WAIT) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"still false after {timeout} s"
        await asyncio.sleep(0.005)


# Bytes through the proxy (echo server) -------------------------------------------------


async def test_forwards_both_ways_and_counts(echo: EchoServer, proxy: FaultProxy) -> None:
    assert proxy.port > 0 and proxy.address == f"127.0.0.1:{proxy.port}"
    assert proxy.url == f"ws://127.0.0.1:{proxy.port}"
    stream = await dial(proxy)
    assert await roundtrip(stream, b"hello") == b"hello"
    big = bytes(range(256)) * 1024  # 256 KiB: several chunks, order kept
    assert await roundtrip(stream, big) == big
    await proxy.wait_for_connections(1)
    (connection,) = proxy.connections
    assert connection.bytes_up == connection.bytes_down == 5 + len(big)
    assert (proxy.connections_accepted, proxy.cuts, proxy.connections_refused) == (1, 0, 0)

    reader, writer = stream
    writer.write_eof()  # a half-close travels through, and the normal close is no cut
    assert await asyncio.wait_for(reader.read(), WAIT) == b""
    writer.close()
    await eventually(lambda: not proxy.connections)
    assert echo.endings == ["eof"] and proxy.cuts == 0 and connection.closed


async def test_cut_all_resets_both_sides(echo: EchoServer, proxy: FaultProxy) -> None:
    streams = [await dial(proxy) for _ in range(3)]
    for stream in streams:
        await roundtrip(stream)

    assert proxy.cut_all() == 3

    for stream in streams:
        await assert_reset(stream)
    await eventually(lambda: len(echo.endings) == 3)
    assert echo.endings == ["reset"] * 3, "the server side is reset too, no clean EOF"
    assert proxy.cuts == 3 and proxy.connections == ()
    assert proxy.cut_all() == 0
    assert await roundtrip(await dial(proxy)) == b"ping", "new connections still work"


async def test_cut_random_cuts_exactly_one(proxy: FaultProxy) -> None:
    streams = [await dial(proxy) for _ in range(4)]
    for stream in streams:
        await roundtrip(stream)
    await proxy.wait_for_connections(4)

    victim = proxy.cut_random(random.Random(7))

    assert victim is not None and victim.was_cut and proxy.cuts == 1
    survivors = [s for n, s in enumerate(streams, 1) if n != victim.number]
    await assert_reset(streams[victim.number - 1])
    for stream in survivors:
        assert await roundtrip(stream, b"still") == b"still"
    assert "cut" in repr(victim)


async def test_cut_random_without_connections_is_none(proxy: FaultProxy) -> None:
    assert proxy.cut_random(random.Random(1)) is None
    assert proxy.cut_random() is None
    assert proxy.cuts == 0


async def test_delay_applies_both_ways_and_keeps_order(proxy: FaultProxy) -> None:
    stream = await dial(proxy)
    await roundtrip(stream)
    proxy.delay = 0.1
    reader, writer = stream
    started = time.monotonic()
    for n in range(20):
        writer.write(b"%03d" % n)
        await writer.drain()
        await asyncio.sleep(0.002)
    echoed = await asyncio.wait_for(reader.readexactly(60), WAIT)
    elapsed = time.monotonic() - started
    assert echoed == b"".join(b"%03d" % n for n in range(20))
    assert elapsed >= 0.2, f"a round trip crosses the proxy twice: {elapsed:.3f} s"

    proxy.delay = 0
    started = time.monotonic()
    await roundtrip(stream)
    assert time.monotonic() - started < 0.1


async def test_pause_buffers_and_resume_delivers_in_order(
    echo: EchoServer, proxy: FaultProxy
) -> None:
    stream = await dial(proxy)
    await roundtrip(stream)
    reader, writer = stream
    proxy.pause()
    assert proxy.paused
    writer.write(b"one,")
    writer.write(b"two")
    await writer.drain()
    await asyncio.sleep(0.1)
    assert bytes(echo.received) == b"ping", "nothing crosses a paused proxy"

    proxy.resume()

    assert await asyncio.wait_for(reader.readexactly(7), WAIT) == b"one,two"
    assert not proxy.paused


async def test_pause_down_lets_requests_through_and_holds_replies(
    echo: EchoServer, proxy: FaultProxy
) -> None:
    stream = await dial(proxy)
    await roundtrip(stream)
    proxy.pause("down")
    assert proxy.paused and proxy.is_paused("down") and not proxy.is_paused("up")
    stream[1].write(b"applied")
    await stream[1].drain()
    await eventually(lambda: bytes(echo.received) == b"pingapplied")  # the server got it
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(stream[0].readexactly(7), 0.1)  # its reply waits

    proxy.resume("down")

    assert await asyncio.wait_for(stream[0].readexactly(7), WAIT) == b"applied"
    with pytest.raises(ValueError, match="direction"):
        proxy.pause("sideways")  # type: ignore[arg-type]


async def test_a_cut_while_paused_drops_what_was_in_flight(
    echo: EchoServer, proxy: FaultProxy
) -> None:
    """The "between a request and its reply" cut: the request never reaches the server."""
    stream = await dial(proxy)
    await roundtrip(stream)
    proxy.pause()
    stream[1].write(b"request")
    await stream[1].drain()
    await eventually(lambda: proxy.connections[0].bytes_up == 4)  # 'request' is buffered

    proxy.cut_all()
    proxy.resume()

    await assert_reset(stream)
    await eventually(lambda: echo.endings == ["reset"])
    assert bytes(echo.received) == b"ping"


async def test_refuse_resets_new_connections_only(proxy: FaultProxy) -> None:
    kept = await dial(proxy)
    await roundtrip(kept)
    proxy.refuse = True

    refused = await dial(proxy)

    with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
        await roundtrip(refused)
    refused[1].close()
    assert await roundtrip(kept, b"kept") == b"kept"
    assert (proxy.connections_accepted, proxy.connections_refused) == (2, 1)
    proxy.refuse = False
    assert await roundtrip(await dial(proxy)) == b"ping"


async def test_an_unreachable_upstream_resets_the_client() -> None:
    async with EchoServer() as gone:
        port = gone.port
    async with FaultProxy("127.0.0.1", port) as proxy:
        stream = await dial(proxy)
        with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
            await roundtrip(stream)
        stream[1].close()
        assert proxy.upstream_failures == 1


async def test_the_upstream_can_be_switched(proxy: FaultProxy) -> None:
    async with EchoServer() as other:
        proxy.upstream = ("127.0.0.1", other.port)
        await roundtrip(await dial(proxy), b"moved")
        assert bytes(other.received) == b"moved"


async def test_close_resets_what_is_open_and_stops_listening(echo: EchoServer) -> None:
    proxy = await FaultProxy("127.0.0.1", echo.port).start()
    stream = await dial(proxy)
    await roundtrip(stream)
    await proxy.close()
    await assert_reset(stream)
    with pytest.raises(ConnectionRefusedError):
        await dial(proxy)
    assert proxy.cuts == 0


# A real client through the proxy ---------------------------------------------------------


async def proxied_client(
    server: ChatServer, proxy: FaultProxy, user_id: str
) -> tuple[WebSocket, Chats]:
    """A connected public-API client of ``server`` whose traffic goes through ``proxy``."""
    websocket = create_websocket(open_timeout=WAIT, reconnect=FAST)
    chats = create_chats(
        user_module=create_user(server.session_token(user_id)),
        websocket_module=websocket,
        config=ChatsConfig(host=proxy.address, request_timeout=WAIT),
    )
    await websocket.connect()
    return websocket, chats


async def test_a_cut_makes_the_client_reconnect(tmp_path: Path) -> None:
    async with (
        run_server(secret=SECRET, db=str(tmp_path / "chats.sqlite3")) as server,
        FaultProxy(server.host, server.port) as proxy,
    ):
        websocket = create_websocket(open_timeout=WAIT, reconnect=FAST)
        chats = create_chats(
            user_module=create_user(server.session_token("ann")),
            websocket_module=websocket,
            config=ChatsConfig(host=proxy.address, request_timeout=WAIT),
        )
        statuses: list[str] = []
        websocket.status.subscribe(statuses.append)
        await websocket.connect()
        await chats.join_chat(server.chat_token("ann", "c1"))
        assert statuses == ["disconnected", "connecting", "connected"]

        assert proxy.cut_all() == 1

        await eventually(lambda: statuses[-1] == "connected" and len(statuses) > 3)
        assert statuses[3:] == ["connecting", "connected"]
        assert proxy.cuts == 1 and proxy.connections_accepted == 2
        await websocket.disconnect()
        await chats.close()


async def test_a_cut_between_a_request_and_its_reply_interrupts_the_send() -> None:
    async with (
        run_server(secret=SECRET) as server,
        FaultProxy(server.host, server.port) as proxy,
    ):
        websocket, chats = await proxied_client(server, proxy, "ann")
        await chats.join_chat(server.chat_token("ann", "c1"))
        (connection,) = proxy.connections
        sent_before = connection.bytes_up
        proxy.pause()
        sending = asyncio.ensure_future(chats.send_message("c1", "lost in the cut"))
        await eventually(lambda: connection.bytes_up == sent_before)  # read, not forwarded
        await asyncio.sleep(0.05)
        messages = chats.get_chat_messages("c1").value or ()
        assert [m.status for m in messages] == ["sending"]

        proxy.cut_all()
        proxy.resume()

        with pytest.raises(ConnectionLostError):
            await asyncio.wait_for(sending, WAIT)
        messages = chats.get_chat_messages("c1").value or ()
        assert [(m.content, m.status) for m in messages] == [("lost in the cut", "interrupted")]
        await eventually(lambda: websocket.status.value == "connected")
        await websocket.disconnect()
        await chats.close()


async def test_a_lost_reply_after_the_server_applied_the_send(tmp_path: Path) -> None:
    """Cut after the server stored the message, before its ack: no loss, no duplicate."""
    async with (
        run_server(secret=SECRET, db=str(tmp_path / "chats.sqlite3")) as server,
        FaultProxy(server.host, server.port) as proxy,
    ):
        websocket, chats = await proxied_client(server, proxy, "ann")
        await chats.join_chat(server.chat_token("ann", "c1"))
        (connection,) = proxy.connections
        received_before = connection.bytes_down
        proxy.pause("down")
        sending = asyncio.ensure_future(chats.send_message("c1", "stored, ack lost"))
        await asyncio.sleep(0.1)  # the server stores it and answers; the proxy holds that

        proxy.cut_all()
        proxy.resume()

        with pytest.raises(ConnectionLostError):
            await asyncio.wait_for(sending, WAIT)
        assert connection.bytes_down == received_before, "the ack never reached the client"
        await eventually(lambda: websocket.status.value == "connected")
        await eventually(lambda: chats.get_chat_status("c1").value == "ready")
        await eventually(
            lambda: [m.status for m in chats.get_chat_messages("c1").value or ()] == ["ready"]
        )
        (message,) = chats.get_chat_messages("c1").value or ()
        assert message.content == "stored, ack lost" and message.seq is not None
        assert await raw_history_count(server, "bob", "c1") == 1
        await websocket.disconnect()
        await chats.close()


async def raw_history_count(server: ChatServer, user_id: str, chat_id: str) -> int:
    """How many messages a fresh raw join of ``chat_id`` sees."""
    import json

    async with connect(
        server.url,
        subprotocols=[Subprotocol(PROTOCOL_VERSION)],
        additional_headers={"Authorization": f"Bearer {server.session_token(user_id)}"},
    ) as raw:
        await read_hello(raw)
        token = server.chat_token(user_id, chat_id)
        await raw.send(json.dumps({"type": "join", "id": 1, "chat_id": chat_id, "token": token}))
        reply = json.loads(await asyncio.wait_for(raw.recv(), WAIT))
        assert reply["type"] == "ok", reply
        return len(reply["result"]["messages"])


async def test_restartable_server_keeps_file_and_port(tmp_path: Path) -> None:
    db = tmp_path / "chats.sqlite3"
    async with RestartableServer(db, SECRET) as restartable:
        assert restartable.running and restartable.restarts == 0
        first = restartable.server
        async with FaultProxy(first.host, first.port) as proxy:
            websocket = create_websocket(open_timeout=WAIT, reconnect=FAST)
            chats = create_chats(
                user_module=create_user(first.session_token("ann")),
                websocket_module=websocket,
                config=ChatsConfig(host=proxy.address, request_timeout=WAIT),
            )
            statuses: list[str] = []
            websocket.status.subscribe(statuses.append)
            await websocket.connect()
            await chats.join_chat(first.chat_token("ann", "c1"))
            await chats.send_message("c1", "kept across restarts")

            second = await restartable.restart()

            assert second.port == first.port and second is not first
            assert restartable.restarts == 1 and restartable.running
            await eventually(lambda: len(statuses) > 3 and statuses[-1] == "connected")
            assert "connecting" in statuses[3:]
            assert await raw_history_count(second, "bob", "c1") == 1
            await websocket.disconnect()
            await chats.close()
    assert not restartable.running
    assert "stopped" in repr(restartable)


async def test_restartable_server_refuses_misuse(tmp_path: Path) -> None:
    restartable = RestartableServer(tmp_path / "x.sqlite3", SECRET)
    with pytest.raises(RuntimeError, match="never started"):
        _ = restartable.server
    await restartable.start()
    with pytest.raises(RuntimeError, match="already running"):
        await restartable.start()
    await restartable.restart(downtime=0.01)
    assert restartable.url == f"ws://{restartable.address}"
    await restartable.stop()
    await restartable.stop()  # idempotent
