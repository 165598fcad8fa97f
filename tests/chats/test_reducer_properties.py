"""Properties of the Chats reducer over generated valid states and any action."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from chats_store.chats.actions import RemovedFromChat
from chats_store.chats.commands import SendRequest, SettleCall
from chats_store.chats.lifecycle import INTENTS
from chats_store.chats.model import ChatsState
from chats_store.chats.reducer import reduce_chats
from chats_store.testing.strategies import (
    chats_actions,
    chats_scenarios,
    chats_states,
    server_events,
)

PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def state_and_action() -> st.SearchStrategy[tuple[ChatsState, Any]]:
    return chats_states(max_steps=30).flatmap(
        lambda state: st.tuples(st.just(state), chats_actions(state))
    )


def assert_well_formed(state: ChatsState) -> None:
    assert len(state.chat_ids) == len(state.chats), (state.chat_ids, list(state.chats))
    assert set(state.chat_ids) == set(state.chats), (state.chat_ids, list(state.chats))
    for chat_id, chat in state.chats.items():
        assert chat.chat_id == chat_id
        seqs = [message.seq for message in chat.messages]
        confirmed = [seq for seq in seqs if seq is not None]
        assert seqs[: len(confirmed)] == confirmed, f"pending before confirmed in {chat_id}: {seqs}"
        assert confirmed == sorted(set(confirmed)), f"{chat_id} out of seq order: {seqs}"
        message_ids = [message.id for message in chat.messages]
        assert len(set(message_ids)) == len(message_ids), f"duplicate ids in {chat_id}"
        assert set(chat.originals) <= set(message_ids), "an original without its message"
        for message_id in chat.originals:
            message = chat.messages.find(message_id)
            assert message is not None
            assert message.status in ("updating", "deleting")


@PROPERTY_SETTINGS
@given(chats_scenarios(max_steps=40))
def test_generated_states_are_well_formed(scenario: Any) -> None:
    assert_well_formed(scenario.state)


@PROPERTY_SETTINGS
@given(state_and_action())
def test_the_reducer_never_raises_and_keeps_the_state_well_formed(
    case: tuple[ChatsState, Any],
) -> None:
    state, action = case
    step = reduce_chats(state, action)
    assert isinstance(step.state, ChatsState)
    assert_well_formed(step.state)


@PROPERTY_SETTINGS
@given(state_and_action())
def test_an_intent_is_never_silenced(case: tuple[ChatsState, Any]) -> None:
    """Every intent sends its request, waits in its chat's send queue, or settles its call
    (the rejection leaves the state identical)."""
    state, action = case
    call_id = getattr(action, "call_id", None)
    in_use = {
        used
        for chat in state.chats.values()
        for used in (chat.join_call_id, *(entry.call_id for entry in chat.send_queue))
    }
    if type(action) not in INTENTS:
        return
    assume(call_id not in in_use)  # facade call ids are fresh
    step = reduce_chats(state, action)
    settled = [c for c in step.commands if isinstance(c, SettleCall) and c.call_id == call_id]
    sent = [c for c in step.commands if isinstance(c, SendRequest) and c.call_id == call_id]
    chat = step.state.chats.get(action.chat_id)
    queued = chat is not None and any(entry.call_id == call_id for entry in chat.send_queue[1:])
    assert len(settled) + len(sent) + queued == 1, (action, step.commands)
    if settled:
        failure = settled[0].outcome.failure  # type: ignore[union-attr]
        assert failure.kind == "rejected" and step.state is state


@PROPERTY_SETTINGS
@given(state_and_action())
def test_an_action_about_one_chat_keeps_the_other_chats_identical(
    case: tuple[ChatsState, Any],
) -> None:
    state, action = case
    concerned = getattr(action, "chat_id", None)
    next_state = reduce_chats(state, action).state
    if concerned is None:  # a connection change may touch every chat
        return
    for chat_id, chat in state.chats.items():
        if chat_id != concerned:
            assert next_state.chats.get(chat_id) is chat, (chat_id, type(action).__name__)
    assert [c for c in next_state.chat_ids if c != concerned] == [
        c for c in state.chat_ids if c != concerned
    ]


@PROPERTY_SETTINGS
@given(state_and_action())
def test_an_action_that_changes_nothing_returns_the_identical_state(
    case: tuple[ChatsState, Any],
) -> None:
    state, action = case
    next_state = reduce_chats(state, action).state
    if next_state == state:
        assert next_state is state, f"{type(action).__name__} rebuilt an equal state"
    for chat_id, chat in state.chats.items():
        next_chat = next_state.chats.get(chat_id)
        if next_chat is not None and next_chat == chat:
            assert next_chat is chat, f"{type(action).__name__} rebuilt an equal {chat_id}"


def _last_assigned_seq(state: ChatsState, chat_id: str) -> int:
    """The highest seq the server has given out that the client knows of (an ack's
    seq can be above ``last_seq`` until its push arrives)."""
    chat = state.chats[chat_id]
    return max([chat.last_seq, *(m.seq for m in chat.messages if m.seq is not None)])


def ready_chat_and_event() -> st.SearchStrategy[tuple[ChatsState, Any]]:
    def with_event(state: ChatsState) -> st.SearchStrategy[tuple[ChatsState, Any]]:
        ready = sorted(c for c, chat in state.chats.items() if chat.status == "ready")
        if not ready:
            return st.nothing()
        return st.sampled_from(ready).flatmap(
            lambda chat_id: st.tuples(
                st.just(state),
                server_events(
                    chat_id,
                    after_seq=_last_assigned_seq(state, chat_id),
                    known_messages=state.chats[chat_id].messages.items,
                ),
            )
        )

    return chats_states(max_steps=30).flatmap(with_event)


@PROPERTY_SETTINGS
@given(ready_chat_and_event())
def test_a_new_server_event_is_applied_to_a_ready_chat(case: tuple[ChatsState, Any]) -> None:
    state, event = case
    next_state = reduce_chats(state, event).state
    assert_well_formed(next_state)
    if isinstance(event, RemovedFromChat):
        assert event.chat_id not in next_state.chats
    else:
        assert next_state.chats[event.chat_id].last_seq == event.seq
