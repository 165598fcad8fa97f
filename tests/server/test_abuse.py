"""Bad input: answered with an error code, or only that connection is closed."""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack

import pytest
from websockets.exceptions import ConnectionClosed

from chats_store import ChatsConfig, create_chats, create_user, create_websocket
from chats_store.chats.commands import HistoryRequest, PostMessageRequest, ResumeRequest
from chats_store.chats.model import Message
from chats_store.errors import ErrorCode
from chats_store.protocol import MAX_FRAME_SIZE, MAX_SERVER_FRAME_SIZE, ReplyReceived
from chats_store.server import ChatServer
from chats_store.server.service import SNAPSHOT_MESSAGES, ChatService
from tests.server.conftest import TIMEOUT, ClientFactory, RawClient, open_client


async def _raw_reply(client: RawClient, frame: str) -> dict[str, object]:
    await client.connection.send(frame)
    reply = json.loads(await client.connection.recv())
    assert isinstance(reply, dict)
    return reply


@pytest.mark.parametrize(
    ("frame", "request_id", "code"),
    [
        ('{"type": "shout", "id": 7}', 7, ErrorCode.UNKNOWN_REQUEST),
        ('{"type": "post", "id": 7, "chat_id": "c1"}', 7, ErrorCode.INVALID_FRAME),
        (
            '{"type": "post", "id": 7, "chat_id": 1, "message_id": "m", "content": "x"}',
            7,
            "invalid_frame",
        ),
        ('{"type": "leave", "chat_id": "c1"}', None, ErrorCode.INVALID_FRAME),
        ("[1, 2, 3]", None, ErrorCode.INVALID_FRAME),
        ('"hello"', None, ErrorCode.INVALID_FRAME),
    ],
)
async def test_a_malformed_request_gets_an_error_reply_and_the_connection_stays(
    client: ClientFactory, frame: str, request_id: int | None, code: str
) -> None:
    alice = await client("alice")
    await alice.join("c1")

    reply = await _raw_reply(alice, frame)

    assert reply["type"] == "error"
    assert reply["id"] == request_id
    assert reply["code"] == code
    assert reply["message"]
    await alice.post("c1", "m1")


async def _read_all(client: RawClient) -> None:
    """Read (and decode) every frame until the connection closes."""
    while True:
        await client._read()


async def _read_until_closed(client: RawClient) -> None:
    while True:
        await client.connection.recv()


@pytest.mark.parametrize(
    ("frame", "close_code"),
    [
        ("this is not json", 1007),
        ('{"type": "post", "id": 1,', 1007),
        (b"\x00\x01binary", 1003),
        (
            '{"type":"post","id":1,"chat_id":"c1","message_id":"m","content":"'
            + "x" * MAX_FRAME_SIZE
            + '"}',
            1009,
        ),
    ],
)
async def test_protocol_abuse_closes_only_that_connection(
    client: ClientFactory, frame: str | bytes, close_code: int
) -> None:
    alice, bob, mallory = await client("alice"), await client("bob"), await client("mallory")
    await alice.join("c1")
    await bob.join("c1")
    await mallory.join("c1")
    await alice.drop_events()
    await bob.drop_events()

    await mallory.connection.send(frame)

    with pytest.raises(ConnectionClosed):
        await _read_until_closed(mallory)
    assert mallory.connection.close_code == close_code
    message = await alice.post("c1", "m1", "still here")
    assert (await bob.next_event()).message == message  # type: ignore[union-attr]
    await bob.post("c1", "m2", "me too")


async def test_the_requests_before_a_frame_over_the_limit_are_answered_then_it_closes(
    client: ClientFactory,
) -> None:
    """The close (1009) comes after the replies owed: it no longer overtakes them."""
    alice = await client("alice")
    await alice.join("c1")
    joined = len(alice.log)
    sent = [await alice.send(PostMessageRequest("c1", f"m{n}", "pipelined")) for n in range(3)]
    await alice.connection.send("x" * (MAX_FRAME_SIZE + 1))

    with pytest.raises(ConnectionClosed):
        await _read_all(alice)
    assert alice.connection.close_code == 1009
    replies = [item for item in alice.log[joined:] if isinstance(item, ReplyReceived)]
    assert [reply.request_id for reply in replies] == sent
    assert all(isinstance(alice.replies[request_id], Message) for request_id in sent)


async def test_a_frame_that_closes_then_one_over_the_limit_close_without_waiting(
    client: ClientFactory,
) -> None:
    """The close for the first frame releases the one held for the second."""
    alice = await client("alice")
    await alice.join("c1")
    await alice.connection.send(b"binary")  # closes with 1003 once the replies owed are out
    await alice.connection.send("x" * (MAX_FRAME_SIZE + 1))

    with pytest.raises(ConnectionClosed):  # within TIMEOUT, not the 10 s of a close time-out
        await asyncio.wait_for(_read_until_closed(alice), TIMEOUT)
    assert alice.connection.close_code in (1003, 1009)  # which frame the server read first


async def test_a_fragmented_message_over_the_limit_closes_at_once(client: ClientFactory) -> None:
    """The message over the limit cannot be ended, so the close is not held for it."""
    alice = await client("alice")
    await alice.join("c1")
    half = MAX_FRAME_SIZE // 2 + 10
    await alice.connection.send(["x" * half, "y" * half])

    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(_read_until_closed(alice), TIMEOUT)
    assert alice.connection.close_code == 1009


async def test_a_frame_just_under_the_limit_is_answered(client: ClientFactory) -> None:
    alice = await client("alice")
    await alice.join("c1")
    frame = json.dumps(
        {"type": "post", "id": 99, "chat_id": "c1", "message_id": "m1", "content": "x"}
    )
    padded = frame[:-1] + ', "padding": "' + "p" * (MAX_FRAME_SIZE - len(frame) - 20) + '"}'
    assert len(padded) <= MAX_FRAME_SIZE

    reply = await _raw_reply(alice, padded)

    assert (reply["type"], reply["id"]) == ("ok", 99)


async def test_a_flood_of_bad_requests_does_not_disturb_others(client: ClientFactory) -> None:
    alice, mallory = await client("alice"), await client("mallory")
    await alice.join("c1")
    for index in range(300):
        await mallory.connection.send(json.dumps({"type": "post", "id": index}))

    await alice.post("c1", "m1")
    codes = []
    for index in range(300):
        reply = json.loads(await mallory.connection.recv())
        assert reply["id"] == index
        codes.append(reply["code"])
    # The first ones (the burst) are read and refused; the rest are not even read.
    assert set(codes) == {ErrorCode.INVALID_FRAME, ErrorCode.RATE_LIMITED}
    assert codes[:200] == [ErrorCode.INVALID_FRAME] * 200


async def test_unknown_extra_fields_are_ignored(client: ClientFactory) -> None:
    alice = await client("alice")
    await alice.join("c1")

    reply = await _raw_reply(
        alice,
        json.dumps(
            {
                "type": "post",
                "id": 3,
                "chat_id": "c1",
                "message_id": "m1",
                "content": "hi",
                "future": {"x": 1},
            }
        ),
    )

    assert reply["type"] == "ok"


async def test_lone_surrogates_are_refused_not_stored(client: ClientFactory) -> None:
    alice = await client("alice")
    await alice.join("c1")

    reply = await _raw_reply(
        alice,
        '{"type":"post","id":4,"chat_id":"c1","message_id":"m1","content":"\\ud83d"}',
    )

    assert (reply["type"], reply["code"]) == ("error", "invalid_frame")
    message = await alice.post("c1", "m1", "\U0001f600 ok")
    assert message.content == "\U0001f600 ok"
    assert await alice.ok(PostMessageRequest("c1", "m1", "\U0001f600 ok")) == message


async def test_a_server_bug_is_answered_with_internal_error_and_nothing_else_breaks(
    client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await client("alice")
    await alice.join("c1")

    def broken(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(ChatService, "_history", broken)

    await alice.refused(HistoryRequest("c1", 10, 10), ErrorCode.INTERNAL_ERROR)
    await alice.post("c1", "m1")


async def test_numbers_past_sqlite_integers_are_answered(client: ClientFactory) -> None:
    alice = await client("alice")
    await alice.join("c1")
    message = await alice.post("c1", "m1")

    assert await alice.ok(HistoryRequest("c1", 2**70, 10)) == (message,)
    await alice.refused(HistoryRequest("c1", 5, 2**70), ErrorCode.INVALID_LIMIT)


async def test_a_resume_after_many_maximal_messages_is_a_snapshot_within_the_frame_maximum(
    bulk_server: ChatServer, stack: AsyncExitStack
) -> None:
    """The resume amplification: while a member is away, another posts 600 messages of
    256 emoji with ids of 120 (4.6 MB of events, more than a frame may hold)."""
    emoji = "\U0001f600"
    chat_id = emoji * 120
    away = await open_client(stack, bulk_server, "away")
    joined = await away.join(chat_id)
    await away.connection.close()
    websocket = create_websocket(open_timeout=TIMEOUT)
    chats = create_chats(
        user_module=create_user(bulk_server.session_token("away")),
        websocket_module=websocket,
        config=ChatsConfig(host=bulk_server.address, request_timeout=TIMEOUT),
    )
    stack.push_async_callback(chats.close)
    connected: list[str] = []
    websocket.status.subscribe(lambda status: connected.append(status))
    await websocket.connect()
    await chats.join_chat(bulk_server.chat_token("away", chat_id))
    await websocket.disconnect()
    poster = await open_client(stack, bulk_server, "poster")
    await poster.join(chat_id)
    for index in range(600):
        await poster.send(PostMessageRequest(chat_id, f"{index:03d}" + emoji * 117, emoji * 256))
    while len(poster.replies) < 600:
        await poster._read(10)

    back = await open_client(stack, bulk_server, "away")
    request_id = await back.send(ResumeRequest(chat_id, joined.membership, joined.last_seq))
    frame = await asyncio.wait_for(back.connection.recv(), 10)
    await websocket.connect()
    for _ in range(100):
        if chats.get_chat_status(chat_id).value == "ready" and connected[-1] == "connected":
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # no storm of reconnections follows
    shown = chats.get_chat_messages(chat_id).value or ()
    await websocket.disconnect()

    reply = json.loads(frame)
    assert reply["id"] == request_id and reply["type"] == "ok"
    assert len(frame) <= MAX_SERVER_FRAME_SIZE
    assert reply["result"]["events"] == [] and reply["result"]["snapshot"] is not None
    assert connected.count("connected") == 2  # the first connection, then one resume
    assert len(shown) == SNAPSHOT_MESSAGES and shown[-1].id == "599" + emoji * 117
