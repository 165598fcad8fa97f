"""Server memory per idle connection, by compression policy (workload 8 of ``workloads.py``).

The reference server runs in a process of its own (SQLite in memory): the server
of ``--base`` (a git revision, default ``bc98088``, before the compression policy:
``websockets``' default permessage-deflate, every message compressed, a window kept
per direction per connection), checked out in a temporary worktree, and this
tree's with ``run_server(compression=None)`` (no permessage-deflate) and with
``compression=Compression()`` (the policy: no context kept between messages, frames
under 512 bytes uncompressed). Client processes open
``--connections`` connections (each a user of its own, offering permessage-deflate
as ``websockets`` clients and browsers do), join one of 10 chats (a snapshot of 50
messages each: a reply that is compressed), then stay idle. The figure is the
server's resident memory after they are idle minus before they connected, per
connection.

    python benchmarks/connection_memory.py                 # 2,000 connections
    python benchmarks/connection_memory.py --connections 200

It asserts nothing about size.
"""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare_revisions import worktree
from server_process import LOOPBACK_LIMITS, ROOT, stop_processes, tree_env

POLICIES = {
    "no compression": "None",
    "the policy (default)": "Compression()",
}
"""Label -> this tree's ``compression=`` argument, as Python source."""

CHATS = 10
HISTORY = 50

_SERVER = """
import asyncio, gc, json, sys
from chats_store.server import ServerLimits, run_server

secret, limits = sys.argv[1], json.loads(sys.argv[3])
chats, history = int(sys.argv[4]), int(sys.argv[5])
options = {}
if sys.argv[2] != "default":  # the revision's default otherwise (it may have no such option)
    from chats_store.server import Compression
    options["compression"] = eval(sys.argv[2])

def rss_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

async def main():
    async with run_server(
        port=0, secret=secret, rate_limit=None, max_connections_per_user=None,
        limits=ServerLimits(**limits), **options,
    ) as server:
        print(server.address, flush=True)
        loop = asyncio.get_running_loop()
        while await loop.run_in_executor(None, sys.stdin.readline):
            await asyncio.sleep(0.5)  # what the last connections started settles
            gc.collect()
            print(json.dumps({"rss_kib": rss_kib()}), flush=True)

asyncio.run(main())
"""

_CLIENTS = """
import asyncio, json, sys
from websockets.asyncio.client import connect
from chats_store.chats.commands import JoinRequest, PostMessageRequest
from chats_store.protocol.client import encode_request
from chats_store.protocol.frames import PROTOCOL_VERSION
from chats_store.server import mint_chat_token, mint_session_token

address, secret, first, count, chats, history = sys.argv[1:7]
first, count, chats, history = int(first), int(count), int(chats), int(history)

async def open_one(n, opened):
    user_id = f"u{n}"
    websocket = await connect(
        f"ws://{address}",
        additional_headers={"Authorization": f"Bearer {mint_session_token(secret, user_id)}"},
        subprotocols=[PROTOCOL_VERSION], max_size=None, open_timeout=120, ping_interval=None,
    )
    chat_id = f"chat-{n % chats}"
    token = mint_chat_token(secret, user_id, chat_id)
    await websocket.send(encode_request(1, JoinRequest(chat_id, token)))
    next_id = 2
    if n < chats:  # the first member of each chat writes its history
        for index in range(history):
            text = f"history message {index} of {chat_id}"
            post = PostMessageRequest(chat_id, f"m{index}", text)
            await websocket.send(encode_request(next_id, post))
            next_id += 1
    answered = 0
    while answered < next_id - 1:
        frame = json.loads(await websocket.recv())
        if "id" in frame:
            assert frame["type"] == "ok", frame
            answered += 1
    opened.append(websocket)

async def main():
    opened = []
    extensions = set()
    for start in range(first, first + count, 50):  # 50 handshakes at a time
        end = min(start + 50, first + count)
        await asyncio.gather(*(open_one(n, opened) for n in range(start, end)))
    for websocket in opened:
        extensions.update(
            e.name + (" without context takeover" if e.local_no_context_takeover else "")
            for e in websocket.protocol.extensions
        )
    async def drain(websocket):  # the server's later pushes (members amount) are read
        async for _ in websocket:
            pass
    tasks = [asyncio.create_task(drain(w)) for w in opened]
    print(json.dumps({"opened": len(opened), "extensions": sorted(extensions)}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


def measure(tree: Path, policy: str, connections: int, processes: int) -> dict[str, Any]:
    """Server RSS per idle connection (KiB): the server of ``tree`` under ``policy``
    (source of ``compression=``, or ``default``)."""
    secret = secrets.token_urlsafe(32)
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _SERVER,
            secret,
            policy,
            json.dumps(LOOPBACK_LIMITS | {"max_connections": None}),
            str(CHATS),
            str(HISTORY),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=tree_env(tree),
        cwd=tree,
    )
    assert server.stdin is not None and server.stdout is not None
    clients: list[subprocess.Popen[str]] = []
    try:
        address = server.stdout.readline().strip()

        def server_rss() -> int:
            assert server.stdin is not None and server.stdout is not None
            server.stdin.write("rss\n")
            server.stdin.flush()
            value: int = json.loads(server.stdout.readline())["rss_kib"]
            return value

        # A first round of chats and their history, so that what every server
        # allocates once (imports, caches, the database) is in the "before" figure.
        warm = _clients(address, secret, 0, CHATS, processes=1)
        clients += warm
        before = server_rss()
        per = -(-connections // processes)
        started = time.monotonic()
        clients += _clients(address, secret, CHATS, connections, processes, per=per)
        opened = [json.loads(_line(process)) for process in clients[len(warm) :]]
        seconds = time.monotonic() - started
        after = server_rss()
    finally:
        stop_processes(clients, server)
    count = sum(report["opened"] for report in opened)
    assert count == connections, (count, connections)
    extensions = sorted({e for report in opened for e in report["extensions"]})
    return {
        "kib_per_connection": (after - before) / connections,
        "server_rss_mib": after / 1024,
        "open_seconds": seconds,
        "extensions": extensions,
    }


def _clients(
    address: str, secret: str, first: int, count: int, processes: int, per: int | None = None
) -> list[subprocess.Popen[str]]:
    """Client processes opening ``count`` connections from user ``first`` on; for the
    warm-up (``per`` None) wait until they are open."""
    started = []
    step = per or count
    for start in range(first, first + count, step):
        n = min(step, first + count - start)
        started.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _CLIENTS,
                    address,
                    secret,
                    str(start),
                    str(n),
                    str(CHATS),
                    str(HISTORY),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    if per is None:
        for process in started:
            _line(process)
    return started


def _line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"a client process ended early (exit code {process.wait()})")
    return line


def workload_connections(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """Workload 8: the table of server memory per idle connection, by policy."""
    print(
        f"\n## Workload 8: server memory per idle connection, {args.connections:,} connections"
        f" (each joined to one of {CHATS} chats of {HISTORY} messages), by compression policy\n"
    )
    print("| server | KiB per connection | server RSS MiB | negotiated |")
    print("|---|---:|---:|---|")
    figures = {}
    with worktree(args.connections_base) as base:
        setups = [(f"before ({args.connections_base}): websockets' default", base, "default")]
        setups += [(f"{label}: `{policy}`", ROOT, policy) for label, policy in POLICIES.items()]
        for label, tree, policy in setups:
            measured = measure(tree, policy, args.connections, args.connection_processes)
            figures[label] = measured["kib_per_connection"]
            negotiated = ", ".join(measured["extensions"]) or "nothing"
            print(
                f"| {label} | {measured['kib_per_connection']:.1f} |"
                f" {measured['server_rss_mib']:.0f} | {negotiated} |",
                flush=True,
            )
    results["w8"] = figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=2_000)
    parser.add_argument("--connection-processes", type=int, default=2)
    parser.add_argument("--connections-base", default="bc98088", help="the revision before")
    workload_connections(parser.parse_args(), {})


if __name__ == "__main__":
    main()
