"""The outbox: bounded in frames, bytes and age; a global budget; slow and absent readers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from contextlib import AsyncExitStack, suppress
from pathlib import Path
from typing import Any

import attrs
import pytest
from websockets.protocol import State

from chats_store import ChatsConfig, create_chats, create_user, create_websocket
from chats_store.chats.commands import HistoryRequest, JoinRequest, PostMessageRequest
from chats_store.chats.model import Message
from chats_store.protocol import MAX_SERVER_FRAME_SIZE
from chats_store.server import ChatServer, ServerLimits, run_server
from chats_store.server.outbox import Outboxes
from chats_store.server.service import Session
from chats_store.server.wire import WireFrame
from tests.server.conftest import (
    SECRET,
    RawClient,
    open_client,
    open_non_reader,
    server_process,
)

# One layer: the outbox over a fake connection ------------------------------------------------


@attrs.define
class _Transport:
    buffered: int = 0
    aborted: bool = False

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def abort(self) -> None:
        self.aborted = True


@attrs.define
class _Protocol:
    state: State = State.OPEN
    pings: list[bytes] = attrs.Factory(list)

    def send_ping(self, payload: bytes) -> None:
        self.pings.append(payload)


@attrs.define
class _Connection:
    """A connection whose peer reads nothing until a test says so."""

    transport: _Transport = attrs.Factory(_Transport)
    protocol: _Protocol = attrs.Factory(_Protocol)
    sent: list[str] = attrs.Factory(list)
    closed: tuple[int, str] | None = None
    stuck: bool = False
    """Whether writes and closes wait forever (the write buffer is full: drain() waits)."""
    on_pong: Callable[[bytes], None] | None = None

    def write_frames(self, frames: Sequence[WireFrame]) -> bool:
        self.sent.extend(frame.text for frame in frames)
        return True

    @property
    def write_paused(self) -> bool:
        return self.stuck

    async def writable(self) -> bool:
        if self.stuck:
            await asyncio.Event().wait()
        return True

    def send_data(self) -> None:
        pass

    async def close(self, code: int, reason: str) -> None:
        if self.stuck:
            await asyncio.Event().wait()
        self.closed = (code, reason)


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _outboxes(**limits: Any) -> tuple[Outboxes, _Clock]:
    clock = _Clock()
    return Outboxes(attrs.evolve(ServerLimits(), **limits), clock), clock


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def _open(outboxes: Outboxes, name: str) -> tuple[Session, _Connection, asyncio.Task[None]]:
    session, connection = Session(name), _Connection()
    outbox = outboxes.open(session, connection)  # type: ignore[arg-type]
    return session, connection, asyncio.create_task(outbox.run())


async def test_flushed_waits_until_every_frame_queued_is_written_to_the_connection() -> None:
    outboxes, _ = _outboxes()
    session, connection = Session("reader"), _Connection()
    outbox = outboxes.open(session, connection)  # type: ignore[arg-type]
    writer = asyncio.create_task(outbox.run())
    await asyncio.wait_for(outbox.flushed(), 1)  # nothing queued
    for index in range(3):
        outboxes.send(session, WireFrame(f"frame {index}"))
    flushed = asyncio.create_task(outbox.flushed())
    assert connection.sent == []  # the write is due on the next turn of the loop

    await asyncio.wait_for(flushed, 1)

    assert connection.sent == ["frame 0", "frame 1", "frame 2"]
    writer.cancel()


async def test_flushed_returns_when_the_outbox_closes_with_frames_unwritten() -> None:
    outboxes, _ = _outboxes()
    session, connection = Session("stuck"), _Connection(stuck=True)  # the transport is full
    outbox = outboxes.open(session, connection)  # type: ignore[arg-type]
    writer = asyncio.create_task(outbox.run())
    outboxes.send(session, WireFrame("never sent"))
    flushed = asyncio.create_task(outbox.flushed())
    await _settle()
    assert not flushed.done() and connection.sent == []

    outbox.forget()

    await asyncio.wait_for(flushed, 1)
    writer.cancel()


async def test_past_the_frames_cap_the_connection_is_closed_with_1008() -> None:
    outboxes, _ = _outboxes(max_queued_frames=3)
    session, connection, writer = _open(outboxes, "slow")
    for index in range(5):  # queued at once: the writer has not run yet
        outboxes.send(session, WireFrame(f"frame {index}"))
    await _settle()

    assert connection.closed is not None and connection.closed[0] == 1008
    assert connection.closed[1].startswith("too many unsent frames (3,")
    assert connection.sent == []  # what it held is forgotten
    assert outboxes.queued_bytes == 0
    writer.cancel()


async def test_past_the_bytes_cap_the_connection_is_closed_with_1008() -> None:
    outboxes, _ = _outboxes(max_queued_bytes=1000)
    session, connection, writer = _open(outboxes, "slow")
    outboxes.send(session, WireFrame("x" * 600))
    outboxes.send(session, WireFrame("y" * 600))  # over 1000 queued (the writer has not run yet)
    await _settle()

    assert connection.sent == []
    assert connection.closed is not None and connection.closed[0] == 1008
    assert connection.closed[1].startswith("too many unsent frames (1, 600 bytes)")
    writer.cancel()


async def test_the_global_budget_closes_the_connection_holding_the_most_with_1013() -> None:
    outboxes, _ = _outboxes(max_queued_bytes_total=2500)
    greedy, greedy_connection, first = _open(outboxes, "greedy")
    modest, modest_connection, second = _open(outboxes, "modest")
    for _ in range(3):
        outboxes.send(greedy, WireFrame("g" * 500))  # 1500 bytes queued
    for _ in range(3):
        outboxes.send(modest, WireFrame("m" * 500))  # the third does not fit: greedy holds the most

    await _settle()

    assert greedy_connection.closed is not None and greedy_connection.closed[0] == 1013
    assert modest_connection.closed is None
    assert modest_connection.sent == ["m" * 500] * 3
    assert outboxes.queued_bytes == 0
    first.cancel()
    second.cancel()


async def test_a_frame_over_the_protocol_maximum_is_never_sent() -> None:
    outboxes, _ = _outboxes()
    session, connection, writer = _open(outboxes, "alice")

    outboxes.send(session, WireFrame("x" * (MAX_SERVER_FRAME_SIZE + 1)))
    outboxes.send(session, WireFrame("after"))
    await _settle()

    assert connection.sent == []
    assert connection.closed is not None and connection.closed[0] == 1011
    writer.cancel()


def _outbox(outboxes: Outboxes) -> Any:
    (outbox,) = outboxes._by_session.values()
    return outbox


async def test_a_frame_not_read_within_the_bound_closes_the_connection_with_1008() -> None:
    outboxes, clock = _outboxes(max_backlog_age=10.0)
    session, connection, writer = _open(outboxes, "slow")
    outboxes.send(session, WireFrame("an event"))
    await _settle()
    outbox = _outbox(outboxes)

    clock.now += 2
    outbox.check(clock.now)  # not a quarter of the bound old: no ping yet
    assert connection.protocol.pings == []
    clock.now += 1
    outbox.check(clock.now)  # asks the client to confirm: a ping behind the frame
    clock.now += 3
    outbox.check(clock.now)  # no answer yet; one ping at a time
    assert connection.protocol.pings == [b"outbox 1"]
    assert connection.closed is None and outbox.backlog_age(clock.now) == 6

    clock.now += 5
    outbox.check(clock.now)
    await _settle()

    assert connection.closed is not None and connection.closed[0] == 1008
    assert connection.closed[1].startswith("too slow: a frame waited 11.0 s to be read")
    writer.cancel()


async def test_a_pong_confirms_the_frames_handed_over_before_its_ping() -> None:
    outboxes, clock = _outboxes(max_backlog_age=10.0)
    session, connection, writer = _open(outboxes, "fast")
    outboxes.send(session, WireFrame("first"))
    await _settle()
    outbox = _outbox(outboxes)
    clock.now += 3
    outbox.check(clock.now)
    outboxes.send(session, WireFrame("second"))  # after the ping: not confirmed by its pong
    await _settle()
    assert connection.on_pong is not None

    connection.on_pong(b"keepalive")  # another ping's pong confirms nothing
    assert outbox.backlog_age(clock.now) == 3
    connection.on_pong(b"outbox 1")
    assert outbox.backlog_age(clock.now) == 0  # the second frame was queued just now
    clock.now += 8
    outbox.check(clock.now)  # the second frame is 8 s old: fine, and a new ping
    connection.on_pong(b"outbox 2")
    clock.now += 60
    outbox.check(clock.now)

    assert connection.protocol.pings == [b"outbox 1", b"outbox 2"]
    assert outbox.backlog_age(clock.now) == 0
    assert connection.closed is None
    writer.cancel()


async def test_a_close_that_never_finishes_drops_the_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("chats_store.server.outbox.CLOSE_TIMEOUT", 0.05)
    outboxes, clock = _outboxes(max_backlog_age=10.0)
    session, connection, writer = _open(outboxes, "absent")
    outboxes.send(session, WireFrame("an event"))
    await _settle()
    connection.stuck = True  # reads nothing: neither the frame nor a close frame

    clock.now += 11
    _outbox(outboxes).check(clock.now)
    await asyncio.sleep(0.2)

    assert connection.transport.aborted
    writer.cancel()


async def test_a_write_buffer_over_the_cap_drops_the_connection_at_once() -> None:
    outboxes, clock = _outboxes(max_write_buffer=1000)
    _, connection, writer = _open(outboxes, "flooded")
    connection.transport.buffered = 1001  # pongs, say

    _outbox(outboxes).check(clock.now)

    assert connection.transport.aborted
    writer.cancel()


# A live server ---------------------------------------------------------------------------------


class _ThrottledProxy:
    """A TCP proxy passing at most ``rate`` bytes per second from the server to the
    client, its socket to the server with a small receive buffer: a slow reader that
    makes the server hold what it sends. ``rate`` None: full speed."""

    def __init__(self, server: ChatServer, rate: float | None) -> None:
        self.server = server
        self.rate = rate
        self.connections = 0
        self._listener: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self._listener = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"127.0.0.1:{self._listener.sockets[0].getsockname()[1]}"

    def close(self) -> None:
        assert self._listener is not None
        self._listener.close()
        for task in self._tasks:
            task.cancel()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from tests.server.conftest import small_receive_buffer_socket

        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection(
            sock=small_receive_buffer_socket(self.server.port), limit=512
        )
        self._spawn(self._copy(reader, up_writer, throttled=False))
        self._spawn(self._copy(up_reader, writer, throttled=True))

    async def _copy(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, throttled: bool
    ) -> None:
        with suppress(ConnectionError, OSError):
            while True:
                rate = self.rate if throttled else None
                data = await source.read(512 if rate else 65536)
                if not data:
                    break
                sink.write(data)
                await sink.drain()
                if rate:
                    await asyncio.sleep(len(data) / rate)
        sink.close()


async def test_a_slow_reader_is_closed_within_the_bound_then_resyncs_exactly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bound = 1.0
    limits = ServerLimits(max_backlog_age=bound)
    caplog.set_level(logging.INFO, logger="chats_store.server")
    async with run_server(secret=SECRET, rate_limit=None, limits=limits) as server:
        proxy = _ThrottledProxy(server, rate=4000)
        host = await proxy.start()
        websocket = create_websocket(open_timeout=5)
        chats = create_chats(
            user_module=create_user(server.session_token("slow")),
            websocket_module=websocket,
            config=ChatsConfig(host=host, request_timeout=5),
        )
        try:
            await websocket.connect()
            await chats.join_chat(server.chat_token("slow", "c1"))
            async with AsyncExitStack() as stack:
                writer = await open_client(stack, server, "writer")
                await writer.join("c1")
                started = time.time()
                for index in range(POSTS):  # ~250 KB of events: a minute at 4 KB/s
                    await writer.send(PostMessageRequest("c1", f"m{index}", "x" * 250))
                while len(writer.replies) < POSTS:
                    await writer._read()
                closing = await _record(caplog, "too slow")
                proxy.rate = None  # the client reads at full speed again

                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    messages = chats.get_chat_messages("c1").value or ()
                    resynced = chats.get_chat_status("c1").value == "ready"
                    # Back on a new connection: everything the first one delivered may
                    # have reached the client before its close did.
                    if proxy.connections >= 2 and resynced and len(messages) == POSTS:
                        break
                    await asyncio.sleep(0.05)
                history = await _history(writer)
        finally:
            await websocket.disconnect()
            await chats.close()
            proxy.close()

    # The first frames fill the buffers between the server and the reader; the server
    # holds the later ones, and closes within the bound of the oldest it holds (plus a
    # round of the watchdog), while the posts are still arriving.
    assert closing.created - started <= bound + 0.25 + 1.0
    assert proxy.connections >= 2  # closed, then back
    shown = [(m.id, m.content, m.seq) for m in chats.get_chat_messages("c1").value or ()]
    assert shown == [(m.id, m.content, m.seq) for m in history]
    assert len(shown) == POSTS


POSTS = 600


async def _history(client: RawClient) -> list[Message]:
    """Every message of chat c1, oldest first, in pages."""
    messages: list[Message] = []
    before = 2**53
    while True:
        page = await client.ok(HistoryRequest("c1", before, 200))
        if not page:
            return messages
        messages[:0] = page
        before = page[0].seq


async def _record(caplog: pytest.LogCaptureFixture, text: str) -> logging.LogRecord:
    """The first log record holding ``text``, once it is there (10 s at most)."""
    for _ in range(200):
        for record in caplog.records:
            if text in record.getMessage():
                return record
        await asyncio.sleep(0.05)
    raise AssertionError(f"no log record with {text!r}: {[r.getMessage() for r in caplog.records]}")


async def test_a_client_that_never_reads_history_pages_costs_the_server_little(
    tmp_path: Path,
) -> None:
    emoji = "\U0001f600"
    with server_process(tmp_path) as served:
        server = served.server
        async with AsyncExitStack() as stack:
            poster = await open_client(stack, server, "poster")
            await poster.join("c1")
            for index in range(150):
                await poster.send(
                    PostMessageRequest("c1", f"{index:04d}" + emoji * 120, emoji * 256)
                )
            while len(poster.replies) < 150:
                await poster._read()
            before = served.peak_mib
            mallory = await open_non_reader(stack, server, "mallory")
            await mallory.request(JoinRequest("c1", server.chat_token("mallory", "c1")))
            for _ in range(150):  # 150 pages of 1.2 MB each
                await mallory.send(HistoryRequest("c1", 2**53, 150))
            await asyncio.sleep(3)
            growth = served.peak_mib - before

    assert growth < 40, f"the server grew {growth:.0f} MiB"
