"""Load: many real clients on one reference server process over loopback.

The server runs in its own process (``chats-store serve`` on a temporary SQLite
file); the clients run in this process, each a full ``create_chats`` client with
its own WebSocket connection. Clients are spread over chats; members take turns
sending, and every other member's ``get_chat_messages`` getter is watched: the
delivery latency of a message to a member is the time from the start of
``send_message`` to that member's getter emitting a value that contains it.

    python benchmarks/load.py                      # 1,000 clients in 10 chats
    python benchmarks/load.py --clients 200 --quick

It prints the figures and asserts nothing about time. Both processes share the
machine's 2 cores, so the latency includes the clients' own work of decoding and
reducing every delivered message (99 deliveries per message in a chat of 100).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from chats_store import Chats, ChatsConfig, create_chats, create_user, create_websocket  # noqa: E402
from chats_store.server import mint_chat_token, mint_session_token  # noqa: E402
from chats_store.websocket.module import WebSocket  # noqa: E402


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(secret: str, db: Path) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chats_store.cli",
            "serve",
            "--port",
            "0",
            "--db",
            str(db),
            # Every client of the benchmark comes from one address (loopback): the
            # limits per address would make them queue for their handshakes.
            *("--max-handshakes-per-ip", "none", "--handshake-rate-per-ip", "none"),
            *("--max-connections-per-ip", "none"),
        ],
        env={**os.environ, "CHATS_STORE_SECRET": secret},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    line = server.stdout.readline()
    if "listening on ws://" not in line:
        server.kill()
        raise RuntimeError(f"the server did not start: {line!r}")
    address = line.split("ws://", 1)[1].split()[0]
    return server, address


async def run(args: argparse.Namespace) -> dict[str, Any]:
    secret = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory() as directory:
        server, address = start_server(secret, Path(directory) / "load.sqlite3")
        try:
            return await drive(args, secret, address, server.pid)
        finally:
            server.terminate()
            server.wait(timeout=10)


async def drive(
    args: argparse.Namespace, secret: str, address: str, server_pid: int
) -> dict[str, Any]:
    clients: list[tuple[str, str, Chats, WebSocket]] = []
    rss_before = rss_mib(os.getpid())
    started = time.perf_counter()
    for n in range(args.clients):
        user_id = f"user{n}"
        websocket = create_websocket(open_timeout=30)
        chats = create_chats(
            user_module=create_user(mint_session_token(secret, user_id)),
            websocket_module=websocket,
            config=ChatsConfig(host=address, request_timeout=30),
        )
        clients.append((user_id, f"chat{n % args.chats}", chats, websocket))
    for batch in range(0, len(clients), 100):
        await asyncio.gather(*(ws.connect() for _, _, _, ws in clients[batch : batch + 100]))
    connected = time.perf_counter()
    for batch in range(0, len(clients), 100):
        await asyncio.gather(
            *(
                chats.join_chat(mint_chat_token(secret, user_id, chat_id))
                for user_id, chat_id, chats, _ in clients[batch : batch + 100]
            )
        )
    joined = time.perf_counter()

    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    seen: set[tuple[str, str]] = set()

    def watch(user_id: str, chats: Chats, chat_id: str) -> None:
        def on_messages(messages: Any) -> None:
            if not messages:
                return
            last = messages[-1]
            start = sent_at.get(last.id)
            if start is not None and last.author_id != user_id and (user_id, last.id) not in seen:
                seen.add((user_id, last.id))
                latencies.append(time.perf_counter() - start)

        chats.get_chat_messages(chat_id).subscribe(on_messages)

    for user_id, chat_id, chats, _ in clients:
        watch(user_id, chats, chat_id)

    members: dict[str, list[tuple[str, Chats]]] = {}
    for user_id, chat_id, chats, _ in clients:
        members.setdefault(chat_id, []).append((user_id, chats))
    rng = random.Random(1)

    async def chat_traffic(chat_id: str) -> None:
        for _ in range(args.messages_per_chat):
            _, chats = rng.choice(members[chat_id])
            started_at = time.perf_counter()
            message_id_holder: list[str] = []

            def remember(
                messages: Any, holder: list[str] = message_id_holder, at: float = started_at
            ) -> None:
                if messages and not holder and messages[-1].status == "sending":
                    holder.append(messages[-1].id)
                    sent_at[messages[-1].id] = at

            subscription = chats.get_chat_messages(chat_id).subscribe(remember)
            await chats.send_message(chat_id, "load test message")
            subscription.dispose()
            await asyncio.sleep(args.interval)

    traffic_started = time.perf_counter()
    await asyncio.gather(*(chat_traffic(chat_id) for chat_id in members))
    expected = sum(len(m) - 1 for m in members.values()) * args.messages_per_chat
    deadline = time.perf_counter() + 30
    while len(latencies) < expected and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    traffic_seconds = time.perf_counter() - traffic_started
    client_rss = rss_mib(os.getpid()) - rss_before
    server_rss = rss_mib(server_pid)
    for _, _, chats, websocket in clients:
        await websocket.disconnect()
        await chats.close()
    ms = sorted(latency * 1000 for latency in latencies)
    return {
        "clients": args.clients,
        "chats": len(members),
        "messages": args.messages_per_chat * len(members),
        "deliveries expected": expected,
        "deliveries seen": len(ms),
        "connect s": connected - started,
        "join s": joined - connected,
        "traffic s": traffic_seconds,
        "p50 ms": statistics.median(ms) if ms else float("nan"),
        "p90 ms": ms[int(len(ms) * 0.9)] if ms else float("nan"),
        "p99 ms": ms[int(len(ms) * 0.99)] if ms else float("nan"),
        "max ms": ms[-1] if ms else float("nan"),
        "server RSS MiB": server_rss,
        "clients RSS MiB (growth)": client_rss,
        "client KiB each": client_rss * 1024 / args.clients,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--chats", type=int, default=10)
    parser.add_argument("--messages-per-chat", type=int, default=20)
    parser.add_argument(
        "--interval", type=float, default=0.2, help="seconds between sends in a chat"
    )
    parser.add_argument("--quick", action="store_true", help="50 clients, 5 messages per chat")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.chats, args.messages_per_chat, args.interval = 50, 5, 5, 0.05
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    figures = asyncio.run(run(args))
    width = max(len(name) for name in figures)
    for name, value in figures.items():
        shown = f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"
        print(f"{name:<{width}}  {shown}")


if __name__ == "__main__":
    main()
