"""The reply codecs: every reply type a request kind declares travels, and nothing else."""

from __future__ import annotations

import json
from typing import get_args

import attrs
import msgspec
import pytest

from chats_store.chats.commands import REQUEST_KINDS, ChatReply, LeaveRequest
from chats_store.chats.model import Restriction
from chats_store.errors import ErrorCode, ProtocolError
from chats_store.protocol import (
    ClientProtocol,
    decode_request,
    encode_reply,
    encode_request,
    mapping,
)
from chats_store.protocol.frames import WireHistory, WireMessage, WireSnapshot
from chats_store.protocol.mapping import REPLY_CODECS


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


@pytest.mark.parametrize(
    ("struct", "wire"),
    [
        (mapping._MessageJson, WireMessage),
        (mapping._RestrictionJson, Restriction),
        (mapping._SnapshotJson, WireSnapshot),
        (mapping._HistoryJson, WireHistory),
    ],
)
def test_the_readers_structs_have_the_fields_of_the_wire_classes(struct: type, wire: type) -> None:
    """The fast path reads the fields the converter reads, with the same defaults."""
    fields = {
        field.encode_name: None if field.required else field.default
        for field in msgspec.structs.fields(struct)
    }
    expected = {
        field.name: None if field.default is attrs.NOTHING else field.default
        for field in attrs.fields(wire)
    }

    assert fields == expected
