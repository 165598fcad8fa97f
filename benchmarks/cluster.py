"""Scale-out: 1, 2 and 4 server processes on PostgreSQL against one process on SQLite.

Each setup runs its server processes as ``chats-store serve --workers N`` does
(``run_server(reuse_port=True)`` on one port, one database; here without rate
limits, the load being this script's own), and the same load from this process:
``--chats`` chats, each with ``--receivers`` members that only read and
``--senders`` members that post as fast as their acks come back, with
``--window`` posts in flight each, for ``--seconds``. Connections land on the
processes as the kernel spreads them (``SO_REUSEPORT``).

It prints, per setup: posts acknowledged per second, deliveries per second (event
frames the receivers got), and per server process the CPU time it used per
second of the run, with the posts and deliveries per CPU-second of the server
processes and of PostgreSQL: the figures to size a bigger machine with (a
process is bound by one core: its event loop and its core's thread share the
GIL). Everything shares this machine's cores, the load generator and PostgreSQL
included. It asserts nothing about time.

    python benchmarks/cluster.py                  # SQLite, then PostgreSQL x 1, 2, 4
    python benchmarks/cluster.py --quick          # shorter, fewer clients
    python benchmarks/cluster.py --postgres postgresql://user@host/db   # a server of yours

Without ``--postgres`` it starts a throwaway PostgreSQL cluster (the Debian package
``postgresql``, as the tests do: ``tests/postgres.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server_process import ROOT, SECRET, RawClient, clients, is_ok

from chats_store.chats.commands import JoinRequest, PostMessageRequest
from chats_store.server import mint_chat_token

_SERVER = r"""
import asyncio, json, sys
from chats_store.server import run_server

options = json.loads(sys.argv[1])

async def main():
    async with run_server(**options) as server:
        print(json.dumps({"port": server.port}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""

_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _total_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += _cpu_seconds(pid)
    return total


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def _postgres_pids() -> list[int]:
    pids: list[int] = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/comm") as comm:
                if comm.read().strip() == "postgres":
                    pids.append(int(entry))
    return pids


def _reserve_port() -> socket.socket:
    reserved = socket.socket()
    reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    reserved.bind(("127.0.0.1", 0))
    return reserved


@contextlib.contextmanager
def servers(db: str, count: int) -> Iterator[tuple[int, list[int]]]:
    """``count`` server processes on one port and ``db``: (port, their pids)."""
    with _reserve_port() as reserved:
        port = int(reserved.getsockname()[1])
        options = {
            "port": port,
            "db": db,
            "secret": SECRET,
            "rate_limit": None,
            "max_connections_per_user": None,
            "reuse_port": True,
        }
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", _SERVER, json.dumps(options)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            for _ in range(count)
        ]
        try:
            for process in processes:
                assert process.stdout is not None
                json.loads(process.stdout.readline())
            yield port, [process.pid for process in processes]
        finally:
            for process in processes:
                assert process.stdin is not None
                process.stdin.close()
            for process in processes:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                if process.stdout is not None:
                    process.stdout.close()


@attrs.frozen
class Result:
    setup: str
    processes: int
    seconds: float
    posts: int
    refused: int
    deliveries: int
    server_cpu: tuple[float, ...]
    postgres_cpu: float
    load_cpu: float

    @property
    def posts_per_second(self) -> float:
        return self.posts / self.seconds

    @property
    def deliveries_per_second(self) -> float:
        return self.deliveries / self.seconds


@contextlib.asynccontextmanager
async def _members(
    address: str, chat_id: str, receivers: int, senders: int
) -> AsyncIterator[tuple[list[RawClient], list[RawClient]]]:
    names = [f"{chat_id}-r{n}" for n in range(receivers)] + [
        f"{chat_id}-s{n}" for n in range(senders)
    ]
    async with clients(address, names) as opened:
        for client in opened:
            token = mint_chat_token(SECRET, client.user_id, chat_id)
            reply = await client.request(JoinRequest(chat_id, token))
            assert is_ok(reply), reply
        yield opened[:receivers], opened[receivers:]


async def _sender(client: RawClient, chat_id: str, window: int, until: float) -> tuple[int, int]:
    """Post with ``window`` posts in flight until ``until``: (acknowledged, refused)."""
    acked = refused = 0

    async def lane() -> None:
        nonlocal acked, refused
        while time.monotonic() < until:
            reply = await client.request(PostMessageRequest(chat_id, str(uuid.uuid4()), "hello"))
            if is_ok(reply):
                acked += 1
            else:
                refused += 1

    await asyncio.gather(*(lane() for _ in range(window)))
    return acked, refused


async def run_load(
    setup: str, db: str, count: int, args: argparse.Namespace, postgres: list[int]
) -> Result:
    with servers(db, count) as (port, pids):
        address = f"127.0.0.1:{port}"
        async with contextlib.AsyncExitStack() as stack:
            chats = [f"chat{n}" for n in range(args.chats)]
            groups = [
                await stack.enter_async_context(
                    _members(address, chat_id, args.receivers, args.senders)
                )
                for chat_id in chats
            ]
            receivers = [r for group in groups for r in group[0]]
            await asyncio.sleep(0.5)
            before = sum(r.events for r in receivers)
            cpu_before = [_cpu_seconds(pid) for pid in pids]
            if postgres:
                postgres = _postgres_pids()  # the servers' backends are up by now
            pg_before = _total_cpu(postgres)
            load_before = _own_cpu()
            started = time.monotonic()
            until = started + args.seconds
            outcomes = await asyncio.gather(
                *(
                    _sender(sender, chat_id, args.window, until)
                    for chat_id, (_, senders) in zip(chats, groups, strict=True)
                    for sender in senders
                )
            )
            elapsed = time.monotonic() - started
            deliveries = sum(r.events for r in receivers) - before
            cpu = tuple(_cpu_seconds(pid) - b for pid, b in zip(pids, cpu_before, strict=True))
            pg = _total_cpu(postgres)
            load = _own_cpu() - load_before
    return Result(
        setup,
        count,
        elapsed,
        sum(a for a, _ in outcomes),
        sum(r for _, r in outcomes),
        deliveries,
        cpu,
        max(0.0, pg - pg_before),
        load,
    )


def _print(results: list[Result]) -> None:
    print(
        "| setup | processes | posts/s | deliveries/s | refused | server CPU per process "
        "(s per s) | posts per server CPU-s | deliveries per server CPU-s | PostgreSQL CPU "
        "(s per s) | load generator CPU (s per s) |"
    )
    print("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    for r in results:
        cpu = sum(r.server_cpu)
        per_process = ", ".join(f"{c / r.seconds:.2f}" for c in r.server_cpu)
        print(
            f"| {r.setup} | {r.processes} | {r.posts_per_second:,.0f} | "
            f"{r.deliveries_per_second:,.0f} | {r.refused} | {per_process} | "
            f"{r.posts / cpu:,.0f} | {r.deliveries / cpu:,.0f} | "
            f"{r.postgres_cpu / r.seconds:.2f} | {r.load_cpu / r.seconds:.2f} |"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--postgres", default=None, help="a PostgreSQL URL (default: a throwaway cluster)"
    )
    parser.add_argument("--processes", default="1,2,4", help="PostgreSQL setups (default: 1,2,4)")
    parser.add_argument("--chats", type=int, default=4)
    parser.add_argument("--receivers", type=int, default=25, help="per chat (default: 25)")
    parser.add_argument("--senders", type=int, default=2, help="per chat (default: 2)")
    parser.add_argument("--window", type=int, default=8, help="posts in flight per sender")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--quick", action="store_true", help="2 s per setup, 10 receivers")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.receivers = 2.0, 10
    counts = [int(n) for n in args.processes.split(",")]

    results: list[Result] = []
    with tempfile.TemporaryDirectory() as directory:
        db = str(Path(directory) / "cluster.sqlite3")
        results.append(await run_load("SQLite", db, 1, args, []))
        print(f"SQLite: {results[-1].posts_per_second:,.0f} posts/s", file=sys.stderr)
    with _postgres(args.postgres) as create_database:
        for count in counts:
            results.append(
                await run_load("PostgreSQL", create_database(), count, args, _postgres_pids())
            )
            print(
                f"PostgreSQL x {count}: {results[-1].posts_per_second:,.0f} posts/s",
                file=sys.stderr,
            )
    print(
        f"\n{args.chats} chats x ({args.receivers} receivers + {args.senders} senders, "
        f"{args.window} posts in flight each), {args.seconds:g} s per setup, "
        f"{os.cpu_count()} cores\n"
    )
    _print(results)


@contextlib.contextmanager
def _postgres(url: str | None) -> Iterator[Callable[[], str]]:
    """A function that makes a fresh database: in ``url``'s server, or a throwaway one."""
    if url is not None:
        import psycopg

        def create_in_server() -> str:
            name = f"cluster_bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(url, autocommit=True) as connection:
                connection.execute(f'CREATE DATABASE "{name}"')
            return url.rsplit("/", 1)[0] + "/" + name

        yield create_in_server
        return
    from tests.postgres import PostgresCluster

    cluster = PostgresCluster()
    cluster.start()
    try:
        yield cluster.new_database_url
    finally:
        cluster.stop()


if __name__ == "__main__":
    asyncio.run(main())
