"""Round trips through the wire protocol: domain value -> text frame -> domain value."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from unittest import mock

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from chats_store.chats.actions import (
    ChatSnapshot,
    Failure,
    MembersAmountChanged,
    MessageEdited,
    MessagePosted,
    MessageRemoved,
    OwnMetadataChanged,
    OwnRestrictionsChanged,
    RemovedFromChat,
    Resumption,
    ServerEvent,
)
from chats_store.chats.commands import (
    ChatReply,
    ChatRequest,
    DeleteMessageRequest,
    EditMessageRequest,
    HistoryRequest,
    JoinRequest,
    LeaveRequest,
    ModerationRequest,
    PostMessageRequest,
    ResumeRequest,
)
from chats_store.chats.model import Message, Restriction
from chats_store.protocol import (
    MAX_REQUEST_ID,
    ClientProtocol,
    EventReceived,
    ReplyReceived,
    decode_request,
    encode_error,
    encode_event,
    encode_reply,
    encode_request,
    mapping,
)
from chats_store.protocol import server as protocol_server
from chats_store.protocol.server import message_size_bound

# Any text but lone surrogates (which no UTF-8 frame can carry), astral planes included.
texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
ids = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=12)
ints = st.integers(min_value=0, max_value=2**53)
times = st.floats(min_value=0, max_value=4e9, allow_nan=False, allow_infinity=False)
request_ids = st.integers(min_value=0, max_value=MAX_REQUEST_ID)


@st.composite
def messages(draw: st.DrawFn, chat_id: str | None = None, message_id: str | None = None) -> Message:
    return Message(
        id=message_id if message_id is not None else draw(ids),
        chat_id=chat_id if chat_id is not None else draw(ids),
        author_id=draw(ids),
        content=draw(texts),
        status="ready",
        seq=draw(ints),
        created_at=draw(times),
        edited_at=draw(st.none() | times),
    )


restrictions = st.builds(
    Restriction, st.sampled_from(["mute", "block"]), st.none() | times, st.none() | texts
)
metadata = st.dictionaries(texts, texts, max_size=4)

requests: st.SearchStrategy[ChatRequest] = st.one_of(
    st.builds(JoinRequest, ids, texts),
    st.builds(LeaveRequest, ids),
    st.builds(PostMessageRequest, ids, ids, texts),
    st.builds(EditMessageRequest, ids, ids, texts),
    st.builds(DeleteMessageRequest, ids, ids),
    st.builds(
        ModerationRequest,
        ids,
        ids,
        st.sampled_from(["block", "unblock", "mute", "unmute", "kick"]),
        st.none() | st.integers(min_value=-(2**40), max_value=2**40),
        st.none() | texts,
    ),
    st.builds(HistoryRequest, ids, ints, ints),
    st.builds(ResumeRequest, ids, texts, ints),
)


@st.composite
def events(
    draw: st.DrawFn, chat_id: str | None = None, seq: int | None = None, kinds: int = 7
) -> ServerEvent:
    chat_id = draw(ids) if chat_id is None else chat_id
    seq = draw(ints) if seq is None else seq
    kind = draw(st.integers(0, kinds - 1))
    if kind == 0:
        return MessagePosted(
            chat_id, seq, msgspec.structs.replace(draw(messages(chat_id)), seq=seq)
        )
    if kind == 1:
        return MessageEdited(chat_id, seq, draw(messages(chat_id)))
    if kind == 2:
        return MessageRemoved(chat_id, seq, draw(ids))
    if kind == 3:
        return MembersAmountChanged(chat_id, seq, draw(ints))
    if kind == 4:
        return OwnRestrictionsChanged(chat_id, seq, tuple(draw(st.lists(restrictions, max_size=2))))
    if kind == 5:
        return OwnMetadataChanged(chat_id, seq, draw(metadata))
    return RemovedFromChat(
        chat_id, draw(st.sampled_from(["kicked", "blocked"])), draw(st.none() | texts)
    )


@st.composite
def pages(draw: st.DrawFn, chat_id: str, below_seq: int) -> tuple[Message, ...]:
    """Messages of ``chat_id`` with seqs below ``below_seq``, no id or seq twice."""
    seqs = draw(st.lists(st.integers(0, max(below_seq - 1, 0)), max_size=3, unique=True))
    page_ids = draw(st.lists(ids, min_size=len(seqs), max_size=len(seqs), unique=True))
    return tuple(
        msgspec.structs.replace(draw(messages(chat_id, message_id)), seq=seq)
        for seq, message_id in zip(sorted(seqs), page_ids, strict=True)
        if seq < below_seq
    )


@st.composite
def snapshots(draw: st.DrawFn, chat_id: str) -> ChatSnapshot:
    last_seq = draw(ints)
    return ChatSnapshot(
        messages=draw(pages(chat_id, last_seq + 1)),
        members_amount=draw(ints),
        member_metadata=draw(metadata),
        restrictions=tuple(draw(st.lists(restrictions, max_size=2))),
        last_seq=last_seq,
        membership=draw(st.none() | texts),
    )


@st.composite
def resumptions(draw: st.DrawFn, chat_id: str, since_seq: int) -> Resumption:
    """A consistent resumption: events of ``chat_id`` after ``since_seq``, or a snapshot."""
    gaps = draw(st.lists(st.integers(1, 5), max_size=4))
    seqs = [since_seq + sum(gaps[: i + 1]) for i in range(len(gaps))]
    snapshot = draw(st.none() | snapshots(chat_id)) if not seqs else None
    return Resumption(
        events=tuple(draw(events(chat_id, seq, kinds=6)) for seq in seqs),
        snapshot=snapshot,
        members_amount=draw(ints),
        member_metadata=draw(metadata),
        restrictions=tuple(draw(st.lists(restrictions, max_size=2))),
        last_seq=max([since_seq, *seqs]) + draw(st.integers(0, 3)),
        membership=draw(texts),
    )


@st.composite
def request_and_reply(draw: st.DrawFn) -> tuple[ChatRequest, ChatReply]:
    """A request and a reply of the type it calls for."""
    request = draw(requests)
    reply: ChatReply
    match request:
        case JoinRequest(chat_id=chat_id):
            reply = draw(snapshots(chat_id))
        case ResumeRequest(chat_id=chat_id, since_seq=since_seq):
            reply = draw(resumptions(chat_id, since_seq))
        case PostMessageRequest() | EditMessageRequest():
            reply = draw(messages(request.chat_id, request.message_id))
        case HistoryRequest(chat_id=chat_id, before_seq=before_seq):
            reply = draw(pages(chat_id, before_seq))
        case _:
            reply = None
    return request, reply


def _frame(text: str) -> dict[str, Any]:
    assert text.isascii()
    data = json.loads(text)
    assert isinstance(data, dict)
    assert next(iter(data)) == "type"
    return data


@given(request_ids, requests)
def test_a_request_survives_the_wire(request_id: int, request: ChatRequest) -> None:
    text = encode_request(request_id, request)

    assert decode_request(text) == (request_id, request)
    assert _frame(text)["id"] == request_id


@given(request_and_reply())
def test_a_reply_reaches_the_client_as_the_domain_value_it_calls_for(
    pair: tuple[ChatRequest, ChatReply],
) -> None:
    request, reply = pair
    protocol = ClientProtocol()
    request_id = protocol.send_request(request)
    (sent,) = protocol.data_to_send()
    assert decode_request(sent) == (request_id, request)

    text = encode_reply(request_id, reply)
    protocol.receive_data(text)

    assert _frame(text)["type"] == "ok"
    assert protocol.events_received() == [ReplyReceived(request_id, reply)]
    assert protocol.pending_ids == ()


@given(requests, texts, texts)
def test_an_error_reply_becomes_a_refused_failure(
    request: ChatRequest, code: str, message: str
) -> None:
    protocol = ClientProtocol()
    request_id = protocol.send_request(request)

    protocol.receive_data(encode_error(request_id, code, message))

    (received,) = protocol.events_received()
    assert received == ReplyReceived(request_id, Failure("refused", code, message))
    assert received.request == request


@given(events(), ints)
def test_an_event_reaches_the_client_as_the_domain_action(event: ServerEvent, seq: int) -> None:
    protocol = ClientProtocol()
    extra_seq = seq if isinstance(event, RemovedFromChat) else None

    text = encode_event(event, seq=extra_seq)
    protocol.receive_data(text)

    frame = _frame(text)
    assert frame["type"] == "event"
    assert frame["chat_id"] == event.chat_id
    assert frame["seq"] == (seq if extra_seq is not None else getattr(event, "seq", None))
    assert next(iter(frame["event"])) == "kind"
    assert protocol.events_received() == [EventReceived(event)]


def test_request_ids_grow_and_frames_queue_in_order() -> None:
    protocol = ClientProtocol()

    first = protocol.send_request(LeaveRequest("a"))
    second = protocol.send_request(LeaveRequest("b"))

    assert (first, second) == (1, 2)
    assert [decode_request(t) for t in protocol.data_to_send()] == [
        (1, LeaveRequest("a")),
        (2, LeaveRequest("b")),
    ]
    assert protocol.data_to_send() == []
    assert protocol.pending_ids == (1, 2)


def test_replies_and_events_come_out_in_arrival_order() -> None:
    protocol = ClientProtocol()
    request_id = protocol.send_request(LeaveRequest("c"))
    event = MembersAmountChanged("c", 4, 1)

    protocol.receive_data(encode_event(event))
    protocol.receive_data(encode_reply(request_id, None))

    assert protocol.events_received() == [EventReceived(event), ReplyReceived(request_id, None)]
    assert protocol.events_received() == []


def test_decoded_messages_share_their_chat_and_author_id_strings() -> None:
    # json.loads makes new strings for every message; the codec interns these two so a
    # store of many messages keeps one copy of each (workload 6 of benchmarks/README.md).
    protocol = ClientProtocol()
    for seq in (1, 2):
        message = Message(
            id=f"m{seq}",
            chat_id="".join(["chat", "-1"]),
            author_id="".join(["user", "-7"]),
            content="hi",
            status="ready",
            seq=seq,
            created_at=1.5,
        )
        protocol.receive_data(encode_event(MessagePosted("chat-1", seq, message)))
    events = [item.event for item in protocol.events_received() if isinstance(item, EventReceived)]
    first, second = events
    assert isinstance(first, MessagePosted) and isinstance(second, MessagePosted)
    assert first.message.chat_id == "chat-1" and first.message.author_id == "user-7"
    assert first.message.chat_id is second.message.chat_id
    assert first.message.author_id is second.message.author_id


def test_the_frames_in_the_docs_are_what_the_codec_writes() -> None:
    message = Message("m1", "c1", "alice", "hello", "ready", 7, 1700000000.5)

    assert encode_request(3, PostMessageRequest("c1", "m1", "hello")) == (
        '{"type":"post","id":3,"chat_id":"c1","message_id":"m1","content":"hello"}'
    )
    assert encode_reply(3, message) == (
        '{"type":"ok","id":3,"result":{"id":"m1","chat_id":"c1","author_id":"alice",'
        '"content":"hello","seq":7,"created_at":1700000000.5,"edited_at":null}}'
    )
    assert encode_error(4, "member_muted", "you are muted") == (
        '{"type":"error","id":4,"code":"member_muted","message":"you are muted"}'
    )
    assert encode_event(MembersAmountChanged("c1", 8, 3)) == (
        '{"type":"event","chat_id":"c1","seq":8,'
        '"event":{"kind":"members_amount_changed","members_amount":3}}'
    )


long_texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=300)
any_times = st.floats(allow_nan=False, allow_infinity=False)


@given(
    st.builds(
        Message,
        id=long_texts,
        chat_id=long_texts,
        author_id=long_texts,
        content=long_texts,
        status=st.just("ready"),
        seq=st.integers(min_value=0, max_value=2**63 - 1),
        created_at=any_times,
        edited_at=st.none() | any_times,
    )
)
def test_a_message_takes_at_most_its_size_bound_in_a_frame(message: Message) -> None:
    size = len(encode_reply(0, (message,))) - len(encode_reply(0, ()))

    assert size <= message_size_bound(message)


def test_the_size_bound_of_a_maximal_message_is_close_to_its_size() -> None:
    astral = "\U0001f600"
    message = Message(astral * 128, astral * 128, astral * 128, astral * 256, "ready", 2**62, 1.5)

    size = len(encode_reply(0, (message,))) - len(encode_reply(0, ()))

    assert 0.95 * message_size_bound(message) <= size <= message_size_bound(message)


printable = st.text(st.characters(min_codepoint=0, max_codepoint=0x7F), max_size=30) | (
    st.sampled_from(["\x7f", "a\x7fb", "\x00\x1f\\/"])  # DEL: the one ASCII dumps escapes
)
frame_times = (
    st.floats(allow_nan=False, allow_infinity=False)
    | st.floats(min_value=1e9, max_value=4e9)
    | st.sampled_from([0.0, -0.0, 1.0, 1e16, 9_999_999_999_999_998.0, 1e-5])
)
frame_messages = st.builds(
    Message,
    id=printable | long_texts,
    chat_id=printable,
    author_id=printable,
    content=printable | long_texts,
    status=st.sampled_from(["ready", "sending"]),
    seq=st.none() | st.integers(min_value=0, max_value=2**63 - 1),
    created_at=frame_times,
    edited_at=st.none() | frame_times,
)


def _written_generally(write: Callable[[], str]) -> str | type[Exception]:
    """What ``write`` gives (or raises) with the msgspec writers turned off."""
    with (
        mock.patch.object(protocol_server, "write_message", return_value=None),
        mock.patch.object(protocol_server, "write_posted", return_value=None),
    ):
        try:
            return write()
        except Exception as error:  # the general path's refusal, which must be kept
            return type(error)


def _written(write: Callable[[], str]) -> str | type[Exception]:
    try:
        return write()
    except Exception as error:
        return type(error)


@given(frame_messages, request_ids, st.none() | ints)
def test_a_post_reply_and_its_event_are_written_as_the_general_path_writes_them(
    message: Message, request_id: int, seq: int | None
) -> None:
    event = MessagePosted(message.chat_id, message.seq or 0, message)
    for write in (
        lambda: encode_reply(request_id, message),
        lambda: encode_event(event, seq=seq),
    ):
        assert _written(write) == _written_generally(write)


def test_the_msgspec_writers_write_the_frames_a_server_usually_sends() -> None:
    message = Message("c1/m1", "c1", "ann", 'a "quoted"\n line', "ready", 3, 1.7e9 + 0.25)

    event = MessagePosted("c1", 3, message)

    reply = mapping.write_message(4, message)
    posted = mapping.write_posted(event, 3)

    assert reply is not None and reply == _written_generally(lambda: encode_reply(4, message))
    assert posted is not None and posted == _written_generally(lambda: encode_event(event))
    assert mapping.write_message(4, msgspec.structs.replace(message, content="café")) is None
    assert mapping.write_posted(MessagePosted("ç1", 3, message), 3) is None  # the event's chat
