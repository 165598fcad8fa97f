"""ChatServerModel: the reference server's core, driven synchronously for one client."""

from __future__ import annotations

from chats_store.chats.actions import (
    ChatSnapshot,
    Failure,
    MembersAmountChanged,
    MessagePosted,
    OwnMetadataChanged,
    OwnRestrictionsChanged,
    RemovedFromChat,
    Resumption,
)
from chats_store.chats.commands import (
    JoinRequest,
    ModerationRequest,
    PostMessageRequest,
    ResumeRequest,
)
from chats_store.chats.model import Message, Restriction
from chats_store.errors import ErrorCode
from chats_store.testing.strategies import CLIENT_ID, ChatServerModel


def joined(model: ChatServerModel, chat_id: str = "c1") -> ChatSnapshot:
    snapshot = model.reply(JoinRequest(chat_id, "any token: the model grants it"))
    assert isinstance(snapshot, ChatSnapshot)
    return snapshot


def test_a_join_is_granted_with_a_membership_credential() -> None:
    model = ChatServerModel(snapshot_size=2)
    for n in range(3):
        model.post("c1", f"b{n}", "bob", f"hello {n}")

    snapshot = joined(model)

    assert [m.content for m in snapshot.messages] == ["hello 1", "hello 2"]
    assert snapshot.members_amount == 2 and snapshot.membership is not None
    assert model.snapshot("c1") is not None and model.snapshot("c2") is None


def test_after_a_drop_the_client_resumes_what_it_missed() -> None:
    model = ChatServerModel()
    snapshot = joined(model)
    assert snapshot.membership is not None
    model.post("c1", "b1", "bob", "delivered before the drop")
    model.drop_events()
    missed = model.post("c1", "b2", "bob", "while away")

    assert model.take_events("c1") == []  # the new connection has not resumed
    resumed = model.reply(ResumeRequest("c1", snapshot.membership, snapshot.last_seq))

    assert isinstance(resumed, Resumption) and resumed.snapshot is None
    assert [type(e) for e in resumed.events] == [
        MembersAmountChanged,
        MessagePosted,
        MessagePosted,
    ]
    assert resumed.events[-1] == MessagePosted("c1", missed.seq or 0, missed)
    model.post("c1", "b3", "bob", "after the resume")
    assert [type(e) for e in model.take_events("c1")] == [MessagePosted]


def test_far_behind_a_resume_gets_a_snapshot() -> None:
    model = ChatServerModel(max_resume_events=1)
    snapshot = joined(model)
    assert snapshot.membership is not None
    model.post("c1", "b1", "bob", "one")
    model.post("c1", "b2", "bob", "two")
    model.drop_events()

    resumed = model.reply(ResumeRequest("c1", snapshot.membership, snapshot.last_seq))

    assert isinstance(resumed, Resumption) and resumed.snapshot is not None
    assert [m.content for m in resumed.snapshot.messages] == ["one", "two"]


def test_the_members_amount_moves_with_synthetic_members() -> None:
    model = ChatServerModel()
    joined(model)

    model.set_members_amount("c1", 4)
    model.set_members_amount("c1", 2)
    model.set_members_amount("c1", 0)  # the client itself stays

    amounts = [e.members_amount for e in model.take_events("c1")]
    assert amounts == [2, 3, 4, 3, 2, 1]
    assert model.chat("c1").members_amount == 1


def test_restrictions_are_a_moderator_muting_and_blocking_the_client() -> None:
    model = ChatServerModel()
    joined(model)

    model.set_restrictions("c1", (Restriction("mute", None, "spam"),))
    refused = model.reply(PostMessageRequest("c1", "m1", "hi"))
    model.set_restrictions("c1", ())
    model.set_restrictions("c1", (Restriction("block", None, "out"),))

    assert isinstance(refused, Failure) and refused.code == ErrorCode.MEMBER_MUTED
    told = [
        event.restrictions if isinstance(event, OwnRestrictionsChanged) else event
        for event in model.take_events("c1")
        if not isinstance(event, MembersAmountChanged)  # the moderator's join
    ]
    assert told == [
        (Restriction("mute", None, "spam"),),
        (),
        (Restriction("block", None, "out"),),
        RemovedFromChat("c1", "blocked", "out"),
    ]
    rejoin = model.reply(JoinRequest("c1", "token"))
    assert isinstance(rejoin, Failure) and rejoin.code == ErrorCode.MEMBER_BLOCKED


def test_a_timed_mute_expires_when_the_model_clock_reaches_it() -> None:
    model = ChatServerModel()
    joined(model)
    model.set_restrictions("c1", (Restriction("mute", 5.0),))  # the clock is at 2
    assert model.take_events("c1")[-1] == OwnRestrictionsChanged(
        "c1", model.chat("c1").seq, (Restriction("mute", 5.0),)
    )

    for n in range(3):
        model.post("c1", f"b{n}", "bob", "tick")

    lifted = [e for e in model.take_events("c1") if isinstance(e, OwnRestrictionsChanged)]
    assert [e.restrictions for e in lifted] == [()]
    assert isinstance(model.reply(PostMessageRequest("c1", "m1", "free again")), Message)


def test_other_members_always_manage_to_post() -> None:
    model = ChatServerModel()
    joined(model)
    model.post("c1", "a1", "alice", "first")
    for measure in ("mute", "block"):
        assert model.reply(ModerationRequest("c1", "alice", measure)) is None  # type: ignore[arg-type]

    posted = model.post("c1", "a2", "alice", "back")

    assert (posted.author_id, posted.content) == ("alice", "back")
    assert posted.id in model.chat("c1").messages


def test_metadata_changes_by_a_rejoin_and_grants_the_next_join() -> None:
    model = ChatServerModel()
    model.set_metadata("c2", {"role": "guest"})
    assert dict(joined(model, "c2").member_metadata) == {"role": "guest"}

    model.set_metadata("c2", {"role": "host"})

    assert model.take_events("c2") == [OwnMetadataChanged("c2", 2, {"role": "host"})]
    assert model.user_id == CLIENT_ID


def test_a_kick_removes_the_client_and_a_resume_is_refused() -> None:
    model = ChatServerModel()
    snapshot = joined(model)
    assert snapshot.membership is not None

    model.kick("c1", "bye")
    model.drop_events()
    resumed = model.reply(ResumeRequest("c1", snapshot.membership, snapshot.last_seq))

    assert isinstance(resumed, Failure) and resumed.code == ErrorCode.NOT_A_MEMBER
    assert model.remove("c1", "nothing") is False
    assert model.edit("c1", "nothing", "x") is None
