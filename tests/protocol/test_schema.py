"""The published schema (chats_store/protocol/schema.json) says what the code does.

Its kinds, limits and constants are the code's; the frames of docs/protocol.md match
it; Hypothesis-made schema-valid requests are read by the codec, and a live server
answers each with a reply of the shape the schema gives for its type, never a
frame error. (tests/conftest.py checks every frame the servers of the server,
end-to-end, fault, fuzz and browser tests send.)
"""

from __future__ import annotations

import json
import re
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, get_args

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chats_store.chats.actions import ModerationMeasure
from chats_store.chats.commands import REQUEST_KINDS
from chats_store.chats.validation import MAX_HISTORY_PAGE
from chats_store.content import MAX_CONTENT_LENGTH, MAX_ID_LENGTH
from chats_store.errors import ErrorCode
from chats_store.protocol import (
    FEATURES,
    MAX_REQUEST_ID,
    PROTOCOL_VERSION,
    decode_request,
)
from chats_store.protocol.frames import EVENT_TAGS
from chats_store.protocol.schema import frame_schema
from chats_store.server import run_server
from chats_store.server.service import MAX_DURATION_MINUTES, MAX_REASON_LENGTH
from chats_store.server.wire import WireFrame
from tests.schema_check import ServerFrameCheck, validator, violations
from tests.server.conftest import SECRET, open_client

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = frame_schema()
DEFS = SCHEMA["$defs"]


def _refs(union: dict[str, Any]) -> list[str]:
    return [
        option["$ref"].removeprefix("#/$defs/") for option in union.get("oneOf", union.get("anyOf"))
    ]


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_it_has_every_request_event_and_reply_of_the_code() -> None:
    assert _refs(DEFS["request"]) == list(REQUEST_KINDS)
    assert [DEFS[tag]["properties"]["type"]["const"] for tag in REQUEST_KINDS] == list(
        REQUEST_KINDS
    )
    assert _refs(DEFS["ok"]) == [f"ok_{tag}" for tag in REQUEST_KINDS]
    assert _refs(DEFS["event"]["properties"]["event"]) == list(EVENT_TAGS.values())
    assert _refs(DEFS["server_frame"]) == ["hello", "ok", "error", "event"]


def test_its_limits_are_the_codes() -> None:
    assert DEFS["request_id"]["maximum"] == MAX_REQUEST_ID
    for tag in REQUEST_KINDS:
        for name, field in DEFS[tag]["properties"].items():
            if name.endswith("_id"):
                assert (field["minLength"], field["maxLength"]) == (1, MAX_ID_LENGTH), name
    assert DEFS["post"]["properties"]["content"]["maxLength"] == MAX_CONTENT_LENGTH
    moderate = DEFS["moderate"]["properties"]
    assert set(moderate["measure"]["enum"]) == set(get_args(ModerationMeasure))
    assert moderate["duration"]["anyOf"][0]["maximum"] == MAX_DURATION_MINUTES
    assert moderate["reason"]["anyOf"][0]["maxLength"] == MAX_REASON_LENGTH
    assert DEFS["moderate"]["required"] == ["type", "id", "chat_id", "member_id", "measure"]
    assert DEFS["history"]["properties"]["limit"]["maximum"] == MAX_HISTORY_PAGE
    assert DEFS["hello"]["properties"]["protocol"]["const"] == PROTOCOL_VERSION
    assert all(
        feature in DEFS["hello"]["properties"]["features"]["description"] for feature in FEATURES
    )


def _documented_frames() -> list[str]:
    text = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```json\n(.*?)```", text, flags=re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("frame", _documented_frames())
def test_every_frame_of_the_protocol_document_matches(frame: str) -> None:
    data = json.loads(frame)
    if "type" not in data:  # a value (a message, a restriction), not a frame
        name = "message" if "author_id" in data else "restriction"
        assert not violations(validator(name), frame)
        return
    assert not violations(validator(), frame)


def test_the_frame_check_reports_an_undocumented_field() -> None:
    check = ServerFrameCheck()
    sent: list[str] = []
    send = check.wrap(lambda _outbox, frame: sent.append(frame.text))
    for text in (
        '{"type":"error","id":1,"code":"timeout","message":"m"}',
        '{"type":"error","id":1,"code":"timeout","message":"m","debug":1}',
        '{"type":"error","id":1,"code":"timeout","message":"m"}',
    ):
        send(None, WireFrame(text))  # type: ignore[arg-type]

    assert len(sent) == 3 and len(check.frames) == 2  # each text is checked once
    (failure,) = check.verify()
    assert "debug" in failure


# Schema-valid requests, made from the schema itself ---------------------------------------


def _strategy(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values valid for ``schema`` (the subset of JSON Schema schema.json uses)."""
    if "$ref" in schema:
        return st.deferred(lambda: _strategy(DEFS[schema["$ref"].removeprefix("#/$defs/")]))
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for union in ("oneOf", "anyOf"):
        if union in schema:
            return st.one_of([_strategy(option) for option in schema[union]])
    kind = schema["type"]
    if kind == "null":
        return st.none()
    if kind == "string":
        return st.text(
            st.characters(exclude_categories=("Cs",)),
            min_size=schema.get("minLength", 0),
            max_size=min(schema.get("maxLength", 40), 300),
        )
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind == "array":
        return st.lists(_strategy(schema["items"]), max_size=3)
    assert kind == "object", schema
    if "properties" not in schema:
        return st.dictionaries(
            st.text(max_size=5), _strategy(schema["additionalProperties"]), max_size=3
        )
    required = {name: _strategy(schema["properties"][name]) for name in schema["required"]}
    optional = {
        name: _strategy(field)
        for name, field in schema["properties"].items()
        if name not in schema["required"]
    }
    return st.fixed_dictionaries(required, optional=optional)


def _requests(chat_ids: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Schema-valid requests, half of them about a chat the client joined (so that some
    get past the membership check)."""

    def about_a_known_chat(request: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
        return st.sampled_from(chat_ids).map(lambda chat_id: {**request, "chat_id": chat_id})

    valid = _strategy(DEFS["request"])
    return st.one_of(valid, valid.flatmap(about_a_known_chat))


@given(_requests(["c1"]))
def test_a_schema_valid_request_is_read_by_the_codec(request: dict[str, Any]) -> None:
    request_id, decoded = decode_request(json.dumps(request))
    assert request_id == request["id"]
    assert REQUEST_KINDS[request["type"]].request is type(decoded)


KNOWN_CODES = {code.value for code in ErrorCode}
FRAME_ERRORS = {ErrorCode.INVALID_FRAME, ErrorCode.INVALID_JSON, ErrorCode.UNKNOWN_REQUEST}


async def test_schema_valid_requests_are_answered_as_the_schema_says() -> None:
    """Through a live server: each answer is an ``ok_<type>`` or an ``error`` with the
    request's id and a known code, never a frame error."""
    async with run_server(secret=SECRET, rate_limit=None) as server, AsyncExitStack() as stack:
        client = await open_client(stack, server, "alice")
        await client.join("c1", permissions=["send", "moderate"])
        connection = client.connection
        errors = validator("error")
        answered: list[str] = []

        @settings(
            max_examples=150,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(_requests(["c1"]))
        def check(request: dict[str, Any]) -> None:
            answered.append(json.dumps(request))

        check()  # draw the requests first (Hypothesis runs synchronously)
        for index, text in enumerate(answered):
            request = {**json.loads(text), "id": 10_000 + index}
            await connection.send(json.dumps(request))
            while True:
                answer = await connection.recv()
                frame = json.loads(answer)
                if frame["type"] != "event":
                    break
            assert frame["id"] == request["id"], (request, frame)
            if frame["type"] == "ok":
                assert not violations(validator(f"ok_{request['type']}"), answer), (
                    request,
                    answer,
                )
                if request["type"] == "leave" and request["chat_id"] == "c1":
                    await client.join("c1", permissions=["send", "moderate"])  # back in
            else:
                assert not violations(errors, answer), answer
                assert frame["code"] not in FRAME_ERRORS, (request, frame)
                assert frame["code"] in KNOWN_CODES, frame
