"""The kill soak: a client process on a state file, killed with SIGKILL again and again.

The reference server runs in this process, on an SQLite file, with an observer: a
client of another user in both chats, which records every message event the server
pushes (each post, edit and delete the server applied, once). The client under test
is a real process (``tests.soak.kill_client``: the public API with
``ChatsConfig(state_file=...)``), driven through a pipe. Each round starts it on the
same file (it restores, resumes and finishes what the previous one left), sends it a
burst of random sends, edits and deletes, and kills it with SIGKILL at a random
moment. At the end a last process runs until nothing is in flight, and the ledger
of what the client accepted (an operation is *issued* once the process said its
intent was dispatched; one sent but not confirmed before the kill is *maybe*) is
compared with what the server applied:

* lost: an issued operation the server never applied;
* duplicated: an operation the server applied twice (a message posted twice under
  two ids, an edit applied twice, a delete applied twice), or one it applied that
  the client never made;
* reordered: a chat's messages, on the server, not in the order they were sent;
* mismatched: the last process does not show what the server has.

Run the full soak (the figures of ``docs/reliability.md``) with::

    python -m tests.soak.kill_soak --kills 200

``tests/soak/test_kill.py`` runs a short one, and the deterministic kill points.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs

from chats_store import ChatsConfig, create_chats, create_user, create_websocket
from chats_store.chats.actions import (
    ChatResumed,
    MessageEdited,
    MessagePosted,
    MessageRemoved,
)
from chats_store.server import ChatServer, run_server
from tests.soak.kill_client import KILL_AT

SECRET = "kill-soak-secret-that-is-long-enough-for-hs256"
USER = "ann"
CHATS = ("c1", "c2")
ROOT = Path(__file__).resolve().parent.parent.parent

View = dict[str, list[list[str]]]


class ClientProcess:
    """A ``tests.soak.kill_client`` process: JSON commands in, JSON lines out."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self._killed = False
        self.restore_seconds = 0.0
        self.recovered = 0
        self.restored: View = {}

    @classmethod
    async def start(
        cls, server: ChatServer, state_file: str, kill_at: str | None = None
    ) -> ClientProcess:
        """Start it; returns once it has restored its file (``restored``)."""
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop(KILL_AT, None)
        if kill_at is not None:
            env[KILL_AT] = kill_at
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.soak.kill_client",
            server.address,
            server.session_token(USER),
            state_file,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
            env=env,
        )
        client = cls(process)
        first = await client.read()
        assert first is not None and "restored" in first, first
        client.restored = first["restored"]
        client.restore_seconds = first["seconds"]
        client.recovered = first["recovered"]
        return client

    async def read(self) -> dict[str, Any] | None:
        """The next line it wrote, or None once it is gone."""
        assert self.process.stdout is not None
        line = await self.process.stdout.readline()
        return json.loads(line) if line else None

    async def ready(self) -> View | None:
        """Its view once every chat has resumed (None if it died first)."""
        answer = await self.read()
        return None if answer is None else answer["ready"]

    async def ask(self, **command: Any) -> dict[str, Any] | None:
        """Send ``command``; its answer, or None if the process died."""
        assert self.process.stdin is not None
        try:
            self.process.stdin.write((json.dumps(command) + "\n").encode())
            await self.process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            return None
        return await self.read()

    def kill(self) -> None:
        """SIGKILL, once. Not ``Process.kill``: its ``Popen.poll`` would reap a process
        that already died (the kill switch), behind the back of asyncio's child watcher."""
        if self.process.returncode is None and not self._killed:
            self._killed = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)

    async def ended(self) -> int:
        """Its exit status (``-SIGKILL`` when killed)."""
        return await self.process.wait()


@attrs.define
class Ledger:
    """What the client accepted, per chat, in the order it accepted it."""

    sends: dict[str, list[str]] = attrs.Factory(lambda: {chat: [] for chat in CHATS})
    contents: dict[str, str] = attrs.Factory(dict)
    chat_of: dict[str, str] = attrs.Factory(dict)
    edits: list[tuple[str, str]] = attrs.Factory(list)
    deletes: list[str] = attrs.Factory(list)
    maybe: set[tuple[str, str, str]] = attrs.Factory(set)
    """Operations sent to a process that died before it confirmed them: (kind, id, content)."""
    refused: int = 0
    serials: int = 0

    def serial(self) -> int:
        """A new number for an operation (message ids and edited contents are unique)."""
        self.serials += 1
        return self.serials

    @property
    def issued(self) -> int:
        return sum(len(ids) for ids in self.sends.values()) + len(self.edits) + len(self.deletes)

    def live_messages(self) -> list[str]:
        """Ids the client sent and did not delete (edit and delete targets)."""
        deleted = set(self.deletes) | {message_id for kind, message_id, _ in self.maybe}
        return [m for ids in self.sends.values() for m in ids if m not in deleted]


@attrs.define
class Observer:
    """Every message event the server pushed to the observer, per chat, in order."""

    posted: dict[str, list[tuple[str, str]]] = attrs.Factory(lambda: {c: [] for c in CHATS})
    edited: Counter[tuple[str, str]] = attrs.Factory(Counter)
    removed: Counter[str] = attrs.Factory(Counter)

    def __call__(self, action: Any, state: Any) -> None:
        events: tuple[Any, ...] = (action,)
        if isinstance(action, ChatResumed):
            events = action.resumption.events
        for event in events:
            if isinstance(event, MessagePosted):
                self.posted[event.chat_id].append((event.message.id, event.message.content))
            elif isinstance(event, MessageEdited):
                self.edited[event.message.id, event.message.content] += 1
            elif isinstance(event, MessageRemoved):
                self.removed[event.message_id] += 1


@attrs.frozen
class KillReport:
    kills: int
    issued: int
    maybe: int
    refused: int
    applied: int
    lost: int
    duplicated: int
    reordered: int
    mismatched: int
    restore_seconds: tuple[float, ...]
    recovered: tuple[int, ...]
    seconds: float

    def lines(self) -> list[str]:
        restores = sorted(self.restore_seconds)
        return [
            f"kills (SIGKILL):                  {self.kills}",
            f"operations issued:                {self.issued}",
            f"operations in flight at a kill, unconfirmed: {self.maybe}",
            f"calls refused by the client:      {self.refused}",
            f"restarts with operations to finish: {sum(1 for n in self.recovered if n)} "
            f"({sum(self.recovered)} operations recovered from the file)",
            f"operations applied by the server: {self.applied}",
            f"lost:                             {self.lost}",
            f"duplicated:                       {self.duplicated}",
            f"reordered:                        {self.reordered}",
            f"views not matching the server:    {self.mismatched}",
            f"restore from the file, median:    {statistics.median(restores) * 1000:.1f} ms",
            f"restore from the file, max:       {restores[-1] * 1000:.1f} ms",
            f"wall time:                        {self.seconds:.1f} s",
        ]


def verify(ledger: Ledger, observer: Observer, final: View) -> dict[str, int]:
    """Compare what the client accepted with what the server applied."""
    lost = duplicated = reordered = mismatched = 0
    maybe_ids = {(kind, message_id) for kind, message_id, _ in ledger.maybe}
    maybe_edits = {(m, content) for kind, m, content in ledger.maybe if kind == "edit"}
    applied = 0
    for chat in CHATS:
        posted = [message_id for message_id, _ in observer.posted[chat]]
        applied += len(posted)
        counts = Counter(content for _, content in observer.posted[chat])
        duplicated += sum(count - 1 for count in counts.values())
        known = set(ledger.sends[chat]) | {m for kind, m in maybe_ids if kind == "send"}
        duplicated += sum(1 for m in posted if m not in known)  # applied, never made
        lost += sum(1 for m in ledger.sends[chat] if m not in posted)
        issued_order = [m for m in ledger.sends[chat] if m in posted]
        if [m for m in posted if m in set(ledger.sends[chat])] != issued_order:
            reordered += 1
    for message_id, content in ledger.edits:
        count = observer.edited[message_id, content]
        lost += count == 0
        duplicated += max(0, count - 1)
    for (message_id, content), count in observer.edited.items():
        applied += count
        if (message_id, content) not in ledger.edits and (message_id, content) not in maybe_edits:
            duplicated += count
        elif (message_id, content) in maybe_edits:
            duplicated += max(0, count - 1)
    for message_id in ledger.deletes:
        lost += observer.removed[message_id] == 0
    for count in observer.removed.values():
        applied += count
        duplicated += max(0, count - 1)
    for chat in CHATS:
        expected = server_view(observer, chat)
        shown = [(m, content) for m, content, status in final.get(chat, []) if status == "ready"]
        mismatched += shown != expected
    return {
        "applied": applied,
        "lost": lost,
        "duplicated": duplicated,
        "reordered": reordered,
        "mismatched": mismatched,
    }


def server_view(observer: Observer, chat: str) -> list[tuple[str, str]]:
    """The chat's messages (id, content) after every event the observer saw."""
    contents: dict[str, str] = {}
    for message_id, content in observer.posted[chat]:
        contents[message_id] = content
    last_edit: dict[str, str] = {}
    for (message_id, content), _ in observer.edited.items():
        last_edit[message_id] = content  # edits come in order; the last one stands
    return [
        (m, last_edit.get(m, content))
        for m, content in contents.items()
        if observer.removed[m] == 0
    ]


@attrs.define
class World:
    server: ChatServer
    observer: Observer
    state_file: str
    ledger: Ledger = attrs.Factory(Ledger)
    restores: list[float] = attrs.Factory(list)
    recovered: list[int] = attrs.Factory(list)
    kills: int = 0

    async def start(self, kill_at: str | None = None) -> ClientProcess:
        client = await ClientProcess.start(self.server, self.state_file, kill_at)
        self.restores.append(client.restore_seconds)
        self.recovered.append(client.recovered)
        return client

    async def operate(self, client: ClientProcess, kind: str, chat: str, **fields: Any) -> bool:
        """Ask ``client`` for one operation and write it in the ledger; False if it died."""
        ledger = self.ledger
        serial = ledger.serial()
        message_id = fields.get("id", f"m{serial}")
        default = f"message {message_id} in {chat}" if kind == "send" else f"edit {serial}"
        content = fields.get("content", default)
        answer = await client.ask(op=kind, chat=chat, id=message_id, content=content)
        if answer is None:
            ledger.maybe.add((kind, message_id, content))
            if kind == "send":
                ledger.chat_of[message_id] = chat
            return False
        if "refused" in answer:
            ledger.refused += 1
            return True
        if kind == "send":
            ledger.sends[chat].append(message_id)
            ledger.contents[message_id] = content
            ledger.chat_of[message_id] = chat
        elif kind == "edit":
            ledger.edits.append((message_id, content))
        else:
            ledger.deletes.append(message_id)
        return True

    async def random_operation(self, client: ClientProcess, rng: random.Random) -> bool:
        live = self.ledger.live_messages()
        roll = rng.random()
        if live and roll < 0.15:
            target = rng.choice(live)
            return await self.operate(client, "edit", self.ledger.chat_of[target], id=target)
        if live and roll < 0.25:
            target = rng.choice(live)
            return await self.operate(client, "delete", self.ledger.chat_of[target], id=target)
        return await self.operate(client, "send", rng.choice(CHATS))

    async def finish(self) -> View:
        """A last process, run until nothing is in flight; what it shows."""
        client = await self.start()
        assert await client.ready() is not None
        answer = await client.ask(op="idle")
        assert answer is not None
        await client.ask(op="quit")
        await client.ended()
        await asyncio.sleep(0.2)  # the observer's last pushes
        view: View = answer["idle"]
        return view

    def report(self, final: View, started: float) -> KillReport:
        figures = verify(self.ledger, self.observer, final)
        return KillReport(
            kills=self.kills,
            issued=self.ledger.issued,
            maybe=len(self.ledger.maybe),
            refused=self.ledger.refused,
            restore_seconds=tuple(self.restores),
            recovered=tuple(self.recovered),
            seconds=time.perf_counter() - started,
            **figures,
        )


@asynccontextmanager
async def world(directory: str) -> AsyncIterator[World]:
    """The server, the observer in both chats, the client joined to both (one process)."""
    async with run_server(
        db=os.path.join(directory, "server.db"), secret=SECRET, rate_limit=None
    ) as server:
        websocket = create_websocket()
        observer = Observer()
        watching = create_chats(
            user_module=create_user(server.session_token("observer")),
            websocket_module=websocket,
            config=ChatsConfig(host=server.address),
        )
        watching.store.add_middleware(observer)
        await websocket.connect()
        for chat in CHATS:
            await watching.join_chat(server.chat_token("observer", chat))
        state = World(server, observer, os.path.join(directory, f"{USER}.state"))
        first = await state.start()
        assert await first.ready() is not None
        for chat in CHATS:
            assert await first.ask(op="join", token=server.chat_token(USER, chat)) == {
                "joined": chat
            }
        await first.ask(op="quit")
        await first.ended()
        try:
            yield state
        finally:
            await watching.close()
            await websocket.disconnect()


async def run_kill_soak(kills: int, seed: int = 0, burst: int = 12) -> KillReport:
    """``kills`` rounds of: start, a random burst of operations, SIGKILL at a random time."""
    rng = random.Random(seed)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as directory:
        async with world(directory) as state:
            for _ in range(kills):
                client = await state.start()
                if await client.ready() is None:
                    continue
                operations = rng.randint(1, burst)
                kill_after = rng.randint(0, operations)
                for number in range(operations):
                    if number == kill_after:
                        # Mid-burst, at a random point of the last operation's life.
                        asyncio.get_running_loop().call_later(rng.uniform(0, 0.02), client.kill)
                    if not await state.random_operation(client, rng):
                        break
                client.kill()
                assert await client.ended() == -signal.SIGKILL
                state.kills += 1
            final = await state.finish()
            return state.report(final, started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    report = asyncio.run(run_kill_soak(args.kills, args.seed))
    print("\n".join(report.lines()))
    return 0 if report.lost == report.duplicated == report.reordered == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
