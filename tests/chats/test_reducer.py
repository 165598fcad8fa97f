"""The Chats reducer, one example per transition of CHATS_CASES and CHAT_CASES."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import msgspec
import pytest

from chats_store.chats.actions import (
    ChatHistoryRestored,
    ChatJoined,
    ChatJoinFailed,
    ChatLeaveFailed,
    ChatLeft,
    ChatMemberModerated,
    ChatResumed,
    ChatResumeFailed,
    ChatSnapshot,
    ChatsRestored,
    ConnectionStatusChanged,
    DeleteMessage,
    Failure,
    JoinChat,
    LeaveChat,
    LoadOlderMessages,
    MembersAmountChanged,
    MembershipRenewal,
    MembershipRenewalDue,
    MembershipRenewed,
    MembershipRenewFailed,
    MessageDeleted,
    MessageDeleteFailed,
    MessageEdited,
    MessagePosted,
    MessageRemoved,
    MessageSendFailed,
    MessageSent,
    MessageUpdated,
    MessageUpdateFailed,
    ModerateChatMember,
    OlderMessagesLoaded,
    OlderMessagesLoadFailed,
    OwnMetadataChanged,
    OwnRestrictionsChanged,
    RemovedFromChat,
    ResendMessage,
    RestoredChat,
    Resumption,
    SendMessage,
    UpdateMessage,
)
from chats_store.chats.commands import (
    DeleteMessageRequest,
    DispatchLater,
    EditMessageRequest,
    HistoryRequest,
    JoinRequest,
    LeaveRequest,
    ModerationRequest,
    PostMessageRequest,
    RenewRequest,
    ResumeRequest,
    SendRequest,
    SettleCall,
)
from chats_store.chats.event_buffer import EventBuffer
from chats_store.chats.lifecycle import INTENTS
from chats_store.chats.model import (
    ChatRemoval,
    ChatsState,
    ChatState,
    Message,
    PendingOperation,
    Restriction,
    SyncStatuses,
)
from chats_store.chats.reducer import (
    CHAT_CASES,
    CHATS_CASES,
    MAX_BUFFERED_EVENTS,
    chats_reducer,
    reduce_chats,
)
from chats_store.core.reducer import Reducer, Step
from chats_store.errors import ErrorCode
from chats_store.server.tokens import mint_membership_token

ME = "me"
TIMEOUT = Failure("timeout", "timeout", "no reply in time")
REFUSED = Failure("refused", ErrorCode.PERMISSION_DENIED, "not allowed")


def server_message(
    message_id: str, seq: int, content: str = "hello", author: str = "alice"
) -> Message:
    return Message(message_id, "c1", author, content, "ready", seq=seq, created_at=float(seq))


SNAPSHOT = ChatSnapshot(
    messages=(server_message("a", 3), server_message("b", 7, author=ME)),
    members_amount=4,
    member_metadata={"role": "member"},
    restrictions=(Restriction("mute", until=50.0, reason="spam"),),
    last_seq=9,
)


def run(
    state: ChatsState, *actions: Any, reducer: Reducer[ChatsState] = reduce_chats
) -> Step[ChatsState]:
    """Reduce every action in turn; the last step (with the commands of the last action)."""
    step = Step(state)
    for action in actions:
        step = reducer(step.state, action)
    return step


def reduce(
    state: ChatsState, *actions: Any, reducer: Reducer[ChatsState] = reduce_chats
) -> ChatsState:
    return run(state, *actions, reducer=reducer).state


def rejected(step: Step[ChatsState], call_id: int) -> ErrorCode:
    """The code an intent was refused with: its only command settles its call, rejected."""
    assert len(step.commands) == 1, step.commands
    (command,) = step.commands
    assert isinstance(command, SettleCall) and command.call_id == call_id, command
    failure: Failure = command.outcome.failure  # type: ignore[union-attr]
    assert failure.kind == "rejected" and failure.detail, failure
    return ErrorCode(failure.code)


def chat(state: ChatsState, chat_id: str = "c1") -> ChatState:
    return state.chats[chat_id]


def statuses(state: ChatsState, chat_id: str = "c1") -> list[tuple[str, int | None, str]]:
    return [(m.id, m.seq, m.status) for m in chat(state, chat_id).messages]


def contents_of(state: ChatsState, chat_id: str = "c1") -> dict[str, str]:
    return {m.id: m.content for m in chat(state, chat_id).messages}


def send(call_id: int, message_id: str, content: str = "hi", chat_id: str = "c1") -> SendMessage:
    return SendMessage(call_id, chat_id, message_id, ME, content, 100.0)


def acked(message_id: str, seq: int, content: str = "hi") -> Message:
    return server_message(message_id, seq, content, author=ME)


@pytest.fixture
def connected() -> ChatsState:
    return ChatsState(connection="connected")


@pytest.fixture
def loading(connected: ChatsState) -> ChatsState:
    return reduce(connected, JoinChat(1, "c1", "tok"))


@pytest.fixture
def ready(loading: ChatsState) -> ChatsState:
    return reduce(loading, ChatJoined(1, "c1", SNAPSHOT))


@pytest.fixture
def sending(ready: ChatsState) -> ChatsState:
    """c1 ready with a, b confirmed and p (ours) sending."""
    return reduce(ready, send(2, "p"))


@pytest.fixture
def interrupted(sending: ChatsState) -> ChatsState:
    return reduce(sending, MessageSendFailed(2, "c1", "p", TIMEOUT))


def assert_ordered(state: ChatsState) -> None:
    for chat_state in state.chats.values():
        seqs = [m.seq for m in chat_state.messages]
        confirmed = [seq for seq in seqs if seq is not None]
        assert seqs[: len(confirmed)] == confirmed, seqs
        assert confirmed == sorted(set(confirmed)), seqs
        assert len({m.id for m in chat_state.messages}) == len(seqs)


def test_every_case_has_an_example_here() -> None:
    """A new case reducer needs an example test here: this list is the reminder."""
    covered = {
        JoinChat,
        ChatJoinFailed,
        LeaveChat,
        RemovedFromChat,
        ConnectionStatusChanged,
        ChatJoined,
        SendMessage,
        ResendMessage,
        MessageSent,
        MessageSendFailed,
        UpdateMessage,
        MessageUpdated,
        MessageUpdateFailed,
        DeleteMessage,
        MessageDeleted,
        MessageDeleteFailed,
        ModerateChatMember,
        LoadOlderMessages,
        OlderMessagesLoaded,
        OlderMessagesLoadFailed,
        MessagePosted,
        MessageEdited,
        MessageRemoved,
        MembersAmountChanged,
        OwnRestrictionsChanged,
        OwnMetadataChanged,
        ChatResumed,
        ChatResumeFailed,
        MembershipRenewalDue,
        MembershipRenewed,
        MembershipRenewFailed,
        ChatsRestored,
        ChatHistoryRestored,
    }
    assert set(CHATS_CASES) | set(CHAT_CASES) == covered


# Joining and leaving -----------------------------------------------------------------


def test_join_adds_a_loading_chat_and_sends_the_join_request(connected: ChatsState) -> None:
    step = run(connected, JoinChat(1, "c1", "tok"))
    assert step.state.chat_ids == ("c1",)
    joined = chat(step.state)
    assert (joined.status, joined.join_call_id, len(joined.messages)) == ("loading", 1, 0)
    assert joined.sync_statuses.is_syncing
    assert step.commands == (SendRequest(1, JoinRequest("c1", "tok")),)


def test_join_keeps_the_join_order(connected: ChatsState) -> None:
    state = reduce(connected, JoinChat(1, "c2", "t"), JoinChat(2, "c1", "t"))
    assert state.chat_ids == ("c2", "c1")


def test_chat_joined_makes_the_chat_ready_with_the_snapshot(loading: ChatsState) -> None:
    state = reduce(loading, ChatJoined(1, "c1", SNAPSHOT))
    joined = chat(state)
    assert joined.status == "ready"
    assert [m.id for m in joined.messages] == ["a", "b"]
    assert joined.members_amount == 4
    assert dict(joined.member_metadata or {}) == {"role": "member"}
    assert joined.restrictions == SNAPSHOT.restrictions
    assert joined.sync_statuses == SyncStatuses("idle", "idle")
    assert joined.last_seq == 9


def test_chat_joined_sorts_the_snapshot_by_seq(loading: ChatsState) -> None:
    snapshot = attrs.evolve(SNAPSHOT, messages=tuple(reversed(SNAPSHOT.messages)))
    assert [m.id for m in chat(reduce(loading, ChatJoined(1, "c1", snapshot))).messages] == [
        "a",
        "b",
    ]


def test_chat_joined_of_another_join_call_is_ignored(loading: ChatsState) -> None:
    assert reduce(loading, ChatJoined(99, "c1", SNAPSHOT)) is loading


def test_chat_joined_on_a_ready_chat_is_ignored(ready: ChatsState) -> None:
    assert reduce(ready, ChatJoined(1, "c1", SNAPSHOT)) is ready


def test_join_failed_removes_the_loading_chat(loading: ChatsState) -> None:
    state = reduce(loading, ChatJoinFailed(1, "c1", REFUSED))
    assert state.chat_ids == ()
    assert "c1" not in state.chats


def test_join_failed_of_another_call_or_a_ready_chat_is_ignored(
    loading: ChatsState, ready: ChatsState
) -> None:
    assert reduce(loading, ChatJoinFailed(99, "c1", REFUSED)) is loading
    assert reduce(ready, ChatJoinFailed(1, "c1", REFUSED)) is ready


def test_join_of_a_chat_already_there_is_rejected(ready: ChatsState) -> None:
    step = run(ready, JoinChat(5, "c1", "tok"))
    assert step.state is ready
    assert rejected(step, 5) == ErrorCode.ALREADY_JOINED
    (command,) = step.commands
    assert isinstance(command, SettleCall) and isinstance(command.outcome, ChatJoinFailed)


def test_leave_a_ready_chat_removes_it_and_sends_the_leave_request(ready: ChatsState) -> None:
    step = run(ready, LeaveChat(2, "c1"))
    assert step.state.chat_ids == ()
    assert not step.state.chats
    assert step.commands == (SendRequest(2, LeaveRequest("c1")),)


def test_leave_during_loading_fails_the_pending_join(loading: ChatsState) -> None:
    step = run(loading, LeaveChat(2, "c1"))
    assert step.state.chat_ids == ()
    settle, leave = step.commands
    assert leave == SendRequest(2, LeaveRequest("c1"))
    assert isinstance(settle, SettleCall)
    assert settle.call_id == 1
    assert isinstance(settle.outcome, ChatJoinFailed)
    assert settle.outcome.call_id == 1
    assert settle.outcome.failure.kind == "cancelled"
    assert settle.outcome.failure.code == ErrorCode.CHAT_LEFT_DURING_JOIN
    # The late join reply is ignored, even after a new join of the same chat.
    assert reduce(step.state, ChatJoined(1, "c1", SNAPSHOT)) is step.state
    rejoined = reduce(step.state, JoinChat(3, "c1", "tok"))
    assert reduce(rejoined, ChatJoined(1, "c1", SNAPSHOT)) is rejoined


def test_leave_keeps_the_other_chats(ready: ChatsState) -> None:
    state = reduce(ready, JoinChat(2, "c2", "t"), JoinChat(3, "c3", "t"))
    left = reduce(state, LeaveChat(4, "c2"))
    assert left.chat_ids == ("c1", "c3")
    assert left.chats["c1"] is state.chats["c1"]
    assert left.chats["c3"] is state.chats["c3"]


def test_leave_outcomes_change_nothing(ready: ChatsState) -> None:
    left = reduce(ready, LeaveChat(2, "c1"))
    assert reduce(left, ChatLeft(2, "c1")) is left
    assert reduce(left, ChatLeaveFailed(2, "c1", TIMEOUT)) is left


def test_removed_from_chat_removes_it(ready: ChatsState) -> None:
    step = run(ready, RemovedFromChat("c1", "kicked", "bye"))
    assert step.state.chat_ids == ()
    assert step.commands == ()


# Sending -----------------------------------------------------------------------------


def test_send_appends_a_sending_message_and_posts_it(ready: ChatsState) -> None:
    step = run(ready, send(2, "p", "hi there"))
    assert statuses(step.state) == [("a", 3, "ready"), ("b", 7, "ready"), ("p", None, "sending")]
    message = chat(step.state).messages.find("p")
    assert message == Message("p", "c1", ME, "hi there", "sending", created_at=100.0)
    assert step.commands == (SendRequest(2, PostMessageRequest("c1", "p", "hi there")),)


def test_message_sent_makes_it_ready_at_its_seq(sending: ChatsState) -> None:
    state = reduce(sending, send(3, "q"), MessageSent(2, "c1", acked("p", 10)))
    assert statuses(state) == [
        ("a", 3, "ready"),
        ("b", 7, "ready"),
        ("p", 10, "ready"),
        ("q", None, "sending"),
    ]


def test_message_sent_with_a_seq_among_older_ones_lands_in_order(
    sending: ChatsState,
) -> None:
    state = reduce(sending, MessageSent(2, "c1", acked("p", 5)))
    assert [m.id for m in chat(state).messages] == ["a", "p", "b"]


def test_message_send_failed_interrupts_it(sending: ChatsState) -> None:
    state = reduce(sending, MessageSendFailed(2, "c1", "p", TIMEOUT))
    assert statuses(state)[-1] == ("p", None, "interrupted")


def test_message_send_failed_for_a_message_not_sending_is_ignored(ready: ChatsState) -> None:
    assert reduce(ready, MessageSendFailed(2, "c1", "a", TIMEOUT)) is ready
    assert reduce(ready, MessageSendFailed(2, "c1", "nope", TIMEOUT)) is ready


def test_resend_sends_the_same_id_again(interrupted: ChatsState) -> None:
    step = run(interrupted, ResendMessage(3, "c1", "p"))
    assert statuses(step.state)[-1] == ("p", None, "sending")
    assert step.commands == (SendRequest(3, PostMessageRequest("c1", "p", "hi")),)
    state = reduce(step.state, MessageSent(3, "c1", acked("p", 10)))
    assert [m.id for m in chat(state).messages].count("p") == 1


def test_own_push_before_the_ack_shows_the_message_once(sending: ChatsState) -> None:
    state = reduce(sending, MessagePosted("c1", 10, acked("p", 10)))
    assert statuses(state)[-1] == ("p", 10, "ready")
    state = reduce(state, MessageSent(2, "c1", acked("p", 10)))
    assert [m.id for m in chat(state).messages] == ["a", "b", "p"]
    assert statuses(state)[-1] == ("p", 10, "ready")


def test_own_push_after_the_ack_shows_the_message_once(sending: ChatsState) -> None:
    state = reduce(sending, MessageSent(2, "c1", acked("p", 10)))
    state = reduce(state, MessagePosted("c1", 10, acked("p", 10)))
    assert [m.id for m in chat(state).messages] == ["a", "b", "p"]
    assert chat(state).last_seq == 10


def test_an_ack_after_a_removal_does_not_bring_the_message_back(sending: ChatsState) -> None:
    """The push and a moderator's removal are dispatched before the ack's effects task runs."""
    state = reduce(
        sending,
        MessagePosted("c1", 10, acked("p", 10)),
        MessageRemoved("c1", 11, "p"),
        MessageSent(2, "c1", acked("p", 10)),
    )
    assert [m.id for m in chat(state).messages] == ["a", "b"]


def test_an_ack_after_the_push_keeps_the_messages_identical(sending: ChatsState) -> None:
    """The ack only ends the send (the queue empties); the messages are the same object."""
    pushed = reduce(sending, MessagePosted("c1", 10, acked("p", 10)))
    acked_state = reduce(pushed, MessageSent(2, "c1", acked("p", 10)))
    assert chat(acked_state).messages is chat(pushed).messages
    assert chat(acked_state).send_queue == ()


def test_push_of_a_message_whose_ack_was_lost_confirms_it(interrupted: ChatsState) -> None:
    state = reduce(interrupted, MessagePosted("c1", 10, acked("p", 10)))
    assert statuses(state)[-1] == ("p", 10, "ready")


# Updating ----------------------------------------------------------------------------


def test_update_shows_the_new_content_while_updating(ready: ChatsState) -> None:
    step = run(ready, UpdateMessage(2, "c1", "b", "edited"))
    assert statuses(step.state)[-1] == ("b", 7, "updating")
    assert contents_of(step.state)["b"] == "edited"
    assert step.commands == (SendRequest(2, EditMessageRequest("c1", "b", "edited")),)


def test_message_updated_makes_it_ready_with_the_server_version(ready: ChatsState) -> None:
    edited = msgspec.structs.replace(server_message("b", 7, "edited", ME), edited_at=20.0)
    state = reduce(ready, UpdateMessage(2, "c1", "b", "edited"), MessageUpdated(2, "c1", edited))
    assert chat(state).messages.find("b") == edited
    assert not chat(state).originals


def test_an_update_reply_with_another_seq_leaves_the_message_where_it_was(
    ready: ChatsState,
) -> None:
    """A message's seq never changes: a reply saying otherwise moves nothing (the
    client fuzzer found a history out of order after one)."""
    edited = msgspec.structs.replace(server_message("b", 1, "edited", ME), edited_at=20.0)
    state = reduce(ready, UpdateMessage(2, "c1", "b", "edited"), MessageUpdated(2, "c1", edited))
    assert chat(state).messages.find("b") == msgspec.structs.replace(edited, seq=7)
    seqs = [message.seq for message in chat(state).messages]
    assert seqs == sorted(seqs)


def test_update_failure_restores_the_previous_content(ready: ChatsState) -> None:
    state = reduce(
        ready, UpdateMessage(2, "c1", "b", "edited"), MessageUpdateFailed(2, "c1", "b", REFUSED)
    )
    assert chat(state).messages.find("b") == server_message("b", 7, author=ME)
    assert not chat(state).originals


def test_an_edit_push_during_an_update_is_what_a_failure_restores(ready: ChatsState) -> None:
    updating = reduce(ready, UpdateMessage(2, "c1", "b", "mine"))
    pushed = server_message("b", 7, "theirs", ME)
    state = reduce(updating, MessageEdited("c1", 10, pushed))
    assert statuses(state)[-1] == ("b", 7, "updating")
    assert contents_of(state)["b"] == "mine"
    assert chat(reduce(state, MessageUpdateFailed(2, "c1", "b", REFUSED))).messages.find("b") == (
        pushed
    )


def test_message_updated_for_a_message_not_updating_is_ignored(ready: ChatsState) -> None:
    assert reduce(ready, MessageUpdated(2, "c1", server_message("b", 7, "x"))) is ready


# Deleting ----------------------------------------------------------------------------


def test_delete_marks_the_message_deleting(ready: ChatsState) -> None:
    step = run(ready, DeleteMessage(2, "c1", "a"))
    assert statuses(step.state)[0] == ("a", 3, "deleting")
    assert step.commands == (SendRequest(2, DeleteMessageRequest("c1", "a")),)


def test_message_deleted_removes_it(ready: ChatsState) -> None:
    state = reduce(ready, DeleteMessage(2, "c1", "a"), MessageDeleted(2, "c1", "a"))
    assert [m.id for m in chat(state).messages] == ["b"]
    assert not chat(state).originals


def test_delete_failure_restores_the_message(ready: ChatsState) -> None:
    state = reduce(ready, DeleteMessage(2, "c1", "a"), MessageDeleteFailed(2, "c1", "a", REFUSED))
    assert statuses(state) == statuses(ready)
    assert not chat(state).originals


def test_delete_of_an_interrupted_message(interrupted: ChatsState) -> None:
    deleting = reduce(interrupted, DeleteMessage(3, "c1", "p"))
    assert statuses(deleting)[-1] == ("p", None, "deleting")
    restored = reduce(deleting, MessageDeleteFailed(3, "c1", "p", TIMEOUT))
    assert statuses(restored)[-1] == ("p", None, "interrupted")
    assert [m.id for m in chat(reduce(deleting, MessageDeleted(3, "c1", "p"))).messages] == [
        "a",
        "b",
    ]


def test_delete_failure_after_the_lost_ack_push_keeps_the_order(
    interrupted: ChatsState,
) -> None:
    """A send times out but the server got it; its push arrives while it is deleted."""
    state = reduce(
        interrupted,
        send(3, "q"),
        DeleteMessage(4, "c1", "p"),
        MessagePosted("c1", 10, acked("p", 10)),
        MessagePosted("c1", 11, server_message("z", 11)),
        MessageDeleteFailed(4, "c1", "p", TIMEOUT),
    )
    assert_ordered(state)
    assert [m.id for m in chat(state).messages] == ["a", "b", "p", "z", "q"]


def test_a_message_pushed_while_its_delete_is_in_flight_shows_as_a_snapshot_shows_it(
    member: ChatsState,
) -> None:
    """The server's copy of a message whose ack was lost, and which is being deleted, puts
    it at its seq, still deleting, whether it comes pushed or in a resume's snapshot."""
    reloading = reduce(member, ConnectionStatusChanged("connected"))
    deleting = reduce(reloading, DeleteMessage(3, "c1", "p"))
    assert statuses(deleting)[-1] == ("p", None, "deleting")
    snapshot = attrs.evolve(SNAPSHOT, messages=(*SNAPSHOT.messages, acked("p", 10)), last_seq=10)
    from_snapshot = reduce(deleting, ChatResumed(0, "c1", resumption(snapshot=snapshot)))
    pushed = reduce(
        deleting,
        MessagePosted("c1", 10, acked("p", 10)),
        ChatResumed(0, "c1", resumption(last_seq=10)),
    )
    assert (
        statuses(pushed)
        == statuses(from_snapshot)
        == [
            ("a", 3, "ready"),
            ("b", 7, "ready"),
            ("p", 10, "deleting"),
        ]
    )
    assert dict(chat(pushed).originals) == dict(chat(from_snapshot).originals)
    assert dict(chat(pushed).originals) == {"p": acked("p", 10)}
    failed = reduce(pushed, MessageDeleteFailed(3, "c1", "p", TIMEOUT))
    assert statuses(failed)[-1] == ("p", 10, "ready") and not chat(failed).originals


def test_disconnect_after_the_lost_ack_push_keeps_the_order(interrupted: ChatsState) -> None:
    state = reduce(
        interrupted,
        DeleteMessage(4, "c1", "p"),
        MessagePosted("c1", 10, acked("p", 10)),
        MessagePosted("c1", 11, server_message("z", 11)),
        ConnectionStatusChanged("disconnected"),
    )
    assert_ordered(state)
    assert [m.id for m in chat(state).messages] == ["a", "b", "p", "z"]


# Server events -----------------------------------------------------------------------


def test_message_posted_inserts_in_seq_order_and_advances_last_seq(ready: ChatsState) -> None:
    state = reduce(ready, MessagePosted("c1", 10, server_message("c", 10)))
    assert [m.id for m in chat(state).messages] == ["a", "b", "c"]
    assert chat(state).last_seq == 10


def test_events_at_or_below_last_seq_are_ignored(ready: ChatsState) -> None:
    for seq in (1, 9):
        assert reduce(ready, MessagePosted("c1", seq, server_message("c", seq))) is ready
        assert reduce(ready, MembersAmountChanged("c1", seq, 100)) is ready
        assert reduce(ready, MessageRemoved("c1", seq, "a")) is ready


def test_events_during_loading_change_nothing_visible(loading: ChatsState) -> None:
    state = reduce(
        loading,
        MessagePosted("c1", 1, server_message("c", 1)),
        MembersAmountChanged("c1", 2, 10),
        OwnRestrictionsChanged("c1", 3, ()),
    )
    before, after = chat(loading), chat(state)
    assert after.status == "loading"
    assert after.messages is before.messages
    assert (after.members_amount, after.restrictions, after.last_seq) == (None, None, 0)


def test_events_during_loading_are_applied_on_top_of_the_snapshot(loading: ChatsState) -> None:
    """Those the snapshot already contains (seq <= its last_seq) are skipped."""
    state = reduce(
        loading,
        MessagePosted("c1", 8, server_message("old", 8)),
        MembersAmountChanged("c1", 9, 100),
        MessagePosted("c1", 10, server_message("new", 10)),
        MembersAmountChanged("c1", 11, 5),
        MessageRemoved("c1", 12, "a"),
        ChatJoined(1, "c1", SNAPSHOT),
    )
    joined = chat(state)
    assert [m.id for m in joined.messages] == ["b", "new"]
    assert (joined.members_amount, joined.last_seq) == (5, 12)
    assert joined.status == "ready"


def test_message_edited_replaces_the_content(ready: ChatsState) -> None:
    edited = msgspec.structs.replace(server_message("a", 3, "changed"), edited_at=10.0)
    state = reduce(ready, MessageEdited("c1", 10, edited))
    assert chat(state).messages.find("a") == edited
    assert chat(state).last_seq == 10


def test_message_edited_for_an_unknown_message_only_advances_last_seq(ready: ChatsState) -> None:
    state = reduce(ready, MessageEdited("c1", 10, server_message("zz", 2)))
    assert chat(state).messages == chat(ready).messages
    assert chat(state).last_seq == 10


def test_message_removed_removes_it_even_while_in_flight(ready: ChatsState) -> None:
    updating = reduce(ready, UpdateMessage(2, "c1", "b", "x"))
    state = reduce(updating, MessageRemoved("c1", 10, "b"))
    assert [m.id for m in chat(state).messages] == ["a"]
    assert not chat(state).originals
    assert reduce(state, MessageUpdateFailed(2, "c1", "b", TIMEOUT)) is state


def test_members_amount_changed(ready: ChatsState) -> None:
    state = reduce(ready, MembersAmountChanged("c1", 10, 12))
    assert (chat(state).members_amount, chat(state).last_seq) == (12, 10)


def test_own_restrictions_changed(ready: ChatsState) -> None:
    block = (Restriction("block", None, "rude"),)
    state = reduce(ready, OwnRestrictionsChanged("c1", 10, block))
    assert chat(state).restrictions == block
    assert reduce(state, OwnRestrictionsChanged("c1", 11, ())).chats["c1"].restrictions == ()


def test_own_metadata_changed_is_read_only(ready: ChatsState) -> None:
    metadata = {"role": "moderator"}
    state = reduce(ready, OwnMetadataChanged("c1", 10, metadata))
    exposed = chat(state).member_metadata
    assert dict(exposed or {}) == {"role": "moderator"}
    metadata["role"] = "changed later"
    assert dict(exposed or {}) == {"role": "moderator"}
    with pytest.raises(TypeError):
        exposed["role"] = "x"  # type: ignore[index]


# Connection --------------------------------------------------------------------------


def test_connection_status_changed(connected: ChatsState) -> None:
    assert reduce(connected, ConnectionStatusChanged("connected")) is connected
    state = reduce(connected, ConnectionStatusChanged("connecting"))
    assert state.connection == "connecting"


def test_disconnect_interrupts_sends_and_rolls_back_updates_and_deletes(
    ready: ChatsState,
) -> None:
    state = reduce(
        ready,
        send(2, "p"),
        UpdateMessage(3, "c1", "b", "edited"),
        DeleteMessage(4, "c1", "a"),
        send(5, "q"),
        MessageSendFailed(5, "c1", "q", TIMEOUT),
        DeleteMessage(6, "c1", "q"),
    )
    state = reduce(state, ConnectionStatusChanged("disconnected"))
    assert state.connection == "disconnected"
    assert statuses(state) == [
        ("a", 3, "ready"),
        ("b", 7, "ready"),
        ("p", None, "interrupted"),
        ("q", None, "interrupted"),
    ]
    assert contents_of(state)["b"] == "hello"
    assert not chat(state).originals


def test_disconnect_with_nothing_in_flight_keeps_the_chats(ready: ChatsState) -> None:
    state = reduce(ready, ConnectionStatusChanged("disconnected"))
    assert state.chats is ready.chats


# History -----------------------------------------------------------------------------


def test_load_older_messages_asks_for_messages_before_the_oldest(ready: ChatsState) -> None:
    step = run(ready, LoadOlderMessages(2, "c1", 20))
    assert chat(step.state).sync_statuses == SyncStatuses(messages="loading", members="idle")
    assert chat(step.state).sync_statuses.is_syncing
    assert step.commands == (SendRequest(2, HistoryRequest("c1", before_seq=3, limit=20)),)


def test_load_older_messages_of_an_empty_chat_asks_before_last_seq(
    loading: ChatsState,
) -> None:
    empty = attrs.evolve(SNAPSHOT, messages=())
    step = run(loading, ChatJoined(1, "c1", empty), LoadOlderMessages(2, "c1", 20))
    assert step.commands == (SendRequest(2, HistoryRequest("c1", before_seq=10, limit=20)),)


def test_history_outcomes_that_change_nothing_keep_the_state_identical(
    ready: ChatsState,
) -> None:
    assert reduce(ready, OlderMessagesLoadFailed(2, "c1", TIMEOUT)) is ready
    assert reduce(ready, OlderMessagesLoaded(2, "c1", ())) is ready
    assert reduce(ready, OlderMessagesLoaded(2, "c1", (server_message("a", 3),))) is ready


def test_a_second_history_load_keeps_the_sync_statuses_until_both_are_answered(
    ready: ChatsState,
) -> None:
    loading_history = reduce(ready, LoadOlderMessages(2, "c1", 20))
    step = run(loading_history, LoadOlderMessages(3, "c1", 20))
    assert step.commands == (SendRequest(3, HistoryRequest("c1", before_seq=3, limit=20)),)
    assert chat(step.state).sync_statuses is chat(loading_history).sync_statuses
    first_answered = reduce(step.state, OlderMessagesLoaded(2, "c1", ()))
    assert chat(first_answered).sync_statuses == SyncStatuses(messages="loading")
    both_answered = reduce(first_answered, OlderMessagesLoadFailed(3, "c1", TIMEOUT))
    assert chat(both_answered).sync_statuses == SyncStatuses()


def test_older_messages_loaded_inserts_them_at_the_start(ready: ChatsState) -> None:
    state = reduce(
        ready,
        LoadOlderMessages(2, "c1", 20),
        OlderMessagesLoaded(2, "c1", (server_message("y", 1), server_message("z", 2))),
    )
    assert [m.id for m in chat(state).messages] == ["y", "z", "a", "b"]
    assert chat(state).sync_statuses == SyncStatuses()


def test_older_messages_loaded_does_not_duplicate_held_messages(ready: ChatsState) -> None:
    state = reduce(
        ready,
        LoadOlderMessages(2, "c1", 20),
        OlderMessagesLoaded(2, "c1", (server_message("y", 1), server_message("a", 3, "x"))),
    )
    assert [m.id for m in chat(state).messages] == ["y", "a", "b"]
    assert contents_of(state)["a"] == "hello"


def test_older_messages_load_failed_ends_the_sync(ready: ChatsState) -> None:
    state = reduce(ready, LoadOlderMessages(2, "c1", 20), OlderMessagesLoadFailed(2, "c1", TIMEOUT))
    assert chat(state).sync_statuses == SyncStatuses()
    assert chat(state).messages is chat(ready).messages


def test_max_messages_keeps_the_newest_confirmed_and_every_pending_one(
    connected: ChatsState,
) -> None:
    bounded = chats_reducer(max_messages=2)
    history = attrs.evolve(
        SNAPSHOT, messages=tuple(server_message(f"h{seq}", seq) for seq in range(1, 6)), last_seq=5
    )
    state = reduce(
        connected, JoinChat(1, "c1", "tok"), ChatJoined(1, "c1", history), reducer=bounded
    )
    assert [m.id for m in chat(state).messages] == ["h4", "h5"]
    state = reduce(
        state, send(2, "p"), MessagePosted("c1", 6, server_message("h6", 6)), reducer=bounded
    )
    assert statuses(state) == [("h5", 5, "ready"), ("h6", 6, "ready"), ("p", None, "sending")]
    # Paging back asks before the oldest held; what it brings stays until the next change.
    step = run(state, LoadOlderMessages(3, "c1", 2), reducer=bounded)
    assert step.commands == (SendRequest(3, HistoryRequest("c1", before_seq=5, limit=2)),)
    older = (server_message("h3", 3), server_message("h4", 4))
    state = reduce(step.state, OlderMessagesLoaded(3, "c1", older), reducer=bounded)
    assert [m.id for m in chat(state).messages] == ["h3", "h4", "h5", "h6", "p"]
    state = reduce(state, MessageSent(2, "c1", acked("p", 7)), reducer=bounded)
    assert statuses(state) == [("h6", 6, "ready"), ("p", 7, "ready")]


@pytest.mark.parametrize("limit", [0, -1, True])
def test_max_messages_below_one_is_refused(limit: int) -> None:
    with pytest.raises(ValueError, match="max_messages must be None or at least 1"):
        chats_reducer(max_messages=limit)


def test_without_max_messages_nothing_is_dropped(ready: ChatsState) -> None:
    state = reduce(
        ready, *(MessagePosted("c1", s, server_message(f"n{s}", s)) for s in range(10, 20))
    )
    assert len(chat(state).messages) == 12


# Moderation --------------------------------------------------------------------------


def test_moderation_sends_the_request_and_changes_nothing(ready: ChatsState) -> None:
    step = run(ready, ModerateChatMember(2, "c1", "alice", "mute", 10, "spam"))
    assert step.state is ready
    assert step.commands == (SendRequest(2, ModerationRequest("c1", "alice", "mute", 10, "spam")),)
    assert reduce(ready, ChatMemberModerated(2, "c1", "alice", "mute")) is ready


# Unknown chats and invalid intents ------------------------------------------------------

FOR_AN_UNKNOWN_CHAT: Sequence[Any] = (
    ChatJoined(1, "zz", SNAPSHOT),
    ChatJoinFailed(1, "zz", REFUSED),
    LeaveChat(1, "zz"),
    RemovedFromChat("zz", "blocked"),
    send(1, "p", chat_id="zz"),
    ResendMessage(1, "zz", "p"),
    MessageSent(1, "zz", acked("p", 1)),
    MessageSendFailed(1, "zz", "p", TIMEOUT),
    UpdateMessage(1, "zz", "a", "x"),
    MessageUpdated(1, "zz", acked("a", 1)),
    MessageUpdateFailed(1, "zz", "a", TIMEOUT),
    DeleteMessage(1, "zz", "a"),
    MessageDeleted(1, "zz", "a"),
    MessageDeleteFailed(1, "zz", "a", TIMEOUT),
    ModerateChatMember(1, "zz", "alice", "kick"),
    LoadOlderMessages(1, "zz", 10),
    OlderMessagesLoaded(1, "zz", ()),
    OlderMessagesLoadFailed(1, "zz", TIMEOUT),
    MessagePosted("zz", 20, server_message("c", 20)),
    MessageEdited("zz", 20, server_message("a", 3)),
    MessageRemoved("zz", 20, "a"),
    MembersAmountChanged("zz", 20, 3),
    OwnRestrictionsChanged("zz", 20, ()),
    OwnMetadataChanged("zz", 20, {}),
)


@pytest.mark.parametrize("action", FOR_AN_UNKNOWN_CHAT, ids=lambda a: type(a).__name__)
def test_an_action_for_an_unknown_chat_leaves_the_state_identical(
    ready: ChatsState, action: Any
) -> None:
    step = run(ready, action)
    assert step.state is ready
    if type(action) in INTENTS:
        assert rejected(step, action.call_id) == ErrorCode.CHAT_NOT_JOINED
    else:
        assert step.commands == ()


E = ErrorCode


def invalid_intents() -> list[tuple[str, Any, ErrorCode]]:
    return [
        ("update a sending message", UpdateMessage(9, "c1", "p", "x"), E.MESSAGE_NOT_UPDATABLE),
        ("delete a sending message", DeleteMessage(9, "c1", "p"), E.MESSAGE_NOT_DELETABLE),
        ("resend a sending message", ResendMessage(9, "c1", "p"), E.MESSAGE_NOT_INTERRUPTED),
        ("resend a ready message", ResendMessage(9, "c1", "a"), E.MESSAGE_NOT_INTERRUPTED),
        ("update an unknown message", UpdateMessage(9, "c1", "nope", "x"), E.MESSAGE_NOT_FOUND),
        ("delete an unknown message", DeleteMessage(9, "c1", "nope"), E.MESSAGE_NOT_FOUND),
        ("update a deleting message", UpdateMessage(9, "c1", "d", "x"), E.MESSAGE_BEING_DELETED),
        ("delete a deleting message", DeleteMessage(9, "c1", "d"), E.MESSAGE_BEING_DELETED),
        ("update an updating message", UpdateMessage(9, "c1", "u", "x"), E.MESSAGE_BEING_UPDATED),
        ("delete an updating message", DeleteMessage(9, "c1", "u"), E.MESSAGE_BEING_UPDATED),
        ("send an id already there", send(9, "a"), E.MESSAGE_ID_TAKEN),
        ("join a chat already joined", JoinChat(9, "c1", "tok"), E.ALREADY_JOINED),
    ]


@pytest.mark.parametrize(
    ("name", "action", "code"), invalid_intents(), ids=[n for n, _, _ in invalid_intents()]
)
def test_an_invalid_intent_is_rejected_and_leaves_the_state_identical(
    loading: ChatsState, name: str, action: Any, code: ErrorCode
) -> None:
    state = reduce(
        loading,
        ChatJoined(1, "c1", SNAPSHOT),
        send(2, "p"),
        MessagePosted("c1", 10, server_message("d", 10)),
        MessagePosted("c1", 11, server_message("u", 11, author=ME)),
        DeleteMessage(3, "c1", "d"),
        UpdateMessage(4, "c1", "u", "new"),
    )
    step = run(state, action)
    assert step.state is state, name
    assert rejected(step, 9) == code


LOADED_CHAT_INTENTS = [
    send(2, "p"),
    UpdateMessage(2, "c1", "b", "x"),
    DeleteMessage(2, "c1", "b"),
    ResendMessage(2, "c1", "b"),
    LoadOlderMessages(2, "c1", 5),
    ModerateChatMember(2, "c1", "alice", "mute", 5),
]


@pytest.mark.parametrize("action", LOADED_CHAT_INTENTS, ids=lambda a: type(a).__name__)
def test_intents_on_a_loading_chat_are_rejected(loading: ChatsState, action: Any) -> None:
    step = run(loading, action)
    assert step.state is loading
    assert rejected(step, 2) == ErrorCode.CHAT_LOADING


@pytest.mark.parametrize(
    "action",
    [JoinChat(2, "c2", "tok"), LeaveChat(2, "c1"), *LOADED_CHAT_INTENTS],
    ids=lambda a: type(a).__name__,
)
def test_every_intent_is_rejected_while_not_connected(ready: ChatsState, action: Any) -> None:
    for status in ("disconnected", "connecting"):
        offline = reduce(ready, ConnectionStatusChanged(status))  # type: ignore[arg-type]
        step = run(offline, action)
        assert step.state is offline
        assert rejected(step, 2) == ErrorCode.NOT_CONNECTED


# The send queue: sends in one chat reach the server in the order they were made -----------


def posts(step_commands: tuple[object, ...]) -> list[tuple[int, str]]:
    return [
        (command.call_id, command.request.message_id)
        for command in step_commands
        if isinstance(command, SendRequest) and isinstance(command.request, PostMessageRequest)
    ]


def test_a_send_waits_behind_the_one_in_flight(ready: ChatsState) -> None:
    first = run(ready, send(2, "p"))
    assert posts(first.commands) == [(2, "p")]
    second = run(first.state, send(3, "q"))
    assert posts(second.commands) == [], "q must wait until p is answered"
    assert [s for _, _, s in statuses(second.state)][-2:] == ["sending", "sending"]
    after_ack = run(second.state, MessageSent(2, "c1", acked("p", 10)))
    assert posts(after_ack.commands) == [(3, "q")]
    done = run(after_ack.state, MessageSent(3, "c1", acked("q", 11)))
    assert posts(done.commands) == [] and chat(done.state).send_queue == ()


def test_a_failed_send_does_not_block_the_next_one(ready: ChatsState) -> None:
    state = reduce(ready, send(2, "p"), send(3, "q"))
    step = run(state, MessageSendFailed(2, "c1", "p", TIMEOUT))
    assert posts(step.commands) == [(3, "q")]
    assert statuses(step.state)[-2:] == [("p", None, "interrupted"), ("q", None, "sending")]


def test_a_resend_queues_behind_the_sends_before_it(ready: ChatsState) -> None:
    state = reduce(ready, send(2, "p"), MessageSendFailed(2, "c1", "p", TIMEOUT), send(3, "q"))
    step = run(state, ResendMessage(4, "c1", "p"))
    assert posts(step.commands) == []
    step = run(step.state, MessageSent(3, "c1", acked("q", 10)))
    assert posts(step.commands) == [(4, "p")]


def test_a_drop_interrupts_every_queued_send_and_settles_their_calls(ready: ChatsState) -> None:
    state = reduce(ready, send(2, "p"), send(3, "q"), send(4, "r"))
    step = run(state, ConnectionStatusChanged("disconnected"))
    assert [s for _, _, s in statuses(step.state)][-3:] == ["interrupted"] * 3
    assert chat(step.state).send_queue == ()
    settled = {c.call_id: c.outcome for c in step.commands if isinstance(c, SettleCall)}
    assert set(settled) == {3, 4}, "the call in flight (2) fails through its transport"
    assert all(
        isinstance(o, MessageSendFailed) and o.failure.kind == "connection_lost"
        for o in settled.values()
    )
    # The reply of the send that was in flight arrives afterwards: nothing more to start.
    assert posts(run(step.state, MessageSendFailed(2, "c1", "p", TIMEOUT)).commands) == []


def test_leaving_settles_the_queued_sends(ready: ChatsState) -> None:
    state = reduce(ready, send(2, "p"), send(3, "q"))
    step = run(state, LeaveChat(5, "c1"))
    settled = [c.call_id for c in step.commands if isinstance(c, SettleCall)]
    assert settled == [3]
    assert any(
        isinstance(c, SendRequest) and c.request == LeaveRequest("c1") for c in step.commands
    )


def test_removal_settles_the_queued_sends(ready: ChatsState) -> None:
    state = reduce(ready, send(2, "p"), send(3, "q"))
    step = run(state, RemovedFromChat("c1", "kicked", "bye"))
    (settle,) = [c for c in step.commands if isinstance(c, SettleCall)]
    assert settle.call_id == 3 and "kicked" in settle.outcome.failure.detail  # type: ignore[union-attr]
    assert "c1" not in step.state.chats


# Reconnect and resync ------------------------------------------------------------------

MEMBERSHIP = "membership-credential"


def resumption(
    *events: Any, snapshot: ChatSnapshot | None = None, last_seq: int = 20, members: int = 5
) -> Resumption:
    return Resumption(
        events=events,
        snapshot=snapshot,
        members_amount=members,
        member_metadata={"role": "member"},
        restrictions=(),
        last_seq=last_seq,
        membership="refreshed",
    )


@pytest.fixture
def member(connected: ChatsState) -> ChatsState:
    """c1 ready (a, b) with a membership credential, then the connection dropped."""
    snapshot = attrs.evolve(SNAPSHOT, membership=MEMBERSHIP)
    return reduce(
        connected,
        JoinChat(1, "c1", "tok"),
        ChatJoined(1, "c1", snapshot),
        send(2, "p"),
        ConnectionStatusChanged("disconnected"),
        MessageSendFailed(2, "c1", "p", TIMEOUT),
    )


def test_reconnect_reloads_every_joined_chat_with_its_membership(member: ChatsState) -> None:
    step = run(member, ConnectionStatusChanged("connected"))
    reloading = chat(step.state)
    assert reloading.status == "reloading" and reloading.sync_statuses.is_syncing
    assert [c.request for c in step.commands if isinstance(c, SendRequest)] == [
        ResumeRequest("c1", MEMBERSHIP, since_seq=9)
    ]


def test_a_chat_without_membership_is_not_resumed(ready: ChatsState) -> None:
    dropped = reduce(ready, ConnectionStatusChanged("disconnected"))
    step = run(dropped, ConnectionStatusChanged("connected"))
    assert chat(step.state).status == "ready" and step.commands == ()


def test_resume_applies_missed_events_then_those_pushed_meanwhile(member: ChatsState) -> None:
    reloading = reduce(member, ConnectionStatusChanged("connected"))
    pushed = reduce(reloading, MessagePosted("c1", 12, server_message("d", 12)))
    assert [m.id for m in chat(pushed).messages] == ["a", "b", "p"], "buffered while reloading"
    missed = (
        MessagePosted("c1", 10, server_message("c", 10)),
        MessageEdited("c1", 11, server_message("a", 3, content="edited")),
        MessagePosted("c1", 12, server_message("d", 12)),  # also in the resume: applied once
    )
    resumed = reduce(pushed, ChatResumed(0, "c1", resumption(*missed, last_seq=12)))
    state = chat(resumed)
    assert state.status == "ready" and not state.sync_statuses.is_syncing
    assert statuses(resumed) == [
        ("a", 3, "ready"),
        ("b", 7, "ready"),
        ("c", 10, "ready"),
        ("d", 12, "ready"),
        ("p", None, "interrupted"),
    ]
    assert contents_of(resumed)["a"] == "edited"
    assert state.last_seq == 12 and state.members_amount == 5 and state.membership == "refreshed"


def test_resume_with_a_snapshot_keeps_pending_messages_and_confirms_lost_acks(
    member: ChatsState,
) -> None:
    reloading = reduce(member, ConnectionStatusChanged("connected"))
    snapshot = ChatSnapshot(
        messages=(server_message("x", 40), acked("p", 41)),
        members_amount=2,
        member_metadata={},
        restrictions=(),
        last_seq=41,
    )
    resumed = reduce(reloading, ChatResumed(0, "c1", resumption(snapshot=snapshot, last_seq=41)))
    assert statuses(resumed) == [("x", 40, "ready"), ("p", 41, "ready")]


def test_a_snapshot_from_an_older_copy_replaces_the_history_and_lowers_last_seq(
    member: ChatsState,
) -> None:
    """The server came back from an older copy: its seqs are used again (b was seq 7)."""
    reloading = reduce(member, ConnectionStatusChanged("connected"))
    older = ChatSnapshot(
        messages=(server_message("a", 3),),
        members_amount=3,
        member_metadata={},
        restrictions=(),
        last_seq=5,
        epoch="restored",
    )
    resumed = reduce(
        reloading,
        MessagePosted("c1", 6, server_message("n", 6)),  # pushed by it after the resume
        ChatResumed(
            0, "c1", attrs.evolve(resumption(snapshot=older, last_seq=5), epoch="restored")
        ),
    )
    state = chat(resumed)
    assert statuses(resumed) == [("a", 3, "ready"), ("n", 6, "ready"), ("p", None, "interrupted")]
    assert (state.last_seq, state.epoch) == (6, "restored")
    later = reduce(resumed, MessagePosted("c1", 7, server_message("m", 7)))  # b's old seq
    assert [m.id for m in chat(later).messages] == ["a", "n", "m", "p"]  # not dropped


def test_a_snapshot_keeps_the_updates_in_flight_of_the_messages_it_has(
    member: ChatsState,
) -> None:
    reloading = reduce(member, ConnectionStatusChanged("connected"))
    updating = reduce(
        reloading,
        UpdateMessage(5, "c1", "b", "new words"),
        DeleteMessage(6, "c1", "a"),
    )
    snapshot = ChatSnapshot(
        (server_message("b", 7, author=ME), server_message("z", 8)), 2, {}, (), 8
    )
    resumed = reduce(updating, ChatResumed(0, "c1", resumption(snapshot=snapshot, last_seq=8)))

    assert statuses(resumed) == [
        ("b", 7, "updating"),
        ("z", 8, "ready"),
        ("p", None, "interrupted"),
    ]
    assert set(chat(resumed).originals) == {"b"}  # a is gone from the server: its delete fails
    failed = reduce(resumed, MessageUpdateFailed(5, "c1", "b", REFUSED))
    assert contents_of(failed)["b"] == "hello"  # back to the snapshot's version
    assert reduce(failed, MessageDeleteFailed(6, "c1", "a", REFUSED)) == failed  # no phantom


def _resumed_in_epoch_e1_then_dropped(member: ChatsState) -> ChatsState:
    return reduce(
        member,
        ConnectionStatusChanged("connected"),
        ChatResumed(0, "c1", attrs.evolve(resumption(last_seq=9), epoch="e1")),
        ConnectionStatusChanged("disconnected"),
    )


def test_the_epoch_of_the_chat_goes_out_with_its_resume(member: ChatsState) -> None:
    assert chat(member).epoch is None  # SNAPSHOT has none
    state = _resumed_in_epoch_e1_then_dropped(member)
    step = run(state, ConnectionStatusChanged("connected"))
    assert [c.request for c in step.commands if isinstance(c, SendRequest)] == [
        ResumeRequest("c1", "refreshed", since_seq=9, epoch="e1")
    ]


@pytest.mark.parametrize("how", ["another epoch", "a server behind the chat"])
def test_events_of_another_history_without_a_snapshot_are_asked_again_from_the_start(
    member: ChatsState, how: str
) -> None:
    epoch_known = _resumed_in_epoch_e1_then_dropped(member)
    reloading = reduce(epoch_known, ConnectionStatusChanged("connected"))
    epoch, last_seq = ("e2", 12) if how == "another epoch" else ("e1", 4)
    odd = attrs.evolve(
        resumption(MessagePosted("c1", 12, server_message("x", 12)), last_seq=last_seq),
        epoch=epoch,
    )
    pushed = reduce(reloading, MessagePosted("c1", 13, server_message("y", 13)))

    step = run(pushed, ChatResumed(0, "c1", odd))

    state = chat(step.state)
    assert state.status == "reloading" and state.last_seq == 0 and state.epoch == epoch
    assert statuses(step.state) == [("p", None, "interrupted")]  # only the client's own work
    assert [c.request for c in step.commands if isinstance(c, SendRequest)] == [
        ResumeRequest("c1", "refreshed", since_seq=0, epoch=epoch)
    ]
    assert len(state.buffered_events) == 1  # the push is kept for after the answer


def test_auto_resend_queues_interrupted_messages_in_order(connected: ChatsState) -> None:
    state = reduce(
        connected,
        JoinChat(1, "c1", "tok"),
        ChatJoined(1, "c1", attrs.evolve(SNAPSHOT, membership=MEMBERSHIP)),
        send(2, "p"),
        send(3, "q"),
        ConnectionStatusChanged("disconnected"),
        MessageSendFailed(2, "c1", "p", TIMEOUT),
    )
    reloading = reduce(state, ConnectionStatusChanged("connected"))
    assert run(reloading, ChatResumed(0, "c1", resumption(last_seq=9))).commands == ()
    step = run(
        reloading,
        ChatResumed(0, "c1", resumption(last_seq=9)),
        reducer=chats_reducer(auto_resend=True),
    )
    assert [(m.id, m.status) for m in chat(step.state).messages][-2:] == [
        ("p", "sending"),
        ("q", "sending"),
    ]
    assert [(c.call_id, c.request) for c in step.commands if isinstance(c, SendRequest)] == [
        (0, PostMessageRequest("c1", "p", "hi"))
    ], "one at a time, in order"
    step = run(step.state, MessageSent(0, "c1", acked("p", 10)))
    assert [c.request for c in step.commands if isinstance(c, SendRequest)] == [
        PostMessageRequest("c1", "q", "hi")
    ]


@pytest.mark.parametrize(
    ("code", "reason"),
    [(ErrorCode.NOT_A_MEMBER, "membership_lost"), (ErrorCode.MEMBER_BLOCKED, "blocked")],
)
def test_a_refused_resume_removes_the_chat_with_a_reason(
    member: ChatsState, code: ErrorCode, reason: str
) -> None:
    reloading = reduce(member, ConnectionStatusChanged("connected"))
    step = run(reloading, ChatResumeFailed(0, "c1", Failure("refused", code, "no")))
    assert "c1" not in step.state.chats and step.state.chat_ids == ()
    assert step.state.removed["c1"].reason == reason
    assert step.commands == (), "never retried"


def test_a_timed_out_resume_is_asked_again_and_a_lost_one_waits(member: ChatsState) -> None:
    reloading = reduce(member, ConnectionStatusChanged("connected"))
    step = run(reloading, ChatResumeFailed(0, "c1", TIMEOUT))
    assert [c.request for c in step.commands if isinstance(c, SendRequest)] == [
        ResumeRequest("c1", MEMBERSHIP, since_seq=9)
    ]
    lost = Failure("connection_lost", "connection_lost", "gone")
    assert run(reloading, ChatResumeFailed(0, "c1", lost)).state is reloading


# A reloading chat accepts what a ready chat accepts (lifecycle.py) ---------------------------


@pytest.fixture
def reloading(member: ChatsState) -> ChatsState:
    """c1 reloading: the connection is back, its resume request is out."""
    state = reduce(member, ConnectionStatusChanged("connected"))
    assert chat(state).status == "reloading"
    return state


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (send(7, "q"), PostMessageRequest("c1", "q", "hi")),
        (ResendMessage(7, "c1", "p"), PostMessageRequest("c1", "p", "hi")),
        (UpdateMessage(7, "c1", "b", "new"), EditMessageRequest("c1", "b", "new")),
        (DeleteMessage(7, "c1", "b"), DeleteMessageRequest("c1", "b")),
        (LoadOlderMessages(7, "c1", 5), HistoryRequest("c1", before_seq=3, limit=5)),
        (
            ModerateChatMember(7, "c1", "alice", "kick"),
            ModerationRequest("c1", "alice", "kick"),
        ),
        (LeaveChat(7, "c1"), LeaveRequest("c1")),
    ],
    ids=lambda value: type(value).__name__,
)
def test_a_reloading_chat_accepts_every_intent_of_a_ready_chat(
    reloading: ChatsState, action: Any, expected: Any
) -> None:
    step = run(reloading, action)
    assert SendRequest(7, expected) in step.commands
    assert not [c for c in step.commands if isinstance(c, SettleCall)]


def test_an_update_during_a_resync_settles_after_the_resume(reloading: ChatsState) -> None:
    """Issue 10's hang: the update goes out after the resume and its reply is applied."""
    state = reduce(reloading, UpdateMessage(7, "c1", "b", "new"))
    assert statuses(state)[1] == ("b", 7, "updating")
    # The server answers the resume first, then the edit; its push of the edit arrives
    # while the chat is still reloading and is buffered.
    edited = msgspec.structs.replace(acked("b", 7, "new"), edited_at=21.0)
    state = reduce(state, MessageEdited("c1", 21, edited))
    assert chat(state).buffered_events == (MessageEdited("c1", 21, edited),)
    state = reduce(state, ChatResumed(0, "c1", resumption(last_seq=20)))
    assert chat(state).status == "ready" and statuses(state)[1] == ("b", 7, "updating")
    state = reduce(state, MessageUpdated(7, "c1", edited))
    assert statuses(state)[1] == ("b", 7, "ready") and contents_of(state)["b"] == "new"
    assert chat(state).last_seq == 21 and not chat(state).originals


def test_a_send_during_a_resync_is_confirmed_whatever_comes_first(reloading: ChatsState) -> None:
    state = reduce(reloading, send(7, "q"))
    posted = MessagePosted("c1", 21, acked("q", 21))
    resumed = ChatResumed(0, "c1", resumption(last_seq=20))
    for order in (
        (posted, resumed, MessageSent(7, "c1", acked("q", 21))),
        (MessageSent(7, "c1", acked("q", 21)), resumed, posted),
    ):
        done = reduce(state, *order)
        assert statuses(done)[-2:] == [("q", 21, "ready"), ("p", None, "interrupted")]
        assert chat(done).send_queue == () and chat(done).status == "ready"


def test_a_refused_resume_cancels_the_sends_queued_during_the_resync(
    reloading: ChatsState,
) -> None:
    state = reduce(reloading, send(7, "q"), send(8, "r"))
    step = run(state, ChatResumeFailed(0, "c1", Failure("refused", ErrorCode.NOT_A_MEMBER, "no")))
    assert "c1" not in step.state.chats
    (command,) = step.commands  # q is in flight: its own reply settles it
    assert isinstance(command, SettleCall) and command.call_id == 8
    assert command.outcome.failure.kind == "cancelled"  # type: ignore[union-attr]


def test_a_kick_is_remembered_until_the_chat_is_joined_again(ready: ChatsState) -> None:
    kicked = reduce(ready, RemovedFromChat("c1", "kicked", "spam"))
    assert kicked.removed["c1"] == ChatRemoval("c1", "kicked", "spam")
    rejoining = reduce(kicked, JoinChat(5, "c1", "tok"))
    assert "c1" not in rejoining.removed


# Events buffered while a chat loads ----------------------------------------------------


def posted(seq: int) -> MessagePosted:
    return MessagePosted("c1", seq, server_message(f"m{seq}", seq))


def test_events_buffered_while_loading_cost_the_same_each(loading: ChatsState) -> None:
    """Issue 11: each event copied the buffer (40,000 events blocked the loop for 7 s).

    Buffered events share one list: appending never copies what is buffered.
    """
    state = loading
    buffers = []
    for seq in range(1, MAX_BUFFERED_EVENTS + 1):
        state = reduce(state, posted(seq))
        if seq in (1, MAX_BUFFERED_EVENTS):
            buffers.append(chat(state).buffered_events)
    first, last = buffers
    assert len(first) == 1 and len(last) == MAX_BUFFERED_EVENTS
    assert first._items is last._items, "the buffer was copied"
    state = reduce(state, ChatJoined(1, "c1", attrs.evolve(SNAPSHOT, messages=(), last_seq=0)))
    assert [m.seq for m in chat(state).messages] == list(range(1, MAX_BUFFERED_EVENTS + 1))
    assert chat(state).buffered_events == ()


def full(state: ChatsState) -> ChatsState:
    """``state`` with c1's buffer at the cap (built at once, as the cap's test needs)."""
    events = EventBuffer([posted(seq) for seq in range(100, 100 + MAX_BUFFERED_EVENTS)])
    filled = attrs.evolve(chat(state), buffered_events=events)
    return attrs.evolve(state, chats=state.chats.set("c1", filled))


def test_one_event_past_the_buffer_cap_fails_the_join_clearly(loading: ChatsState) -> None:
    step = run(full(loading), posted(99_999))

    assert "c1" not in step.state.chats and step.state.chat_ids == ()
    (settle,) = step.commands
    assert isinstance(settle, SettleCall) and settle.call_id == 1
    assert isinstance(settle.outcome, ChatJoinFailed)
    failure = settle.outcome.failure
    assert (failure.kind, failure.code) == ("cancelled", ErrorCode.TOO_MANY_EVENTS)
    assert f"more than {MAX_BUFFERED_EVENTS} events" in failure.detail
    # The join's late reply and the chat's later events find no chat.
    assert reduce(step.state, ChatJoined(1, "c1", SNAPSHOT), posted(100_000)) == step.state


def test_one_event_past_the_buffer_cap_ends_a_resync_with_a_removal(
    reloading: ChatsState,
) -> None:
    queued = reduce(reloading, send(7, "q"), send(8, "r"))
    step = run(full(queued), posted(99_999))

    assert "c1" not in step.state.chats
    removal = step.state.removed["c1"]
    assert removal.reason == "resync_failed"
    assert removal.detail is not None and removal.detail.startswith("too_many_events: ")
    (settle,) = step.commands  # the send waiting behind the one in flight
    assert isinstance(settle, SettleCall) and settle.call_id == 8


def test_a_resumption_too_large_to_read_gives_the_chat_up(reloading: ChatsState) -> None:
    """Issue 11: a resumption over the frame limit closed the connection (1009), and each
    reconnection asked for the same one again: 369 to 406 reconnections in 20 s."""
    too_large = Failure("connection_lost", ErrorCode.FRAME_TOO_LARGE, "closed with 1009")
    lost = Failure("connection_lost", ErrorCode.CONNECTION_LOST, "the network broke")

    waiting = reduce(reloading, ChatResumeFailed(0, "c1", lost))
    assert chat(waiting).status == "reloading"  # asked again on the next connection
    state = reduce(reloading, ChatResumeFailed(0, "c1", too_large))
    assert "c1" not in state.chats
    assert state.removed["c1"] == ChatRemoval(
        "c1", "resync_failed", "frame_too_large: closed with 1009"
    )
    reconnected = run(
        state, ConnectionStatusChanged("connecting"), ConnectionStatusChanged("connected")
    )
    assert reconnected.commands == ()  # nothing asked again


# Membership renewal ----------------------------------------------------------------------


def credential(ttl: float, issued: float = 1_000.0) -> str:
    """A membership credential as the server mints it (its lifetime is readable)."""
    return mint_membership_token("s" * 32, ME, "c1", ttl=ttl, now=issued)


def renewal_timer(step: Step[ChatsState]) -> DispatchLater:
    (timer,) = [c for c in step.commands if isinstance(c, DispatchLater)]
    return timer


def test_a_new_credential_asks_for_its_renewal_at_half_its_lifetime(
    loading: ChatsState,
) -> None:
    joined = run(loading, ChatJoined(1, "c1", attrs.evolve(SNAPSHOT, membership=credential(600))))
    assert renewal_timer(joined) == DispatchLater(
        ("renew", "c1"), 300.0, MembershipRenewalDue("c1")
    )
    # The same credential again asks for nothing; one that cannot be read neither.
    assert not run(joined.state, posted(10)).commands
    unreadable = run(loading, ChatJoined(1, "c1", attrs.evolve(SNAPSHOT, membership="opaque")))
    assert not [c for c in unreadable.commands if isinstance(c, DispatchLater)]


def test_a_renewal_due_is_asked_for_while_ready_and_connected(loading: ChatsState) -> None:
    member = reduce(loading, ChatJoined(1, "c1", attrs.evolve(SNAPSHOT, membership=MEMBERSHIP)))
    due = MembershipRenewalDue("c1")

    assert run(member, due).commands == (SendRequest(0, RenewRequest("c1")),)
    # Waiting for the connection or resuming: the resume brings a fresh credential.
    assert run(member, ConnectionStatusChanged("connecting"), due).commands == ()
    reloading = reduce(
        member, ConnectionStatusChanged("connecting"), ConnectionStatusChanged("connected")
    )
    assert chat(reloading).status == "reloading" and run(reloading, due).commands == ()
    assert run(member, MembershipRenewalDue("c9")).commands == ()


def test_a_renewed_credential_is_kept_and_its_own_renewal_asked_for(
    loading: ChatsState,
) -> None:
    member = reduce(loading, ChatJoined(1, "c1", attrs.evolve(SNAPSHOT, membership=MEMBERSHIP)))
    fresh = credential(60, issued=2_000.0)
    step = run(member, MembershipRenewed(0, "c1", MembershipRenewal(fresh)))

    assert chat(step.state).membership == fresh
    assert renewal_timer(step).delay == 30.0
    # A chat still joining has no credential to renew: its snapshot brings one.
    assert reduce(loading, MembershipRenewed(0, "c1", MembershipRenewal(fresh))) == loading


def test_a_renewal_that_timed_out_is_asked_again_only(loading: ChatsState) -> None:
    member = reduce(loading, ChatJoined(1, "c1", attrs.evolve(SNAPSHOT, membership=MEMBERSHIP)))
    lost = Failure("connection_lost", "connection_lost", "gone")
    unknown = Failure("refused", ErrorCode.UNKNOWN_REQUEST, "an older server")

    assert run(member, MembershipRenewFailed(0, "c1", TIMEOUT)).commands == (
        SendRequest(0, RenewRequest("c1")),
    )
    assert run(member, MembershipRenewFailed(0, "c1", lost)).commands == ()
    assert reduce(member, MembershipRenewFailed(0, "c1", unknown)) == member


# Restored from a state file -----------------------------------------------------------


def pending(message_id: str, content: str = "hi") -> Message:
    return Message(message_id, "c1", ME, content, "interrupted", created_at=100.0)


RESTORED = RestoredChat(
    chat_id="c1",
    last_seq=9,
    membership=MEMBERSHIP,
    members_amount=4,
    member_metadata={"role": "member"},
    restrictions=(),
    messages=(server_message("a", 3), acked("b", 7), pending("p"), pending("q"), pending("r")),
    operations=(
        PendingOperation("send", "p"),
        PendingOperation("edit", "b", "b, edited"),
        PendingOperation("send", "q"),
        PendingOperation("delete", "a"),
    ),
)


def sent(step: Step[ChatsState]) -> list[Any]:
    return [c.request for c in step.commands if isinstance(c, SendRequest)]


@pytest.fixture
def restored() -> ChatsState:
    """c1 restored from a state file, not connected: p and q were in flight, r had failed."""
    return reduce(ChatsState(), ChatsRestored((RESTORED,)))


def test_a_restored_chat_is_reloading_with_its_messages(restored: ChatsState) -> None:
    state = chat(restored)
    assert restored.chat_ids == ("c1",)
    assert state.status == "reloading" and state.sync_statuses.is_syncing
    assert statuses(restored) == [
        ("a", 3, "ready"),
        ("b", 7, "ready"),
        ("p", None, "interrupted"),
        ("q", None, "interrupted"),
        ("r", None, "interrupted"),
    ]
    assert (state.last_seq, state.members_amount, state.membership) == (9, 4, MEMBERSHIP)
    assert state.recovered == RESTORED.operations
    assert run(ChatsState(), ChatsRestored((RESTORED,))).commands == (), "nothing to send yet"
    assert reduce(restored, ConnectionStatusChanged("connecting")) == attrs.evolve(
        restored, connection="connecting"
    ), "nothing in flight to interrupt"


def test_at_the_connection_the_recovered_sends_go_first_after_the_resume(
    restored: ChatsState,
) -> None:
    step = run(
        restored, ConnectionStatusChanged("connecting"), ConnectionStatusChanged("connected")
    )
    assert sent(step) == [ResumeRequest("c1", MEMBERSHIP, 9), PostMessageRequest("c1", "p", "hi")]
    assert [(m.id, m.status) for m in chat(step.state).messages][2:] == [
        ("p", "sending"),
        ("q", "sending"),
        ("r", "interrupted"),
    ], "r had failed before: the user resends it"
    during = run(step.state, send(5, "s"))
    assert sent(during) == [], "a send of the resync queues up behind the recovered ones"
    after_p = run(during.state, MessageSent(0, "c1", acked("p", 10)))
    assert sent(after_p) == [PostMessageRequest("c1", "q", "hi")]
    after_q = run(after_p.state, MessageSent(0, "c1", acked("q", 11)))
    assert sent(after_q) == [PostMessageRequest("c1", "s", "hi")]


def test_once_resumed_the_recovered_edits_and_deletes_go_out_in_order(
    restored: ChatsState,
) -> None:
    reloading = reduce(restored, ConnectionStatusChanged("connected"))
    step = run(reloading, ChatResumed(0, "c1", resumption(last_seq=9)))
    assert sent(step) == [
        EditMessageRequest("c1", "b", "b, edited"),
        DeleteMessageRequest("c1", "a"),
    ]
    state = chat(step.state)
    assert state.recovered == ()
    assert [(m.id, m.status, m.content) for m in state.messages][:2] == [
        ("a", "deleting", "hello"),
        ("b", "updating", "b, edited"),
    ]
    rolled_back = reduce(step.state, MessageUpdateFailed(0, "c1", "b", TIMEOUT))
    assert contents_of(rolled_back)["b"] == "hi", "as any edit that fails"


def test_operations_the_server_applied_before_the_end_are_not_sent_again(
    restored: ChatsState,
) -> None:
    reloading = reduce(restored, ConnectionStatusChanged("connected"))
    missed = resumption(
        MessagePosted("c1", 10, acked("p", 10)),
        MessageEdited("c1", 11, msgspec.structs.replace(acked("b", 7), content="b, edited")),
        MessageEdited(
            "c1", 12, msgspec.structs.replace(acked("b", 7), content="b, by another device")
        ),
        MessageRemoved("c1", 13, "a"),
        last_seq=13,
    )
    acked_p = run(reloading, MessageSent(0, "c1", acked("p", 10)))
    assert sent(acked_p) == [PostMessageRequest("c1", "q", "hi")]
    step = run(acked_p.state, ChatResumed(0, "c1", missed))
    assert sent(step) == [], "no edit, no delete"
    assert contents_of(step.state)["b"] == "b, by another device", "the later edit stands"
    assert chat(step.state).recovered == ()


def test_an_edit_to_the_content_the_message_has_is_not_sent(restored: ChatsState) -> None:
    reloading = reduce(restored, ConnectionStatusChanged("connected"))
    snapshot = ChatSnapshot(
        messages=(msgspec.structs.replace(acked("b", 7), content="b, edited"),),
        members_amount=4,
        member_metadata={},
        restrictions=(),
        last_seq=30,
    )
    step = run(reloading, ChatResumed(0, "c1", resumption(snapshot=snapshot, last_seq=30)))
    assert sent(step) == [], "a snapshot: a is gone, b has the content already"


def test_a_lost_connection_keeps_the_recovered_operations_for_the_next(
    restored: ChatsState,
) -> None:
    reloading = reduce(restored, ConnectionStatusChanged("connected"))
    dropped = reduce(
        reloading,
        ConnectionStatusChanged("connecting"),
        MessageSendFailed(0, "c1", "p", Failure("connection_lost", "connection_lost", "gone")),
    )
    assert chat(dropped).recovered == RESTORED.operations
    step = run(dropped, ConnectionStatusChanged("connected"))
    assert sent(step) == [ResumeRequest("c1", MEMBERSHIP, 9), PostMessageRequest("c1", "p", "hi")]


def test_a_timed_out_resume_of_a_restored_chat_sends_what_failed_meanwhile(
    restored: ChatsState,
) -> None:
    reloading = reduce(
        restored,
        ConnectionStatusChanged("connected"),
        MessageSendFailed(0, "c1", "p", TIMEOUT),
    )
    assert chat(reloading).send_queue[0].message_id == "q"
    step = run(reloading, ChatResumeFailed(0, "c1", TIMEOUT))
    assert sent(step) == [ResumeRequest("c1", MEMBERSHIP, 9)]
    assert [m.status for m in chat(step.state).messages][2:4] == ["sending", "sending"]
    assert [e.message_id for e in chat(step.state).send_queue] == ["q", "p"]


def test_chats_restored_while_connected_resume_at_once(connected: ChatsState) -> None:
    step = run(connected, ChatsRestored((RESTORED,)))
    assert sent(step) == [ResumeRequest("c1", MEMBERSHIP, 9), PostMessageRequest("c1", "p", "hi")]
    again = run(step.state, ChatsRestored((attrs.evolve(RESTORED, last_seq=1),)))
    assert again.state is step.state or chat(again.state) is chat(step.state), "held chats stay"


def test_the_older_messages_of_a_restored_chat_go_below_those_it_shows(
    restored: ChatsState,
) -> None:
    older = (server_message("x", 1), server_message("y", 2))

    state = reduce(restored, ChatHistoryRestored("c1", 3, older))

    assert [m.id for m in chat(state).messages] == ["x", "y", "a", "b", "p", "q", "r"]
    assert chat(state).messages.find("x") == older[0]
    bounded = run(
        restored, ChatHistoryRestored("c1", 3, older), reducer=chats_reducer(max_messages=3)
    )
    assert [m.id for m in chat(bounded.state).messages][:3] == ["y", "a", "b"]


def test_older_messages_that_would_leave_a_gap_are_not_restored(restored: ChatsState) -> None:
    """A resume replaced the messages with a snapshot of the newest: the file's older
    ones would leave a hole between them."""
    reloading = reduce(restored, ConnectionStatusChanged("connected"))
    snapshot = ChatSnapshot((server_message("z", 40),), 4, {}, (), 40)
    resumed = reduce(reloading, ChatResumed(0, "c1", resumption(snapshot=snapshot, last_seq=40)))

    after = reduce(resumed, ChatHistoryRestored("c1", 3, (server_message("x", 1),)))

    assert after is resumed or chat(after) is chat(resumed)
