"""Joining, leaving, messages and history against the real server over loopback."""

from __future__ import annotations

import asyncio
import time

import attrs
import pytest

from chats_store.chats.actions import (
    ChatSnapshot,
    MembersAmountChanged,
    MessageEdited,
    MessagePosted,
    MessageRemoved,
    OwnMetadataChanged,
)
from chats_store.chats.commands import (
    DeleteMessageRequest,
    EditMessageRequest,
    HistoryRequest,
    JoinRequest,
    LeaveRequest,
    PostMessageRequest,
)
from chats_store.chats.model import Message
from chats_store.errors import ErrorCode
from chats_store.protocol import ReplyReceived
from chats_store.server import ChatServer, mint_chat_token
from chats_store.tokens import CHAT_AUDIENCE
from tests.server.conftest import (
    OTHER_SECRET,
    SECRET,
    ClientFactory,
    alg_none_token,
    claims_for,
    forged_token,
    hs512_token,
    rs256_header_token,
)

# Join ----------------------------------------------------------------------------------


async def test_join_returns_the_snapshot_and_others_learn_the_members_amount(
    client: ClientFactory,
) -> None:
    alice, bob = await client("alice"), await client("bob")

    before = time.time()
    first = await alice.join("c1", metadata={"role": "host"})
    message = await alice.post("c1", "m1", "hi")
    second = await bob.join("c1")
    after = time.time()

    assert first.membership and second.membership  # checked in test_resume.py
    assert first.epoch and second.epoch == first.epoch  # checked in test_epoch.py
    plain = {"membership": None, "epoch": None, "server_time": None}
    assert attrs.evolve(first, **plain) == ChatSnapshot((), 1, {"role": "host"}, (), 1)
    assert attrs.evolve(second, **plain) == ChatSnapshot((message,), 2, {}, (), 3)
    assert first.server_time is not None and second.server_time is not None
    assert before <= first.server_time <= message.created_at <= second.server_time <= after
    assert await alice.next_event() == MessagePosted("c1", 2, message)
    assert await alice.next_event() == MembersAmountChanged("c1", 3, 2)
    await bob.no_event()


async def test_join_refuses_bad_chat_tokens(server: ChatServer, client: ClientFactory) -> None:
    alice = await client("alice")
    past = time.time() - 3600

    cases = {
        "garbage": ErrorCode.INVALID_TOKEN,
        server.chat_token("bob", "c1"): ErrorCode.INVALID_TOKEN,  # another user's
        server.chat_token("alice", "c2"): ErrorCode.INVALID_TOKEN,  # another chat
        server.session_token("alice"): ErrorCode.INVALID_TOKEN,  # not a chat token
        mint_chat_token(OTHER_SECRET, "alice", "c1"): ErrorCode.INVALID_TOKEN,  # forged
        mint_chat_token(SECRET, "alice", "c1", now=past): ErrorCode.EXPIRED_TOKEN,
    }
    for token, code in cases.items():
        failure = await alice.refused(JoinRequest("c1", token), code)
        assert failure.detail

    await alice.join("c1")  # and a good one still works


@pytest.mark.parametrize(
    ("attack", "reason"),
    [
        ("alg none", "algorithm"),
        ("HS512", "algorithm"),
        ("RS256", "algorithm"),
        ("session audience", "audience"),
        ("membership audience", "audience"),
        ("forged", "signature"),
    ],
)
async def test_a_join_with_a_hostile_chat_token_is_refused(
    client: ClientFactory, attack: str, reason: str
) -> None:
    alice, bob = await client("alice"), await client("bob")
    await bob.join("c1")
    claims = claims_for(CHAT_AUDIENCE, "alice", "c1")
    token = {
        "alg none": lambda: alg_none_token(claims),
        "HS512": lambda: hs512_token(claims),
        "RS256": lambda: rs256_header_token(claims),
        "session audience": lambda: alice.server.session_token("alice"),
        "membership audience": lambda: alice.server.membership_token("alice", "c1", ["moderate"]),
        "forged": lambda: forged_token(claims),
    }[attack]()

    failure = await alice.refused(JoinRequest("c1", token), ErrorCode.INVALID_TOKEN)

    assert reason in failure.detail
    await bob.no_event()  # no member was added
    await alice.refused(PostMessageRequest("c1", "m1", "x"), ErrorCode.CHAT_NOT_JOINED)


async def test_joining_twice_is_harmless(client: ClientFactory) -> None:
    alice, bob = await client("alice"), await client("bob")
    await alice.join("c1")
    await bob.join("c1")

    again = await bob.join("c1")

    assert again.members_amount == 2
    assert await alice.next_event() == MembersAmountChanged("c1", 2, 2)
    await alice.no_event()


async def test_a_join_reply_comes_before_any_event_of_that_chat(client: ClientFactory) -> None:
    alice, bob = await client("alice"), await client("bob")
    await alice.join("c1")

    async def chatter() -> None:
        for index in range(30):
            await alice.send(PostMessageRequest("c1", f"m{index}", "busy"))

    task = asyncio.create_task(chatter())
    await asyncio.sleep(0.005)
    snapshot = await bob.join("c1")
    await task
    seen = {m.id for m in snapshot.messages}
    while len(seen) < 30:
        event = await bob.next_event()
        assert isinstance(event, MessagePosted)
        assert event.seq > snapshot.last_seq
        seen.add(event.message.id)

    assert isinstance(bob.log[0], ReplyReceived)
    assert seen == {f"m{index}" for index in range(30)}


async def test_a_connection_may_join_many_chats(client: ClientFactory) -> None:
    alice, bob = await client("alice"), await client("bob")
    await alice.join("c1")
    await alice.join("c2")
    await bob.join("c2")
    assert await alice.next_event() == MembersAmountChanged("c2", 2, 2)

    in_c1 = await alice.post("c1", "m1")
    in_c2 = await bob.post("c2", "m2")

    assert in_c1.seq == 2
    assert await alice.next_event() == MessagePosted("c1", 2, in_c1)
    assert await alice.next_event() == MessagePosted("c2", 3, in_c2)
    assert await bob.next_event() == MessagePosted("c2", 3, in_c2)
    await bob.no_event()


async def test_rejoining_with_new_metadata_tells_the_users_other_connections(
    client: ClientFactory,
) -> None:
    phone, laptop = await client("alice"), await client("alice")
    await phone.join("c1", metadata={"role": "guest"})

    snapshot = await laptop.join("c1", metadata={"role": "host"})

    assert snapshot.members_amount == 1
    assert snapshot.member_metadata == {"role": "host"}
    assert await phone.next_event() == OwnMetadataChanged("c1", 2, {"role": "host"})


# Leave ---------------------------------------------------------------------------------


async def test_leave_ends_the_membership_and_pushes(client: ClientFactory) -> None:
    alice, bob = await client("alice"), await client("bob")
    await alice.join("c1")
    await bob.join("c1")
    await alice.drop_events()
    await alice.no_event()

    assert await bob.ok(LeaveRequest("c1")) is None

    assert await alice.next_event() == MembersAmountChanged("c1", 3, 1)
    await bob.refused(PostMessageRequest("c1", "m1", "x"), ErrorCode.CHAT_NOT_JOINED)
    await bob.refused(LeaveRequest("c1"), ErrorCode.CHAT_NOT_JOINED)
    await alice.post("c1", "m2")
    await bob.no_event()


async def test_a_disconnect_does_not_end_the_membership(client: ClientFactory) -> None:
    alice, bob = await client("alice"), await client("bob")
    await alice.join("c1")
    await bob.join("c1")
    await alice.drop_events()

    await bob.connection.close()
    message = await alice.post("c1", "m1")
    bob_again = await client("bob")
    snapshot = await bob_again.join("c1")

    assert snapshot.members_amount == 2
    assert snapshot.messages == (message,)
    assert await alice.collect() == [MessagePosted("c1", 3, message)]  # nobody joined or left


async def test_requests_need_the_chat_joined_on_this_connection(client: ClientFactory) -> None:
    alice = await client("alice")
    for request in (
        LeaveRequest("c1"),
        PostMessageRequest("c1", "m1", "x"),
        EditMessageRequest("c1", "m1", "x"),
        DeleteMessageRequest("c1", "m1"),
        HistoryRequest("c1", 10, 10),
    ):
        await alice.refused(request, ErrorCode.CHAT_NOT_JOINED)


# Messages -------------------------------------------------------------------------------


async def test_a_post_is_pushed_to_every_member_with_the_chat_seq(client: ClientFactory) -> None:
    alice, bob = await client("alice"), await client("bob")
    await alice.join("c1")
    await bob.join("c1")
    await alice.drop_events()

    message = await bob.post("c1", "m1", "hello")

    assert message.seq == 3
    assert (message.id, message.chat_id, message.author_id, message.content) == (
        "m1",
        "c1",
        "bob",
        "hello",
    )
    assert message.status == "ready"
    assert message.created_at == pytest.approx(time.time(), abs=5)
    assert await alice.next_event() == MessagePosted("c1", 3, message)
    assert await bob.next_event() == MessagePosted("c1", 3, message)
    # The sender gets its reply before the event its post caused.
    assert [type(item).__name__ for item in bob.log[-2:]] == ["ReplyReceived", "EventReceived"]


async def test_a_repeated_post_returns_the_original_and_pushes_nothing(
    client: ClientFactory,
) -> None:
    alice, bob = await client("alice"), await client("bob")
    await alice.join("c1")
    await bob.join("c1")
    original = await bob.post("c1", "m1", "hello")
    await alice.next_event()
    await alice.next_event()

    again = await bob.post("c1", "m1", "hello (resent)")
    # A repeat is answered before its content is checked (it would be refused as new).
    blank = await bob.ok(PostMessageRequest("c1", "m1", " "))

    assert again == original and blank == original
    await alice.no_event()
    history = await alice.ok(HistoryRequest("c1", 100, 10))
    assert history == (original,)


async def test_a_message_id_of_another_author_is_refused(client: ClientFactory) -> None:
    alice, bob = await client("alice"), await client("bob")
    await alice.join("c1")
    await bob.join("c1")
    await alice.post("c1", "m1")

    await bob.refused(PostMessageRequest("c1", "m1", "mine"), ErrorCode.MESSAGE_ID_TAKEN)


@pytest.mark.parametrize(
    ("content", "code"),
    [
        ("", ErrorCode.CONTENT_EMPTY),
        ("   ", ErrorCode.CONTENT_EMPTY),
        ("\u200b\ufeff", ErrorCode.CONTENT_EMPTY),
        ("\u3164 \u2800\u00ad", ErrorCode.CONTENT_EMPTY),
        ("x" * 257, "content_too_long"),
    ],
    ids=["empty", "spaces", "ZWSP and BOM", "fillers and soft hyphen", "too long"],
)
async def test_post_content_is_checked(client: ClientFactory, content: str, code: str) -> None:
    alice = await client("alice")
    await alice.join("c1")

    await alice.refused(PostMessageRequest("c1", "m1", content), code)
    message = await alice.post("c1", "m1", "x" * 256)  # the id was not taken
    assert len(message.content) == 256


async def test_post_needs_the_send_permission(client: ClientFactory) -> None:
    reader = await client("reader")
    await reader.join("c1", permissions=())

    await reader.refused(PostMessageRequest("c1", "m1", "hi"), ErrorCode.PERMISSION_DENIED)


async def test_editing_needs_the_send_permission(client: ClientFactory) -> None:
    alice, bob = await client("alice"), await client("bob")
    await alice.join("c1")
    await bob.join("c1")
    await alice.post("c1", "m1", "before")
    await alice.join("c1", permissions=())  # a new token without 'send'
    await bob.drop_events()

    refused = await alice.refused(
        EditMessageRequest("c1", "m1", "after"), ErrorCode.PERMISSION_DENIED
    )

    assert "'send' permission" in refused.detail
    await bob.no_event()


async def test_bad_ids_are_refused(client: ClientFactory) -> None:
    alice = await client("alice")
    await alice.join("c1")

    await alice.refused(PostMessageRequest("c1", "", "hi"), ErrorCode.INVALID_REQUEST)
    await alice.refused(PostMessageRequest("c1", "m" * 129, "hi"), ErrorCode.INVALID_REQUEST)
    await alice.refused(JoinRequest("", "token"), ErrorCode.INVALID_REQUEST)


async def test_only_the_author_edits(client: ClientFactory) -> None:
    alice, bob = await client("alice"), await client("bob")
    await alice.join("c1", permissions=("send", "moderate"))
    await bob.join("c1")
    original = await bob.post("c1", "m1", "helo")
    await alice.drop_events()
    await bob.drop_events()
    await alice.no_event()

    await alice.refused(EditMessageRequest("c1", "m1", "hacked"), ErrorCode.PERMISSION_DENIED)
    edited = await bob.ok(EditMessageRequest("c1", "m1", "hello"))

    assert isinstance(edited, Message)
    assert (edited.content, edited.seq) == ("hello", original.seq)
    assert edited.edited_at is not None
    assert await alice.next_event() == MessageEdited("c1", 4, edited)
    assert await bob.next_event() == MessageEdited("c1", 4, edited)
    await bob.refused(EditMessageRequest("c1", "m1", ""), ErrorCode.CONTENT_EMPTY)
    await bob.refused(EditMessageRequest("c1", "nope", "x"), ErrorCode.MESSAGE_NOT_FOUND)


async def test_the_author_or_a_moderator_deletes(client: ClientFactory) -> None:
    alice, bob, carol = await client("alice"), await client("bob"), await client("carol")
    await alice.join("c1", permissions=("send", "moderate"))
    await bob.join("c1")
    await carol.join("c1")
    await bob.post("c1", "m1")
    await bob.post("c1", "m2")
    await alice.drop_events()

    await carol.refused(DeleteMessageRequest("c1", "m1"), ErrorCode.PERMISSION_DENIED)
    assert await bob.ok(DeleteMessageRequest("c1", "m1")) is None
    assert await alice.ok(DeleteMessageRequest("c1", "m2")) is None

    assert await alice.collect() == [
        MessageRemoved("c1", 6, "m1"),
        MessageRemoved("c1", 7, "m2"),
    ]
    await bob.refused(DeleteMessageRequest("c1", "m1"), ErrorCode.MESSAGE_NOT_FOUND)
    await bob.refused(EditMessageRequest("c1", "m1", "x"), ErrorCode.MESSAGE_NOT_FOUND)
    # A deleted message's id stays taken: a late re-post does not bring it back.
    await bob.refused(PostMessageRequest("c1", "m1", "x"), ErrorCode.MESSAGE_NOT_FOUND)
    assert await bob.ok(HistoryRequest("c1", 100, 10)) == ()


async def test_every_member_sees_the_events_in_seq_order(client: ClientFactory) -> None:
    alice, bob = await client("alice"), await client("bob")
    await alice.join("c1")
    await bob.join("c1")
    await alice.drop_events()
    await bob.drop_events()

    await asyncio.gather(
        *(alice.send(PostMessageRequest("c1", f"a{i}", "x")) for i in range(10)),
        *(bob.send(PostMessageRequest("c1", f"b{i}", "x")) for i in range(10)),
    )
    seqs = {name: [] for name in ("alice", "bob")}  # type: dict[str, list[int]]
    for member in (alice, bob):
        while len(seqs[member.user_id]) < 20:
            event = await member.next_event()
            assert isinstance(event, MessagePosted)
            seqs[member.user_id].append(event.seq)

    assert seqs["alice"] == seqs["bob"] == list(range(3, 23))


# History ------------------------------------------------------------------------------


async def test_history_pages_backwards_oldest_first(client: ClientFactory) -> None:
    alice = await client("alice")
    await alice.join("c1")  # seq 1
    for index in range(10):
        await alice.post("c1", f"m{index}")  # seqs 2..11
    await alice.ok(DeleteMessageRequest("c1", "m5"))  # seq 12; m5 had seq 7

    newest = await alice.ok(HistoryRequest("c1", 100, 3))
    older = await alice.ok(HistoryRequest("c1", newest[0].seq, 3))
    oldest = await alice.ok(HistoryRequest("c1", older[0].seq, 10))

    assert [m.id for m in newest] == ["m7", "m8", "m9"]
    assert [m.id for m in older] == ["m3", "m4", "m6"]
    assert [m.id for m in oldest] == ["m0", "m1", "m2"]
    assert await alice.ok(HistoryRequest("c1", 2, 10)) == ()


@pytest.mark.parametrize(
    ("before_seq", "limit", "code"),
    [(5, 0, "invalid_limit"), (5, 201, "invalid_limit"), (-1, 5, "invalid_request")],
)
async def test_history_arguments_are_checked(
    client: ClientFactory, before_seq: int, limit: int, code: str
) -> None:
    alice = await client("alice")
    await alice.join("c1")

    await alice.refused(HistoryRequest("c1", before_seq, limit), code)


async def test_the_join_snapshot_holds_the_latest_100_messages(
    client: ClientFactory, bulk_server: ChatServer
) -> None:
    alice, bob = await client("alice", on=bulk_server), await client("bob", on=bulk_server)
    await alice.join("c1")
    await asyncio.gather(*(alice.send(PostMessageRequest("c1", f"m{i}", "x")) for i in range(120)))
    while len(alice.replies) < 120:
        await alice._read()

    snapshot = await bob.join("c1")

    assert [m.id for m in snapshot.messages] == [f"m{i}" for i in range(20, 120)]
    assert snapshot.last_seq == 122
    older = await bob.ok(HistoryRequest("c1", snapshot.messages[0].seq, 50))
    assert [m.id for m in older] == [f"m{i}" for i in range(20)]


async def test_the_largest_history_page_and_snapshot_fit_in_a_frame(
    client: ClientFactory, bulk_server: ChatServer
) -> None:
    astral = "\U0001f600"  # escaped as 12 bytes of JSON
    user, chat = astral * 128, astral * 128
    author = await client(user, on=bulk_server)
    await author.join(chat)
    for index in range(200):
        await author.send(PostMessageRequest(chat, f"{index:03}" + astral * 125, astral * 256))
    while len(author.replies) < 200:
        await author._read()
    assert all(isinstance(reply, Message) for reply in author.replies.values())

    page = await author.ok(HistoryRequest(chat, 10_000, 200))
    snapshot = await author.join(chat)

    assert len(page) == 200
    assert len(snapshot.messages) == 100
