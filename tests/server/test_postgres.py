"""The PostgreSQL storage: its schema, its epoch, its settings, and the cluster-wide
rules two server cores on one database keep (a post deduplicated, an expiry once)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import attrs
import psycopg
import pytest

from chats_store.chats.actions import ChatSnapshot, OwnRestrictionsChanged
from chats_store.chats.commands import JoinRequest, ModerationRequest, PostMessageRequest
from chats_store.chats.model import Message
from chats_store.protocol import decode_event
from chats_store.server import mint_chat_token
from chats_store.server.postgres import SCHEMA_VERSION, PostgresDatabase
from chats_store.server.service import ChatService, Push, Session
from chats_store.server.storage import StorageBusyError
from chats_store.testing.clock import FakeClock
from tests.postgres import PostgresCluster

SECRET = b"postgres-test-secret-that-is-long-enough"


@pytest.fixture
def opened(postgres_url: str) -> Iterator[Callable[..., PostgresDatabase]]:
    """Open handles on one database (as server processes would), closed after the test."""
    handles: list[PostgresDatabase] = []

    def open_handle(url: str = postgres_url, **options: object) -> PostgresDatabase:
        handles.append(PostgresDatabase(url, **options))  # type: ignore[arg-type]
        return handles[-1]

    yield open_handle
    for handle in handles:
        handle.close()


# The schema ------------------------------------------------------------------------


def test_the_server_creates_the_schema_at_its_version(
    opened: Callable[..., PostgresDatabase],
) -> None:
    first = opened()
    opened()  # a second server finds it made
    version = first._conn.execute("SELECT version FROM schema_version").fetchall()
    assert version == [(SCHEMA_VERSION,)]


def test_tables_of_a_newer_version_are_refused(
    opened: Callable[..., PostgresDatabase],
) -> None:
    opened()._conn.execute(f"UPDATE schema_version SET version = {SCHEMA_VERSION + 1:d}".encode())
    with pytest.raises(RuntimeError, match=r"newer than this server's .* upgrade chats_store"):
        opened()


# The epoch -------------------------------------------------------------------------


def test_every_process_of_a_cluster_serves_one_epoch(
    opened: Callable[..., PostgresDatabase],
) -> None:
    assert len({opened().epoch for _ in range(3)}) == 1


def test_a_copy_of_the_database_is_another_history(
    opened: Callable[..., PostgresDatabase], postgres_cluster: PostgresCluster
) -> None:
    postgres_cluster.sql("CREATE DATABASE original", database="postgres")
    first = opened(postgres_cluster.url("original"))
    epoch = first.epoch
    first.close()
    postgres_cluster.sql("CREATE DATABASE copy TEMPLATE original", database="postgres")
    assert opened(postgres_cluster.url("copy")).epoch != epoch
    assert opened(postgres_cluster.url("original")).epoch == epoch


def test_a_dump_restored_in_place_is_another_history(
    opened: Callable[..., PostgresDatabase],
) -> None:
    first = opened()
    epoch = first.epoch
    # As pg_restore --clean does: the tables dropped, created again, their rows put back.
    for query in (
        "CREATE TABLE saved AS SELECT * FROM meta",
        "DROP TABLE meta",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "INSERT INTO meta SELECT * FROM saved",
    ):
        first._conn.execute(query.encode())
    first.close()
    assert opened().epoch != epoch


# Settings and connections ----------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "settings"),
    [
        ({}, ("on", "10s")),
        ({"durable": False, "busy_timeout": 0.25}, ("off", "250ms")),
        ({"busy_timeout": 0}, ("on", "1ms")),  # 0 would wait forever: the shortest wait
    ],
)
def test_durable_and_busy_timeout_are_synchronous_commit_and_lock_timeout(
    opened: Callable[..., PostgresDatabase],
    options: dict[str, object],
    settings: tuple[str, str],
) -> None:
    handle = opened(**options)
    row = handle._conn.execute("SHOW synchronous_commit").fetchone()
    lock = handle._conn.execute("SHOW lock_timeout").fetchone()
    assert (row, lock) == ((settings[0],), (settings[1],))


def test_a_connection_cut_is_replaced_by_the_next_transaction(
    opened: Callable[..., PostgresDatabase], postgres_cluster: PostgresCluster
) -> None:
    handle = opened()
    with handle.transaction():
        handle.next_seq("c1")
    backend = handle._conn.info.backend_pid
    postgres_cluster.sql(f"SELECT pg_terminate_backend({backend:d})")
    with handle.transaction():
        assert handle.next_seq("c1") == 2


def test_an_unreachable_database_is_an_operational_error(
    postgres_cluster: PostgresCluster,
) -> None:
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        PostgresDatabase(postgres_cluster.url("no_such_database"))


# Two server cores on one database --------------------------------------------------


@attrs.define
class _Timer:
    callback: Callable[[], None]

    def cancel(self) -> None:
        pass


@attrs.define
class Core:
    """A server core of its own process, on its own handle of the shared database."""

    service: ChatService
    clock: FakeClock
    timers: list[_Timer]
    published: list[Push]

    @classmethod
    def on(cls, storage: PostgresDatabase, clock: FakeClock) -> Core:
        timers: list[_Timer] = []
        published: list[Push] = []

        def schedule(delay: float, callback: Callable[[], None]) -> _Timer:
            timers.append(_Timer(callback))
            return timers[-1]

        service = ChatService(
            storage, SECRET, clock=clock, schedule=schedule, publish=published.extend
        )
        service.start()
        return cls(service, clock, timers, published)

    def join(self, user_id: str, *permissions: str) -> Session:
        session = Session(user_id)
        token = mint_chat_token(SECRET, user_id, "c1", permissions or ("send",), now=self.clock())
        answer = self.service.handle(session, JoinRequest("c1", token))
        assert isinstance(answer.reply, ChatSnapshot), answer
        return session


def test_a_post_repeated_on_another_process_while_the_first_commits_is_stored_once(
    opened: Callable[..., PostgresDatabase],
) -> None:
    clock = FakeClock(1000.0)
    first_db, second_db = opened(), opened()
    first, second = Core.on(first_db, clock), Core.on(second_db, clock)
    ann_here, ann_there = first.join("ann"), second.join("ann")
    post = PostMessageRequest("c1", "m1", "once")
    answers = []

    def repeat() -> None:
        answers.append(second.service.handle(ann_there, post).reply)

    with first_db.transaction():
        original = first.service.handle(ann_here, post).reply
        repeated = threading.Thread(target=repeat)
        repeated.start()
        repeated.join(0.3)
        assert repeated.is_alive()  # waits for the chat, held until the commit
    repeated.join()

    assert isinstance(original, Message)
    assert answers == [original]
    with second_db.transaction():
        assert second_db.last_seq("c1") == original.seq


def test_a_restriction_expires_once_across_processes(
    opened: Callable[..., PostgresDatabase],
) -> None:
    clock = FakeClock(1000.0)
    first_db = opened()
    first = Core.on(first_db, clock)
    moderator = first.join("mod", "send", "moderate")
    first.join("ann")
    first.service.handle(moderator, ModerationRequest("c1", "ann", "mute", duration=1))
    # Processes started later arm the timers of the restrictions they find stored.
    others = [Core.on(opened(), clock) for _ in range(2)]
    cores = [first, *others]
    assert all(len(core.timers) == 1 for core in cores)

    clock.advance(60)
    start = threading.Barrier(len(cores))

    def fire(core: Core) -> None:
        start.wait()
        core.timers[0].callback()

    threads = [threading.Thread(target=fire, args=(core,)) for core in cores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    with first_db.transaction():
        frames = first_db.missed_frames("c1", "ann", 0, 100)
    assert frames is not None
    lifted = [
        event for event in map(decode_event, frames) if isinstance(event, OwnRestrictionsChanged)
    ]
    assert len(lifted) == 2  # muted, then lifted: once
    assert lifted[0].restrictions and lifted[1].restrictions == ()
    assert sum(len(core.published) for core in cores) == 1  # by whichever lifted it


def _fail_having_read(storage: PostgresDatabase, chat_id: str) -> None:
    with storage.transaction():
        storage.last_seq(chat_id)  # takes the chat's lock in a savepoint...
        raise KeyError("refused")  # ...which rolling back releases


def test_a_chat_stays_locked_after_a_request_that_locked_it_rolled_back(
    opened: Callable[..., PostgresDatabase],
) -> None:
    storage, other = opened(), opened(busy_timeout=0.05)
    with storage.transaction():
        with pytest.raises(KeyError):
            _fail_having_read(storage, "c1")
        storage.last_seq("c1")  # so the next request of the group takes it again
        with pytest.raises(StorageBusyError):
            _take_a_seq(other, "c1")


def _take_a_seq(storage: PostgresDatabase, chat_id: str) -> int:
    with storage.transaction():
        return storage.next_seq(chat_id)


def test_group_commits_that_touch_the_same_chats_in_opposite_orders_never_deadlock(
    opened: Callable[..., PostgresDatabase],
) -> None:
    first, second = opened(), opened()
    waiting = threading.Event()
    failures: list[BaseException] = []

    def group_commit_from_b_to_a() -> None:
        try:
            with second.transaction():
                waiting.set()
                second.lock_chats(["b", "a"])  # waits for "a", holding nothing
                second.next_seq("b")
                second.next_seq("a")
        except BaseException as error:
            failures.append(error)

    with first.transaction():
        first.next_seq("a")
        other = threading.Thread(target=group_commit_from_b_to_a)
        other.start()
        waiting.wait(5)
        time.sleep(0.2)  # the other group commit is waiting for its locks now
        first.next_seq("b")  # with "b" taken first over there, a deadlock
    other.join(10)

    assert failures == []
    assert second.last_seqs(["a", "b"]) == {"a": 2, "b": 2}
