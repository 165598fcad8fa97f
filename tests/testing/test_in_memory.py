"""The in-memory server: the reference server's core behind an in-memory transport.

These tests reach what only a server with membership credentials can: a dropped
client reconnects, its chats go ``reloading`` and resume through the core.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest

from chats_store import (
    AuthenticationError,
    Chats,
    ChatsConfig,
    ServerRefusedError,
    create_chats,
    create_user,
)
from chats_store.chats.actions import ChatSnapshot, MessagePosted, Resumption
from chats_store.chats.commands import JoinRequest, PostMessageRequest, ResumeRequest
from chats_store.chats.model import ChatRemoval
from chats_store.errors import ErrorCode
from chats_store.server import RefusedError, mint_chat_token, mint_session_token
from chats_store.testing.in_memory import InMemoryChatServer, InMemoryWebSocket

OTHER_SECRET = "another-secret-that-is-long-enough-too"


@attrs.define
class Client:
    chats: Chats
    websocket: InMemoryWebSocket


@pytest.fixture
async def server() -> AsyncIterator[InMemoryChatServer]:
    server = InMemoryChatServer()
    yield server
    server.release()


@pytest.fixture
async def clients() -> AsyncIterator[list[Client]]:
    made: list[Client] = []
    yield made
    for client in made:
        await client.chats.close()


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def connect(
    server: InMemoryChatServer, clients: list[Client], user_id: str, **token: Any
) -> Client:
    """A connected client of ``user_id`` that joined chat ``c1`` (token: its claims)."""
    websocket = server.websocket()
    chats = create_chats(
        user_module=server.user(user_id),
        websocket_module=websocket,
        config=ChatsConfig(host="memory", request_timeout=2.0),
    )
    client = Client(chats, websocket)
    clients.append(client)
    await websocket.connect()
    await chats.join_chat(server.chat_token(user_id, "c1", **token))
    return client


def contents(client: Client, chat_id: str = "c1") -> list[tuple[str, str]]:
    messages = client.chats.get_chat_messages(chat_id).value
    assert messages is not None
    return [(m.content, m.status) for m in messages]


async def test_a_reconnected_client_resumes_with_what_it_missed(
    server: InMemoryChatServer, clients: list[Client]
) -> None:
    ann = await connect(server, clients, "ann")
    bob = await connect(server, clients, "bob")
    await ann.chats.send_message("c1", "before")
    statuses: list[Any] = []
    ann.chats.get_chat_status("c1").subscribe(statuses.append)

    ann.websocket.drop()
    await bob.chats.send_message("c1", "while ann was away")
    server.post("c1", "carol", "me too", "carol-1")
    await settle()
    assert contents(ann) == [("before", "ready")]

    await ann.websocket.connect()
    assert ann.chats.get_chat_status("c1").value == "reloading"
    await settle()

    assert statuses == ["ready", "reloading", "ready"]
    assert contents(ann) == [
        ("before", "ready"),
        ("while ann was away", "ready"),
        ("me too", "ready"),
    ]
    assert ann.chats.get_chat_members_amount("c1").value == 3  # carol joined to post
    user, resume = server.requests[-1]
    assert user == "ann" and isinstance(resume, ResumeRequest)
    assert resume.chat_id == "c1" and resume.since_seq == 3  # ann's join, bob's, her post
    await bob.chats.send_message("c1", "and now")  # pushes reach the new connection
    await settle()
    assert contents(ann)[-1] == ("and now", "ready")


async def test_a_lost_ack_is_healed_by_the_resume(
    server: InMemoryChatServer, clients: list[Client]
) -> None:
    ann = await connect(server, clients, "ann")
    server.hold()
    sending = asyncio.ensure_future(ann.chats.send_message("c1", "did it arrive?"))
    await settle()
    ann.websocket.drop()
    with pytest.raises(Exception, match="dropped"):
        await sending
    assert contents(ann) == [("did it arrive?", "interrupted")]

    server.release()  # applied on the connection it came on: only the reply was lost
    assert [m.content for m in server.history("c1")] == ["did it arrive?"]
    await ann.websocket.connect()
    await settle()

    assert contents(ann) == [("did it arrive?", "ready")]


@pytest.mark.parametrize(("measure", "reason"), [("block", "blocked"), ("kick", "membership_lost")])
async def test_a_refused_resume_removes_the_chat_with_a_reason(
    server: InMemoryChatServer, clients: list[Client], measure: str, reason: str
) -> None:
    ann = await connect(server, clients, "ann")
    moderator = await connect(server, clients, "mod", permissions=("send", "moderate"))
    ann.websocket.drop()
    if measure == "block":
        await moderator.chats.block_chat_member("c1", "ann", 0, "spam")
    else:
        await moderator.chats.kick_chat_member("c1", "ann")

    await ann.websocket.connect()
    await settle()

    assert ann.chats.get_chat_status("c1").value is None
    removal = ann.chats.get_chat_removal("c1").value
    assert isinstance(removal, ChatRemoval) and removal.reason == reason
    code = ErrorCode.MEMBER_BLOCKED if measure == "block" else ErrorCode.NOT_A_MEMBER
    assert removal.detail is not None and removal.detail.startswith(code)


async def test_pushes_of_the_old_connection_never_reach_the_new_one(
    server: InMemoryChatServer,
) -> None:
    websocket = server.websocket()
    transport = websocket.chats_transport("memory", server.session_token("ann"))
    received: list[Any] = []
    transport.events.subscribe(received.append)
    await websocket.connect()
    snapshot = await transport.request(JoinRequest("c1", server.chat_token("ann", "c1")), 1.0)
    assert isinstance(snapshot, ChatSnapshot) and snapshot.membership is not None

    server.post("c1", "bob", "queued for the old connection", "b1")
    websocket.drop()
    await websocket.connect()
    await settle()
    assert received == []  # the new connection has not resumed: nothing is pushed to it

    resumed = await transport.request(ResumeRequest("c1", snapshot.membership, 1), 1.0)
    server.post("c1", "bob", "pushed to the new one", "b2")
    await settle()

    assert isinstance(resumed, Resumption) and resumed.snapshot is None
    assert [type(e).__name__ for e in resumed.events] == ["MembersAmountChanged", "MessagePosted"]
    assert [e.message.content for e in received if isinstance(e, MessagePosted)] == [
        "pushed to the new one"
    ]


async def test_a_member_posting_through_the_server_joins_first(
    server: InMemoryChatServer, clients: list[Client]
) -> None:
    ann = await connect(server, clients, "ann")

    posted = server.post("c1", "bob", "hello", "b1")
    await settle()

    assert (posted.author_id, posted.seq) == ("bob", 3)  # bob's join took seq 2
    assert contents(ann) == [("hello", "ready")]
    assert ann.chats.get_chat_members_amount("c1").value == 2
    assert server.post("c1", "bob", "hello", "b1") == posted  # a repeated post


async def test_a_post_the_server_refuses_raises(
    server: InMemoryChatServer, clients: list[Client]
) -> None:
    moderator = await connect(server, clients, "mod", permissions=("send", "moderate"))
    server.post("c1", "bob", "first", "b1")
    await moderator.chats.mute_chat_member("c1", "bob", 0)

    with pytest.raises(RefusedError, match="muted") as refused:
        server.post("c1", "bob", "second", "b2")

    assert refused.value.code == ErrorCode.MEMBER_MUTED


async def test_tokens_are_checked_by_the_server(
    server: InMemoryChatServer, clients: list[Client]
) -> None:
    ann = await connect(server, clients, "ann")
    with pytest.raises(ServerRefusedError, match="signature") as forged_chat:
        await ann.chats.join_chat(mint_chat_token(OTHER_SECRET, "ann", "c2"))
    assert forged_chat.value.code == ErrorCode.INVALID_TOKEN
    websocket = server.websocket()
    create_chats(
        user_module=create_user(mint_session_token(OTHER_SECRET, "eve")),
        websocket_module=websocket,
        config=ChatsConfig(host="memory"),
    )

    with pytest.raises(AuthenticationError, match="signature"):
        await websocket.connect()


async def test_a_refused_session_token_is_renewed_by_the_users_token_provider(
    server: InMemoryChatServer,
) -> None:
    expired = mint_session_token(server.secret, "ann", now=server.clock() - 10_000)
    provided: list[str] = []

    def provider() -> str:
        provided.append(server.session_token("ann"))
        return provided[-1]

    websocket = server.websocket()
    chats = create_chats(
        user_module=create_user(expired, token_provider=provider),
        websocket_module=websocket,
        config=ChatsConfig(host="memory"),
    )
    await websocket.connect()
    assert len(provided) == 1
    assert (await chats.join_chat(server.chat_token("ann", "c1"))).status == "ready"
    await chats.close()


async def test_refuse_next_answers_without_reaching_the_core(
    server: InMemoryChatServer, clients: list[Client]
) -> None:
    ann = await connect(server, clients, "ann")
    server.refuse_next("slow_down", "not now")

    with pytest.raises(ServerRefusedError) as refused:
        await ann.chats.send_message("c1", "refused")

    assert (refused.value.code, refused.value.detail) == ("slow_down", "not now")
    assert server.history("c1") == ()
    assert isinstance(server.requests[-1][1], PostMessageRequest)
