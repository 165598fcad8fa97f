"""``chats-store serve --workers N``: real processes on one port and one PostgreSQL database.

Each test starts the command as a user would, and connects real clients to its
port: the kernel spreads them over the workers (``SO_REUSEPORT``), and a test
reads which worker holds which connection from ``/proc`` (Linux), so that it can
make sure the clients of one chat are on different processes and kill one that
holds some of them.
"""

from __future__ import annotations

import asyncio
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress

import pytest

from chats_store import ChatsConfig, Message, create_chats, create_user, create_websocket
from chats_store.errors import ActionCallError, ActionError
from chats_store.server import mint_chat_token, mint_session_token
from chats_store.websocket.reconnect import ReconnectPolicy
from tests.e2e.conftest import SECRET, Client, eventually

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads the workers' sockets from /proc"
)

RECONNECT = ReconnectPolicy(first_delay=0.05, min_delay=0.05, max_delay=0.3)
STARTUP = 30.0
_LISTENING = re.compile(r"chats_store worker (\d+) \(pid (\d+)\) listening on ws://[^:]+:(\d+)")


class Cluster:
    """A running ``chats-store serve --workers N``: its port and its workers' pids."""

    def __init__(self, process: subprocess.Popen[str], count: int) -> None:
        self.process = process
        self.count = count
        self.lines: queue.Queue[str] = queue.Queue()
        self.workers: dict[int, int] = {}
        self.port = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def close(self) -> None:
        """After the process ended: the end of its output read, the pipe closed."""
        self._reader.join(5)
        assert self.process.stdout is not None
        self.process.stdout.close()

    def wait_listening(self, count: int | None = None) -> None:
        """Wait for ``count`` worker banners (default: every worker's)."""
        deadline = time.monotonic() + STARTUP
        wanted = count if count is not None else self.count
        seen = 0
        printed: list[str] = []
        while seen < wanted:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                ended = self.process.poll()
                state = "still runs" if ended is None else f"exited with {ended}"
                raise AssertionError(
                    f"{seen} of {wanted} workers listening after {STARTUP} s; the command"
                    f" {state} and printed {printed!r}"
                ) from None
            printed.append(line)
            match = _LISTENING.search(line)
            if match:
                index, pid, port = (int(group) for group in match.groups())
                self.workers[index] = pid
                self.port = port
                seen += 1

    def connections(self) -> dict[int, int]:
        """Established connections to the port, per worker index."""
        held = {index: _sockets_of(pid) for index, pid in self.workers.items()}
        counts = dict.fromkeys(self.workers, 0)
        for inode in _established_on(self.port):
            for index, inodes in held.items():
                if inode in inodes:
                    counts[index] += 1
        return counts


def _sockets_of(pid: int) -> set[str]:
    inodes: set[str] = set()
    with suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    return inodes


def _established_on(port: int) -> list[str]:
    inodes: list[str] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with suppress(OSError), open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == port and fields[3] == "01":  # ESTABLISHED, our side
                    inodes.append(fields[9])
    return inodes


@pytest.fixture
def cluster(postgres_url: str) -> Iterator[Cluster]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chats_store.cli",
            "serve",
            "--port",
            "0",
            "--workers",
            "2",
            "--db",
            postgres_url,
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "CHATS_STORE_SECRET": SECRET},
    )
    running = Cluster(process, 2)
    try:
        running.wait_listening()
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        running.close()


@asynccontextmanager
async def clients_on_both(cluster: Cluster, count: int) -> AsyncIterator[list[Client]]:
    """``count`` clients joined to chat c1, at least one on each worker."""
    clients: list[Client] = []
    try:
        for n in range(count * 4):
            if len(clients) >= count and all(cluster.connections().values()):
                break
            user_id = f"user{n}"
            websocket = create_websocket(reconnect=RECONNECT, open_timeout=5.0)
            chats = create_chats(
                user_module=create_user(mint_session_token(SECRET, user_id)),
                websocket_module=websocket,
                config=ChatsConfig(
                    host=f"127.0.0.1:{cluster.port}", request_timeout=3.0, auto_resend=True
                ),
            )
            await websocket.connect()
            await chats.join_chat(mint_chat_token(SECRET, user_id, "c1"))
            clients.append(Client(user_id, chats, websocket))
        assert all(cluster.connections().values()), cluster.connections()
        yield clients
    finally:
        for client in clients:
            await client.websocket.disconnect()
            await client.chats.close()


async def _send(client: Client, count: int) -> list[str]:
    """Make ``count`` messages one after the other; the ids of those acknowledged."""
    acked: list[str] = []
    made = 0
    while made < count:
        try:
            acked.append((await client.chats.send_message("c1", f"{client.user_id} {made}")).id)
        except ActionCallError:  # refused before it was made (not connected): again
            await asyncio.sleep(0.02)
            continue
        except ActionError:  # made, then interrupted: auto_resend sends it again
            pass
        made += 1
        await asyncio.sleep(0.005)
    return acked


def _settled(clients: list[Client]) -> bool:
    return all(
        client.websocket.status.value == "connected"
        and client.chats.get_chat_status("c1").value == "ready"
        and all(m.status == "ready" for m in client.messages())
        for client in clients
    )


def _history(client: Client) -> list[tuple[str, int | None]]:
    return [(m.id, m.seq) for m in client.messages()]


def _mine(client: Client) -> set[str]:
    return {m.id for m in client.messages() if m.author_id == client.user_id}


async def test_clients_on_different_workers_converge_on_one_history(cluster: Cluster) -> None:
    async with clients_on_both(cluster, 4) as clients:
        sent = await asyncio.gather(*(_send(client, 10) for client in clients))

        await eventually(lambda: len(clients[0].messages()) == 10 * len(clients), timeout=10)
        await eventually(lambda: all(c.messages() == clients[0].messages() for c in clients))
        history: list[Message] = list(clients[0].messages())
        seqs = [m.seq for m in history]
        assert seqs == sorted(seqs) and None not in seqs
        assert {m.id for m in history} == {i for ids in sent for i in ids}


async def test_a_killed_worker_loses_and_duplicates_nothing(cluster: Cluster) -> None:
    async with clients_on_both(cluster, 4) as clients:
        on_worker = cluster.connections()
        victim = max(on_worker, key=lambda index: on_worker[index])
        sending = [asyncio.ensure_future(_send(client, 25)) for client in clients]
        await eventually(lambda: len(clients[0].messages()) >= 20, timeout=10)

        os.kill(cluster.workers[victim], signal.SIGKILL)  # mid-stream
        acked = [i for ids in await asyncio.gather(*sending) for i in ids]
        await eventually(lambda: _settled(clients), timeout=30)
        await eventually(lambda: all(_history(c) == _history(clients[0]) for c in clients))

        history = clients[0].messages()
        ids = [m.id for m in history]
        assert len(ids) == len(set(ids)) == 25 * len(clients)  # nothing lost, nothing twice
        assert set(acked) <= set(ids)
        for client in clients:
            assert len(_mine(client)) == 25
        cluster.wait_listening(1)  # the supervisor started the worker again
        assert cluster.process.poll() is None


async def test_sigterm_stops_every_worker(cluster: Cluster) -> None:
    pids = list(cluster.workers.values())
    cluster.process.send_signal(signal.SIGTERM)

    assert await asyncio.to_thread(cluster.process.wait, 20) == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_workers_on_sqlite_are_refused_saying_why(tmp_path: object) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chats_store.cli", "serve", "--workers", "2", "--db", "x.db"],
        capture_output=True,
        text=True,
        env={**os.environ, "CHATS_STORE_SECRET": SECRET},
        check=False,
        timeout=30,
    )

    assert result.returncode == 2
    assert "--workers 2 needs a PostgreSQL database" in result.stderr
