"""The server core alone: domain requests in, an Answer (reply and pushes) out."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, get_args

import attrs
import jwt
import pytest

from chats_store.chats.actions import (
    ChatSnapshot,
    Failure,
    MembersAmountChanged,
    MembershipRenewal,
    MessagePosted,
    OwnRestrictionsChanged,
    RemovedFromChat,
    Resumption,
)
from chats_store.chats.commands import (
    ChatRequest,
    EditMessageRequest,
    HistoryRequest,
    JoinRequest,
    ModerationRequest,
    PostMessageRequest,
    RenewRequest,
    ResumeRequest,
)
from chats_store.chats.model import Message
from chats_store.chats.validation import MAX_HISTORY_PAGE, check_content
from chats_store.content import content_failure
from chats_store.errors import ActionCallError, ErrorCode
from chats_store.protocol import MAX_SERVER_FRAME_SIZE, decode_event, encode_event, encode_reply
from chats_store.server import (
    MEMBERSHIP_TTL,
    RefusedError,
    TokenRefusedError,
    mint_chat_token,
    verify_membership_token,
)
from chats_store.server.database import ChatDatabase
from chats_store.server.service import (
    _HANDLERS,
    MAX_PAGE_BYTES,
    MEMBERS_AMOUNT_COALESCED_FROM,
    SNAPSHOT_MESSAGES,
    Answer,
    ChatService,
    Push,
    Session,
)
from chats_store.server.storage import StorageBusyError
from chats_store.testing.clock import FakeClock

SECRET = b"service-test-secret-that-is-long-enough"


@attrs.define
class _Timer:
    delay: float
    callback: Callable[[], None]
    cancelled: bool = False
    fired: bool = False

    def cancel(self) -> None:
        self.cancelled = True

    def fire(self) -> None:
        self.fired = True
        self.callback()


@attrs.define
class Core:
    service: ChatService
    database: ChatDatabase
    clock: FakeClock
    timers: list[_Timer]
    published: list[Push]

    def restart(self, **options: Any) -> None:
        """A new core over the same database, with ``options`` (``ChatService``'s)."""
        self.service.close()
        self.service = ChatService(
            self.database,
            SECRET,
            clock=self.clock,
            schedule=lambda delay, callback: _Timer(delay, callback),
            publish=self.published.extend,
            **options,
        )

    def join(self, user_id: str, chat_id: str = "c1", *permissions: str) -> Session:
        session = Session(user_id)
        token = mint_chat_token(
            SECRET, user_id, chat_id, permissions or ("send",), now=self.clock()
        )
        answer = self.service.handle(session, JoinRequest(chat_id, token))
        assert isinstance(answer.reply, ChatSnapshot), answer
        return session


@pytest.fixture
def core() -> Iterator[Core]:
    database = ChatDatabase(":memory:")
    clock = FakeClock()
    timers: list[_Timer] = []
    published: list[Push] = []

    def schedule(delay: float, callback: Callable[[], None]) -> _Timer:
        timers.append(_Timer(delay, callback))
        return timers[-1]

    service = ChatService(
        database, SECRET, clock=clock, schedule=schedule, publish=published.extend
    )
    yield Core(service, database, clock, timers, published)
    service.close()
    database.close()


def test_every_request_has_a_handler() -> None:
    assert set(_HANDLERS) == set(get_args(ChatRequest))
    for name in _HANDLERS.values():
        assert callable(getattr(ChatService, name)), name


def test_a_join_answers_a_snapshot_and_pushes_the_new_amount_to_the_others(core: Core) -> None:
    ann = core.join("ann")
    bob = Session("bob")
    token = mint_chat_token(SECRET, "bob", "c1", now=core.clock())

    answer = core.service.handle(bob, JoinRequest("c1", token))

    assert isinstance(answer.reply, ChatSnapshot)
    assert answer.reply.membership is not None and answer.reply.members_amount == 2
    assert answer.pushes == (Push(MembersAmountChanged("c1", 2, 2), (ann,)),)
    assert bob.chats == {"c1"}


def test_a_post_answers_the_message_and_pushes_it_to_every_member_online(core: Core) -> None:
    ann, bob = core.join("ann"), core.join("bob")

    answer = core.service.handle(ann, PostMessageRequest("c1", "m1", "hello"))

    message = answer.reply
    assert isinstance(message, Message) and (message.seq, message.author_id) == (3, "ann")
    assert answer.pushes == (Push(MessagePosted("c1", 3, message), (ann, bob)),)


def test_a_refusal_is_a_failure_value_and_changes_nothing(core: Core) -> None:
    ann = core.join("ann")
    last_seq = core.database.last_seq("c1")

    answer = core.service.handle(ann, PostMessageRequest("c1", "m1", "   "))

    assert answer == Answer(content_failure("   "))
    assert isinstance(answer.reply, Failure)
    assert answer.reply.code == ErrorCode.CONTENT_EMPTY
    assert core.database.last_seq("c1") == last_seq


def test_a_failure_inside_a_request_rolls_it_back_and_answers_internal_error(
    core: Core, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ann = core.join("ann")

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(core.database, "append_event", broken)
    answer = core.service.handle(ann, PostMessageRequest("c1", "m1", "hello"))

    assert isinstance(answer.reply, Failure) and answer.reply.code == ErrorCode.INTERNAL_ERROR
    assert answer.pushes == ()
    assert core.database.message("c1", "m1") is None  # the insert was rolled back
    assert core.database.last_seq("c1") == 1
    assert "disk full" in caplog.text


def test_a_kick_pushes_the_removal_with_the_seq_of_the_membership_change(core: Core) -> None:
    moderator = core.join("mod", "c1", "send", "moderate")
    ann = core.join("ann")

    answer = core.service.handle(moderator, ModerationRequest("c1", "ann", "kick", reason="out"))

    assert answer.pushes == (
        Push(RemovedFromChat("c1", "kicked", "out"), (ann,), seq=3),
        Push(MembersAmountChanged("c1", 3, 1), (moderator,)),
    )
    assert ann.chats == set()
    refused = core.service.handle(ann, HistoryRequest("c1", 10, 10)).reply
    assert isinstance(refused, Failure) and refused.code == ErrorCode.CHAT_NOT_JOINED


def test_an_expiry_is_published_through_the_callback(core: Core) -> None:
    moderator = core.join("mod", "c1", "send", "moderate")
    ann = core.join("ann")
    core.service.handle(moderator, ModerationRequest("c1", "ann", "mute", duration=2))
    (timer,) = core.timers
    assert timer.delay == 120

    core.clock.advance(120)
    timer.callback()

    assert core.published == [Push(OwnRestrictionsChanged("c1", 4, ()), (ann,))]
    posted = core.service.handle(ann, PostMessageRequest("c1", "m1", "free again")).reply
    assert isinstance(posted, Message)


def test_an_early_timer_waits_for_the_clock(core: Core) -> None:
    moderator = core.join("mod", "c1", "send", "moderate")
    core.join("ann")
    core.service.handle(moderator, ModerationRequest("c1", "ann", "mute", duration=1))

    core.timers[0].callback()  # the clock has not reached the expiry

    assert core.published == []
    assert [t.delay for t in core.timers] == [60, 60]  # armed again


def _armed(core: Core) -> list[_Timer]:
    return [timer for timer in core.timers if not (timer.cancelled or timer.fired)]


def test_the_core_holds_one_expiry_timer_however_many_restrictions(core: Core) -> None:
    moderator = core.join("mod", "c1", "send", "moderate")
    for i in range(50):  # blocks of made-up ids, the latest ending first
        core.service.handle(moderator, ModerationRequest("c1", f"u{i}", "block", 100 - i))

    (timer,) = _armed(core)
    assert timer.delay == 51 * 60

    core.clock.advance(100 * 60)
    timer.fire()

    assert core.database.restrictions_amount("c1") == 0
    assert _armed(core) == []


def test_expired_restrictions_are_lifted_in_batches(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("chats_store.server.service.EXPIRY_BATCH", 4)
    moderator = core.join("mod", "c1", "send", "moderate")
    for i in range(10):
        core.service.handle(moderator, ModerationRequest("c1", f"u{i}", "block", 1))
    core.clock.advance(60)

    amounts = []
    while _armed(core):
        _armed(core)[0].fire()
        amounts.append(core.database.restrictions_amount("c1"))

    assert amounts == [6, 2, 0]


def test_start_arms_one_timer_for_the_earliest_stored_expiry(core: Core) -> None:
    moderator = core.join("mod", "c1", "send", "moderate")
    for i in range(20):
        core.service.handle(moderator, ModerationRequest("c1", f"u{i}", "block", 5 + i))
    core.service.close()
    timers: list[_Timer] = []

    def schedule(delay: float, callback: Callable[[], None]) -> _Timer:
        timers.append(_Timer(delay, callback))
        return timers[-1]

    restarted = ChatService(
        core.database, SECRET, clock=core.clock, schedule=schedule, publish=core.published.extend
    )
    restarted.start()

    assert [t.delay for t in timers] == [5 * 60]


def test_a_chat_holds_at_most_its_cap_of_restrictions(core: Core) -> None:
    core.restart(max_restrictions_per_chat=3)
    moderator = core.join("mod", "c1", "send", "moderate")
    for user_id in ("u1", "u2", "u3"):
        assert (
            core.service.handle(moderator, ModerationRequest("c1", user_id, "block")).reply is None
        )

    refused = core.service.handle(moderator, ModerationRequest("c1", "u4", "block")).reply
    replaced = core.service.handle(moderator, ModerationRequest("c1", "u1", "block", 5)).reply
    core.service.handle(moderator, ModerationRequest("c1", "u1", "unblock"))
    after_a_lift = core.service.handle(moderator, ModerationRequest("c1", "u4", "block")).reply

    assert isinstance(refused, Failure) and refused.code == ErrorCode.TOO_MANY_RESTRICTIONS
    assert "3 mutes and blocks" in refused.detail
    assert replaced is None and after_a_lift is None
    assert core.database.restrictions_amount("c1") == 3


def test_tokens_and_rules_refuse_with_one_exception() -> None:
    assert TokenRefusedError is RefusedError
    refusal = RefusedError(ErrorCode.MEMBER_MUTED, "you are muted")
    assert refusal.failure == Failure("refused", ErrorCode.MEMBER_MUTED, "you are muted")
    assert str(refusal) == "you are muted"


def test_a_renew_answers_a_fresh_credential_for_a_chat_joined_here(core: Core) -> None:
    ann = core.join("ann")
    core.clock.advance(3 * 24 * 3600)  # the join's credential is half-way to expiry

    answer = core.service.handle(ann, RenewRequest("c1"))

    assert isinstance(answer.reply, MembershipRenewal) and answer.pushes == ()
    grant = verify_membership_token(SECRET, answer.reply.membership, core.clock)
    assert (grant.user_id, grant.chat_id) == ("ann", "c1")
    claims = jwt.decode(answer.reply.membership, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == MEMBERSHIP_TTL
    assert claims["iat"] == int(core.clock())


def test_a_renew_needs_the_chat_joined_on_this_connection(core: Core) -> None:
    core.join("ann")
    elsewhere = Session("ann")  # another connection of the same member

    answer = core.service.handle(elsewhere, RenewRequest("c1"))

    assert isinstance(answer.reply, Failure)
    assert answer.reply.code == ErrorCode.CHAT_NOT_JOINED


# Group commit -----------------------------------------------------------------------


def test_handle_all_answers_each_request_as_handle_would_with_one_commit(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann = core.join("ann")
    commits = 0
    transaction = core.database.transaction

    def counted() -> Any:
        nonlocal commits
        if not core.database._taken:  # the outermost one
            commits += 1
        return transaction()

    monkeypatch.setattr(core.database, "transaction", counted)
    answers = core.service.handle_all(
        [
            (ann, PostMessageRequest("c1", "m1", "one")),
            (ann, PostMessageRequest("c1", "m2", "   ")),  # refused: rolls back alone
            (ann, PostMessageRequest("c1", "m3", "three")),
        ]
    )

    assert commits == 1
    first, refused, third = (answer.reply for answer in answers)
    assert isinstance(first, Message) and isinstance(third, Message)
    assert (first.seq, third.seq) == (2, 3)
    assert isinstance(refused, Failure) and refused.code == ErrorCode.CONTENT_EMPTY
    assert [m.id for m in core.database.messages_before("c1", 100, 10)] == ["m1", "m3"]


def test_a_storage_busy_past_its_bound_answers_server_busy_and_applies_nothing(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann = core.join("ann")

    def busy() -> Any:
        raise StorageBusyError("the database stayed locked by another process")

    monkeypatch.setattr(core.database, "transaction", busy)
    answers = core.service.handle_all([(ann, PostMessageRequest("c1", "m1", "hi"))] * 2)

    for answer in answers:
        assert isinstance(answer.reply, Failure) and answer.reply.code == ErrorCode.SERVER_BUSY
        assert "retry later" in answer.reply.detail and answer.pushes == ()
    assert core.database.message("c1", "m1") is None


# Resume: epochs and stored frames ----------------------------------------------------


def _credential(core: Core, user_id: str) -> str:
    snapshot = core.service.snapshot("c1", user_id)
    assert snapshot is not None and snapshot.membership is not None
    return snapshot.membership


def test_a_resume_passes_the_stored_frames_through_and_reply_decodes_them(core: Core) -> None:
    ann = core.join("ann")
    posted = core.service.handle(ann, PostMessageRequest("c1", "m1", "hello")).reply
    assert isinstance(posted, Message)

    answer = core.service.handle(
        Session("ann"), ResumeRequest("c1", _credential(core, "ann"), 1, core.database.epoch)
    )

    assert answer.event_frames == (encode_event(MessagePosted("c1", 2, posted)),)
    assert isinstance(answer.result, Resumption) and answer.result.events == ()
    assert isinstance(answer.reply, Resumption)
    assert answer.reply.events == (MessagePosted("c1", 2, posted),)
    assert answer.reply.epoch == core.database.epoch


@pytest.mark.parametrize("how", ["another epoch", "a since_seq past last_seq"])
def test_a_resume_from_another_history_gets_a_snapshot(core: Core, how: str) -> None:
    ann = core.join("ann")
    core.service.handle(ann, PostMessageRequest("c1", "m1", "hello"))
    epoch, since_seq = core.database.epoch, 1
    if how == "another epoch":
        epoch = "an epoch of another history"
    else:
        since_seq = 99

    answer = core.service.handle(
        Session("ann"), ResumeRequest("c1", _credential(core, "ann"), since_seq, epoch)
    )

    assert isinstance(answer.reply, Resumption) and answer.event_frames == ()
    assert answer.reply.snapshot is not None and answer.reply.snapshot.last_seq == 2
    assert answer.reply.epoch == answer.reply.snapshot.epoch == core.database.epoch


# Members amount, coalesced -------------------------------------------------------------


def test_in_a_big_chat_the_members_amount_is_pushed_once_per_interval_with_the_final_value(
    core: Core,
) -> None:
    crowd = [core.join(f"member-{i}") for i in range(MEMBERS_AMOUNT_COALESCED_FROM)]
    assert not core.timers  # pushed at once while few were online
    joiner = Session("late-1")
    token = mint_chat_token(SECRET, "late-1", "c1", ("send",), now=core.clock())
    opened = core.service.handle(joiner, JoinRequest("c1", token))  # pushed, opens an interval
    amount = MEMBERS_AMOUNT_COALESCED_FROM + 1  # and its seq: each join took one
    assert opened.pushes == (Push(MembersAmountChanged("c1", amount, amount), tuple(crowd)),)
    assert len(core.timers) == 1

    later = [core.join(f"late-{i}") for i in range(2, 5)]  # within the interval: not pushed
    core.service.handle(later[-1], PostMessageRequest("c1", "m1", "hi"))  # takes a seq after
    assert core.published == []
    core.timers[-1].callback()  # the interval ends

    final = amount + 3
    last_seq = core.database.last_seq("c1")
    (push,) = core.published
    assert push.event == MembersAmountChanged("c1", last_seq, final)  # a new seq: after m1
    assert last_seq == amount + 5
    assert set(push.recipients) == {*crowd, joiner, *later}
    logged = core.database.missed_frames("c1", "member-0", amount, 100)
    assert logged is not None
    events = [decode_event(frame) for frame in logged]
    amounts = [e.members_amount for e in events if isinstance(e, MembersAmountChanged)]
    assert amounts == [amount + 1, amount + 2, final, final]  # every change, with its seq


def test_the_end_of_an_interval_reuses_the_last_seq_when_nothing_happened_since(
    core: Core,
) -> None:
    for i in range(MEMBERS_AMOUNT_COALESCED_FROM):
        core.join(f"member-{i}")
    core.join("late-1")  # opens the interval
    core.join("late-2")  # waits
    seq = core.database.last_seq("c1")

    core.timers[-1].callback()

    (push,) = core.published
    assert push.event == MembersAmountChanged("c1", seq, MEMBERS_AMOUNT_COALESCED_FROM + 2)
    assert core.database.last_seq("c1") == seq


@pytest.mark.parametrize(
    "content", ["\u200b", "\ufeff", "\u3164", "\u2800", "\u00ad", " \u200b\u2800 ", "x" * 257]
)
def test_the_core_and_the_client_refuse_the_same_content_the_same_way(
    core: Core, content: str
) -> None:
    ann = core.join("ann")
    core.service.handle(ann, PostMessageRequest("c1", "m1", "visible"))

    posted = core.service.handle(ann, PostMessageRequest("c1", "m2", content)).reply
    edited = core.service.handle(ann, EditMessageRequest("c1", "m1", content)).reply
    with pytest.raises(ActionCallError) as refused_locally:
        check_content(content, "send_message")

    assert posted == edited == content_failure(content)
    assert isinstance(posted, Failure)
    assert (refused_locally.value.code, refused_locally.value.detail) == (
        posted.code,
        posted.detail,
    )


ASTRAL = "\U0001f600"


def test_pages_and_snapshots_of_maximal_messages_fit_in_a_frame(core: Core) -> None:
    chat_id, author = ASTRAL * 128, ASTRAL * 127 + "a"
    metadata = {f"{ASTRAL * 100}{n}": ASTRAL * 200 for n in range(10)}
    token = mint_chat_token(SECRET, author, chat_id, ("send",), metadata, now=core.clock())
    session = Session(author)
    assert isinstance(core.service.handle(session, JoinRequest(chat_id, token)).reply, ChatSnapshot)
    for index in range(MAX_HISTORY_PAGE):
        message_id = f"{index:03d}" + ASTRAL * 125
        posted = core.service.handle(session, PostMessageRequest(chat_id, message_id, ASTRAL * 256))
        assert isinstance(posted.reply, Message)

    page = core.service.handle(session, HistoryRequest(chat_id, 2**53, MAX_HISTORY_PAGE)).reply
    snapshot = core.service.handle(session, JoinRequest(chat_id, token)).reply

    assert isinstance(page, tuple) and len(page) == MAX_HISTORY_PAGE  # nothing left out
    assert isinstance(snapshot, ChatSnapshot) and len(snapshot.messages) == SNAPSHOT_MESSAGES
    assert len(encode_reply(1, page)) < MAX_PAGE_BYTES < MAX_SERVER_FRAME_SIZE
    assert len(encode_reply(2, snapshot)) < MAX_SERVER_FRAME_SIZE


def test_a_page_of_older_data_is_cut_to_the_frame_budget(core: Core) -> None:
    ann = core.join("ann")
    with core.database.transaction():  # messages of a user id longer than allowed today
        for index in range(100):
            seq = core.database.next_seq("c1")
            core.database.insert_message(
                Message(f"m{index}", "c1", "x" * 20_000, "hi", "ready", seq, 1.0)
            )

    page = core.service.handle(ann, HistoryRequest("c1", 2**53, 100)).reply

    assert isinstance(page, tuple) and 0 < len(page) < 100
    assert page[-1].id == "m99"  # the newest are kept: paging back finds the others
    assert len(encode_reply(1, page)) <= MAX_PAGE_BYTES


def test_a_resume_past_its_byte_budget_gets_a_snapshot(core: Core) -> None:
    core.restart(max_resume_bytes=3_000)
    ann = core.join("ann")
    joined = core.join("bob")
    snapshot = core.service.snapshot("c1", "bob")
    assert snapshot is not None and snapshot.membership is not None
    bob = Session("bob")
    for index in range(4):  # about 400 bytes of frame each
        core.service.handle(ann, PostMessageRequest("c1", f"m{index}", "x" * 200))

    few = core.service.handle(
        bob, ResumeRequest("c1", snapshot.membership, snapshot.last_seq)
    ).reply
    for index in range(4, 12):
        core.service.handle(ann, PostMessageRequest("c1", f"m{index}", "x" * 200))
    many = core.service.handle(
        bob, ResumeRequest("c1", snapshot.membership, snapshot.last_seq)
    ).reply

    assert joined.chats == {"c1"}  # the connection bob resumes from is another one
    assert isinstance(few, Resumption) and len(few.events) == 4 and few.snapshot is None
    assert isinstance(many, Resumption) and many.events == () and many.snapshot is not None
