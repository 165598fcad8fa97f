"""Event-loop stalls of the server under a write lock and under a resume herd, beside today's.

Each scenario runs twice in one run: against the server of ``--base`` (a git
revision, default ``a2e30a3``, before issue 13: SQLite on the event loop) checked
out in a temporary worktree, and against this tree. The server runs in a process of
its own on an SQLite file (``--dir``), with a **probe** in its event loop (a task
that sleeps 10 ms and records how late it wakes: see ``server_process.py``); the
clients are bare WebSocket connections in this process. Reported: the probe's
lateness (p50, p99, max) over the measured phase, the requests answered and refused,
the slowest answer, and the connections dropped (closed during the phase).

* ``writers``: ``--writers`` (200) connections in ``--chats`` (50) chats post
  ``--rate`` messages per second each for ``--seconds`` (8); from the 2nd second a
  second process holds the database's write lock for ``--lock`` seconds (3).
* ``resumes``: ``--members`` (800) members of one chat, joined, then away (their
  connections closed) while ``--missed`` (900) messages are posted; they connect
  again (a few at a time, not measured), then all send their ``resume`` at once:
  each gets the 900 events it missed (about 200 KB of frames).

    python benchmarks/stalls.py                     # both scenarios (~2 min)
    python benchmarks/stalls.py --only resumes
    python benchmarks/stalls.py --quick             # small sizes, a few seconds

It asserts nothing about time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare_revisions import worktree
from server_process import (
    ROOT,
    SECRET,
    RawClient,
    ServerProcess,
    clients,
    error_code,
    is_ok,
    percentile,
)

from chats_store.chats.commands import JoinRequest, PostMessageRequest, ResumeRequest
from chats_store.server import mint_chat_token

_LOCKER = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
connection.execute("COMMIT")
"""


class Tally:
    """What the clients saw in a phase."""

    def __init__(self) -> None:
        self.answered = 0
        self.refused: Counter[str] = Counter()
        self.slowest = 0.0

    def record(self, reply: str, began: float) -> None:
        self.slowest = max(self.slowest, time.monotonic() - began)
        code = error_code(reply)
        if code is None:
            self.answered += 1
        else:
            self.refused[code] += 1


async def _join(client: RawClient, chat_id: str) -> dict[str, Any]:
    reply = await client.request(
        JoinRequest(chat_id, mint_chat_token(SECRET, client.user_id, chat_id))
    )
    assert is_ok(reply), reply
    result: dict[str, Any] = json.loads(reply)["result"]
    return result


async def writers(tree: Path, directory: Path, args: argparse.Namespace) -> dict[str, Any]:
    db = directory / "chats.sqlite3"
    tally = Tally()
    async with ServerProcess(tree, db=str(db), rate_limit=None) as server:
        users = [f"writer-{i}" for i in range(args.writers)]
        async with clients(server.address, users) as connections:
            for index, client in enumerate(connections):
                await _join(client, f"chat-{index % args.chats}")
            await server.freeze()  # as chats-store serve does once it is up
            await server.mark()
            began = time.monotonic()
            until = began + args.seconds

            async def write(index: int, client: RawClient) -> None:
                period = 1 / args.rate
                due = began + (index / len(connections)) * period
                sent = 0
                while due < until and not client.closed:
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                    started = time.monotonic()
                    chat_id = f"chat-{index % args.chats}"
                    request = PostMessageRequest(chat_id, f"{client.user_id}-{sent}", "x" * 40)
                    try:
                        tally.record(await client.request(request), started)
                    except ConnectionError:
                        return
                    sent += 1
                    due += period

            async def lock() -> None:
                await asyncio.sleep(min(2.0, args.seconds / 4))
                locker = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-c",
                    _LOCKER,
                    str(db),
                    str(args.lock),
                    stdout=asyncio.subprocess.PIPE,
                )
                await locker.communicate()

            await asyncio.gather(lock(), *(write(i, c) for i, c in enumerate(connections)))
            report = await server.report()
            dropped = sum(c.closed for c in connections)
    return _figures(report, tally, dropped)


async def resumes(tree: Path, directory: Path, args: argparse.Namespace) -> dict[str, Any]:
    tally = Tally()
    async with ServerProcess(tree, db=str(directory / "chats.sqlite3"), rate_limit=None) as server:
        users = [f"member-{i}" for i in range(args.members)]
        memberships: dict[str, str] = {}
        async with clients(server.address, users) as connections:
            for client in connections:
                memberships[client.user_id] = (await _join(client, "lobby"))["membership"]
        async with clients(server.address, ["poster"]) as (poster,):
            since_seq = (await _join(poster, "lobby"))["last_seq"]
            for index in range(args.missed):
                assert is_ok(
                    await poster.request(PostMessageRequest("lobby", f"m{index}", "y" * 60))
                )
        async with clients(server.address, users) as connections:
            await server.freeze()  # as chats-store serve does once it is up
            await server.mark()

            async def resume(client: RawClient) -> None:
                started = time.monotonic()
                request = ResumeRequest("lobby", memberships[client.user_id], since_seq)
                with contextlib.suppress(ConnectionError):
                    tally.record(await client.request(request), started)

            await asyncio.gather(*(resume(c) for c in connections))
            await asyncio.sleep(0.5)  # what the server still does after the last reply
            report = await server.report()
            dropped = sum(c.closed for c in connections)
    return _figures(report, tally, dropped)


def _figures(report: dict[str, Any], tally: Tally, dropped: int) -> dict[str, Any]:
    lateness = [1000 * value for value in report["lateness"]]
    full = [1000 * pause for generation, pause in report["gc_pauses"] if generation == 2]
    return {
        "p50": percentile(lateness, 0.5),
        "p99": percentile(lateness, 0.99),
        "max": max(lateness, default=0.0),
        "full_gcs": len(full),
        "longest_full_gc": max(full, default=0.0),
        "answered": tally.answered,
        "refused": dict(tally.refused),
        "slowest": tally.slowest,
        "dropped": dropped,
    }


SCENARIOS = {"writers": writers, "resumes": resumes}


async def run(args: argparse.Namespace) -> None:
    only = args.only.split(",") if args.only else list(SCENARIOS)
    with worktree(args.base) as base, tempfile.TemporaryDirectory(dir=args.dir) as temp:
        for name in only:
            print(f"\n## {name}: {_describe(name, args)}\n")
            print(
                "| server | probe p50 ms | p99 ms | max ms | answered | refused "
                "| slowest answer s | dropped | full GCs (longest ms) |"
            )
            print("|---|---:|---:|---:|---:|---|---:|---:|---:|")
            for side, tree in ((f"base ({args.base})", base), ("this tree", ROOT))[
                args.skip_base :
            ]:
                directory = Path(temp) / f"{name}-{side.split()[0]}"
                directory.mkdir()
                figures = await SCENARIOS[name](tree, directory, args)
                refused = ", ".join(f"{k} {v}" for k, v in figures["refused"].items()) or "0"
                print(
                    f"| {side} | {figures['p50']:.1f} | {figures['p99']:.1f} "
                    f"| {figures['max']:.0f} | "
                    f"{figures['answered']:,} | {refused} | {figures['slowest']:.2f} | "
                    f"{figures['dropped']} | {figures['full_gcs']} "
                    f"({figures['longest_full_gc']:.0f}) |",
                    flush=True,
                )


def _describe(name: str, args: argparse.Namespace) -> str:
    if name == "writers":
        return (
            f"{args.writers} writers in {args.chats} chats, {args.rate:g} posts/s each for "
            f"{args.seconds:g} s, another process holding the write lock for {args.lock:g} s"
        )
    return f"{args.members} members resume at once, {args.missed} events missed each"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="a2e30a3", help="the revision of today's figure")
    parser.add_argument("--only", default="", help="writers, resumes (comma-separated)")
    parser.add_argument("--dir", default=str(ROOT), help="where the databases go (a real disk)")
    parser.add_argument("--writers", type=int, default=200)
    parser.add_argument("--chats", type=int, default=50)
    parser.add_argument("--rate", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--lock", type=float, default=3.0)
    parser.add_argument("--members", type=int, default=800)
    parser.add_argument("--missed", type=int, default=900)
    parser.add_argument("--skip-base", action="store_true", help="this tree only")
    parser.add_argument("--quick", action="store_true", help="small sizes (a few seconds)")
    args = parser.parse_args()
    if args.quick:
        args.writers, args.chats, args.seconds, args.lock = 20, 5, 3.0, 1.0
        args.members, args.missed = 50, 100
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
