"""The soak: clients chatting through a faulty network and a restarting server.

``run_soak`` starts the reference server on a SQLite file behind a
:class:`~chats_store.testing.faults.FaultProxy`, connects clients through the
proxy (half with ``auto_resend``, half resending interrupted messages by hand),
joins every client to every chat, and has them send messages while a chaos task
cuts connections (one or all, sometimes between a request and its reply) and
restarts the server. Then it lets everything settle and compares every client's
``get_chat_messages`` with the server's history, read through the public API by a
fresh client paging back to the start.

Run the full soak (the issue's figures) with::

    python -m tests.soak.runner --messages 10000 --cuts 20 --restarts 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import secrets
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import attrs

from chats_store import (
    Chats,
    ChatsConfig,
    ChatsStoreError,
    Message,
    ReconnectPolicy,
    create_chats,
    create_user,
    create_websocket,
)
from chats_store.server import mint_chat_token, mint_session_token
from chats_store.testing.faults import FaultProxy, RestartableServer
from chats_store.websocket.module import WebSocket

__all__ = ["SoakReport", "run_soak"]

# Shorter than the defaults so that the soak spends its time chatting, not waiting.
RECONNECT = ReconnectPolicy(first_delay=0.1, min_delay=0.1, max_delay=0.5)
SETTLE_TIMEOUT = 60.0


@attrs.define
class SoakClient:
    user_id: str
    chats: Chats
    websocket: WebSocket
    auto_resend: bool
    created: set[str] = attrs.Factory(set)


@attrs.frozen
class SoakReport:
    """What happened, and what the comparison found (all zero when nothing was lost)."""

    clients: int
    chats: int
    messages_created: int
    messages_on_server: int
    cuts: int
    restarts: int
    seconds: float
    lost: int
    duplicated: int
    left_sending: int
    mismatched_views: int

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.duplicated == 0
            and self.left_sending == 0
            and self.mismatched_views == 0
            and self.messages_on_server == self.messages_created
        )

    def lines(self) -> list[str]:
        return [
            f"{self.clients} clients in {self.chats} chats; {self.messages_created} messages "
            f"created, {self.messages_on_server} on the server",
            f"{self.cuts} cuts, {self.restarts} server restarts, {self.seconds:.1f} s",
            f"lost {self.lost}, duplicated {self.duplicated}, left sending {self.left_sending}, "
            f"client views different from the server's history {self.mismatched_views}",
        ]


async def _eventually(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"soak: {what} not reached within {timeout} s")
        await asyncio.sleep(0.02)


def _messages(client: SoakClient, chat_id: str) -> tuple[Message, ...]:
    return client.chats.get_chat_messages(chat_id).value or ()


async def _sender(client: SoakClient, chat_ids: Sequence[str], quota: list[int]) -> None:
    """Send until the shared quota is used up; a send refused locally does not count."""
    rng = random.Random(client.user_id)
    while quota[0] > 0:
        chat_id = rng.choice(chat_ids)
        before = {m.id for m in _messages(client, chat_id)}
        quota[0] -= 1
        with contextlib.suppress(ChatsStoreError):  # counted below by what it created
            await client.chats.send_message(chat_id, f"{client.user_id} #{quota[0]}")
        mine = {m.id for m in _messages(client, chat_id) if m.author_id == client.user_id}
        created = mine - before - client.created
        client.created |= created
        if not created:
            quota[0] += 1  # refused before anything was created (not connected, reloading...)
            await asyncio.sleep(0.01)


async def _resend_interrupted(client: SoakClient, chat_ids: Sequence[str]) -> None:
    for chat_id in chat_ids:
        if client.chats.get_chat_status(chat_id).value != "ready":
            continue
        for message in _messages(client, chat_id):
            if message.status == "interrupted":
                try:
                    await client.chats.resend_message(chat_id, message.id)
                except ChatsStoreError:
                    return


async def _manual_resender(
    client: SoakClient, chat_ids: Sequence[str], stop: asyncio.Event
) -> None:
    while not stop.is_set():
        await _resend_interrupted(client, chat_ids)
        await asyncio.sleep(0.05)


async def _chaos(
    proxy: FaultProxy,
    server: RestartableServer,
    cuts: int,
    restarts: int,
    period: float,
    stop: asyncio.Event,
) -> int:
    """Cut ``cuts`` times and restart ``restarts`` times, spread over the run."""
    rng = random.Random(7)
    events = ["cut"] * cuts + ["restart"] * restarts
    rng.shuffle(events)
    done = 0
    for event in events:
        await asyncio.sleep(period * (0.5 + rng.random()))
        if stop.is_set():
            break
        if event == "restart":
            await server.restart(downtime=0.2)
        elif rng.random() < 0.3:
            # Between a request and its reply: hold the traffic, let requests go out, cut.
            proxy.pause()
            await asyncio.sleep(0.02)
            proxy.cut_all()
            proxy.resume()
            done += 1
        elif rng.random() < 0.5:
            done += proxy.cut_all() > 0
        else:
            done += proxy.cut_random(rng) is not None
    return done


async def _server_history(address: str, secret: str, chat_id: str) -> list[str]:
    """The server's whole history of ``chat_id``, read through the public API."""
    websocket = create_websocket()
    chats = create_chats(
        user_module=create_user(mint_session_token(secret, "verifier")),
        websocket_module=websocket,
        config=ChatsConfig(host=address),
    )
    async with websocket:
        await chats.join_chat(mint_chat_token(secret, "verifier", chat_id))
        while await chats.load_older_messages(chat_id, limit=200):
            pass
        ids = [m.id for m in chats.get_chat_messages(chat_id).value or ()]
        await chats.leave_chat(chat_id)
    await chats.close()
    return ids


async def run_soak(
    *,
    messages: int = 10_000,
    clients: int = 4,
    chats: int = 3,
    cuts: int = 20,
    restarts: int = 2,
    chaos_period: float = 0.3,
) -> SoakReport:
    """Run the soak and compare every client's view with the server's history."""
    secret = secrets.token_urlsafe(32)
    chat_ids = [f"soak-{n}" for n in range(chats)]
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as directory:
        db = Path(directory) / "soak.sqlite3"
        async with (
            RestartableServer(db, secret, rate_limit=None) as server,
            FaultProxy(server.host, server.port) as proxy,
        ):
            soak_clients: list[SoakClient] = []
            for n in range(clients):
                user_id = f"user{n}"
                websocket = create_websocket(reconnect=RECONNECT, open_timeout=5.0)
                client_chats = create_chats(
                    user_module=create_user(mint_session_token(secret, user_id)),
                    websocket_module=websocket,
                    config=ChatsConfig(
                        host=proxy.address, request_timeout=2.0, auto_resend=n % 2 == 0
                    ),
                )
                await websocket.connect()
                for chat_id in chat_ids:
                    await client_chats.join_chat(mint_chat_token(secret, user_id, chat_id))
                soak_clients.append(SoakClient(user_id, client_chats, websocket, n % 2 == 0))

            stop = asyncio.Event()
            quota = [messages]
            resenders = [
                asyncio.create_task(_manual_resender(c, chat_ids, stop))
                for c in soak_clients
                if not c.auto_resend
            ]
            chaos = asyncio.create_task(_chaos(proxy, server, cuts, restarts, chaos_period, stop))
            await asyncio.gather(*(_sender(c, chat_ids, quota) for c in soak_clients))
            cuts_done = await chaos
            stop.set()
            await asyncio.gather(*resenders)

            # Settle: everyone back, every chat ready, nothing pending.
            for client in soak_clients:
                await _eventually(
                    lambda c=client: c.websocket.status.value == "connected",
                    SETTLE_TIMEOUT,
                    f"{client.user_id} connected",
                )
            deadline = time.monotonic() + SETTLE_TIMEOUT
            while True:
                pending = [
                    (c, chat_id)
                    for c in soak_clients
                    for chat_id in chat_ids
                    if c.chats.get_chat_status(chat_id).value != "ready"
                    or any(m.status != "ready" for m in _messages(c, chat_id))
                ]
                if not pending or time.monotonic() > deadline:
                    break
                for client in soak_clients:
                    await _resend_interrupted(client, chat_ids)
                await asyncio.sleep(0.1)

            histories = {
                chat_id: await _server_history(server.address, secret, chat_id)
                for chat_id in chat_ids
            }
            on_server = [message_id for ids in histories.values() for message_id in ids]
            created = set().union(*(c.created for c in soak_clients))
            mismatched = sum(
                [m.id for m in _messages(c, chat_id)] != histories[chat_id]
                for c in soak_clients
                for chat_id in chat_ids
            )
            left_sending = sum(
                m.status != "ready"
                for c in soak_clients
                for chat_id in chat_ids
                for m in _messages(c, chat_id)
            )
            report = SoakReport(
                clients=clients,
                chats=chats,
                messages_created=len(created),
                messages_on_server=len(set(on_server)),
                cuts=cuts_done,
                restarts=server.restarts,
                seconds=time.monotonic() - started,
                lost=len(created - set(on_server)),
                duplicated=len(on_server) - len(set(on_server)),
                left_sending=left_sending,
                mismatched_views=mismatched,
            )
            for client in soak_clients:
                await client.websocket.disconnect()
                await client.chats.close()
            return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--chats", type=int, default=3)
    parser.add_argument("--cuts", type=int, default=20)
    parser.add_argument("--restarts", type=int, default=2)
    parser.add_argument("--chaos-period", type=float, default=0.3)
    args = parser.parse_args(argv)
    report = asyncio.run(
        run_soak(
            messages=args.messages,
            clients=args.clients,
            chats=args.chats,
            cuts=args.cuts,
            restarts=args.restarts,
            chaos_period=args.chaos_period,
        )
    )
    for line in report.lines():
        print(line)
    print("OK" if report.ok else "FAILED")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
