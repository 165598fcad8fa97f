"""Start-up: a cold start from the state file against a fresh join from the real server.

Workload: 100 chats x 1,000 messages (``--chats``, ``--messages``). The reference
server runs in this process on an SQLite file holding those chats (the messages
written through its storage interface, as its core would have: one seq and one
logged event each; the client user a member of every chat). The client's state file
keeps the same chats, their newest 1,000 messages each, and real membership
credentials: what a client in those chats writes.

Each start runs in a fresh process (``python benchmarks/startup.py --child ...``),
``--runs`` times each, interleaved, and is timed inside it, from just before
``create_chats`` to the moment every getter shows its chat (``chats_ids`` and the 7
per-chat getters subscribed, each chat's messages there):

* ``file``: ``create_chats`` on the state file: every chat shows at once (``reloading``),
  before any connection;
* ``file, resumed``: the same, then ``websocket.connect()`` until every chat has
  resumed from the server (``ready``);
* ``join``: no state file: ``websocket.connect()``, then ``join_chat`` of every chat
  (all at once) until every chat is ``ready``, with the newest 100 messages the
  join's snapshot brings (``load_older_messages`` would page the rest in).

The process's start and imports are not in the times (printed apart). Run from the
project root::

    python benchmarks/startup.py              # 100 chats x 1,000 messages, 5 runs each
    python benchmarks/startup.py --runs 3 --chats 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chats_store import Chats, ChatsConfig, create_chats, create_user, create_websocket  # noqa: E402

SECRET = "startup-benchmark-secret-long-enough-for-hs256"
USER = "ann"
AUTHOR = "bob"
TARGET_MS = 200.0
CHAT_GETTERS = (
    "get_chat_status",
    "get_chat_messages",
    "get_chat_members_amount",
    "get_chat_sync_statuses",
    "is_chat_syncing",
    "get_client_chat_member_metadata",
    "get_client_chat_member_restrictions",
)


def chat_id_of(index: int) -> str:
    return f"chat-{index:03d}"


# The child: one start, timed ------------------------------------------------------------


def showing(chats: Chats, chat_ids: list[str], status: str | None) -> bool:
    """Every getter shows every chat (with ``status`` if given)."""
    if list(chats.chats_ids.value) != chat_ids:
        return False
    for chat_id in chat_ids:
        if chats.get_chat_messages(chat_id).value is None:
            return False
        if status is not None and chats.get_chat_status(chat_id).value != status:
            return False
    return True


def complete(chats: Chats, chat_ids: list[str], messages: int) -> bool:
    """Every chat holds ``messages`` messages."""
    return all(len(chats.get_chat_messages(c).value or ()) >= messages for c in chat_ids)


async def child(
    mode: str, host: str, token: str, state_file: str, messages: int, tokens: list[str]
) -> None:
    chat_ids = sorted(chat_id_of(index) for index in range(len(tokens)))
    websocket = create_websocket()
    started = time.perf_counter()
    chats = create_chats(
        user_module=create_user(token),
        websocket_module=websocket,
        config=ChatsConfig(host=host, state_file=state_file if mode != "join" else None),
    )
    subscriptions = [chats.chats_ids.subscribe(lambda _: None)]
    for chat_id in chat_ids:
        for name in CHAT_GETTERS:
            subscriptions.append(getattr(chats, name)(chat_id).subscribe(lambda _: None))
    figures: dict[str, Any] = {}
    if mode != "join":
        assert showing(chats, chat_ids, "reloading")
        figures["shown_ms"] = (time.perf_counter() - started) * 1000
        figures["shown_per_chat"] = len(chats.get_chat_messages(chat_ids[0]).value or ())
    if mode == "file":
        while not complete(chats, chat_ids, messages):
            await asyncio.sleep(0)
        figures["complete_ms"] = (time.perf_counter() - started) * 1000
        figures["messages_per_chat"] = len(chats.get_chat_messages(chat_ids[0]).value or ())
    if mode in ("join", "resume"):
        await websocket.connect()
        if mode == "join":
            await asyncio.gather(*(chats.join_chat(t) for t in tokens))
        while not showing(chats, chat_ids, "ready") or (
            mode == "resume" and not complete(chats, chat_ids, messages)
        ):
            await asyncio.sleep(0.001)
        figures["ready_ms"] = (time.perf_counter() - started) * 1000
        shown = chats.get_chat_messages(chat_ids[0]).value
        figures["messages_per_chat"] = len(shown or ())
    for subscription in subscriptions:
        subscription.dispose()
    await websocket.disconnect()
    await chats.close()
    print(json.dumps(figures))


# The parent: the world, the runs, the table ---------------------------------------------


def populate(database_path: str, chats: int, messages: int) -> None:
    """The server's database: ``chats`` chats of ``messages`` messages by AUTHOR, USER a
    member of each (written through the storage interface, one transaction per chat)."""
    from chats_store.chats.actions import MembersAmountChanged, MessagePosted
    from chats_store.chats.model import Message
    from chats_store.server.database import ChatDatabase
    from chats_store.server.storage import Membership

    database = ChatDatabase(database_path)
    now = time.time()
    try:
        for index in range(chats):
            chat_id = chat_id_of(index)
            with database.transaction():
                for user_id in (AUTHOR, USER):
                    database.save_membership(
                        Membership(chat_id, user_id, frozenset({"send"}), {}), now
                    )
                    seq = database.next_seq(chat_id)
                    amount = database.members_amount(chat_id)
                    database.append_event(MembersAmountChanged(chat_id, seq, amount))
                for number in range(messages):
                    seq = database.next_seq(chat_id)
                    message = Message(
                        f"{chat_id}-m{number}",
                        chat_id,
                        AUTHOR,
                        f"message {number} of {chat_id}",
                        "ready",
                        seq,
                        now - messages + number,
                    )
                    database.insert_message(message)
                    database.append_event(MessagePosted(chat_id, seq, message))
    finally:
        database.close()


def write_state_file(path: str, server_db: str, server: Any, chats: int, messages: int) -> None:
    """The client's state file: the server's chats as a client in them keeps them."""
    from chats_store.chats.actions import ChatJoined, ChatSnapshot, JoinChat
    from chats_store.chats.model import ChatsState
    from chats_store.chats.persistence import StateFile
    from chats_store.chats.reducer import chats_reducer
    from chats_store.chats.server_clock import ServerClock
    from chats_store.server.database import ChatDatabase

    database = ChatDatabase(server_db)
    reduce = chats_reducer()
    state = ChatsState(connection="connected")
    try:
        for index in range(chats):
            chat_id = chat_id_of(index)
            snapshot = ChatSnapshot(
                messages=database.messages_before(chat_id, sys.maxsize, messages),
                members_amount=database.members_amount(chat_id),
                member_metadata={},
                restrictions=(),
                last_seq=database.last_seq(chat_id),
                membership=server.membership_token(USER, chat_id),
            )
            state = reduce(state, JoinChat(index + 1, chat_id, "token")).state
            state = reduce(state, ChatJoined(index + 1, chat_id, snapshot)).state
    finally:
        database.close()
    state_file = StateFile.open(path, USER, kept_messages=messages)
    state_file.follow(ChatsState(), ServerClock(time.time))
    state_file.record(None, state)
    state_file.close()


def run_child(mode: str, server: Any, state_file: str, chats: int, messages: int) -> dict[str, Any]:
    tokens = [server.chat_token(USER, chat_id_of(index)) for index in range(chats)]
    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            mode,
            server.address,
            server.session_token(USER),
            state_file,
            str(messages),
            *tokens,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if done.returncode:
        raise RuntimeError(f"the {mode} start failed:\n{done.stderr}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    figures["process_ms"] = (time.perf_counter() - started) * 1000
    return figures


async def measure(args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    from chats_store.server import run_server

    with tempfile.TemporaryDirectory() as directory:
        server_db = os.path.join(directory, "server.db")
        state_file = os.path.join(directory, "ann.state")
        started = time.perf_counter()
        populate(server_db, args.chats, args.messages)
        print(f"server database: {time.perf_counter() - started:.1f} s", file=sys.stderr)
        results: dict[str, list[dict[str, Any]]] = {"file": [], "resume": [], "join": []}
        async with run_server(db=server_db, secret=SECRET, rate_limit=None) as server:
            write_state_file(state_file, server_db, server, args.chats, args.messages)
            size = os.path.getsize(state_file)
            print(f"state file: {size / 2**20:.1f} MiB", file=sys.stderr)
            for run in range(args.runs):
                modes = ("file", "resume", "join") if run % 2 == 0 else ("join", "resume", "file")
                for mode in modes:
                    figures = await asyncio.to_thread(
                        run_child, mode, server, state_file, args.chats, args.messages
                    )
                    results[mode].append(figures)
                    print(f"run {run + 1} {mode}: {figures}", file=sys.stderr)
        return results


def median(results: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(figures[key] for figures in results))


def print_table(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> None:
    print(
        f"\n{args.chats} chats x {args.messages} messages, {args.runs} runs each, "
        "medians (ms from create_chats; the process start and imports apart)\n"
    )
    print(
        "| start | every getter showing | messages shown per chat | every message in memory "
        "| every chat ready | process |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    file, resume, join = results["file"], results["resume"], results["join"]
    rows = (
        ("state file, no connection", file, "shown_ms", "shown_per_chat", "complete_ms", None),
        ("state file, then resumed", resume, "shown_ms", "shown_per_chat", None, "ready_ms"),
        ("fresh join from the server", join, "ready_ms", "messages_per_chat", None, "ready_ms"),
    )
    for label, data, shown, per_chat, complete_key, ready in rows:
        cells = [
            f"{median(data, shown):.1f}",
            str(data[0][per_chat]),
            f"{median(data, complete_key):.1f}" if complete_key else "-",
            f"{median(data, ready):.1f}" if ready else "-",
            f"{median(data, 'process_ms'):.0f}",
        ]
        print(f"| {label} | " + " | ".join(cells) + " |")
    file_ms = median(file, "shown_ms")
    join_ms = median(join, "ready_ms")
    verdict = "met" if file_ms <= TARGET_MS else "MISSED"
    print(
        f"\nevery getter showing from the state file: {file_ms:.1f} ms (target "
        f"{TARGET_MS:.0f} ms: {verdict}); fresh join: {join_ms:.1f} ms ({join_ms / file_ms:.1f}x)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=100)
    parser.add_argument("--messages", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        mode, host, token, state_file, messages, *tokens = args.child
        asyncio.run(child(mode, host, token, state_file, int(messages), tokens))
        return
    print_table(asyncio.run(measure(args)), args)


if __name__ == "__main__":
    main()
