"""Frames that break the protocol give a ProtocolError, never another exception."""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any
from unittest import mock

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chats_store.chats.actions import (
    ChatSnapshot,
    Failure,
    MembersAmountChanged,
    MessagePosted,
    Resumption,
    ServerEvent,
)
from chats_store.chats.commands import (
    HistoryRequest,
    JoinRequest,
    LeaveRequest,
    PostMessageRequest,
    ResumeRequest,
)
from chats_store.chats.model import Message
from chats_store.errors import ChatsStoreError, ErrorCode, ProtocolError
from chats_store.protocol import (
    MAX_FRAME_SIZE,
    MAX_SERVER_FRAME_SIZE,
    ClientProtocol,
    EventReceived,
    ReplyReceived,
    decode_request,
    encode_event,
    encode_reply,
    encode_request,
    frames,
)
from chats_store.protocol.frames import WireHistory, WireMessage, WireSnapshot
from chats_store.protocol.mapping import (
    event_from_wire,
    history_from_wire,
    message_from_wire,
    read_event,
    read_history,
    read_message,
    read_snapshot,
    snapshot_from_wire,
)

VALID_POST = {"type": "post", "id": 5, "chat_id": "c", "message_id": "m", "content": "hi"}


def test_protocol_error_is_a_chats_store_error() -> None:
    assert issubclass(ProtocolError, ChatsStoreError)


@pytest.mark.parametrize(
    ("frame", "code", "request_id", "close_code"),
    [
        ("not json", ErrorCode.INVALID_JSON, None, 1007),
        ('{"type": "post", "id": 5,', ErrorCode.INVALID_JSON, None, 1007),
        ('{"type":"leave","id":1,"chat_id":NaN}', ErrorCode.INVALID_JSON, None, 1007),
        ('{"type":"leave","id":1,"chat_id":"c","at":1e400}', ErrorCode.INVALID_JSON, None, 1007),
        ('{"type":"leave","id":1,"chat_id":"c","at":-1E+309}', ErrorCode.INVALID_JSON, None, 1007),
        ("[" * 5000 + "]" * 5000, ErrorCode.INVALID_JSON, None, 1007),
        (b'{"type":"leave","id":1,"chat_id":"c"}', ErrorCode.INVALID_FRAME, None, 1003),
        ("[1, 2]", ErrorCode.INVALID_FRAME, None, None),
        ('"post"', ErrorCode.INVALID_FRAME, None, None),
        ('{"id": 5}', ErrorCode.INVALID_FRAME, 5, None),
        ('{"type": 7, "id": 5}', ErrorCode.INVALID_FRAME, 5, None),
        ('{"type": "shout", "id": 5}', ErrorCode.UNKNOWN_REQUEST, 5, None),
        ('{"type": "ok", "id": 5, "result": null}', ErrorCode.UNKNOWN_REQUEST, 5, None),
        ('{"type": "leave", "chat_id": "c"}', ErrorCode.INVALID_FRAME, None, None),
        ('{"type": "leave", "id": "5", "chat_id": "c"}', ErrorCode.INVALID_FRAME, None, None),
        ('{"type": "leave", "id": true, "chat_id": "c"}', ErrorCode.INVALID_FRAME, None, None),
        ('{"type": "leave", "id": -1, "chat_id": "c"}', ErrorCode.INVALID_FRAME, None, None),
        ('{"type": "leave", "id": 1.0, "chat_id": "c"}', ErrorCode.INVALID_FRAME, None, None),
        ('{"type": "leave", "id": 9007199254740992, "chat_id": "c"}', "invalid_frame", None, None),
        ('{"type": "leave", "id": 5}', ErrorCode.INVALID_FRAME, 5, None),
        ('{"type": "leave", "id": 5, "chat_id": 3}', ErrorCode.INVALID_FRAME, 5, None),
        ('{"type": "leave", "id": 5, "chat_id": null}', ErrorCode.INVALID_FRAME, 5, None),
        ('{"type": "leave", "id": 5, "chat_id": ["c"]}', ErrorCode.INVALID_FRAME, 5, None),
        ('{"type": "leave", "id": 5, "chat_id": "\\ud800"}', ErrorCode.INVALID_FRAME, 5, None),
        ('{"type": "post", "id": 5, "chat_id": "c", "message_id": "m"}', "invalid_frame", 5, None),
        (
            '{"type": "history", "id": 5, "chat_id": "c", "before_seq": 1.5, "limit": 2}',
            ErrorCode.INVALID_FRAME,
            5,
            None,
        ),
        (
            '{"type": "history", "id": 5, "chat_id": "c", "before_seq": 1, "limit": true}',
            ErrorCode.INVALID_FRAME,
            5,
            None,
        ),
        (
            '{"type": "moderate", "id": 5, "chat_id": "c", "member_id": "u", "measure": "ban"}',
            ErrorCode.UNKNOWN_MEASURE,
            5,
            None,
        ),
        (
            '{"type":"moderate","id":5,"chat_id":"c","member_id":"u","measure":"mute",'
            '"duration":"10"}',
            ErrorCode.INVALID_FRAME,
            5,
            None,
        ),
    ],
)
def test_a_malformed_client_frame_is_refused_with_a_code(
    frame: str | bytes, code: str, request_id: int | None, close_code: int | None
) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_request(frame)

    assert caught.value.code == code
    assert caught.value.request_id == request_id
    assert caught.value.close_code == close_code
    assert str(caught.value)


def test_the_error_says_which_field_is_wrong() -> None:
    with pytest.raises(ProtocolError, match=r"frame\.content"):
        decode_request(json.dumps({**VALID_POST, "content": 5}))


def test_unknown_extra_fields_are_ignored() -> None:
    frame = json.dumps({**VALID_POST, "priority": "high"})

    assert decode_request(frame) == (5, PostMessageRequest("c", "m", "hi"))


def test_a_frame_over_the_size_limit_is_refused_before_parsing() -> None:
    big = json.dumps({**VALID_POST, "content": "x" * MAX_FRAME_SIZE})

    with pytest.raises(ProtocolError) as caught:
        decode_request(big)

    assert caught.value.code == ErrorCode.FRAME_TOO_LARGE
    assert caught.value.close_code == 1009


def test_the_size_limit_counts_utf8_bytes() -> None:
    # 20,000 characters of 4 bytes each: small in characters, 80 KB on the wire.
    frame = (
        '{"type":"post","id":1,"chat_id":"c","message_id":"m","content":"' + "😀" * 20_000 + '"}'
    )

    with pytest.raises(ProtocolError) as caught:
        decode_request(frame)

    assert caught.value.code == ErrorCode.FRAME_TOO_LARGE


def _valid_frames() -> list[dict[str, Any]]:
    return [
        json.loads(encode_request(5, request))
        for request in (
            JoinRequest("c", "token"),
            LeaveRequest("c"),
            PostMessageRequest("c", "m", "hi"),
            HistoryRequest("c", 10, 20),
        )
    ]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


@given(st.sampled_from(_valid_frames()), st.data())
def test_a_missing_or_mistyped_field_is_a_protocol_error(
    frame: dict[str, Any], data: st.DataObject
) -> None:
    field = data.draw(st.sampled_from(sorted(k for k in frame if k not in ("type", "id"))))
    broken = dict(frame)
    if data.draw(st.booleans()):
        del broken[field]
    else:
        value = data.draw(json_values.filter(lambda v: not isinstance(v, type(frame[field]))))
        broken[field] = value

    with pytest.raises(ProtocolError) as caught:
        decode_request(json.dumps(broken))

    assert caught.value.code == ErrorCode.INVALID_FRAME
    assert caught.value.request_id == 5


@given(st.text(max_size=200) | json_values.map(json.dumps))
def test_any_text_decodes_or_raises_a_protocol_error(text: str) -> None:
    with contextlib.suppress(ProtocolError):
        decode_request(text)


@given(st.text(max_size=200) | json_values.map(json.dumps))
def test_the_client_reads_any_text_or_raises_a_protocol_error(text: str) -> None:
    protocol = ClientProtocol()
    protocol.send_request(LeaveRequest("c"))
    with contextlib.suppress(ProtocolError):
        protocol.receive_data(text)


# Client side -------------------------------------------------------------------------


def _message(message_id: str = "m") -> Message:
    return Message(message_id, "c", "alice", "hi", "ready", 3, 1.0)


@pytest.mark.parametrize(
    "frame",
    [
        "{",
        "[]",
        '{"type": 7}',
        '{"type": "ok", "id": 1}',
        '{"type": "ok", "result": null}',
        '{"type": "ok", "id": "1", "result": null}',
        '{"type": "error", "id": 1, "code": 5, "message": "x"}',
        '{"type": "error", "id": null, "code": "invalid_frame", "message": "x"}',
        '{"type": "event", "chat_id": "c", "seq": 1}',
        '{"type": "event", "chat_id": "c", "seq": 1, "event": {"kind": 7}}',
        '{"type": "event", "chat_id": "c", "seq": "1", '
        '"event": {"kind": "members_amount_changed", "members_amount": 1}}',
        '{"type": "event", "chat_id": "c", "seq": 1, '
        '"event": {"kind": "own_restrictions_changed", "restrictions": [{"kind": "ban"}]}}',
        '{"type": "event", "chat_id": "c", "seq": 1, '
        '"event": {"kind": "own_metadata_changed", "member_metadata": {"role": 1}}}',
        '{"type": "event", "chat_id": "c", "seq": 1, '
        '"event": {"kind": "message_posted", "message": {"id": "m"}}}',
    ],
)
def test_a_malformed_server_frame_is_a_protocol_error(frame: str) -> None:
    protocol = ClientProtocol()
    protocol.send_request(LeaveRequest("c"))

    with pytest.raises(ProtocolError):
        protocol.receive_data(frame)

    assert protocol.events_received() == []
    assert protocol.pending_ids == (1,)


@pytest.mark.parametrize(
    "frame",
    [
        '{"type": "pong"}',
        '{"type": "event", "chat_id": "c", "seq": 1, "event": {"kind": "exploded"}}',
        '{"type": "event", "chat_id": "c", "seq": 1, "event": {"kind": "typing", "who": "b"}}',
    ],
)
def test_a_newer_servers_frame_type_or_event_kind_is_ignored(frame: str) -> None:
    """Forward compatibility: a v1 client ignores what it does not know, and goes on."""
    protocol = ClientProtocol()
    protocol.send_request(LeaveRequest("c"))

    protocol.receive_data(frame)
    protocol.receive_data('{"type": "ok", "id": 1, "result": null}')

    assert [type(item) for item in protocol.events_received()] == [ReplyReceived]
    assert protocol.pending_ids == ()


def test_a_resumption_skips_the_events_of_unknown_kinds() -> None:
    protocol = ClientProtocol()
    resume = protocol.send_request(ResumeRequest("c", "credential", since_seq=0))
    known = (
        '{"type":"event","chat_id":"c","seq":2,'
        '"event":{"kind":"members_amount_changed","members_amount":2}}'
    )
    unknown = '{"type":"event","chat_id":"c","seq":1,"event":{"kind":"typing"}}'
    protocol.receive_data(
        f'{{"type":"ok","id":{resume},"result":{{"events":[{unknown},{known}],"snapshot":null,'
        '"members_amount":2,"member_metadata":{},"restrictions":[],"last_seq":2,'
        '"membership":"m","epoch":null}}'
    )

    (reply,) = protocol.events_received()
    assert isinstance(reply, ReplyReceived) and isinstance(reply.result, Resumption)
    assert [event.seq for event in reply.result.events] == [2]


def test_the_hello_is_kept_and_is_no_reply_or_event() -> None:
    protocol = ClientProtocol()
    protocol.receive_data(
        '{"type":"hello","server":"x/1","protocol":"chats_store.v1",'
        '"features":["resume","teleport"],"motd":"hi"}'
    )

    assert protocol.events_received() == []
    assert protocol.server_hello is not None
    assert protocol.server_hello.features == ("resume", "teleport")
    protocol.fail_pending()
    assert protocol.server_hello is None  # of the connection that ended


@pytest.mark.parametrize("number", ["1e400", "-1e400", "2E+308", "1.8e308"])
def test_a_number_beyond_a_float_is_not_read_as_infinity(number: str) -> None:
    """``1e400`` is valid JSON syntax that Python reads as ``inf``: refused, never a value."""
    protocol = ClientProtocol()
    post = protocol.send_request(PostMessageRequest("c", "m", "hi"))
    reply = json.loads(encode_reply(post, _message()))
    text = json.dumps(reply).replace('"created_at": 1.0', f'"created_at": {number}')
    assert number in text

    with pytest.raises(ProtocolError, match="beyond the range of a 64-bit float") as caught:
        protocol.receive_data(text)

    assert caught.value.code == ErrorCode.INVALID_JSON
    assert caught.value.close_code == 1007
    assert protocol.pending_ids == (post,)


def test_the_largest_finite_numbers_are_still_read() -> None:
    protocol = ClientProtocol()
    post = protocol.send_request(PostMessageRequest("c", "m", "hi"))
    reply = json.loads(encode_reply(post, _message()))
    protocol.receive_data(json.dumps(reply).replace('"created_at": 1.0', '"created_at": 1.7e308'))

    (received,) = protocol.events_received()
    assert isinstance(received, ReplyReceived)
    assert isinstance(received.result, Message) and received.result.created_at == 1.7e308


def test_an_event_whose_message_is_of_another_chat_is_a_protocol_error() -> None:
    frame = json.loads(encode_event(MembersAmountChanged("c", 1, 1)))
    frame["event"] = {
        "kind": "message_posted",
        "message": json.loads(encode_reply(1, Message("m", "other", "a", "x", "ready", 1)))[
            "result"
        ],
    }

    with pytest.raises(ProtocolError):
        ClientProtocol().receive_data(json.dumps(frame))


def test_a_reply_to_no_request_is_a_protocol_error() -> None:
    protocol = ClientProtocol()

    with pytest.raises(ProtocolError) as caught:
        protocol.receive_data(encode_reply(1, None))

    assert caught.value.code == ErrorCode.UNEXPECTED_REPLY


def test_a_reply_of_the_wrong_shape_leaves_the_request_pending() -> None:
    protocol = ClientProtocol()
    join = protocol.send_request(JoinRequest("c", "t"))
    leave = protocol.send_request(LeaveRequest("c"))

    with pytest.raises(ProtocolError):
        protocol.receive_data(encode_reply(join, _message()))
    with pytest.raises(ProtocolError):
        protocol.receive_data(encode_reply(leave, (_message(),)))

    assert protocol.pending_ids == (join, leave)
    assert protocol.events_received() == []


def test_a_reply_for_another_message_is_a_protocol_error() -> None:
    protocol = ClientProtocol()
    request_id = protocol.send_request(PostMessageRequest("c", "m1", "hi"))

    with pytest.raises(ProtocolError) as caught:
        protocol.receive_data(encode_reply(request_id, _message("m2")))

    assert caught.value.code == ErrorCode.UNEXPECTED_REPLY


def test_a_server_frame_over_its_limit_is_refused() -> None:
    with pytest.raises(ProtocolError) as caught:
        ClientProtocol().receive_data(" " * (MAX_SERVER_FRAME_SIZE + 1))

    assert caught.value.close_code == 1009


def test_a_request_too_large_to_send_is_refused_and_not_queued() -> None:
    protocol = ClientProtocol()

    with pytest.raises(ProtocolError) as caught:
        protocol.send_request(JoinRequest("c", "t" * MAX_FRAME_SIZE))

    assert caught.value.code == ErrorCode.FRAME_TOO_LARGE
    assert protocol.data_to_send() == []
    assert protocol.pending_ids == ()
    assert protocol.send_request(LeaveRequest("c")) == 1


def test_fail_pending_fails_every_request_in_flight() -> None:
    protocol = ClientProtocol()
    first = protocol.send_request(LeaveRequest("a"))
    second = protocol.send_request(PostMessageRequest("a", "m", "hi"))
    protocol.receive_data(encode_reply(first, None))
    protocol.events_received()
    third = protocol.send_request(LeaveRequest("b"))  # queued, never sent

    failed = protocol.fail_pending("connection_lost")

    assert [r.request_id for r in failed] == [second, third]
    assert all(isinstance(r.result, Failure) for r in failed)
    assert {r.result.kind for r in failed if isinstance(r.result, Failure)} == {"connection_lost"}
    assert failed[0].request == PostMessageRequest("a", "m", "hi")
    assert protocol.pending_ids == ()
    assert protocol.data_to_send() == []
    assert protocol.send_request(LeaveRequest("c")) == third + 1


def test_a_late_reply_to_an_abandoned_request_is_dropped() -> None:
    protocol = ClientProtocol()
    request_id = protocol.send_request(LeaveRequest("a"))

    failure = protocol.abandon(request_id, "timeout")
    protocol.receive_data(encode_reply(request_id, None))

    assert failure == ReplyReceived(
        request_id, Failure("timeout", "timeout", failure.result.detail)
    )  # type: ignore[union-attr]
    assert protocol.events_received() == []
    assert protocol.abandon(request_id) is None
    with pytest.raises(ProtocolError):  # only once
        protocol.receive_data(encode_reply(request_id, None))


_GOOD_MESSAGE = {
    "id": "m1",
    "chat_id": "c1",
    "author_id": "ann",
    "content": "héllo",
    "seq": 3,
    "created_at": 1.5,
    "edited_at": None,
}
_ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 2),
    st.floats(allow_nan=False),
    st.text(max_size=3),
    st.just("\ud800"),
    st.lists(st.integers(), max_size=1),
    st.dictionaries(st.text(max_size=1), st.integers(), max_size=1),
)


@given(
    st.lists(
        st.tuples(
            st.sampled_from((*_GOOD_MESSAGE, "extra")),
            st.one_of(st.just("drop"), _ODD_VALUES),
        ),
        max_size=3,
    ),
    st.booleans(),
)
def test_the_fast_message_list_path_accepts_and_refuses_as_the_converter(
    changes: list[tuple[str, object]], not_a_dict: bool
) -> None:
    """A snapshot's messages skip cattrs when well-formed; the outcome must not change."""
    entry: Any = dict(_GOOD_MESSAGE)
    for key, value in changes:
        if value == "drop":
            entry.pop(key, None)
        else:
            entry[key] = value
    data = [dict(_GOOD_MESSAGE), ["not a dict"] if not_a_dict else entry]
    fast = frames._wire_messages(data)
    try:
        slow: Any = tuple(frames._converter.structure(item, frames.WireMessage) for item in data)
    except Exception:
        slow = None
    if fast is None:
        # Refused (or left to the converter): the converter reports it, or accepts it.
        return
    assert slow == fast
    assert [type(m.created_at) for m in fast] == [float, float]


# The msgspec readers of replies ------------------------------------------------------------

_SNAPSHOT_JSON: dict[str, Any] = {
    "messages": [_GOOD_MESSAGE, {**_GOOD_MESSAGE, "id": "m2", "seq": 4, "created_at": 2}],
    "members_amount": 2,
    "member_metadata": {"role": "member"},
    "restrictions": [{"kind": "mute", "until": 10, "reason": None}],
    "last_seq": 4,
    "membership": "token",
    "epoch": "e1",
    "server_time": 5.0,
}
_BEYOND_A_FLOAT = "1e400"
_ODDER_VALUES = st.one_of(
    _ODD_VALUES,
    st.floats(),
    st.integers(2**63, 2**70),
    st.sampled_from(["mute", "block", _BEYOND_A_FLOAT]),
)
_PLACES = st.sampled_from(["snapshot", "message", "restriction", "metadata"])
_KEYS = st.sampled_from(
    sorted({*_SNAPSHOT_JSON, *_GOOD_MESSAGE, "kind", "until", "reason", "extra"})
)


def _general_read(text: str, wire: type, from_wire: Any) -> Any:
    """What the converter reads from ``text`` (None where it refuses it)."""
    try:
        return from_wire(frames.structure(frames._load_object(text), wire))
    except ProtocolError:
        return None


@given(
    st.lists(st.tuples(_PLACES, _KEYS, st.one_of(st.just("drop"), _ODDER_VALUES)), max_size=3),
    st.booleans(),
)
def test_the_msgspec_readers_of_replies_read_what_the_converter_reads(
    changes: list[tuple[str, str, object]], ascii_only: bool
) -> None:
    """A snapshot, history page or message read by msgspec is the converter's value,
    or not read."""
    snapshot: Any = json.loads(json.dumps(_SNAPSHOT_JSON))
    places = {
        "snapshot": snapshot,
        "message": snapshot["messages"][1],
        "restriction": snapshot["restrictions"][0],
        "metadata": snapshot["member_metadata"],
    }
    for place, key, value in changes:
        if value == "drop":
            places[place].pop(key, None)
        else:
            places[place][key] = value
    for value, wire, from_wire, read in [
        (snapshot, WireSnapshot, snapshot_from_wire, read_snapshot),
        ({"messages": snapshot.get("messages")}, WireHistory, history_from_wire, read_history),
        (places["message"], WireMessage, message_from_wire, read_message),
    ]:
        text = json.dumps(value, ensure_ascii=ascii_only).replace(
            f'"{_BEYOND_A_FLOAT}"', _BEYOND_A_FLOAT
        )
        fast = read(f'{{"type":"ok","id":1,"result":{text}}}', 1)
        general = _general_read(text, wire, from_wire)
        if fast is not None:  # where it does not read, the general path decides
            assert fast == general
            messages = (fast,) if isinstance(fast, Message) else fast
            for message in messages if isinstance(messages, tuple) else messages.messages:
                assert type(message.created_at) is float


def test_the_reader_reads_a_servers_snapshot_and_leaves_unknown_fields_to_the_converter() -> None:
    text = json.dumps(_SNAPSHOT_JSON)
    snapshot = read_snapshot(f'{{"type":"ok","id":1,"result":{text}}}', 1)

    assert snapshot is not None
    assert snapshot == _general_read(text, WireSnapshot, snapshot_from_wire)
    assert [m.status for m in snapshot.messages] == ["ready", "ready"]
    first, second = snapshot.messages
    assert first.chat_id is second.chat_id and first.author_id is second.author_id
    # Interned, not only shared in the page: the same strings as the chat's events get.
    assert first.chat_id is sys.intern(first.chat_id)
    assert first.author_id is sys.intern(first.author_id)
    newer = json.dumps({**_SNAPSHOT_JSON, "pinned": [1]})
    assert read_snapshot(f'{{"type":"ok","id":1,"result":{newer}}}', 1) is None
    assert _general_read(newer, WireSnapshot, snapshot_from_wire) == snapshot


# The fast path of the large replies ---------------------------------------------------------


def _join_reply(protocol: ClientProtocol, chat_id: str = "c") -> dict[str, Any]:
    """The server's reply frame to a join just sent on ``protocol``, as JSON data."""
    request_id = protocol.send_request(JoinRequest("c", "token"))
    message = Message("m1", chat_id, "ann", "hi", "ready", 1, 1.0)
    snapshot = ChatSnapshot((message,), 2, {"role": "member"}, (), 1)
    data: dict[str, Any] = json.loads(encode_reply(request_id, snapshot))
    return data


def test_a_join_reply_with_a_field_this_version_does_not_know_is_read_the_same() -> None:
    fast, general = ClientProtocol(), ClientProtocol()
    frame = _join_reply(fast)
    _join_reply(general)
    newer = {**frame, "trace": {"span": [1, 2]}, "result": {**frame["result"], "pinned": []}}

    fast.receive_data(json.dumps(frame))
    general.receive_data(json.dumps(newer))

    assert fast.events_received() == general.events_received()
    assert fast.pending_ids == general.pending_ids == ()


@pytest.mark.parametrize("where", ["frame", "result", "message"])
def test_a_join_reply_with_a_number_beyond_a_float_anywhere_is_refused(where: str) -> None:
    protocol = ClientProtocol()
    frame = _join_reply(protocol)
    parts = {"frame": frame, "result": frame["result"], "message": frame["result"]["messages"][0]}
    parts[where]["newer"] = "@"

    with pytest.raises(ProtocolError, match="beyond the range of a 64-bit float") as caught:
        protocol.receive_data(json.dumps(frame).replace('"@"', "1e400"))

    assert caught.value.close_code == 1007
    assert protocol.pending_ids == (1,)


def test_a_join_reply_of_another_chat_is_refused_on_the_fast_path_too() -> None:
    protocol = ClientProtocol()
    frame = _join_reply(protocol, chat_id="other")

    with pytest.raises(ProtocolError, match="of chat 'other'") as caught:
        protocol.receive_data(json.dumps(frame))

    assert caught.value.code == ErrorCode.UNEXPECTED_REPLY
    assert protocol.pending_ids == (1,)


def test_a_post_reply_is_read_on_the_fast_path_as_the_general_path_reads_it() -> None:
    fast, general = ClientProtocol(), ClientProtocol()
    for protocol in (fast, general):
        protocol.send_request(PostMessageRequest("c", "m1", "hi"))
    message = Message("m1", "c", "ann", "hi", "ready", 1, 1.0)
    frame = json.loads(encode_reply(1, message))
    newer = {**frame, "result": {**frame["result"], "pinned": True}}

    read = read_message(json.dumps(frame), 1)
    assert read == message
    assert read is not None and read.author_id is sys.intern("ann")
    assert read_message(json.dumps(newer), 1) is None  # left to the general path
    fast.receive_data(json.dumps(frame))
    general.receive_data(json.dumps(newer))

    received = fast.events_received()
    assert received == general.events_received()
    (reply,) = received
    assert isinstance(reply, ReplyReceived) and reply.result == message
    assert reply.result.author_id is sys.intern("ann")


def test_a_post_reply_with_another_message_is_refused_on_the_fast_path_too() -> None:
    protocol = ClientProtocol()
    protocol.send_request(PostMessageRequest("c", "m1", "hi"))

    with pytest.raises(ProtocolError, match="it is message 'm2' of chat 'c'") as caught:
        protocol.receive_data(encode_reply(1, Message("m2", "c", "ann", "hi", "ready", 1, 1.0)))

    assert caught.value.code == ErrorCode.UNEXPECTED_REPLY
    assert protocol.pending_ids == (1,)


@pytest.mark.parametrize(
    "text",
    [
        b'{"type":"ok","id":1,"result":null}',
        '{"type": "ok", "id": 1, "result": null}',
        '{"id":1,"type":"ok","result":null}',
        '{"type":"ok","id":01,"result":null}',
        '{"type":"ok","id":-1,"result":null}',
        '{"type":"ok","id":true,"result":null}',
        '{"type":"error","id":1,"code":"x","message":"y"}',
    ],
)
def test_the_fast_path_takes_only_ok_frames_that_start_as_the_codec_writes_them(
    text: str | bytes,
) -> None:
    assert frames.ok_frame_id(text) is None
    assert frames.ok_frame_id('{"type":"ok","id":7,"result":null}') == 7


@pytest.mark.parametrize(
    "text",
    [
        '{"type":"ok","id":1,"result":"\\ud800"}',
        '{"type":"ok","id":1,"result":"\ud800"}',
        '{"type":"ok","id":1,"result":"x","id":2}',
        '{"type":"ok","id":1}',
        '{"type":"ok","id":1,"result":"x","extra":0}',
        '{"type":"ok","id":1,"result":"x","extra":1e400}',
        '{"type":"ok","id":1,"result":"x"',
        '{"type":"ok","id":1,"result":' + "[" * 5000 + "]" * 5000 + "}",
    ],
)
def test_a_frame_the_fast_path_does_not_read_is_left_to_the_general_path(text: str) -> None:
    decoder = msgspec.json.Decoder(frames.OkJson[str])

    assert frames.read_ok_result(decoder, text, 1) is None
    assert frames.read_ok_result(decoder, '{"type":"ok","id":1,"result":"x"}', 1) == "x"


# The reader of message_posted events --------------------------------------------------------

_POSTED_FRAME: dict[str, Any] = {
    "type": "event",
    "chat_id": "c1",
    "seq": 3,
    "event": {"kind": "message_posted", "message": _GOOD_MESSAGE},
}


def _outcome(read: Any, text: str) -> tuple[str, object]:
    """What ``read(text)`` gives: its value, or the error it raises (message and code)."""
    try:
        return "value", read(text)
    except ProtocolError as error:
        return "error", (str(error), error.code, error.close_code)


def _general_event(text: str) -> ServerEvent:
    frame = frames.parse_server_frame(text)
    assert isinstance(frame, frames.EventFrame)
    return event_from_wire(frame)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["frame", "event", "message"]),
            st.sampled_from(sorted({*_POSTED_FRAME, *_GOOD_MESSAGE, "kind", "extra"})),
            st.one_of(st.just("drop"), _ODDER_VALUES, st.sampled_from(["c1", "c2", "event"])),
        ),
        max_size=3,
    ),
    st.booleans(),
)
def test_the_reader_of_posted_events_reads_what_the_converter_reads(
    changes: list[tuple[str, str, object]], ascii_only: bool
) -> None:
    """A message_posted frame read by msgspec gives the converter's event, or the same
    error; or it is not read, and the general path decides."""
    frame: Any = json.loads(json.dumps(_POSTED_FRAME))
    places = {"frame": frame, "event": frame["event"], "message": frame["event"]["message"]}
    for place, key, value in changes:
        if value == "drop":
            places[place].pop(key, None)
        else:
            places[place][key] = value
    text = json.dumps(frame, ensure_ascii=ascii_only, separators=(",", ":")).replace(
        f'"{_BEYOND_A_FLOAT}"', _BEYOND_A_FLOAT
    )
    fast = _outcome(read_event, text)
    if fast != ("value", None):
        assert fast == _outcome(_general_event, text)


def test_a_posted_event_is_read_on_the_fast_path_with_its_ids_shared() -> None:
    first = read_event(encode_event(MessagePosted("c", 3, _message("m1")), seq=3))
    second = read_event(
        encode_event(MessagePosted("c", 4, msgspec.structs.replace(_message("m2"), seq=4)), seq=4)
    )

    assert first == MessagePosted("c", 3, _message("m1"))
    assert isinstance(first, MessagePosted) and isinstance(second, MessagePosted)
    assert first.message.author_id is second.message.author_id
    assert first.message.chat_id is second.message.chat_id


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"seq": 4}, "message 'm1' posted by event 3 must have seq 3, not 4"),
        ({"chat_id": "c2"}, "an event of chat 'c1' carries a message of chat 'c2'"),
    ],
)
def test_a_posted_event_with_a_message_it_may_not_carry_is_refused_on_both_paths(
    change: dict[str, object], error: str
) -> None:
    frame: Any = json.loads(json.dumps(_POSTED_FRAME))
    frame["event"]["message"].update(change)
    compact = json.dumps(frame, separators=(",", ":"))
    spaced = json.dumps(frame)  # not as the server writes it: the general path

    for text in (compact, spaced):
        protocol = ClientProtocol()
        with pytest.raises(ProtocolError, match=f"^{error}$") as caught:
            protocol.receive_data(text)
        assert caught.value.code == ErrorCode.INVALID_FRAME
        assert protocol.events_received() == []
    assert read_event(spaced) is None


@pytest.mark.parametrize(
    "frame",
    [
        {**_POSTED_FRAME, "trace": 1},  # a newer server's field
        {**_POSTED_FRAME, "event": {**_POSTED_FRAME["event"], "kind": "message_edited"}},
    ],
)
def test_an_event_the_fast_path_does_not_read_is_read_by_the_general_path(
    frame: dict[str, Any],
) -> None:
    text = json.dumps(frame, separators=(",", ":"))
    protocol = ClientProtocol()

    protocol.receive_data(text)

    assert read_event(text) is None
    assert protocol.events_received() == [EventReceived(_general_event(text))]


# A post request read by msgspec, as the general path reads it -------------------------

post_values = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["\ud800", "a\udfffb", "\U0001f600"]),
    st.integers(min_value=-2, max_value=2**64 + 1),
    st.sampled_from([2**53 - 1, 2**53, 1.0, 1e400, True, None]),
    st.lists(st.integers(), max_size=2),
)


@st.composite
def post_fields(draw: st.DrawFn) -> dict[str, Any]:
    """A post's fields: valid, or one or two of them mistyped, out of range, missing,
    or unknown."""
    fields: dict[str, Any] = {
        "id": draw(st.integers(min_value=0, max_value=2**53 - 1)),
        "chat_id": draw(st.text(max_size=12)),
        "message_id": draw(st.text(max_size=12)),
        "content": draw(st.text(max_size=40)),
    }
    odd_ids = st.sampled_from([-1, 2**53, 2**64, 1.0, True, "1"])
    for name in draw(st.lists(st.sampled_from([*fields, "extra"]), max_size=2, unique=True)):
        if draw(st.booleans()):
            fields[name] = draw(odd_ids | post_values if name == "id" else post_values)
        else:
            fields.pop(name, None)
    return fields


def _as_read(text: str) -> object:
    """What ``decode_request`` gives for ``text``: the request, or the error's details."""
    try:
        return decode_request(text)
    except ProtocolError as error:
        return (str(error), error.code, error.request_id, error.close_code)


@settings(max_examples=500)
@given(post_fields(), st.booleans(), st.sampled_from(["", ',"id":3', ',"content":"again"', " "]))
def test_a_post_request_read_by_msgspec_is_what_the_general_path_reads(
    fields: dict[str, Any], ascii_only: bool, tail: str
) -> None:
    try:
        body = json.dumps(fields, ensure_ascii=ascii_only)
    except ValueError:  # a lone surrogate with ensure_ascii=False
        body = json.dumps(fields)
    text = '{"type":"post"' + ("," + body[1:] if fields else "}")
    if tail.strip():
        text = text[:-1] + tail + "}"  # a key repeated
    text += tail if not tail.strip() else ""
    with mock.patch.object(frames, "_read_post", return_value=None):
        expected = _as_read(text)
    assert _as_read(text) == expected


def test_a_usual_post_request_is_read_by_msgspec() -> None:
    text = encode_request(7, PostMessageRequest("c1", "m1", "hello"))

    assert frames._read_post(text) == (7, PostMessageRequest("c1", "m1", "hello"))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("id", -1),
        ("id", 2**53),
        ("id", 2**64),
        ("id", 1.0),
        ("id", True),
        ("chat_id", 5),
        ("message_id", None),
        ("content", ["hi"]),
        ("extra", 1),
    ],
)
def test_a_post_request_with_a_field_out_of_place_is_read_by_the_general_path(
    name: str, value: object
) -> None:
    text = json.dumps({**VALID_POST, name: value}, separators=(",", ":"))
    with mock.patch.object(frames, "_read_post", return_value=None):
        expected = _as_read(text)

    assert frames._read_post(text) is None
    assert _as_read(text) == expected
