"""``chats-store demo``: three real clients chatting through the reference server.

It starts an in-process reference server on a temporary SQLite file, connects
three clients over loopback WebSockets, and plays a short conversation (join,
send, receive, edit, delete, a mute and its effect, a kick, a rejoin) while
printing every getter emission as it happens.
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from reactivex.disposable import CompositeDisposable

from chats_store.chats.facade import Chats, ChatsConfig, create_chats
from chats_store.chats.model import Message, Restriction
from chats_store.errors import ActionCallError
from chats_store.server import mint_chat_token, mint_session_token, run_server
from chats_store.user.module import create_user
from chats_store.websocket.module import WebSocket, create_websocket

__all__ = ["run_demo"]

CHAT = "lobby"
_MARKS = {"sending": " (sending…)", "updating": " (updating…)", "deleting": " (deleting…)"}


def _messages(messages: Sequence[Message] | None) -> str:
    if messages is None:
        return "—"
    if not messages:
        return "(none)"
    shown = [
        f"{m.author_id}: {m.content!r}{_MARKS.get(m.status, '')}"
        + (" [interrupted]" if m.status == "interrupted" else "")
        for m in messages[-4:]
    ]
    more = f"… +{len(messages) - 4} earlier, " if len(messages) > 4 else ""
    return more + " | ".join(shown)


def _restrictions(restrictions: tuple[Restriction, ...] | None) -> str:
    if restrictions is None:
        return "—"
    if not restrictions:
        return "none"
    return ", ".join(
        f"{r.kind}"
        + (f" ({r.reason})" if r.reason else "")
        + (" permanent" if r.until is None else "")
        for r in restrictions
    )


class _Client:
    def __init__(self, name: str, chats: Chats, websocket: WebSocket, say: Callable[[str], None]):
        self.name = name
        self.chats = chats
        self.websocket = websocket
        self._say = say
        self.subscriptions = CompositeDisposable()

    def watch(self, label: str, getter: Any, render: Callable[[Any], str] = str) -> None:
        self.subscriptions.add(
            getter.subscribe(lambda value: self._say(f"  {self.name:<4}│ {label}: {render(value)}"))
        )


async def run_demo(
    say: Callable[[str], None] = print, *, pause: float = 0.05, log: str | Path | None = None
) -> None:
    """Play the demo conversation, reporting every getter emission through ``say``.

    ``log``: a file to write ann's action log to (for ``chats-store replay``).
    """
    secret = secrets.token_urlsafe(32)

    async def step(title: str) -> None:
        await asyncio.sleep(pause)  # let every client's pushes arrive before the next step
        say(f"\n▶ {title}")

    with tempfile.TemporaryDirectory() as directory:
        database = Path(directory) / "chats.sqlite3"
        async with run_server(port=0, db=str(database), secret=secret) as server:
            host = f"127.0.0.1:{server.port}"
            say(f"reference server on ws://{host} (SQLite: {database.name})")
            clients: dict[str, _Client] = {}
            for name in ("ann", "bob", "cat"):
                websocket = create_websocket()
                chats = create_chats(
                    user_module=create_user(mint_session_token(secret, name)),
                    websocket_module=websocket,
                    config=ChatsConfig(host=host),
                    action_log=log if name == "ann" else None,
                )
                client = _Client(name, chats, websocket, say)
                client.watch("connection", websocket.status)
                await websocket.connect()
                clients[name] = client
            ann, bob, cat = clients["ann"], clients["bob"], clients["cat"]

            def chat_token(name: str, **claims: Any) -> str:
                return mint_chat_token(secret, name, CHAT, **claims)

            def watch_chat(client: _Client) -> None:
                chats = client.chats
                client.watch("status", chats.get_chat_status(CHAT))
                client.watch("members", chats.get_chat_members_amount(CHAT))
                client.watch("messages", chats.get_chat_messages(CHAT), _messages)

            await step("ann joins #lobby as a moderator")
            watch_chat(ann)
            ann.watch(
                "restrictions", ann.chats.get_client_chat_member_restrictions(CHAT), _restrictions
            )
            ann.watch(
                "metadata",
                ann.chats.get_client_chat_member_metadata(CHAT),
                lambda m: "—" if m is None else str(dict(m)),
            )
            await ann.chats.join_chat(
                chat_token("ann", permissions=["send", "moderate"], metadata={"role": "moderator"})
            )
            await step("ann says hello")
            await ann.chats.send_message(CHAT, "Welcome to the lobby!")

            await step("bob and cat join and see the history")
            for client in (bob, cat):
                watch_chat(client)
                await client.chats.join_chat(chat_token(client.name))
            cat.watch(
                "restrictions", cat.chats.get_client_chat_member_restrictions(CHAT), _restrictions
            )

            await step("bob replies")
            await bob.chats.send_message(CHAT, "Hi ann! Hi cat!")

            await step("ann edits her welcome")
            first = _first_by(ann.chats, "ann")
            await ann.chats.update_message(CHAT, first.id, "Welcome to the lobby, everyone!")

            await step("bob sends a typo and deletes it")
            typo = await bob.chats.send_message(CHAT, "teh typo")
            await asyncio.sleep(pause)
            await bob.chats.delete_message(CHAT, typo.id)

            await step("cat floods, ann mutes cat for 5 minutes")
            await cat.chats.send_message(CHAT, "spam spam spam")
            await ann.chats.mute_chat_member(CHAT, "cat", 5, reason="flooding")
            await asyncio.sleep(pause)
            try:
                await cat.chats.send_message(CHAT, "more spam")
            except ActionCallError as error:
                say(f"  cat │ send_message refused: [{error.code}] {error.detail}")

            await step("ann unmutes cat, who behaves")
            await ann.chats.unmute_chat_member(CHAT, "cat")
            await asyncio.sleep(pause)
            await cat.chats.send_message(CHAT, "sorry, I'll behave")

            await step("ann kicks bob")
            bob.watch("chats_ids", bob.chats.chats_ids)
            await ann.chats.kick_chat_member(CHAT, "bob", reason="demo")

            await step("bob rejoins with a new chat token")
            await asyncio.sleep(pause)
            await bob.chats.join_chat(chat_token("bob"))
            await bob.chats.send_message(CHAT, "I'm back")

            await step("done: everyone sees the same history")
            await asyncio.sleep(pause)
            for client in clients.values():
                history = client.chats.get_chat_messages(CHAT).value or ()
                seqs = [m.seq for m in history]
                say(f"  {client.name:<4}│ {len(history)} messages, seq {seqs}")
            for client in clients.values():
                client.subscriptions.dispose()
                await client.websocket.disconnect()
                await client.chats.close()


def _first_by(chats: Chats, author: str) -> Message:
    messages = chats.get_chat_messages(CHAT).value or ()
    return next(m for m in messages if m.author_id == author)
