"""Fixtures for the reference server tests: a server on port 0, raw protocol clients.

:class:`RawClient` is a real ``websockets`` client connection driven by the
sans-I/O :class:`ClientProtocol`; it keeps replies by request id and events in
arrival order, and logs both, so tests can check what came first.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import attrs
import jwt
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from chats_store.chats.actions import Failure, ServerEvent
from chats_store.chats.commands import ChatReply, ChatRequest, JoinRequest, PostMessageRequest
from chats_store.chats.model import Message
from chats_store.protocol import (
    MAX_SERVER_FRAME_SIZE,
    PROTOCOL_VERSION,
    ClientProtocol,
    ReceivedItem,
    ReplyReceived,
)
from chats_store.server import ChatServer, run_server
from chats_store.server.database import ChatDatabase
from chats_store.server.engine import open_storage

if TYPE_CHECKING:
    from chats_store.server.postgres import PostgresDatabase

SECRET = "test-secret-that-is-long-enough-for-hs256"
OTHER_SECRET = "another-secret-that-is-long-enough-too"
TIMEOUT = 2.0


# Storage engines. --------------------------------------------------------------------

Storage: TypeAlias = "ChatDatabase | PostgresDatabase"
"""A storage of either engine."""


@pytest.fixture
def open_db(each_db: str) -> Iterator[Callable[..., Storage]]:
    """Open a handle on the test's database of each engine (``open_storage`` options),
    as another server process would: every handle is closed after the test."""
    opened: list[Storage] = []

    def open_db(**options: Any) -> Storage:
        storage = open_storage(each_db, **options)
        opened.append(storage)
        return storage

    yield open_db
    for storage in opened:
        storage.close()


# Hostile tokens: the right claims, signed the wrong way. -----------------------------


def claims_for(audience: str, user_id: str, chat_id: str | None = None) -> dict[str, Any]:
    """Valid-looking claims of a token of ``audience`` (an hour to live)."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user_id, "aud": audience, "iat": now, "exp": now + 3600}
    if chat_id is not None:
        claims.update(chat=chat_id, permissions=["send", "moderate"], metadata={})
    return claims


def alg_none_token(claims: dict[str, Any]) -> str:
    """An unsigned token (``alg: none``)."""
    return jwt.encode(claims, key=None, algorithm="none")


def hs512_token(claims: dict[str, Any]) -> str:
    """Signed with the server's own secret, but with HS512 (not allowed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        return jwt.encode(claims, SECRET.encode(), algorithm="HS512")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def rs256_header_token(claims: dict[str, Any]) -> str:
    """A token claiming RS256 (a public-key algorithm the server never accepts)."""
    header = _b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(claims).encode())
    return f"{header}.{payload}.{_b64(b'not-a-real-rsa-signature' * 10)}"


def forged_token(claims: dict[str, Any]) -> str:
    """HS256, but signed with another secret."""
    return jwt.encode(claims, OTHER_SECRET.encode(), algorithm="HS256")


class RawClient:
    """One user's connection: send requests, read replies and events."""

    def __init__(self, user_id: str, connection: ClientConnection, server: ChatServer) -> None:
        self.user_id = user_id
        self.connection = connection
        self.server = server
        self.protocol = ClientProtocol()
        self.replies: dict[int, ChatReply | Failure] = {}
        self.events: list[ServerEvent] = []
        self.log: list[ReceivedItem] = []

    async def _read(self, timeout: float = TIMEOUT) -> None:
        text = await asyncio.wait_for(self.connection.recv(), timeout)
        self.protocol.receive_data(text)
        for item in self.protocol.events_received():
            self.log.append(item)
            if isinstance(item, ReplyReceived):
                self.replies[item.request_id] = item.result
            else:
                self.events.append(item.event)

    async def send(self, request: ChatRequest) -> int:
        request_id = self.protocol.send_request(request)
        for text in self.protocol.data_to_send():
            await self.connection.send(text)
        return request_id

    async def reply(self, request_id: int) -> ChatReply | Failure:
        while request_id not in self.replies:
            await self._read()
        return self.replies.pop(request_id)

    async def request(self, request: ChatRequest) -> ChatReply | Failure:
        return await self.reply(await self.send(request))

    async def ok(self, request: ChatRequest) -> Any:
        """The reply to ``request``; fails the test if it was refused."""
        result = await self.request(request)
        assert not isinstance(result, Failure), result
        return result

    async def refused(self, request: ChatRequest, code: str) -> Failure:
        """The failure of ``request``; fails the test unless it was refused with ``code``."""
        result = await self.request(request)
        assert isinstance(result, Failure), f"expected {code}, got {result!r}"
        assert (result.kind, result.code) == ("refused", code), result
        return result

    async def join(
        self,
        chat_id: str,
        permissions: Sequence[str] = ("send",),
        metadata: dict[str, str] | None = None,
    ) -> Any:
        token = self.server.chat_token(self.user_id, chat_id, permissions, metadata)
        return await self.ok(JoinRequest(chat_id, token))

    async def post(self, chat_id: str, message_id: str, content: str = "hello") -> Message:
        result = await self.ok(PostMessageRequest(chat_id, message_id, content))
        assert isinstance(result, Message)
        return result

    async def next_event(self, timeout: float = TIMEOUT) -> ServerEvent:
        while not self.events:
            await self._read(timeout)
        return self.events.pop(0)

    async def no_event(self, wait: float = 0.05) -> None:
        """Fails if an event arrives within ``wait`` seconds."""
        with suppress(TimeoutError):
            await self._read(wait)
        assert not self.events, self.events

    async def collect(self, wait: float = 0.03) -> list[ServerEvent]:
        """Read until nothing arrives for ``wait`` seconds; the events, now forgotten."""
        try:
            while True:
                await self._read(wait)
        except TimeoutError:
            pass
        events, self.events = self.events, []
        return events

    async def drop_events(self, wait: float = 0.03) -> None:
        """Read until nothing arrives for ``wait`` seconds, then forget every event."""
        await self.collect(wait)


ClientFactory = Callable[..., Awaitable[RawClient]]


async def read_hello(connection: ClientConnection) -> dict[str, Any]:
    """Read the server's first frame, its ``hello``, and return it (fails on anything else)."""
    frame = json.loads(await asyncio.wait_for(connection.recv(), TIMEOUT))
    assert frame["type"] == "hello" and frame["protocol"] == PROTOCOL_VERSION, frame
    return dict(frame)


def handshake_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def server() -> AsyncIterator[ChatServer]:
    async with run_server(secret=SECRET, seconds_per_minute=0.05) as running:
        yield running


@pytest.fixture
async def bulk_server() -> AsyncIterator[ChatServer]:
    """A server without a rate limit, for tests that send many requests at once."""
    async with run_server(secret=SECRET, rate_limit=None) as running:
        yield running


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as exit_stack:
        yield exit_stack


async def open_client(stack: AsyncExitStack, server: ChatServer, user_id: str) -> RawClient:
    connection = await stack.enter_async_context(
        connect(
            server.url,
            subprotocols=[Subprotocol(PROTOCOL_VERSION)],
            additional_headers=handshake_headers(server.session_token(user_id)),
            open_timeout=TIMEOUT,
            close_timeout=1,
            max_size=MAX_SERVER_FRAME_SIZE,
            max_queue=None,  # keep reading the socket even when a test reads nothing
        )
    )
    await read_hello(connection)
    return RawClient(user_id, connection, server)


@pytest.fixture
def client(server: ChatServer, stack: AsyncExitStack) -> ClientFactory:
    """``await client("alice")``: a connected client of the ``server`` fixture."""

    async def make(user_id: str, on: ChatServer | None = None) -> RawClient:
        return await open_client(stack, on or server, user_id)

    return make


# Hostile peers ------------------------------------------------------------------------------


def small_receive_buffer_socket(port: int, host: str = "127.0.0.1") -> socket.socket:
    """A connected socket whose receive buffer is small (4 KiB, autotuning off): a peer
    that stops reading makes the server hold what it sends, as over a real network."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, port))
    sock.setblocking(False)
    return sock


async def open_non_reader(stack: AsyncExitStack, server: ChatServer, user_id: str) -> RawClient:
    """A client that reads what a test awaits and nothing else: past one frame waiting,
    it stops reading the socket (and the server holds what it sends)."""
    connection = await stack.enter_async_context(
        connect(
            server.url,
            sock=small_receive_buffer_socket(server.port),
            subprotocols=[Subprotocol(PROTOCOL_VERSION)],
            additional_headers=handshake_headers(server.session_token(user_id)),
            open_timeout=TIMEOUT,
            close_timeout=0.5,
            ping_interval=None,
            max_size=None,
            max_queue=1,
        )
    )
    await read_hello(connection)
    return RawClient(user_id, connection, server)


def rss_mib(pid: int) -> float:
    """Peak resident memory of process ``pid`` so far (``VmHWM``), in MiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for process {pid}")


@attrs.define
class ServerProcess:
    """``chats-store serve`` in a process of its own (its memory is measured alone)."""

    process: subprocess.Popen[str]
    server: ChatServer

    @property
    def peak_mib(self) -> float:
        return rss_mib(self.process.pid)


def serve_command(db: Path | str, *flags: str) -> list[str]:
    """The command line of ``chats-store serve`` on a free port and ``db``."""
    return [
        sys.executable,
        "-m",
        "chats_store.cli",
        "serve",
        "--port",
        "0",
        "--db",
        str(db),
        *flags,
    ]


@contextmanager
def server_process(tmp_path: Path, *flags: str) -> Iterator[ServerProcess]:
    """The reference server of this tree in a subprocess, with ``serve`` flags."""
    process = subprocess.Popen(
        serve_command(tmp_path / "chats.sqlite3", *flags),
        env={**os.environ, "CHATS_STORE_SECRET": SECRET},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "listening on ws://" in line, line
        port = int(line.split("ws://", 1)[1].split()[0].rsplit(":", 1)[1])
        yield ServerProcess(process, ChatServer("127.0.0.1", port, SECRET.encode(), time.time))
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
