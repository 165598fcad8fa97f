"""The restored-server scenario: clients online and away meet a server put back to an older copy.

The real server runs on an SQLite file; a writer, an ``online`` member and an
``away`` member have joined. 10 messages are posted, then a copy of the database
is taken; 20 more are posted (everyone sees them), the away member goes away, 5
more are posted. The server stops, and the copy is put back in place of its
database (as an operator restores a backup: the file copied over, nothing else
touched), and the server starts again on it: its history is 25 messages shorter,
and its seqs will be used again. The clients reconnect by themselves; the writer
posts 25 new messages; then the away member comes back. Each member's view is
compared with a member who joins afresh: ``missing`` (in the fresh view, not in
the member's), ``phantom`` (in the member's, not in the fresh one), and
``new_missing`` (of the 25 new messages, those the member never got).

The scenario uses only the public API, so it runs against any revision:
``python tests/e2e/restored_server.py`` prints its figures as JSON, for the
``chats_store`` on ``PYTHONPATH`` (``benchmarks/restored_server.py`` runs it for
another revision); ``tests/e2e/test_restored_server.py`` runs it in the suite.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from chats_store import Chats, ChatsConfig, create_chats, create_user, create_websocket
from chats_store.server import mint_chat_token, mint_session_token, run_server

SECRET = "restored-server-secret-that-is-long-enough"
WAIT = 3.0
NEW_MESSAGES = 25


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _settle(check: Callable[[], bool], timeout: float = 8.0) -> bool:
    """Wait until ``check()`` (True) or ``timeout`` (False): the old code never converges."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


class _Member:
    def __init__(self, user_id: str, port: int) -> None:
        self.user_id = user_id
        self.websocket = create_websocket(open_timeout=WAIT)
        self.chats: Chats = create_chats(
            user_module=create_user(mint_session_token(SECRET, user_id)),
            websocket_module=self.websocket,
            config=ChatsConfig(host=f"127.0.0.1:{port}", request_timeout=WAIT),
        )

    async def join(self) -> None:
        await self.websocket.connect()
        await self.chats.join_chat(mint_chat_token(SECRET, self.user_id, "c1"))

    def view(self) -> list[tuple[str, str]]:
        messages = self.chats.get_chat_messages("c1").value or ()
        return [(m.id, m.content) for m in messages if m.status == "ready"]

    def ready(self) -> bool:
        return (
            self.websocket.status.value == "connected"
            and self.chats.get_chat_status("c1").value == "ready"
        )

    async def close(self) -> None:
        await self.websocket.disconnect()
        await self.chats.close()


async def _post(writer: _Member, contents: list[str]) -> None:
    for content in contents:
        await writer.chats.send_message("c1", content)


async def scenario(directory: Path) -> dict[str, dict[str, int]]:
    """Run the scenario in ``directory``; ``{member: {missing, phantom, new_missing}}``."""
    database, copy = directory / "chats.sqlite3", directory / "copy.sqlite3"
    port = _free_port()
    writer, online, away = (_Member(name, port) for name in ("writer", "online", "away"))
    members = (writer, online, away)
    try:
        async with run_server(port=port, db=str(database), secret=SECRET):
            for member in members:
                await member.join()
            await _post(writer, [f"before the copy {n}" for n in range(10)])
            with (
                closing(sqlite3.connect(database)) as live,
                closing(sqlite3.connect(copy)) as backup,
            ):
                live.backup(backup)
            await _post(writer, [f"lost {n}" for n in range(20)])
            await _settle(lambda: all(len(m.view()) == 30 for m in members))
            await away.websocket.disconnect()
            await _post(writer, [f"lost, and away never saw it {n}" for n in range(5)])
            await _settle(lambda: len(online.view()) == 35)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(copy, database)
        async with run_server(port=port, db=str(database), secret=SECRET):
            await _settle(lambda: writer.ready() and online.ready())
            new = [f"after the restore {n}" for n in range(NEW_MESSAGES)]
            await _post(writer, new)
            await _settle(lambda: all(c in {v for _, v in online.view()} for c in new))
            await away.websocket.connect()
            await _settle(away.ready)
            await _settle(lambda: all(c in {v for _, v in away.view()} for c in new))
            fresh = _Member("fresh", port)
            try:
                await fresh.join()
                reference = set(fresh.view())
            finally:
                await fresh.close()
            figures = {}
            for member in members:
                seen = set(member.view())
                contents = {content for _, content in seen}
                figures[member.user_id] = {
                    "missing": len(reference - seen),
                    "phantom": len(seen - reference),
                    "new_missing": sum(content not in contents for content in new),
                }
            return figures
    finally:
        for member in members:
            await member.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        figures = asyncio.run(scenario(Path(directory)))
    json.dump(figures, sys.stdout)


if __name__ == "__main__":
    main()
