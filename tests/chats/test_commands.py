"""The request registry: each request kind declared once, and what its outcomes are."""

from __future__ import annotations

from typing import get_args

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chats_store.chats.actions import (
    ChatJoined,
    ChatJoinFailed,
    ChatLeaveFailed,
    ChatLeft,
    ChatMemberModerated,
    ChatMemberModerationFailed,
    ChatResumed,
    ChatResumeFailed,
    ChatSnapshot,
    Failure,
    MembersAmountChanged,
    MembershipRenewal,
    MembershipRenewed,
    MembershipRenewFailed,
    MessageDeleted,
    MessageDeleteFailed,
    MessageSendFailed,
    MessageSent,
    MessageUpdated,
    MessageUpdateFailed,
    OlderMessagesLoaded,
    OlderMessagesLoadFailed,
    RemovedFromChat,
    Resumption,
    ServerEvent,
)
from chats_store.chats.commands import (
    REQUEST_KINDS,
    ChatReply,
    ChatRequest,
    DeleteMessageRequest,
    EditMessageRequest,
    HistoryRequest,
    JoinRequest,
    LeaveRequest,
    ModerationRequest,
    Outcome,
    PostMessageRequest,
    RenewRequest,
    ResumeRequest,
    _page_offender,
    kind_of,
    outcome_of,
)
from chats_store.chats.model import Message
from chats_store.errors import ErrorCode

MESSAGE = Message("m", "c", "ann", "hi", "ready", 3, 1.0)
SNAPSHOT = ChatSnapshot((MESSAGE,), 2, {}, (), 3, "credential")


def resumed(*events: ServerEvent) -> Resumption:
    """What chat ``c`` missed since seq 2: ``events``, up to seq 3."""
    return Resumption(events, None, 2, {}, (), 3, "credential")


RESUMPTION = resumed()
FAILURE = Failure("refused", ErrorCode.NOT_A_MEMBER, "not a member")


def test_every_request_class_has_exactly_one_kind() -> None:
    classes = [kind.request for kind in REQUEST_KINDS.values()]

    assert set(classes) == set(get_args(ChatRequest))
    assert len(set(classes)) == len(classes)
    assert [kind.tag for kind in REQUEST_KINDS.values()] == list(REQUEST_KINDS)


def test_every_declared_reply_type_is_a_chat_reply() -> None:
    assert {kind.reply for kind in REQUEST_KINDS.values()} == set(get_args(ChatReply))


OUTCOMES: list[tuple[ChatRequest, ChatReply, Outcome, Outcome]] = [
    (
        JoinRequest("c", "token"),
        SNAPSHOT,
        ChatJoined(7, "c", SNAPSHOT),
        ChatJoinFailed(7, "c", FAILURE),
    ),
    (LeaveRequest("c"), None, ChatLeft(7, "c"), ChatLeaveFailed(7, "c", FAILURE)),
    (
        PostMessageRequest("c", "m", "hi"),
        MESSAGE,
        MessageSent(7, "c", MESSAGE),
        MessageSendFailed(7, "c", "m", FAILURE),
    ),
    (
        EditMessageRequest("c", "m", "hi"),
        MESSAGE,
        MessageUpdated(7, "c", MESSAGE),
        MessageUpdateFailed(7, "c", "m", FAILURE),
    ),
    (
        DeleteMessageRequest("c", "m"),
        None,
        MessageDeleted(7, "c", "m"),
        MessageDeleteFailed(7, "c", "m", FAILURE),
    ),
    (
        ModerationRequest("c", "bob", "mute", 10, "spam"),
        None,
        ChatMemberModerated(7, "c", "bob", "mute"),
        ChatMemberModerationFailed(7, "c", "bob", FAILURE),
    ),
    (
        HistoryRequest("c", 10, 50),
        (MESSAGE,),
        OlderMessagesLoaded(7, "c", (MESSAGE,)),
        OlderMessagesLoadFailed(7, "c", FAILURE),
    ),
    (
        ResumeRequest("c", "credential", 2),
        RESUMPTION,
        ChatResumed(7, "c", RESUMPTION),
        ChatResumeFailed(7, "c", FAILURE),
    ),
    (
        RenewRequest("c"),
        MembershipRenewal("credential"),
        MembershipRenewed(7, "c", MembershipRenewal("credential")),
        MembershipRenewFailed(7, "c", FAILURE),
    ),
]
"""A request of each kind, a reply to it, and the outcomes of that reply and of FAILURE."""


@pytest.mark.parametrize(("request_", "reply", "succeeded", "failed"), OUTCOMES)
def test_the_outcomes_of_each_request(
    request_: ChatRequest, reply: ChatReply, succeeded: Outcome, failed: Outcome
) -> None:
    assert outcome_of(7, request_, reply) == succeeded
    assert outcome_of(7, request_, FAILURE) == failed
    assert kind_of(request_).mismatch(request_, reply) is None


def test_the_outcome_table_covers_every_kind() -> None:
    assert {kind_of(request).tag for request, *_ in OUTCOMES} == set(REQUEST_KINDS)


def test_deleting_a_message_the_server_never_had_counts_as_deleted() -> None:
    request = DeleteMessageRequest("c", "m")
    not_found = Failure("refused", ErrorCode.MESSAGE_NOT_FOUND, "no such message")
    lost = Failure("connection_lost", ErrorCode.MESSAGE_NOT_FOUND, "gone")

    assert outcome_of(1, request, not_found) == MessageDeleted(1, "c", "m")
    assert outcome_of(1, request, lost) == MessageDeleteFailed(1, "c", "m", lost)


def test_a_value_that_is_not_a_request_has_no_kind() -> None:
    with pytest.raises(TypeError, match="not a chat request"):
        kind_of("join")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("request_", "reply", "mismatch"),
    [
        (PostMessageRequest("c", "m", "hi"), Message("x", "c", "ann", "hi", "ready", 3), "'x'"),
        (EditMessageRequest("c", "m", "hi"), Message("m", "d", "ann", "hi", "ready", 3), "'d'"),
        (HistoryRequest("c", 3, 50), (MESSAGE,), "seqs below 3"),
        (HistoryRequest("c", 9, 50), (MESSAGE, MESSAGE), "appears twice"),
        (JoinRequest("d", "token"), SNAPSHOT, "of chat 'c'"),
        (ResumeRequest("c", "credential", 2), resumed(MembersAmountChanged("d", 3, 1)), "'d'"),
        (ResumeRequest("c", "credential", 2), resumed(MembersAmountChanged("c", 2, 1)), "seq 2"),
        (ResumeRequest("c", "credential", 2), resumed(RemovedFromChat("c", "kicked")), "removed"),
        (
            ResumeRequest("c", "credential", 2),
            attrs.evolve(resumed(MembersAmountChanged("c", 3, 1)), snapshot=SNAPSHOT),
            "not both",
        ),
    ],
)
def test_a_reply_that_cannot_answer_its_request_says_why(
    request_: ChatRequest, reply: ChatReply, mismatch: str
) -> None:
    found = kind_of(request_).mismatch(request_, reply)

    assert found is not None and mismatch in found


_PAGE_MESSAGES = st.builds(
    Message,
    id=st.sampled_from(["m1", "m2", "m3"]),
    chat_id=st.sampled_from(["c", "c", "c", "d"]),
    author_id=st.just("ann"),
    content=st.just("hi"),
    status=st.just("ready"),
    seq=st.one_of(st.none(), st.integers(-1, 6)),
)


@given(st.lists(_PAGE_MESSAGES, max_size=4), st.integers(0, 7), st.booleans())
def test_a_history_page_fits_when_every_message_may_be_shown_in_any_order(
    page: list[Message], before_seq: int, ascending: bool
) -> None:
    """The check of an ascending page (what a server sends) and the walk of any other
    agree: one message per id and per seq, each of the chat and below ``before_seq``."""
    if ascending:
        page.sort(key=lambda message: message.seq or 0)
    messages = tuple(page)
    seqs = [message.seq for message in messages]
    fits = (
        all(message.chat_id == "c" for message in messages)
        and all(seq is not None and seq < before_seq for seq in seqs)
        and len({message.id for message in messages}) == len(seqs) == len(set(seqs))
    )
    request = HistoryRequest("c", before_seq, 50)

    found = kind_of(request).mismatch(request, messages)

    assert (found is None) == fits
    assert found == _page_offender(messages, "c", before_seq)
