"""Bad input: answered with an error code, or only that connection is closed."""

from __future__ import annotations

import json

import pytest
from websockets.exceptions import ConnectionClosed

from chats_store.chats.commands import HistoryRequest, PostMessageRequest
from chats_store.errors import ErrorCode
from chats_store.protocol import MAX_FRAME_SIZE
from chats_store.server.service import ChatService
from tests.server.conftest import ClientFactory, RawClient


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
