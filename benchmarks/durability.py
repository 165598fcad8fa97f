"""What durable acks cost: posts per second with and without them, beside today's, in one run.

Three servers, each in a process of its own on an SQLite file in a fresh
directory of ``--dir`` (a real disk: on tmpfs an fsync costs nothing):

* **base**: the server of ``--base`` (a git revision, default ``a2e30a3``, the code
  before issue 13), checked out in a temporary worktree: ``synchronous=NORMAL``,
  no fsync at commit, everything on the event loop;
* **not durable**: this tree with ``run_server(durable=False)`` (``NORMAL``, the
  worker thread and its group commit);
* **durable**: this tree as it ships (``synchronous=FULL``: a request is answered
  once its commit is fsynced; the requests that arrive together share one).

For each, ``S`` senders (``--senders``, default 1 and 100), each a bare WebSocket
connection in a chat of its own, post one message after another (the next once
the previous is acknowledged) for ``--seconds``; posts per second = acknowledged
posts / seconds. The clients run in this process (it needs only this tree
installed, or run from a clone). It asserts nothing about time.

    python benchmarks/durability.py                # ~1 min
    python benchmarks/durability.py --seconds 1    # quick
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare_revisions import worktree
from server_process import (
    ROOT,
    SECRET,
    RawClient,
    ServerProcess,
    clients,
    is_ok,
)

from chats_store.chats.commands import JoinRequest, PostMessageRequest
from chats_store.server import mint_chat_token


async def _sender(client: RawClient, chat_id: str, until: float) -> int:
    sent = 0
    while time.monotonic() < until:
        reply = await client.request(
            PostMessageRequest(chat_id, f"{client.user_id}-{sent}", "x" * 40)
        )
        assert is_ok(reply), reply
        sent += 1
    return sent


async def posts_per_second(
    tree: Path, directory: Path, senders: int, seconds: float, **options: object
) -> float:
    async with ServerProcess(
        tree, db=str(directory / "chats.sqlite3"), rate_limit=None, **options
    ) as server:
        users = [f"sender-{i}" for i in range(senders)]
        async with clients(server.address, users) as connections:
            for client in connections:
                token = mint_chat_token(SECRET, client.user_id, f"chat-{client.user_id}")
                assert is_ok(await client.request(JoinRequest(f"chat-{client.user_id}", token)))
            until = time.monotonic() + seconds
            counts = await asyncio.gather(
                *(_sender(c, f"chat-{c.user_id}", until) for c in connections)
            )
    return sum(counts) / seconds


async def run(args: argparse.Namespace) -> None:
    with worktree(args.base) as base, tempfile.TemporaryDirectory(dir=args.dir) as temp:
        contenders = [
            (f"base ({args.base}): NORMAL, on the loop", base, {}),
            ("this tree, durable=False: NORMAL, worker", ROOT, {"durable": False}),
            ("this tree, durable (default): FULL, group commit", ROOT, {}),
        ]
        print(f"## Posts per second, {args.seconds:g} s each (posts acknowledged / s)\n")
        header = " | ".join(f"{s} sender{'s' if s > 1 else ''}" for s in args.senders)
        print(f"| server | {header} |")
        print("|---|" + "---:|" * len(args.senders))
        for run_index, (name, tree, options) in enumerate(contenders):
            rates = []
            for senders in args.senders:
                directory = Path(temp) / f"{run_index}-{senders}"
                directory.mkdir()
                rates.append(
                    await posts_per_second(tree, directory, senders, args.seconds, **options)
                )
            print(f"| {name} | " + " | ".join(f"{rate:,.0f}" for rate in rates) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="a2e30a3", help="the revision of today's figure")
    parser.add_argument(
        "--senders", type=lambda s: [int(x) for x in s.split(",")], default=[1, 100]
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--dir", default=str(ROOT), help="where the databases go (a real disk)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
