"""Minimal reproductions of what the fuzzers found, marked ``xfail(strict=True)`` while open.

When a bug is fixed its test starts passing, ``strict`` turns that into a failure,
and the marker goes: the reproduction then guards the fix. Bugs 1 and 2 are fixed
(their tests guard them, and the client-side fuzzer sends identity-breaking frames
unless ``CHATS_STORE_FUZZ_STRICT=0``).

1. **The client trusts the server on message identity.** A well-formed server frame
   that pairs a message id the client holds with another ``seq`` (a push, or a
   snapshot listing one id twice) puts the message in the list twice; a history
   page can slip a message of another chat into this one. ``ClientProtocol``
   accepts these frames, and ``MessageLog.confirm`` removes an earlier copy of the
   same id only among the pending messages. The reference server never sends them,
   but "no duplicate ids" is the store's invariant whatever the server sends.
   Fixed: the codec now refuses pages that break this (``check_messages`` in
   ``chats_store/protocol/mapping.py``: snapshot and history ids and seqs unique,
   every message of the requested chat, seqs below ``before_seq`` / ``last_seq``,
   a ``message_posted`` message's seq equal to the event's), and a reply or event
   carrying a known id with another seq keeps the seq the client holds (``_receive``
   in the reducer; ``MessageLog`` finds an id through its id index).
2. **A close for an oversize frame overtakes the replies to the frames before it.**
   ``websockets`` enforces ``max_size`` while reading, so a client that pipelines a
   request and then a frame over 64 KiB gets the 1009 close without the reply to
   the request, although the server applied it. Only a client that breaks the size
   limit is affected (``ClientProtocol`` never sends such a frame). Fixed: the
   server holds that close until it has answered the requests read before the
   frame (``GuardedConnection.send_data`` in ``chats_store/server/gate.py``), unless
   the frame continues a fragmented message.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from chats_store.chats.actions import ConnectionStatusChanged, JoinChat, LoadOlderMessages
from chats_store.chats.commands import SendRequest, outcome_of
from chats_store.chats.model import ChatsState, Message
from chats_store.chats.reducer import reduce_chats
from chats_store.core.reducer import Command
from chats_store.core.store import Store
from chats_store.errors import ProtocolError
from chats_store.protocol import PROTOCOL_VERSION, ClientProtocol, ReplyReceived
from chats_store.server import run_server
from tests.fuzz.support import check_messages
from tests.server.conftest import read_hello

SECRET = "known-bugs-secret-that-is-long-enough-for-hs256"


def message(message_id: str, seq: int, chat_id: str = "c1") -> dict[str, Any]:
    return {
        "id": message_id,
        "chat_id": chat_id,
        "author_id": "alice",
        "content": "hello",
        "seq": seq,
        "created_at": 1.0,
        "edited_at": None,
    }


class Client:
    """The codec and the store, wired as ``ManagedConnection`` and the effects wire them."""

    def __init__(self) -> None:
        self.commands: list[Command] = []
        self.store = Store(reduce_chats, ChatsState(), interpreter=self.commands.append)
        self.protocol = ClientProtocol()
        self.calls: dict[int, SendRequest] = {}
        self.store.dispatch(ConnectionStatusChanged("connected"))

    def dispatch(self, action: Any) -> int:
        """Dispatch an intent; its request goes "out" through the codec; the request id."""
        first = len(self.commands)
        self.store.dispatch(action)
        (command,) = self.commands[first:]
        assert isinstance(command, SendRequest)
        request_id = self.protocol.send_request(command.request)
        self.calls[request_id] = command
        return request_id

    def receive(self, frame: dict[str, Any]) -> None:
        self.protocol.receive_data(json.dumps(frame))
        for item in self.protocol.events_received():
            if isinstance(item, ReplyReceived):
                command = self.calls.pop(item.request_id)
                self.store.dispatch(outcome_of(command.call_id, command.request, item.result))
            else:
                self.store.dispatch(item.event)

    def join(self, *messages: dict[str, Any], last_seq: int) -> None:
        request_id = self.dispatch(JoinChat(1, "c1", "token"))
        result = {
            "messages": list(messages),
            "members_amount": 2,
            "member_metadata": {},
            "restrictions": [],
            "last_seq": last_seq,
        }
        self.receive({"type": "ok", "id": request_id, "result": result})

    def messages(self) -> tuple[Message, ...]:
        return self.store.state.chats["c1"].messages.items


def shown_once_or_refused(client: Client, frame: dict[str, Any]) -> None:
    try:
        client.receive(frame)
    except ProtocolError:
        return  # refused by the codec: fine
    check_messages(client.messages(), "c1")


def test_a_snapshot_listing_a_message_twice_shows_it_once() -> None:
    client = Client()
    try:
        client.join(message("a", 1), message("a", 2), last_seq=2)
    except ProtocolError:
        return
    check_messages(client.messages(), "c1")


def test_a_push_of_a_known_message_with_another_seq_does_not_duplicate_it() -> None:
    client = Client()
    client.join(message("a", 1), last_seq=1)
    posted = {"kind": "message_posted", "message": message("a", 2)}
    shown_once_or_refused(client, {"type": "event", "chat_id": "c1", "seq": 2, "event": posted})


def test_an_edit_carrying_another_seq_does_not_duplicate_the_message() -> None:
    client = Client()
    client.join(message("a", 1), last_seq=1)
    edited = {"kind": "message_edited", "message": message("a", 5)}
    shown_once_or_refused(client, {"type": "event", "chat_id": "c1", "seq": 5, "event": edited})


def test_a_history_page_cannot_bring_in_another_chats_message() -> None:
    client = Client()
    client.join(message("a", 5), last_seq=5)
    request_id = client.dispatch(LoadOlderMessages(2, "c1", 10))
    page = {"messages": [message("z", 1, chat_id="c2")]}
    shown_once_or_refused(client, {"type": "ok", "id": request_id, "result": page})


async def test_a_request_sent_before_an_oversize_frame_is_answered() -> None:
    async with run_server(secret=SECRET) as server:
        headers = {"Authorization": f"Bearer {server.session_token('ann')}"}
        async with connect(
            server.url, subprotocols=[Subprotocol(PROTOCOL_VERSION)], additional_headers=headers
        ) as raw:
            await read_hello(raw)
            token = server.chat_token("ann", "c1")
            await raw.send(json.dumps({"type": "join", "id": 1, "chat_id": "c1", "token": token}))
            assert json.loads(await raw.recv())["type"] == "ok"
            post = {"type": "post", "id": 2, "chat_id": "c1", "message_id": "m1", "content": "x"}
            await raw.send(json.dumps(post))
            await raw.send("x" * 70_000)  # over the 64 KiB limit: the server closes, 1009
            answers = []
            try:
                while True:
                    answers.append(json.loads(await asyncio.wait_for(raw.recv(), 2)))
            except ConnectionClosed:
                pass
            assert raw.close_code == 1009
            assert [a.get("id") for a in answers if a["type"] != "event"] == [2], (
                "the post was applied (others see m1) but its reply never came"
            )
