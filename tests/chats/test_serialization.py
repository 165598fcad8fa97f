"""Every action class round-trips through the action converter, credentials redacted."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from chats_store.chats.actions import (
    ChatHistoryRestored,
    ChatJoined,
    ChatResumed,
    ChatResumeFailed,
    ChatSnapshot,
    ChatsRestored,
    JoinChat,
    MembershipRenewal,
    MembershipRenewalDue,
    MembershipRenewed,
    MembershipRenewFailed,
    RestoredChat,
    Resumption,
)
from chats_store.chats.model import ChatsState, PendingOperation
from chats_store.chats.serialization import (
    ACTION_TYPES,
    REDACTED,
    action_from_data,
    action_to_data,
    redact,
)
from chats_store.testing import strategies as cs


@st.composite
def resumed(draw: st.DrawFn) -> Any:
    snapshot = draw(st.none() | cs.chat_snapshots("c1").map(lambda s: _with_membership(s)))
    events = () if snapshot else tuple(draw(st.lists(cs.server_events("c1"), max_size=3)))
    resumption = Resumption(
        events=events,
        snapshot=snapshot,
        members_amount=draw(st.integers(0, 10)),
        member_metadata=draw(cs.member_metadata()),
        restrictions=tuple(draw(st.lists(cs.restrictions(), max_size=2))),
        last_seq=draw(st.integers(0, 100)),
        membership="membership-secret",
    )
    return ChatResumed(draw(st.integers(1, 100)), "c1", resumption)


@st.composite
def restored(draw: st.DrawFn) -> ChatsRestored:
    """The chats of a state file (the messages are those a chat shows)."""
    chats = []
    for chat_id in draw(st.lists(cs.chat_ids(), max_size=3, unique=True)):
        messages = tuple(draw(st.lists(cs.messages(chat_id), max_size=3)))
        operations = tuple(
            PendingOperation(
                draw(st.sampled_from(("send", "edit", "delete"))),
                message.id,
                draw(st.none() | cs.contents()),
            )
            for message in messages
        )
        chats.append(
            RestoredChat(
                chat_id=chat_id,
                last_seq=draw(st.integers(0, 100)),
                membership="membership-secret",
                members_amount=draw(st.none() | st.integers(0, 10)),
                member_metadata=draw(cs.member_metadata()),
                restrictions=tuple(draw(st.lists(cs.restrictions(), max_size=2))),
                messages=messages,
                operations=operations,
            )
        )
    return ChatsRestored(tuple(chats))


@st.composite
def history(draw: st.DrawFn) -> ChatHistoryRestored:
    messages = tuple(draw(st.lists(cs.confirmed_messages("c1"), max_size=3)))
    return ChatHistoryRestored("c1", draw(st.integers(1, 100)), messages)


def _with_membership(snapshot: ChatSnapshot) -> ChatSnapshot:
    import attrs

    return attrs.evolve(snapshot, membership="membership-secret")


any_action = st.one_of(
    cs.chats_states(max_steps=10).flatmap(cs.chats_actions),
    resumed(),
    restored(),
    history(),
    st.builds(ChatResumeFailed, st.integers(1, 9), cs.chat_ids(), cs.failures()),
    st.builds(
        MembershipRenewed,
        st.integers(0, 9),
        cs.chat_ids(),
        st.just(MembershipRenewal("membership-secret")),
    ),
    st.builds(MembershipRenewFailed, st.integers(0, 9), cs.chat_ids(), cs.failures()),
    st.builds(MembershipRenewalDue, cs.chat_ids()),
)
NOT_DRAWN = (
    ChatResumed,
    ChatResumeFailed,
    MembershipRenewed,
    MembershipRenewFailed,
    MembershipRenewalDue,
    ChatsRestored,
    ChatHistoryRestored,
)
"""The action classes that the strategy of any action about a state does not draw."""


@given(any_action)
def test_every_action_round_trips_through_json(action: Any) -> None:
    data = json.loads(json.dumps(action_to_data(action)))
    assert action_from_data(data) == redact(action)
    assert "membership-secret" not in json.dumps(data)


def test_the_strategies_cover_every_action_class() -> None:
    from chats_store.testing.strategies import _ANY_ACTION_KINDS

    assert set(ACTION_TYPES) == {*_ANY_ACTION_KINDS, *NOT_DRAWN}


def test_credentials_are_redacted() -> None:
    data = action_to_data(JoinChat(1, "c1", "the-chat-token"))
    assert data == {"type": "JoinChat", "call_id": 1, "chat_id": "c1", "token": REDACTED}
    snapshot = ChatSnapshot((), 1, {}, (), 0, membership="m-token")
    joined = action_to_data(ChatJoined(1, "c1", snapshot))
    assert joined["snapshot"]["membership"] == REDACTED


def test_a_non_action_is_refused() -> None:
    import pytest

    with pytest.raises(TypeError, match="not a chats_store action"):
        action_to_data(ChatsState())


def test_a_message_is_written_field_by_field_and_read_strictly() -> None:
    import pytest
    from cattrs.errors import ClassValidationError

    from chats_store.chats.actions import MessagePosted
    from chats_store.chats.model import Message

    message = Message("m1", "c1", "u1", "hello", "ready", 3, 1.5)
    data = action_to_data(MessagePosted("c1", 3, message))
    assert data["message"] == {
        "id": "m1",
        "chat_id": "c1",
        "author_id": "u1",
        "content": "hello",
        "status": "ready",
        "seq": 3,
        "created_at": 1.5,
        "edited_at": None,
    }
    assert action_from_data(data) == MessagePosted("c1", 3, message)
    for field, wrong in (("status", "bogus"), ("seq", "3"), ("content", None)):
        broken = {**data, "message": {**data["message"], field: wrong}}
        with pytest.raises(ClassValidationError) as caught:
            action_from_data(broken)
        assert f"$.{field}" in repr(caught.value.exceptions)  # msgspec names the field
