"""Hostile peers: every attack of the "hostile peers" issue, against two revisions, one table.

Each server attack starts the reference server of the revision under test in its own
process (``chats-store serve`` with its default settings, on a temporary SQLite file),
measures that process's memory (``VmRSS``/``VmHWM`` of ``/proc``) and attacks it over
loopback from this process; each client attack runs that revision's client against a
hostile peer in this process. Every loop is bounded (a count, or a few seconds).

    python benchmarks/attacks.py                        # a2e30a3 against the working tree
    python benchmarks/attacks.py --base HEAD~5 --only ping_flood,reconnect_loop
    python benchmarks/attacks.py --side                 # the working tree only, as JSON

The base revision is checked out in a temporary worktree (as
``benchmarks/compare_revisions.py`` does) and the attacks run on each side in a
fresh interpreter whose ``PYTHONPATH`` is that side's tree: this script's own code
is the same for both, and it uses only names both revisions have. It prints a
markdown table: the figure the issue measured, then each side's. It asserts nothing;
the bounds are asserted by the tests (``tests/server/test_gate.py``,
``test_outbox.py``, ``test_protection.py``...).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BASE = "a2e30a3"
SUBPROTOCOL = "chats_store.v1"
EMOJI = "\U0001f600"
LONG_ID = "\U0001f4a9" * 114
"""A message id of 120 characters, all astral but the counter (12 bytes each escaped)."""

Figures = dict[str, Any]


# The server process ------------------------------------------------------------------------


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class Server:
    """``chats-store serve`` of the tree in ``PYTHONPATH`` on port 0, its file in ``directory``."""

    def __init__(self, directory: Path, secret: str) -> None:
        self.directory = directory
        self.secret = secret
        self.db = directory / "chats.sqlite3"
        self.process: subprocess.Popen[str] | None = None
        self.port = 0
        self.started_in = 0.0

    def start(self) -> Server:
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "chats_store.cli", "serve", "--port", "0", "--db", str(self.db)],
            env={**os.environ, "CHATS_STORE_SECRET": self.secret},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "listening on ws://" not in line:
            self.process.kill()
            raise RuntimeError(f"the server did not start: {line!r}")
        self.started_in = time.perf_counter() - started
        self.port = int(line.split("ws://", 1)[1].split()[0].rsplit(":", 1)[1])
        return self

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def rss_mib(self) -> float:
        assert self.process is not None
        return rss_kib(self.process.pid) / 1024

    def peak_mib(self) -> float:
        assert self.process is not None
        return rss_kib(self.process.pid, "VmHWM") / 1024

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def session_token(self, user_id: str) -> str:
        """Signed as an application's backend would (PyJWT), whatever the user id."""
        import jwt

        now = int(time.time())
        claims = {"sub": user_id, "aud": "chats_store:session", "iat": now, "exp": now + 3600}
        return jwt.encode(claims, self.secret.encode(), algorithm="HS256")

    def chat_token(
        self, user_id: str, chat_id: str, permissions: tuple[str, ...] = ("send",)
    ) -> str:
        from chats_store.server import mint_chat_token

        return mint_chat_token(self.secret, user_id, chat_id, permissions)


@contextlib.contextmanager
def server_process() -> Any:
    with tempfile.TemporaryDirectory(prefix="chats-store-attack-") as directory:
        server = Server(Path(directory), secrets.token_urlsafe(32)).start()
        try:
            yield server
        finally:
            server.stop()


# Raw clients -------------------------------------------------------------------------------


class Raw:
    """A raw ``websockets`` client connection: JSON requests out, frames in."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.next_id = 0

    async def send(self, frame_type: str, **fields: Any) -> int:
        self.next_id += 1
        await self.connection.send(json.dumps({"type": frame_type, "id": self.next_id, **fields}))
        return self.next_id

    async def reply(self, request_id: int, timeout: float = 30) -> dict[str, Any]:
        """The reply to ``request_id`` (events and other replies are skipped)."""
        while True:
            frame = json.loads(await asyncio.wait_for(self.connection.recv(), timeout))
            if frame.get("id") == request_id and frame["type"] in ("ok", "error"):
                return frame  # type: ignore[no-any-return]

    async def request(self, frame_type: str, **fields: Any) -> dict[str, Any]:
        return await self.reply(await self.send(frame_type, **fields))

    async def join(
        self, server: Server, user_id: str, chat_id: str, **token: Any
    ) -> dict[str, Any]:
        reply = await self.request(
            "join", chat_id=chat_id, token=server.chat_token(user_id, chat_id, **token)
        )
        assert reply["type"] == "ok", reply
        return reply["result"]  # type: ignore[no-any-return]


def _small_receive_buffer_socket(port: int) -> socket.socket:
    """A connected socket whose receive buffer is small: a peer that reads slowly or not
    at all makes the server hold what it sends, as over a real network."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def raw(
    server: Server, user_id: str, *, reader: bool = True, headers: dict[str, str] | None = None
) -> AsyncIterator[Raw]:
    """A raw connection of ``user_id``; ``reader`` False: one that stops reading at once."""
    from websockets.asyncio.client import connect

    options: dict[str, Any] = {"max_queue": None}  # reads the socket while nobody recv()s
    if not reader:
        options.update(sock=_small_receive_buffer_socket(server.port), max_queue=1)
    connection = await connect(
        server.url,
        subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
        additional_headers=headers or {"Authorization": f"Bearer {server.session_token(user_id)}"},
        max_size=None,
        open_timeout=10,
        close_timeout=1,
        ping_interval=None,
        **options,
    )
    try:
        yield Raw(connection)
    finally:
        connection.transport.abort()


async def post_many(
    server: Server, chat_id: str, count: int, content: str, *, long_ids: bool = False
) -> None:
    """Post ``count`` messages in ``chat_id``, from as many users as the rate limit needs
    (bursts of 150 each), each posting its burst at once."""
    per_user = 150

    async def poster(number: int, first: int, amount: int) -> None:
        async with raw(server, f"poster{number}") as client:
            await client.join(server, f"poster{number}", chat_id)
            sent = []
            for index in range(first, first + amount):
                message_id = f"{index:06d}" + (LONG_ID if long_ids else "")
                sent.append(
                    await client.send(
                        "post", chat_id=chat_id, message_id=message_id, content=content
                    )
                )
            for request_id in sent:
                reply = await client.reply(request_id)
                assert reply["type"] == "ok", reply

    jobs = [
        poster(number, first, min(per_user, count - first))
        for number, first in enumerate(range(0, count, per_user))
    ]
    await asyncio.gather(*jobs)


class CountingProxy:
    """A TCP proxy to ``port`` that counts the connections it accepts."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.accepted = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> CountingProxy:
        self._server = await asyncio.start_server(self._pipe, "127.0.0.1", 0)
        return self

    @property
    def address(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            writer.close()
            return

        async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            with contextlib.suppress(Exception):
                sink.close()

        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()


def real_client(server: Server, host: str, user_id: str) -> tuple[Any, Any]:
    """A ``create_chats`` client of this tree for ``user_id`` at ``host``."""
    from chats_store import ChatsConfig, create_chats, create_user, create_websocket

    websocket = create_websocket(open_timeout=10)
    chats = create_chats(
        user_module=create_user(server.session_token(user_id)),
        websocket_module=websocket,
        config=ChatsConfig(host=host, request_timeout=10),
    )
    return chats, websocket


# Server attacks ------------------------------------------------------------------------------


async def resume_amplification(server: Server) -> Figures:
    """~900 maximal messages while a member is away; then its client comes back."""
    chat_id = "\U0001f4ac" * 120
    async with raw(server, "away") as away:
        joined = await away.join(server, "away", chat_id)
    async with CountingProxy(server.port) as proxy:
        chats, websocket = real_client(server, proxy.address, "away")
        await websocket.connect()
        await chats.join_chat(server.chat_token("away", chat_id))
        await websocket.disconnect()
        await post_many(server, chat_id, 900, EMOJI * 256, long_ids=True)
        async with raw(server, "away") as again:
            request_id = await again.send(
                "resume",
                chat_id=chat_id,
                membership=joined["membership"],
                since_seq=joined["last_seq"],
            )
            largest = 0
            while True:
                text = await asyncio.wait_for(again.connection.recv(), 30)
                largest = max(largest, len(text))
                frame = json.loads(text)
                if frame.get("id") == request_id:
                    resumed_with = (
                        "snapshot"
                        if (frame.get("result") or {}).get("snapshot")
                        else ("events" if frame["type"] == "ok" else frame.get("code"))
                    )
                    break
        before = proxy.accepted
        await websocket.connect()
        await asyncio.sleep(20)
        reconnections = proxy.accepted - before
        status = chats.get_chat_status(chat_id).value
        await websocket.disconnect()
        await chats.close()
    return {
        "resume reply MB": round(largest / 1e6, 2),
        "answered with": resumed_with,
        "reconnections in 20 s": reconnections,
        "chat status": status,
    }


async def history_never_reader(server: Server) -> Figures:
    """190 history pages of 200 maximal messages for a client that never reads."""
    await post_many(server, "c1", 200, EMOJI * 256, long_ids=True)
    rss = server.rss_mib()
    async with raw(server, "mallory", reader=False) as mallory:
        await mallory.join(server, "mallory", "c1")
        for _ in range(190):
            await mallory.send("history", chat_id="c1", before_seq=2**53, limit=200)
        await asyncio.sleep(5)
        growth = server.peak_mib() - rss
        return {"server memory growth MB": round(growth, 1), **await _drained(mallory)}


async def _drained(client: Raw, wait: float = 20) -> Figures:
    """Read what the server still sends until it closes (or ``wait`` s): how it ended."""
    from websockets.exceptions import ConnectionClosed

    frames = 0
    try:
        async with asyncio.timeout(wait):
            while True:
                await client.connection.recv()
                frames += 1
    except ConnectionClosed as closed:
        return {
            "frames read after": frames,
            "closed": closed.rcvd.code if closed.rcvd else "dropped",
        }
    except TimeoutError:
        return {"frames read after": frames, "closed": "no"}
    except OSError:
        return {"frames read after": frames, "closed": "dropped"}


async def resumes_never_reader(server: Server) -> Figures:
    """60 resumes of ~900 missed maximal messages by a client that never reads."""
    async with raw(server, "mallory") as setup:
        joined = await setup.join(server, "mallory", "c1")
    await post_many(server, "c1", 900, EMOJI * 256, long_ids=True)
    rss = server.rss_mib()
    async with raw(server, "mallory", reader=False) as mallory:
        for _ in range(60):
            await mallory.send(
                "resume",
                chat_id="c1",
                membership=joined["membership"],
                since_seq=joined["last_seq"],
            )
        await asyncio.sleep(8)
        growth = server.peak_mib() - rss
        return {"server memory growth MB": round(growth, 1), **await _drained(mallory)}


async def quiet_never_reader(server: Server) -> Figures:
    """A member that stops reading while 500 large events (fewer than 1,000 frames) are
    pushed to it: is it ever dropped? (40 s, past the 30 s bound of the working tree)."""
    async with raw(server, "mallory", reader=False) as mallory:
        await mallory.join(server, "mallory", "c1")
        await post_many(server, "c1", 500, EMOJI * 256, long_ids=True)
        await asyncio.sleep(40)
        return await _drained(mallory, wait=10)


def _ping_frame() -> bytes:
    payload = b"p" * 125
    mask = b"\x01\x02\x03\x04"
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return bytes([0x89, 0x80 | 125]) + mask + masked


async def _raw_handshake(server: Server, user_id: str) -> tuple[asyncio.StreamReader, Any]:
    """A WebSocket handshake by hand on a socket with a small receive buffer."""
    reader, writer = await asyncio.open_connection(sock=_small_receive_buffer_socket(server.port))
    writer.write(
        (
            "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n"
            f"Authorization: Bearer {server.session_token(user_id)}\r\n\r\n"
        ).encode()
    )
    response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert b" 101 " in response.split(b"\r\n")[0], response
    return reader, writer


async def ping_flood(server: Server) -> Figures:
    """Pings as fast as the socket takes them, never reading a pong (400 MB or 10 s at
    most), then a ping a second: when does the server let go (40 s at most)?"""
    rss = server.rss_mib()
    _, writer = await _raw_handshake(server, "mallory")
    chunk = _ping_frame() * 512
    sent = 0
    started = time.monotonic()
    ended: str = "not within 50 s"
    try:
        while time.monotonic() - started < 10 and sent < 400e6:
            writer.write(chunk)
            sent += len(chunk)
            await asyncio.wait_for(writer.drain(), 2)
        growth = server.peak_mib() - rss
        while time.monotonic() - started < 50:
            writer.write(_ping_frame())
            await asyncio.wait_for(writer.drain(), 2)
            await asyncio.sleep(1)
    except OSError:
        ended = f"reset after {time.monotonic() - started:.1f} s"
    except TimeoutError:
        ended = f"not read after {time.monotonic() - started:.1f} s"
    growth = server.peak_mib() - rss
    writer.transport.abort()
    return {
        "pings sent MB": round(sent / 1e6, 1),
        "server memory growth MB": round(growth, 1),
        "the server": ended,
    }


async def half_open_handshakes(server: Server) -> Figures:
    """1,000 handshakes that send a large header block and never finish it."""
    rss = server.rss_mib()
    header = b"X-Filler-%d: " + b"f" * 8000 + b"\r\n"
    writers = []
    refused = 0
    for index in range(1000):
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        except OSError:
            refused += 1
            continue
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        writer.write(b"".join(header % n for n in range(120)))
        writers.append((reader, writer))
        if index % 50 == 49:
            await asyncio.sleep(0.05)
    await asyncio.sleep(2)
    growth = server.peak_mib() - rss
    alive = 0
    for reader, writer in writers:
        if not reader.at_eof() and not writer.is_closing():
            alive += 1
        writer.transport.abort()
    return {
        "server memory growth MB": round(growth, 1),
        "handshakes still open": alive,
        "refused at connect": refused,
    }


async def connections_from_one_address(server: Server) -> Figures:
    """1,500 authenticated connections from one address (150 users of 10 each)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    opened: list[Any] = []
    statuses: dict[str, int] = {}

    async def one(user_id: str) -> None:
        try:
            connection = await connect(
                server.url,
                subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                additional_headers={"Authorization": f"Bearer {server.session_token(user_id)}"},
                open_timeout=20,
                ping_interval=None,
            )
        except InvalidStatus as error:
            key = str(error.response.status_code)
            statuses[key] = statuses.get(key, 0) + 1
        except (OSError, TimeoutError) as error:
            statuses[type(error).__name__] = statuses.get(type(error).__name__, 0) + 1
        else:
            opened.append(connection)

    for batch in range(0, 1500, 100):
        await asyncio.gather(*(one(f"user{n // 10}") for n in range(batch, batch + 100)))
    for connection in opened:
        connection.transport.abort()
    return {"connections opened": len(opened), "refused": statuses}


async def reconnect_loop(server: Server) -> Figures:
    """One user reconnecting in a loop for 8 s, 200 requests per connection."""
    from websockets.exceptions import InvalidStatus

    async with raw(server, "setup") as setup:
        await setup.join(server, "setup", "c1")
    accepted = handshakes = refused_handshakes = 0
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        try:
            async with raw(server, "looper") as looper:
                handshakes += 1
                first = await looper.send(
                    "join", chat_id="c1", token=server.chat_token("looper", "c1")
                )
                ids = [first] + [
                    await looper.send("history", chat_id="c1", before_seq=1, limit=1)
                    for _ in range(199)
                ]
                for request_id in ids:
                    if (await looper.reply(request_id, 5))["type"] == "ok":
                        accepted += 1
        except InvalidStatus:
            refused_handshakes += 1
            await asyncio.sleep(0.05)
        except Exception:
            pass
    return {
        "requests accepted in 8 s": accepted,
        "per second": round(accepted / 8),
        "connections": handshakes,
        "handshakes refused": refused_handshakes,
    }


async def resumes_stall_bystanders(server: Server) -> Figures:
    """200 resumes of ~990 missed events at once from one connection; a bystander asks
    for one message every 20 ms: its worst wait."""
    from websockets.exceptions import ConnectionClosed

    async with raw(server, "mallory") as setup:
        joined = await setup.join(server, "mallory", "c1")
    await post_many(server, "c1", 990, "a message of ordinary length, " * 3)
    async with raw(server, "bystander") as bystander, raw(server, "mallory") as mallory:
        await bystander.join(server, "bystander", "c2")
        waits: list[float] = []

        async def probe() -> None:
            for _ in range(250):
                started = time.perf_counter()
                await bystander.request("history", chat_id="c2", before_seq=2**53, limit=1)
                waits.append(time.perf_counter() - started)
                await asyncio.sleep(0.02)

        probing = asyncio.create_task(probe())
        await asyncio.sleep(0.2)
        ids = [
            await mallory.send(
                "resume",
                chat_id="c1",
                membership=joined["membership"],
                since_seq=joined["last_seq"],
            )
            for _ in range(200)
        ]
        answers: dict[str, Any] = {}
        try:
            for request_id in ids:
                reply = await mallory.reply(request_id, 60)
                key = reply.get("code") or (
                    "snapshot" if reply["result"].get("snapshot") else "events"
                )
                answers[key] = answers.get(key, 0) + 1
        except ConnectionClosed as closed:
            answers["then closed"] = closed.rcvd.code if closed.rcvd else "dropped"
        await probing
    return {"bystander's worst wait s": round(max(waits), 2), "resumes answered": answers}


async def edit_then_resume_from_zero(server: Server) -> Figures:
    """An edited message's original text, read back with resume since_seq 0 by a member
    who joined after the edit."""
    async with raw(server, "alice") as alice, raw(server, "carol") as carol:
        await alice.join(server, "alice", "c1")
        await alice.request("post", chat_id="c1", message_id="m1", content="ORIGINAL-TEXT-1234")
        await alice.request("edit", chat_id="c1", message_id="m1", content="the fixed text")
        joined = await carol.join(server, "carol", "c1")
        reply = await carol.request(
            "resume", chat_id="c1", membership=joined["membership"], since_seq=0
        )
    return {"original text served": "ORIGINAL-TEXT-1234" in json.dumps(reply)}


async def wal_residue(server: Server) -> Figures:
    """Deleted and pre-edit text in the database files while the server runs."""
    async with raw(server, "alice") as alice:
        await alice.join(server, "alice", "c1")
        await alice.request("post", chat_id="c1", message_id="m1", content="PRE-EDIT-TEXT-5678")
        await alice.request("edit", chat_id="c1", message_id="m1", content="edited")
        await alice.request("post", chat_id="c1", message_id="m2", content="DELETED-TEXT-9012")
        await alice.request("delete", chat_id="c1", message_id="m2")
        await asyncio.sleep(0.5)
    found = []
    for file in server.directory.iterdir():
        data = file.read_bytes()
        for marker in (b"PRE-EDIT-TEXT-5678", b"DELETED-TEXT-9012"):
            if marker in data:
                found.append(f"{marker.decode()[:8]} in {file.name.replace('chats.sqlite3', 'db')}")
    return {"on disk": ", ".join(found) or "none"}


async def edit_without_send(server: Server) -> Figures:
    async with raw(server, "alice") as alice:
        await alice.join(server, "alice", "c1")
        await alice.request("post", chat_id="c1", message_id="m1", content="mine")
        await alice.join(server, "alice", "c1", permissions=())
        reply = await alice.request("edit", chat_id="c1", message_id="m1", content="edited")
    return {"edit without 'send'": reply.get("code") or "accepted"}


async def long_user_id(server: Server) -> Figures:
    """A session token whose user id is 200 characters; a moderator then mutes it."""
    from websockets.exceptions import InvalidStatus

    long_id = "u" * 200
    try:
        async with raw(server, long_id) as victim:
            await victim.join(server, long_id, "c1")
            async with raw(server, "mod") as moderator:
                await moderator.join(server, "mod", "c1", permissions=("send", "moderate"))
                reply = await moderator.request(
                    "moderate",
                    chat_id="c1",
                    member_id=long_id,
                    measure="mute",
                    duration=5,
                    reason=None,
                )
        return {"handshake": "accepted", "mute of it": reply.get("code") or "ok"}
    except InvalidStatus as error:
        return {"handshake": f"HTTP {error.response.status_code}", "mute of it": "-"}


async def duplicate_authorization(server: Server) -> Figures:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    token = server.session_token("alice")
    writer.write(
        (
            "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n"
            f"Authorization: Bearer {token}\r\nAuthorization: Bearer {token}\r\n\r\n"
        ).encode()
    )
    status = (await asyncio.wait_for(reader.readline(), 10)).decode().split()[1]
    writer.close()
    return {"HTTP status": int(status)}


INVISIBLE = ("\u200b", "\ufeff", "\u3164", "\u2800", "\u00ad")


async def invisible_content(server: Server) -> Figures:
    from chats_store.chats.validation import check_content

    accepted_by_client = 0
    for content in INVISIBLE:
        with contextlib.suppress(Exception):
            check_content(content, "send_message")
            accepted_by_client += 1
    async with raw(server, "alice") as alice:
        await alice.join(server, "alice", "c1")
        accepted = 0
        for index, content in enumerate(INVISIBLE):
            reply = await alice.request(
                "post", chat_id="c1", message_id=f"m{index}", content=content
            )
            accepted += reply["type"] == "ok"
    return {"accepted by the server": f"{accepted}/5", "by the client": f"{accepted_by_client}/5"}


async def restriction_flood(server: Server) -> Figures:
    """A moderator blocking made-up ids for 8 s (reconnecting as the rate limit needs),
    then the server restarted on the same file."""
    from websockets.exceptions import InvalidStatus

    accepted = 0
    counter = 0
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        try:
            async with raw(server, "mod") as moderator:
                await moderator.join(server, "mod", "c1", permissions=("send", "moderate"))
                ids = []
                for _ in range(199):
                    counter += 1
                    ids.append(
                        await moderator.send(
                            "moderate",
                            chat_id="c1",
                            member_id=f"ghost{counter}",
                            measure="block",
                            duration=60,
                            reason=None,
                        )
                    )
                for request_id in ids:
                    accepted += (await moderator.reply(request_id, 5))["type"] == "ok"
        except InvalidStatus:
            await asyncio.sleep(0.05)
        except Exception:
            pass
    server.stop()
    server.start()
    return {
        "restrictions in 8 s": accepted,
        "restart s": round(server.started_in, 2),
        "RSS after restart MB": round(server.rss_mib(), 1),
    }


SERVER_ATTACKS: dict[str, tuple[str, Callable[[Server], Awaitable[Figures]]]] = {
    "resume_amplification": (
        "4.7-7.7 MB resume, 369-406 reconnections in 20 s",
        resume_amplification,
    ),
    "history_never_reader": ("+161 MB for 190 pages", history_never_reader),
    "resumes_never_reader": ("+274 MB for 60 resumes", resumes_never_reader),
    "quiet_never_reader": ("never dropped (< 1,000 frames)", quiet_never_reader),
    "ping_flood": ("+341 MB for 377 MB of pings, never closed", ping_flood),
    "half_open_handshakes": ("+1 GB for 1,000", half_open_handshakes),
    "connections_from_one_address": ("no cap", connections_from_one_address),
    "reconnect_loop": ("110,047 accepted in 8 s (nominal 20/s)", reconnect_loop),
    "resumes_stall_bystanders": ("others stalled 7 s", resumes_stall_bystanders),
    "edit_then_resume_from_zero": ("original text served", edit_then_resume_from_zero),
    "wal_residue": ("deleted and pre-edit text in the WAL", wal_residue),
    "edit_without_send": ("accepted", edit_without_send),
    "long_user_id": ("accepted, then cannot be muted", long_user_id),
    "duplicate_authorization": ("HTTP 500 and a traceback", duplicate_authorization),
    "invisible_content": ("passes both sides", invisible_content),
    "restriction_flood": ("73,000 in 8 s, all re-armed at start", restriction_flood),
}


# Client attacks ---------------------------------------------------------------------------


async def protocol_breaking_server() -> Figures:
    """A server that completes each handshake, then sends a frame that is not JSON: how
    often the client reconnects (6 s)."""
    from websockets.asyncio.server import serve

    from chats_store import create_user, create_websocket
    from chats_store.server import mint_session_token

    handshakes = 0

    async def handler(connection: Any) -> None:
        nonlocal handshakes
        handshakes += 1
        with contextlib.suppress(Exception):
            await connection.send("this is not JSON")
            await connection.wait_closed()

    secret = secrets.token_urlsafe(32)
    async with serve(handler, "127.0.0.1", 0, subprotocols=[SUBPROTOCOL]) as hostile:  # type: ignore[list-item]
        port = hostile.sockets[0].getsockname()[1]
        from chats_store import ChatsConfig, create_chats

        websocket = create_websocket(open_timeout=5)
        chats = create_chats(
            user_module=create_user(mint_session_token(secret, "alice")),
            websocket_module=websocket,
            config=ChatsConfig(host=f"127.0.0.1:{port}"),
        )
        with contextlib.suppress(Exception):
            await websocket.connect()
        await asyncio.sleep(6)
        with contextlib.suppress(Exception):
            await websocket.disconnect()
        await chats.close()
    return {"reconnections in 6 s": handshakes, "per second": round(handshakes / 6)}


async def huge_number() -> Figures:
    """``1e400`` where the server's reply has a number."""
    from chats_store.chats.commands import PostMessageRequest
    from chats_store.protocol import ClientProtocol

    protocol = ClientProtocol()
    request_id = protocol.send_request(PostMessageRequest("c1", "m1", "hi"))
    protocol.data_to_send()
    frame = (
        f'{{"type":"ok","id":{request_id},"result":{{"id":"m1","chat_id":"c1",'
        '"author_id":"alice","content":"hi","seq":1,"created_at":1e400,"edited_at":null}}'
    )
    try:
        protocol.receive_data(frame)
        items = protocol.events_received()
    except Exception as error:
        return {"decoded as": f"refused: {type(error).__name__}"}
    result = getattr(items[0], "result", None) if items else None
    return {"decoded as": repr(getattr(result, "created_at", result))}


async def events_while_loading() -> Figures:
    """40,000 events for a chat that is loading, through the pure reducer."""
    from chats_store.chats.actions import ConnectionStatusChanged, JoinChat, MessagePosted
    from chats_store.chats.model import ChatsState, Message
    from chats_store.chats.reducer import chats_reducer

    reducer = chats_reducer()
    state = reducer(ChatsState(), ConnectionStatusChanged("connected")).state
    state = reducer(state, JoinChat(1, "c1", "token")).state
    started = time.perf_counter()
    outcome = "buffered"
    try:
        for seq in range(1, 40_001):
            message = Message(f"m{seq}", "c1", "bob", "hi", "ready", seq, 1.0)
            state = reducer(state, MessagePosted("c1", seq, message)).state
            if "c1" not in state.chats and outcome == "buffered":  # the join given up
                outcome = f"join failed after {seq - 1} events"
    except Exception as error:
        outcome = f"{type(error).__name__} after {seq}"
    return {"loop blocked s": round(time.perf_counter() - started, 2), "outcome": outcome}


async def terminal_sequences() -> Figures:
    """Message content with an OSC 52 clipboard write and a window title; a mute reason
    that is Textual markup."""
    from chats_store import tui
    from chats_store.chats.model import Message, Restriction

    content = "\x1b]52;c;ZWNobyBwd25lZA==\x07\x1b]0;pwned\x07hello"
    line = tui.render_message(Message("m1", "c1", "bob", content, "ready", 1, 1.0), "alice")
    escape = "\x1b" in line.plain
    describe = next(
        (
            getattr(tui, name)
            for name in dir(tui)
            if name.startswith("_describe") or name == "describe_restriction"
        ),
        None,
    )
    markup = "n/a"
    if describe is not None:
        from rich.errors import MarkupError
        from rich.markup import render

        try:
            text = describe(Restriction("mute", None, "[/]"), 0.0)
            # A client that gives its widgets Text (``_plain``) never parses markup; an
            # older one handed the string to a widget that did.
            plain = getattr(tui, "_plain", None)
            rendered = (
                plain(text)
                if plain is not None
                else render(text)
                if isinstance(text, str)
                else text
            )
            markup = "parsed, no error" if "[/]" not in str(rendered) else "shown as text"
        except MarkupError:
            markup = "MarkupError (the client crashes)"
    return {"escape sequence reaches the terminal": escape, "'[/]' mute reason": markup}


CLIENT_ATTACKS: dict[str, tuple[str, Callable[[], Awaitable[Figures]]]] = {
    "protocol_breaking_server": ("~6,000 reconnections in 6 s", protocol_breaking_server),
    "huge_number": ("inf, then a raw OverflowError", huge_number),
    "events_while_loading": ("40,000 events block 7 s", events_while_loading),
    "terminal_sequences": ("raw ESC/OSC; '[/]' crashes the TUI", terminal_sequences),
}


# One side: every attack, as JSON lines -----------------------------------------------------


async def run_side(only: set[str] | None) -> None:
    for name, (_, attack) in SERVER_ATTACKS.items():
        if only and name not in only:
            continue
        started = time.perf_counter()
        try:
            with server_process() as server:
                figures = await asyncio.wait_for(attack(server), 180)
        except Exception as error:
            figures = {"failed": f"{type(error).__name__}: {error}"[:200]}
            traceback.print_exc(file=sys.stderr)
        figures["run s"] = round(time.perf_counter() - started, 1)
        print(json.dumps({"attack": name, "figures": figures}), flush=True)
    for name, (_, client_attack) in CLIENT_ATTACKS.items():
        if only and name not in only:
            continue
        try:
            figures = await asyncio.wait_for(client_attack(), 60)
        except Exception as error:
            figures = {"failed": f"{type(error).__name__}: {error}"[:200]}
        print(json.dumps({"attack": name, "figures": figures}), flush=True)


# Both sides, one table ------------------------------------------------------------------------


def _side(tree: Path, only: str) -> dict[str, Figures]:
    command = [sys.executable, str(Path(__file__).resolve()), "--side"]
    if only:
        command += ["--only", only]
    done = subprocess.run(
        command,
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        check=False,
    )
    results = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            results[row["attack"]] = row["figures"]
    if done.returncode != 0:
        print(f"{tree}: exit {done.returncode}\n{done.stderr[-3000:]}", file=sys.stderr)
    return results


def _cell(figures: Figures | None) -> str:
    if figures is None:
        return "-"
    return "; ".join(f"{key}: {value}" for key, value in figures.items() if key != "run s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--base", default=DEFAULT_BASE, help=f"the revision before (default {DEFAULT_BASE})"
    )
    parser.add_argument("--only", default="", help="comma-separated attack names")
    parser.add_argument("--side", action="store_true", help="run the attacks of this tree only")
    args = parser.parse_args(argv)
    only = {name for name in args.only.split(",") if name} or None
    if args.side:
        asyncio.run(run_side(only))
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from compare_revisions import worktree

    with worktree(args.base) as base_tree:
        base = _side(base_tree, args.only)
        this = _side(ROOT, args.only)
    print(f"# Attacks: {args.base} (before) against the working tree (after)\n")
    print("| attack | the issue measured | before | after |")
    print("|---|---|---|---|")
    for name, (issue, _) in {**SERVER_ATTACKS, **CLIENT_ATTACKS}.items():
        if only and name not in only:
            continue
        print(f"| {name} | {issue} | {_cell(base.get(name))} | {_cell(this.get(name))} |")


if __name__ == "__main__":
    main()
