"""The Chats value types and state: Message, Restriction, SyncStatuses, immutable mappings."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given, settings

from chats_store.chats.actions import ChatSnapshot
from chats_store.chats.model import (
    ChatsState,
    ChatState,
    Message,
    MessageLog,
    MessageSequence,
    Restriction,
    SyncStatuses,
    replaced,
)
from chats_store.chats.validation import check_content
from chats_store.testing import strategies

# Restriction and SyncStatuses ---------------------------------------------------------


def test_a_permanent_restriction_is_always_active() -> None:
    assert Restriction("mute").is_active(0.0)
    assert Restriction("block", None, "spam").is_active(1e12)


def test_a_timed_restriction_is_active_until_its_end() -> None:
    mute = Restriction("mute", until=100.0)
    assert mute.is_active(99.999)
    assert not mute.is_active(100.0)
    assert not mute.is_active(150.0)


@pytest.mark.parametrize(
    ("messages", "members", "syncing"),
    [
        ("idle", "idle", False),
        ("loading", "idle", True),
        ("idle", "loading", True),
        ("loading", "loading", True),
    ],
)
def test_sync_statuses_is_syncing_while_any_kind_loads(
    messages: str, members: str, syncing: bool
) -> None:
    statuses = SyncStatuses(messages=messages, members=members)  # type: ignore[arg-type]
    assert statuses.is_syncing is syncing


def test_sync_statuses_default_to_idle() -> None:
    assert SyncStatuses() == SyncStatuses("idle", "idle")
    assert not SyncStatuses().is_syncing


# The state's mappings are immutable -------------------------------------------------------


def test_the_state_mappings_cannot_be_changed_in_place() -> None:
    message = Message("m", "c1", "me", "text", "updating", seq=1)
    chat = ChatState(chat_id="c1", status="ready", join_call_id=1, originals={"m": message})
    state = ChatsState(chat_ids=("c1",), chats={"c1": chat})
    with pytest.raises(TypeError):
        state.chats["c2"] = chat  # type: ignore[index]
    with pytest.raises(TypeError):
        state.removed["c1"] = None  # type: ignore[index]
    with pytest.raises(TypeError):
        chat.originals["n"] = message  # type: ignore[index]
    assert state.chats["c1"] is chat and chat.originals["m"] is message
    assert state == ChatsState(chat_ids=("c1",), chats=state.chats), "converted once, kept"


def test_replaced_copies_with_the_changes_and_leaves_the_original() -> None:
    chat = ChatState(chat_id="c1", status="loading", join_call_id=1, last_seq=3)
    ready = replaced(chat, {"status": "ready", "last_seq": 4})
    assert type(ready) is ChatState and ready is not chat
    assert ready == ChatState(chat_id="c1", status="ready", join_call_id=1, last_seq=4)
    assert chat == ChatState(chat_id="c1", status="loading", join_call_id=1, last_seq=3)
    assert hash(replaced(chat, {})) == hash(chat) and replaced(chat, {}) == chat
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        ready.status = "loading"  # type: ignore[misc]


def test_a_message_is_a_frozen_value_the_collector_does_not_track() -> None:
    import gc
    import pickle

    import msgspec

    message = Message("m1", "c1", "u1", "hello", "ready", 3, 1.5)
    assert not gc.is_tracked(message)  # what keeps full collections off a long history
    chunk = (message, Message("m2", "c1", "u1", "again", "sending"))
    gc.collect()
    assert not gc.is_tracked(chunk)  # a tuple of messages is untracked at a collection
    edited = msgspec.structs.replace(message, content="edited")
    assert edited == Message("m1", "c1", "u1", "edited", "ready", 3, 1.5) != message
    assert hash(message) == hash(Message("m1", "c1", "u1", "hello", "ready", 3, 1.5))
    assert pickle.loads(pickle.dumps(message)) == message
    assert repr(message).startswith("Message(id='m1', chat_id='c1', author_id='u1',")
    match message:
        case Message(message_id, "c1", status="ready"):
            assert message_id == "m1"
        case _:
            pytest.fail("a message matches its class pattern")
    with pytest.raises(AttributeError):
        message.content = "changed"  # type: ignore[misc]


def test_the_log_types_are_still_importable_from_model() -> None:
    from chats_store.chats import message_log

    assert MessageLog is message_log.MessageLog
    assert MessageSequence is message_log.MessageSequence


# The public strategies produce what they promise ------------------------------------------


@settings(max_examples=100, deadline=None)
@given(strategies.contents())
def test_generated_contents_are_accepted_by_send_message(content: str) -> None:
    assert check_content(content, "send_message") == content


@settings(max_examples=100, deadline=None)
@given(strategies.messages("c1"))
def test_generated_messages_are_confirmed_or_pending(message: Message) -> None:
    assert message.chat_id == "c1"
    if message.seq is None:
        assert message.status in ("sending", "interrupted", "deleting")
        assert message.author_id == strategies.CLIENT_ID
    else:
        assert message.status in ("ready", "updating", "deleting")
    assert 1 <= len(message.content) <= 256


@settings(max_examples=100, deadline=None)
@given(strategies.chat_snapshots("c1"))
def test_generated_snapshots_are_consistent(snapshot: ChatSnapshot) -> None:
    seqs = [message.seq or 0 for message in snapshot.messages]
    assert all(1 <= seq <= snapshot.last_seq for seq in seqs)
    assert seqs == sorted(set(seqs))
    assert len({message.id for message in snapshot.messages}) == len(seqs)


@settings(max_examples=100, deadline=None)
@given(strategies.restrictions(), strategies.timestamps())
def test_generated_restrictions_are_active_until_their_end(
    restriction: Restriction, now: float
) -> None:
    assert restriction.is_active(now) == (restriction.until is None or now < restriction.until)
