"""The reply codecs: every reply type a request kind declares travels, and nothing else."""

from __future__ import annotations

import json
from typing import Any, get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chats_store.chats.commands import REQUEST_KINDS, ChatReply, LeaveRequest
from chats_store.errors import ErrorCode, ProtocolError
from chats_store.protocol import (
    ClientProtocol,
    decode_request,
    encode_reply,
    encode_request,
    frames,
)
from chats_store.protocol.frames import WireHistory, WireSnapshot
from chats_store.protocol.mapping import (
    REPLY_CODECS,
    history_from_wire,
    read_history,
    read_snapshot,
    snapshot_from_wire,
)


def test_every_declared_reply_type_has_a_codec() -> None:
    declared = {kind.reply for kind in REQUEST_KINDS.values()}

    assert declared == set(REPLY_CODECS) == set(get_args(ChatReply))


def test_a_value_that_is_not_a_reply_cannot_be_encoded() -> None:
    with pytest.raises(TypeError, match="not a chat reply"):
        encode_reply(1, "hello")  # type: ignore[arg-type]


def test_a_value_that_is_not_a_request_cannot_be_encoded() -> None:
    with pytest.raises(TypeError, match="not a chat request"):
        encode_request(1, "join")  # type: ignore[arg-type]


@pytest.mark.parametrize("result", [{}, [], 0, False, "null"])
def test_an_empty_reply_must_be_null(result: object) -> None:
    protocol = ClientProtocol()
    request_id = protocol.send_request(LeaveRequest("c"))

    with pytest.raises(ProtocolError, match="expected null") as caught:
        protocol.receive_data(json.dumps({"type": "ok", "id": request_id, "result": result}))

    assert caught.value.code == ErrorCode.INVALID_FRAME
    assert caught.value.request_id == request_id
    assert protocol.pending_ids == (request_id,)


def test_an_unknown_request_type_names_the_registered_ones() -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_request('{"type": "shout", "id": 5}')

    assert caught.value.code == ErrorCode.UNKNOWN_REQUEST
    assert str(caught.value).endswith("expected one of " + ", ".join(REQUEST_KINDS))


# The readers of the large replies --------------------------------------------------------

_MESSAGE_JSON: dict[str, Any] = {
    "id": "m1",
    "chat_id": "c1",
    "author_id": "ann",
    "content": "héllo",
    "seq": 3,
    "created_at": 1.5,
    "edited_at": None,
}
_SNAPSHOT_JSON: dict[str, Any] = {
    "messages": [_MESSAGE_JSON, {**_MESSAGE_JSON, "id": "m2", "seq": 4, "created_at": 2}],
    "members_amount": 2,
    "member_metadata": {"role": "member"},
    "restrictions": [{"kind": "mute", "until": 10, "reason": None}],
    "last_seq": 4,
    "membership": "token",
    "epoch": "e1",
    "server_time": 5.0,
}
_BEYOND_A_FLOAT = "1e400"
_ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 2),
    st.integers(2**63, 2**70),
    st.floats(),
    st.text(max_size=3),
    st.sampled_from(["\ud800", "mute", "block", _BEYOND_A_FLOAT]),
    st.lists(st.integers(), max_size=1),
    st.dictionaries(st.text(max_size=1), st.integers(), max_size=1),
)
_PLACES = st.sampled_from(["snapshot", "message", "restriction", "metadata"])
_KEYS = st.sampled_from(
    sorted({*_SNAPSHOT_JSON, *_MESSAGE_JSON, "kind", "until", "reason", "extra"})
)


def _general_read(text: str, wire: type, from_wire: Any) -> Any:
    """What the converter reads from ``text`` (None where it refuses it)."""
    try:
        return from_wire(frames.structure(frames._load_object(text), wire))
    except ProtocolError:
        return None


@given(
    st.lists(st.tuples(_PLACES, _KEYS, st.one_of(st.just("drop"), _ODD_VALUES)), max_size=3),
    st.booleans(),
)
def test_the_readers_of_large_replies_read_what_the_converter_reads(
    changes: list[tuple[str, str, object]], ascii_only: bool
) -> None:
    """A snapshot or history page read by msgspec is the converter's value, or not read."""
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
    ]:
        text = json.dumps(value, ensure_ascii=ascii_only).replace(
            f'"{_BEYOND_A_FLOAT}"', _BEYOND_A_FLOAT
        )
        fast = read(f'{{"type":"ok","id":1,"result":{text}}}', 1)
        general = _general_read(text, wire, from_wire)
        if fast is not None:  # where it does not read, the general path decides
            assert fast == general
            for message in fast if isinstance(fast, tuple) else fast.messages:
                assert type(message.created_at) is float


def test_the_reader_reads_a_servers_snapshot_and_leaves_unknown_fields_to_the_converter() -> None:
    text = json.dumps(_SNAPSHOT_JSON)
    snapshot = read_snapshot(f'{{"type":"ok","id":1,"result":{text}}}', 1)

    assert snapshot is not None
    assert snapshot == _general_read(text, WireSnapshot, snapshot_from_wire)
    assert [m.status for m in snapshot.messages] == ["ready", "ready"]
    first, second = snapshot.messages
    assert first.chat_id is second.chat_id and first.author_id is second.author_id
    newer = json.dumps({**_SNAPSHOT_JSON, "pinned": [1]})
    assert read_snapshot(f'{{"type":"ok","id":1,"result":{newer}}}', 1) is None
    assert _general_read(newer, WireSnapshot, snapshot_from_wire) == snapshot
