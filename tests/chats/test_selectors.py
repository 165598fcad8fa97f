"""The selectors' contract with the store: each per-chat projection reads only the
attribute of the chat that ``PROJECTION_FIELDS`` names (the ``field`` its getter is
made with), so a dispatch may pass over it while that attribute is unchanged."""

from __future__ import annotations

import attrs
import pytest

from chats_store.chats.message_log import MessageLog
from chats_store.chats.model import (
    SYNC_IDLE,
    ChatState,
    Message,
    Restriction,
    read_only,
    replaced,
)
from chats_store.chats.selectors import PROJECTION_FIELDS


def a_chat() -> ChatState:
    message = Message("m1", "c1", "ann", "hello", "ready", seq=1, created_at=1.0)
    return ChatState(
        chat_id="c1",
        status="ready",
        join_call_id=1,
        messages=MessageLog((message,)),
        members_amount=2,
        sync_statuses=SYNC_IDLE,
        member_metadata=read_only({"role": "member"}),
        restrictions=(Restriction("mute", until=10.0),),
        last_seq=1,
    )


@pytest.mark.parametrize(
    ("projection", "field"), PROJECTION_FIELDS.items(), ids=lambda p: getattr(p, "__name__", p)
)
def test_a_projection_reads_only_its_field(projection: object, field: str) -> None:
    chat = a_chat()
    # Every other attribute replaced by an object no projection could read.
    others = {other.name: object() for other in attrs.fields(ChatState) if other.name != field}
    stripped = replaced(chat, others)

    assert callable(projection)
    assert projection(stripped) == projection(chat)


def test_every_field_named_is_an_attribute_of_a_chat() -> None:
    names = {field.name for field in attrs.fields(ChatState)}
    assert set(PROJECTION_FIELDS.values()) <= names
