"""The reference server of a source tree in a process of its own, probed, for the benchmarks.

:class:`ServerProcess` runs ``run_server`` of the ``chats_store`` found in ``tree``
(this working tree, or another revision checked out by ``compare_revisions.worktree``), with the
options given (those that revision's ``run_server`` does not take are left out and
listed in ``ignored``), and a **probe** in the server's own event loop: a task that
sleeps 10 ms again and again and records how late it wakes up, which is how long
the loop was kept from running it. ``mark()`` starts a measured phase, ``report()``
gives the probe's figures since then (and the garbage collector's pauses).

:class:`RawClient` is a bare ``websockets`` connection that writes requests with
this tree's protocol codec and reads replies by their ``id`` without decoding
them (a catch-up of a thousand events is read as text, so the clients' process
spends its time on the network, not on JSON).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from chats_store.chats.commands import ChatRequest
from chats_store.protocol import PROTOCOL_VERSION, encode_request
from chats_store.server import mint_session_token

ROOT = Path(__file__).resolve().parent.parent
SECRET = "benchmark-secret-that-is-long-enough-for-hs256"
LOOPBACK_LIMITS = {
    "max_handshakes_per_ip": None,
    "handshake_rate_per_ip": None,
    "max_connections_per_ip": None,
}
"""Every client of a benchmark comes from one address (loopback): the limits per
address of a revision that has them would make them queue for their handshakes."""

_SERVER = r"""
import asyncio, gc, inspect, json, sys, threading, time
from chats_store.server import run_server

options = json.loads(sys.argv[1])
PERIOD = 0.01

async def main():
    loop = asyncio.get_running_loop()
    lateness, pauses, gc_started = [], [], []

    def on_gc(phase, info):
        if phase == "start":
            gc_started.append(time.perf_counter())
        elif gc_started:
            pauses.append((info["generation"], time.perf_counter() - gc_started.pop()))

    gc.callbacks.append(on_gc)

    async def probe():
        while True:
            began = time.monotonic()
            await asyncio.sleep(PERIOD)
            lateness.append(time.monotonic() - began - PERIOD)

    def command(line):
        if line == "mark":
            lateness.clear()
            pauses.clear()
            print(json.dumps({"marked": True}), flush=True)
        elif line == "report":
            print(json.dumps({"lateness": lateness, "gc_pauses": pauses}), flush=True)
        elif line == "gc.freeze":
            gc.freeze()
            print(json.dumps({"frozen": gc.get_freeze_count()}), flush=True)

    def read_commands():
        for line in sys.stdin:
            loop.call_soon_threadsafe(command, line.strip())
        loop.call_soon_threadsafe(stop.set)

    stop = asyncio.Event()
    supported = inspect.signature(run_server).parameters
    kwargs = {k: v for k, v in options.items() if k in supported}
    ignored = sorted(set(options) - set(kwargs))
    if "limits" in kwargs:  # a revision with ServerLimits: given as a dict of its fields
        from chats_store.server import ServerLimits
        kwargs["limits"] = ServerLimits(**kwargs["limits"])
    async with run_server(**kwargs) as server:
        print(json.dumps({"address": server.address, "ignored": ignored}), flush=True)
        task = asyncio.create_task(probe())
        threading.Thread(target=read_commands, daemon=True).start()
        await stop.wait()
        task.cancel()

asyncio.run(main())
"""


def stop_processes(clients: Iterable[subprocess.Popen[Any]], server: subprocess.Popen[Any]) -> None:
    """Kill the client processes, then stop the server (SIGTERM) and wait for all of them."""
    for process in clients:
        process.kill()
        process.wait(timeout=10)
    server.terminate()
    server.wait(timeout=30)


def tree_env(tree: Path) -> dict[str, str]:
    """The environment of a process that imports ``chats_store`` from ``tree``."""
    return {"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"}


def percentile(samples: list[float], fraction: float) -> float:
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class ServerProcess:
    """``run_server(**options)`` of ``tree`` in a subprocess (see the module)."""

    def __init__(self, tree: Path, **options: Any) -> None:
        self.tree = tree
        self.options = {"secret": SECRET, "port": 0, "limits": LOOPBACK_LIMITS, **options}
        self.address = ""
        self.ignored: list[str] = []
        self.pid = 0
        self._process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> ServerProcess:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _SERVER,
            json.dumps(self.options),
            cwd=self.tree,
            env=tree_env(self.tree),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=2**26,
        )
        self.pid = self._process.pid
        started = await self._line()
        self.address, self.ignored = started["address"], started["ignored"]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        process = self._process
        assert process is not None and process.stdin is not None
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def _command(self, command: str) -> dict[str, Any]:
        process = self._process
        assert process is not None and process.stdin is not None
        process.stdin.write(command.encode() + b"\n")
        await process.stdin.drain()
        return await self._line()

    async def _line(self) -> dict[str, Any]:
        process = self._process
        assert process is not None and process.stdout is not None
        line = await process.stdout.readline()
        if not line:
            raise RuntimeError(f"the server of {self.tree} ended")
        result: dict[str, Any] = json.loads(line)
        return result

    async def mark(self) -> None:
        """Start a measured phase: the probe forgets what it saw before."""
        await self._command("mark")

    async def freeze(self) -> int:
        """``gc.freeze()`` in the server; how many objects it froze."""
        return int((await self._command("gc.freeze"))["frozen"])

    async def report(self) -> dict[str, Any]:
        """The probe's lateness (seconds, each wake-up) and GC pauses since :meth:`mark`."""
        return await self._command("report")


_REPLY_HEAD = re.compile(r'^\{"type":"(ok|error)","id":(\d+)')


class RawClient:
    """One user's bare connection: requests out, replies by id (as text), events counted."""

    def __init__(self, user_id: str, connection: ClientConnection) -> None:
        self.user_id = user_id
        self.connection = connection
        self.events = 0
        self.closed = False
        self._ids = 0
        self._waiting: dict[int, asyncio.Future[str]] = {}
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, address: str, user_id: str, **options: Any) -> RawClient:
        connection = await connect(
            f"ws://{address}",
            subprotocols=[Subprotocol(PROTOCOL_VERSION)],
            additional_headers={"Authorization": f"Bearer {mint_session_token(SECRET, user_id)}"},
            max_size=2**23,
            open_timeout=60,
            **options,
        )
        return cls(user_id, connection)

    async def _read(self) -> None:
        try:
            async for text in self.connection:
                assert isinstance(text, str)
                head = _REPLY_HEAD.match(text)
                if head is None:
                    self.events += 1
                    continue
                waiter = self._waiting.pop(int(head.group(2)), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(text)
        except ConnectionClosed:
            pass
        finally:
            self.closed = True
            for waiter in self._waiting.values():
                if not waiter.done():
                    waiter.set_exception(ConnectionError(f"{self.user_id}'s connection closed"))

    async def request(self, request: ChatRequest) -> str:
        """The reply's text (``ok`` or ``error``); ConnectionError if the connection closed."""
        self._ids += 1
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting[self._ids] = waiter
        await self.connection.send(encode_request(self._ids, request))
        return await waiter

    async def close(self) -> None:
        await self.connection.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@contextlib.asynccontextmanager
async def clients(
    address: str, user_ids: list[str], **options: Any
) -> AsyncIterator[list[RawClient]]:
    """Connections of ``user_ids`` (opened 50 at a time), closed afterwards."""
    opened: list[RawClient] = []
    try:
        for start in range(0, len(user_ids), 50):
            batch = user_ids[start : start + 50]
            opened += await asyncio.gather(*(RawClient.open(address, u, **options) for u in batch))
        yield opened
    finally:
        await asyncio.gather(*(c.close() for c in opened), return_exceptions=True)


def is_ok(reply: str) -> bool:
    return reply.startswith('{"type":"ok"')


def error_code(reply: str) -> str | None:
    if is_ok(reply):
        return None
    code = json.loads(reply).get("code")
    return str(code)
