"""The ``resume`` request and its ``Resumption`` reply on the wire; ``outcome_of`` for it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chats_store.chats.actions import (
    ChatResumed,
    ChatResumeFailed,
    ChatSnapshot,
    Failure,
    MembersAmountChanged,
    MessagePosted,
    MessageRemoved,
    OwnRestrictionsChanged,
    Resumption,
)
from chats_store.chats.commands import ResumeRequest, outcome_of
from chats_store.chats.model import Message, Restriction
from chats_store.errors import ErrorCode, ProtocolError
from chats_store.protocol import (
    ClientProtocol,
    ReplyReceived,
    decode_event,
    decode_request,
    encode_event,
    encode_reply,
    encode_request,
    peek_request_id,
)

MESSAGE = Message("m1", "c1", "alice", "hello", "ready", 7, 1700000000.5)
RESUMPTION = Resumption(
    events=(
        MessagePosted("c1", 7, MESSAGE),
        MessageRemoved("c1", 9, "m0"),
        OwnRestrictionsChanged("c1", 10, (Restriction("mute", 1700000600.0, "spam"),)),
    ),
    snapshot=None,
    members_amount=3,
    member_metadata={"role": "guest"},
    restrictions=(Restriction("mute", 1700000600.0, "spam"),),
    last_seq=11,
    membership="<credential>",
    epoch="<epoch>",
    server_time=1700000061.5,
)


def test_the_resume_frames_in_the_docs_are_what_the_codec_writes() -> None:
    request = ResumeRequest("c1", "<membership credential>", 6, "<epoch>")

    assert encode_request(9, request) == (
        '{"type":"resume","id":9,"chat_id":"c1","membership":"<membership credential>",'
        '"since_seq":6,"epoch":"<epoch>"}'
    )
    assert encode_reply(9, RESUMPTION) == (
        '{"type":"ok","id":9,"result":{"events":['
        '{"type":"event","chat_id":"c1","seq":7,"event":{"kind":"message_posted","message":'
        '{"id":"m1","chat_id":"c1","author_id":"alice","content":"hello","seq":7,'
        '"created_at":1700000000.5,"edited_at":null}}},'
        '{"type":"event","chat_id":"c1","seq":9,"event":{"kind":"message_removed",'
        '"message_id":"m0"}},'
        '{"type":"event","chat_id":"c1","seq":10,"event":{"kind":"own_restrictions_changed",'
        '"restrictions":[{"kind":"mute","until":1700000600.0,"reason":"spam"}]}}],'
        '"snapshot":null,"members_amount":3,"member_metadata":{"role":"guest"},'
        '"restrictions":[{"kind":"mute","until":1700000600.0,"reason":"spam"}],'
        '"last_seq":11,"membership":"<credential>","epoch":"<epoch>",'
        '"server_time":1700000061.5}}'
    )
    assert decode_request(encode_request(9, request)) == (9, request)


def test_each_resumed_event_is_the_frame_a_push_would_have_been() -> None:
    reply = json.loads(encode_reply(1, RESUMPTION))

    for data, event in zip(reply["result"]["events"], RESUMPTION.events, strict=True):
        assert json.dumps(data, separators=(",", ":")) == encode_event(event)


def test_the_client_decodes_a_resumption_and_a_join_snapshot_with_its_membership() -> None:
    protocol = ClientProtocol()
    request = ResumeRequest("c1", "old", 6)
    request_id = protocol.send_request(request)
    snapshot = ChatSnapshot((MESSAGE,), 3, {}, (), 11, membership="<credential>")
    behind = Resumption((), snapshot, 3, {}, (), 11, "<credential>")

    protocol.receive_data(encode_reply(request_id, RESUMPTION))
    second = protocol.send_request(request)
    protocol.receive_data(encode_reply(second, behind))

    assert protocol.events_received() == [
        ReplyReceived(request_id, RESUMPTION, request),
        ReplyReceived(second, behind, request),
    ]


def _result(**changes: Any) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(encode_reply(1, RESUMPTION))["result"]
    result.update(changes)
    return result


def _event(seq: int, chat_id: str = "c1") -> dict[str, Any]:
    data: dict[str, Any] = json.loads(encode_event(MembersAmountChanged(chat_id, seq, 2)))
    return data


@pytest.mark.parametrize(
    ("result", "code"),
    [
        (_result(events=[_event(7, "c2")]), ErrorCode.UNEXPECTED_REPLY),  # another chat
        (_result(events=[_event(6)]), ErrorCode.UNEXPECTED_REPLY),  # not after since_seq
        (_result(events=[_event(8), _event(8)]), ErrorCode.UNEXPECTED_REPLY),  # repeated
        (_result(events=[_event(9), _event(8)]), ErrorCode.UNEXPECTED_REPLY),  # out of order
        (_result(events=[_event(12)]), ErrorCode.UNEXPECTED_REPLY),  # after last_seq
        (
            _result(
                events=[
                    {
                        "type": "event",
                        "chat_id": "c1",
                        "seq": 8,
                        "event": {"kind": "removed_from_chat", "reason": "kicked"},
                    }
                ]
            ),
            ErrorCode.UNEXPECTED_REPLY,
        ),
        (
            _result(
                snapshot=json.loads(encode_reply(1, ChatSnapshot((), 1, {}, (), 11)))["result"]
            ),
            ErrorCode.UNEXPECTED_REPLY,  # both events and a snapshot
        ),
        ({k: v for k, v in _result().items() if k != "membership"}, ErrorCode.INVALID_FRAME),
        (_result(events=[{"seq": 8}]), ErrorCode.INVALID_FRAME),
        (_result(last_seq="11"), ErrorCode.INVALID_FRAME),
    ],
)
def test_an_inconsistent_resumption_is_a_protocol_error(result: object, code: str) -> None:
    protocol = ClientProtocol()
    request_id = protocol.send_request(ResumeRequest("c1", "old", 6))
    frame = json.dumps({"type": "ok", "id": request_id, "result": result})

    with pytest.raises(ProtocolError) as caught:
        protocol.receive_data(frame)

    assert caught.value.code == code
    assert caught.value.request_id == request_id
    assert protocol.pending_ids == (request_id,)
    assert protocol.events_received() == []


def test_outcome_of_a_resume() -> None:
    request = ResumeRequest("c1", "cred", 6)
    failure = Failure("refused", ErrorCode.NOT_A_MEMBER, "you were kicked")

    assert outcome_of(4, request, RESUMPTION) == ChatResumed(4, "c1", RESUMPTION)
    assert outcome_of(4, request, failure) == ChatResumeFailed(4, "c1", failure)


def test_the_credential_is_not_shown_in_reprs() -> None:
    assert "cred" not in repr(ResumeRequest("c1", "cred", 6))
    assert "<credential>" not in repr(RESUMPTION)
    assert "<credential>" not in repr(ChatSnapshot((), 1, {}, (), 1, membership="<credential>"))


def test_new_error_codes_keep_their_values() -> None:
    assert ErrorCode.NOT_A_MEMBER == "not_a_member"
    assert ErrorCode.RATE_LIMITED == "rate_limited"
    assert ErrorCode.TOO_MANY_CONNECTIONS == "too_many_connections"
    codes = list(ErrorCode)
    start = codes.index(ErrorCode.NOT_A_MEMBER)
    assert codes[start : start + 3] == [
        ErrorCode.NOT_A_MEMBER,
        ErrorCode.RATE_LIMITED,
        ErrorCode.TOO_MANY_CONNECTIONS,
    ]


def test_decode_event_reads_back_what_encode_event_wrote() -> None:
    event = MessagePosted("c1", 7, MESSAGE)

    assert decode_event(encode_event(event)) == event
    with pytest.raises(ProtocolError):
        decode_event(encode_reply(1, None))


@pytest.mark.parametrize(
    ("data", "request_id"),
    [
        ('{"type":"post","id":12}', 12),
        ('{"id":0}', 0),
        ('{"id":"12"}', None),
        ('{"id":true}', None),
        ('{"id":-1}', None),
        ('{"id":9007199254740992}', None),
        ("[12]", None),
        ("not json", None),
        (b'{"id":12}', None),
        ('{"id":12,"pad":"' + "x" * 70_000 + '"}', None),
    ],
)
def test_peek_request_id(data: str | bytes, request_id: int | None) -> None:
    assert peek_request_id(data) == request_id
