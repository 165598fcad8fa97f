"""Fan-out across processes: two cores on one PostgreSQL database, each with its sessions.

The cores here are what two server processes run (each its own storage connection,
subscriptions and :class:`Fanout`); the tests drive them directly, so that each can
say exactly what the other process's sessions were pushed, and in which order.
The end of the file runs two real servers (``run_server``) on one database, to show
the wake-up itself: a notification that never comes, and a listener whose
connection is cut.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import ExitStack, asynccontextmanager

import psycopg
import pytest

from chats_store.chats.actions import (
    MembersAmountChanged,
    MessagePosted,
    OwnRestrictionsChanged,
    RemovedFromChat,
)
from chats_store.chats.commands import (
    ChatRequest,
    JoinRequest,
    ModerationRequest,
    PostMessageRequest,
)
from chats_store.chats.model import Message
from chats_store.protocol import encode_event
from chats_store.server import mint_chat_token, run_server
from chats_store.server.fanout import LISTENER_NAME, SWEEP_INTERVAL, Fanout
from chats_store.server.postgres import PostgresDatabase
from chats_store.server.service import Answer, ChatService, Push, Session
from tests.e2e.conftest import SECRET, Client, Net, eventually

KEY = SECRET.encode()


class Process:
    """One server process's core on the shared database, its pushes recorded in order."""

    def __init__(self, url: str, stack: ExitStack, *, seconds_per_minute: float = 60.0) -> None:
        self.database = PostgresDatabase(url)
        stack.callback(self.database.close)
        self.pushed: list[Push] = []
        self.timers: list[tuple[float, object]] = []
        fanout: Fanout | None = None

        def publish(pushes: tuple[Push, ...]) -> None:
            assert fanout is not None
            fanout.published(pushes)

        def schedule(delay: float, callback: object) -> _Timer:
            self.timers.append((delay, callback))
            return _Timer()

        self.service = ChatService(
            self.database,
            KEY,
            clock=time.time,
            schedule=schedule,
            publish=publish,
            seconds_per_minute=seconds_per_minute,
        )
        fanout = Fanout(self.service, self.database, self.pushed.extend)
        self.fanout = fanout

    def handle(self, *requests: tuple[Session, ChatRequest]) -> list[Answer]:
        answers = self.fanout.handle_all(requests)
        for answer in answers:
            self.pushed.extend(answer.pushes)
        return answers

    def join(self, user_id: str, permissions: Sequence[str] = ("send",)) -> Session:
        session = Session(user_id)
        token = mint_chat_token(KEY, user_id, "c1", permissions)
        (answer,) = self.handle((session, JoinRequest("c1", token)))
        assert not hasattr(answer.result, "code"), answer.result
        return session

    def post(self, session: Session, message_id: str) -> Message:
        (answer,) = self.handle(
            (session, PostMessageRequest("c1", message_id, f"text of {message_id}"))
        )
        assert isinstance(answer.result, Message), answer.result
        return answer.result

    def received(self, session: Session) -> list[tuple[str, int]]:
        """What was pushed to ``session``: (event class, seq) in push order."""
        return [
            (type(push.event).__name__, push.seq if push.seq is not None else push.event.seq)  # type: ignore[union-attr]
            for push in self.pushed
            if session in push.recipients
        ]

    def heard(self) -> None:
        """The listener's wake-up: the database's last seq of c1 (as a NOTIFY would say)."""
        self.fanout.caught_up(self.database.last_seqs(["c1"]))


class _Timer:
    def cancel(self) -> None:
        pass


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def _posts(process: Process, session: Session) -> list[int]:
    return [seq for kind, seq in process.received(session) if kind == "MessagePosted"]


def test_a_post_of_another_process_reaches_the_sessions_here_when_it_is_heard(
    postgres_url: str, stack: ExitStack
) -> None:
    a, b = Process(postgres_url, stack), Process(postgres_url, stack)
    ann = a.join("ann")
    bob = b.join("bob")
    message = a.post(ann, "m1")
    assert _posts(b, bob) == []  # nothing woke b yet

    b.heard()

    (push,) = [p for p in b.pushed if isinstance(p.event, MessagePosted)]
    assert push.recipients == (bob,)
    assert push.event.message == message
    assert push.frame == encode_event(push.event)  # the log's text, sent as it is
    b.heard()  # heard twice: delivered once
    assert _posts(b, bob) == [message.seq]


def test_a_local_push_waits_behind_what_another_process_committed_before_it(
    postgres_url: str, stack: ExitStack
) -> None:
    a, b = Process(postgres_url, stack), Process(postgres_url, stack)
    ann = a.join("ann")
    bob = b.join("bob")
    first = a.post(ann, "m1")
    second = a.post(ann, "m2")

    mine = b.post(bob, "m3")  # b never heard of m1 and m2

    assert _posts(b, bob) == [first.seq, second.seq, mine.seq]
    b.heard()
    assert _posts(b, bob) == [first.seq, second.seq, mine.seq]


def test_sessions_of_both_processes_get_one_order(postgres_url: str, stack: ExitStack) -> None:
    a, b = Process(postgres_url, stack), Process(postgres_url, stack)
    ann, bob = a.join("ann"), b.join("bob")
    cat = a.join("cat")
    for n in range(6):
        writer, session = (a, ann) if n % 2 else (b, bob)
        writer.post(session, f"m{n}")
        if n % 3 == 0:
            (b if writer is a else a).heard()
    a.heard()
    b.heard()

    order = _posts(a, ann)
    assert order == sorted(order) and len(order) == 6
    assert _posts(a, cat) == order
    assert _posts(b, bob) == order


def test_a_private_event_goes_to_its_user_only(postgres_url: str, stack: ExitStack) -> None:
    a, b = Process(postgres_url, stack), Process(postgres_url, stack)
    mod = a.join("mod", ("send", "moderate"))
    bob, cat = b.join("bob"), b.join("cat")

    a.handle((mod, ModerationRequest("c1", "bob", "mute", 5, "calm down")))
    b.heard()

    (push,) = [p for p in b.pushed if isinstance(p.event, OwnRestrictionsChanged)]
    assert push.recipients == (bob,)
    assert [r.kind for r in push.event.restrictions] == ["mute"]
    assert all(
        not isinstance(p.event, OwnRestrictionsChanged) for p in b.pushed if cat in p.recipients
    )


@pytest.mark.parametrize(("measure", "reason"), [("kick", "kicked"), ("block", "blocked")])
def test_a_member_removed_by_another_process_is_told_and_no_longer_pushed_to(
    postgres_url: str, stack: ExitStack, measure: str, reason: str
) -> None:
    a, b = Process(postgres_url, stack), Process(postgres_url, stack)
    mod = a.join("mod", ("send", "moderate"))
    bob, cat = b.join("bob"), b.join("cat")

    a.handle((mod, ModerationRequest("c1", "bob", measure, None, "spam")))  # type: ignore[arg-type]
    b.heard()
    a.post(mod, "after")
    b.heard()

    removals = [p for p in b.pushed if isinstance(p.event, RemovedFromChat)]
    assert [(p.recipients, p.event.reason) for p in removals] == [((bob,), reason)]
    if measure == "block":
        assert removals[0].event.detail == "spam"
    amounts = [p for p in b.pushed if isinstance(p.event, MembersAmountChanged)]
    assert removals[0].seq == amounts[-1].event.seq  # the removal's own seq
    assert _posts(b, bob) == []
    assert len(_posts(b, cat)) == 1
    assert "c1" not in bob.chats and "c1" in cat.chats


def test_a_restriction_expires_once_whichever_processes_run_its_timer(
    postgres_url: str, stack: ExitStack
) -> None:
    a = Process(postgres_url, stack, seconds_per_minute=0.05)
    mod = a.join("mod", ("send", "moderate"))
    a.join("bob")
    a.handle((mod, ModerationRequest("c1", "bob", "mute", 1, None)))
    b = Process(postgres_url, stack, seconds_per_minute=0.05)
    b.service.start()  # arms the timers of what is stored, as a process starting does
    time.sleep(0.1)  # the mute is over

    (_, expire_a) = a.timers[-1]
    (_, expire_b) = b.timers[-1]
    expire_b()  # type: ignore[operator]
    expire_a()  # type: ignore[operator]

    with psycopg.connect(postgres_url) as connection:
        (lifted,) = connection.execute(
            "SELECT count(*) FROM events WHERE target = 'bob' AND frame LIKE %s",
            ('%"restrictions":[]%',),
        ).fetchone() or (None,)
    assert lifted == 1
    assert a.service.snapshot("c1", "bob").restrictions == ()  # type: ignore[union-attr]


# Two real servers on one database: the wake-up -----------------------------------------


@asynccontextmanager
async def ann_and_bob(url: str) -> AsyncIterator[tuple[Client, Client]]:
    """Two servers on ``url``; ann joined chat c1 on the first, bob on the second."""
    async with (
        run_server(db=url, secret=SECRET) as first,
        run_server(db=url, secret=SECRET) as second,
    ):
        ann_net, bob_net = Net(first), Net(second)
        try:
            yield await ann_net.joined("ann"), await bob_net.joined("bob")
        finally:
            await ann_net.close()
            await bob_net.close()


async def test_an_event_committed_without_a_notification_arrives_by_the_sweep(
    postgres_url: str,
) -> None:
    async with ann_and_bob(postgres_url) as (ann, bob):
        await ann.chats.send_message("c1", "woken")
        await eventually(lambda: len(bob.messages()) == 1)
        # A commit whose NOTIFY is lost: what a process that was not listening misses.
        with (
            psycopg.connect(postgres_url, autocommit=True) as connection,
            connection.transaction(),
        ):
            (seq,) = connection.execute(
                "UPDATE chats SET last_seq = last_seq + 1 WHERE chat_id = 'c1' RETURNING last_seq"
            ).fetchone() or (0,)
            quiet = Message("quiet", "c1", "ann", "unannounced", "ready", seq, time.time())
            connection.execute(
                "INSERT INTO messages (chat_id, message_id, author_id, content, seq, "
                "created_at) VALUES ('c1', 'quiet', 'ann', 'unannounced', %s, %s)",
                (seq, quiet.created_at),
            )
            connection.execute(
                "INSERT INTO events (chat_id, seq, message_id, frame) "
                "VALUES ('c1', %s, 'quiet', %s)",
                (seq, encode_event(MessagePosted("c1", seq, quiet))),
            )
        started = time.monotonic()
        await eventually(lambda: len(bob.messages()) == 2, timeout=SWEEP_INTERVAL + 3)
        assert time.monotonic() - started <= SWEEP_INTERVAL + 1
        assert [m.content for m in bob.messages()] == ["woken", "unannounced"]


async def test_a_listener_whose_connection_is_cut_loses_nothing(postgres_url: str) -> None:
    async with ann_and_bob(postgres_url) as (ann, bob):
        with psycopg.connect(postgres_url, autocommit=True) as connection:
            cut = connection.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (LISTENER_NAME,),
            ).fetchone()
        assert cut == (2,)
        sent = [await ann.chats.send_message("c1", f"m{n}") for n in range(5)]
        await asyncio.sleep(0.05)
        sent.append(await ann.chats.send_message("c1", "after"))
        await eventually(lambda: len(bob.messages()) == 6, timeout=SWEEP_INTERVAL + 3)
        assert [m.id for m in bob.messages()] == [m.id for m in sent]
