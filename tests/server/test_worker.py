"""The core's thread: jobs in order, requests waiting together committed together, timers."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from chats_store.chats.actions import ChatSnapshot, Failure
from chats_store.chats.commands import ChatRequest, JoinRequest, PostMessageRequest
from chats_store.chats.model import Message
from chats_store.server import mint_chat_token
from chats_store.server.database import ChatDatabase
from chats_store.server.service import Answer, ChatService, Session
from chats_store.server.worker import CoreWorker

SECRET = b"worker-test-secret-that-is-long-enough"


def _ignore(*args: object) -> None:
    pass


class Harness:
    """A worker running a real core; results arrive in :attr:`results` as the loop would."""

    def __init__(self, max_batch: int = 256) -> None:
        self.results: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...]]] = queue.Queue()
        self.backlogs: list[float] = []
        """The worker's backlog as each result was handed over."""
        self.worker = CoreWorker(self._hand_over, max_batch=max_batch)
        self.database = ChatDatabase(":memory:", check_same_thread=False)
        self.service = ChatService(
            self.database, SECRET, clock=lambda: 1e9, schedule=self.worker.schedule, publish=_ignore
        )
        self.batches: list[int] = []
        handle_all = self.service.handle_all

        def recorded(requests: Sequence[tuple[Session, ChatRequest]]) -> list[Answer]:
            self.batches.append(len(requests))
            return handle_all(requests)

        self.service.handle_all = recorded  # type: ignore[method-assign]

    def _hand_over(self, callback: Callable[..., Any], *args: Any) -> None:
        self.backlogs.append(self.worker.backlog)
        self.results.put((callback, args))

    def deliver(self, count: int) -> None:
        """Run the loop's side of ``count`` results handed over."""
        for _ in range(count):
            callback, args = self.results.get(timeout=5)
            callback(*args)

    def hold(self) -> threading.Event:
        """Keep the worker busy in a job until the event is set."""
        release = threading.Event()
        self.worker.call(lambda: release.wait(5) and None)
        return release


@pytest.fixture
def harness() -> Iterator[Harness]:
    made = Harness()
    made.worker.start(made.service)
    yield made
    made.worker.stop()
    made.worker.join(5)
    made.database.close()


def _join(harness: Harness, session: Session) -> None:
    answers: list[Answer] = []
    token = mint_chat_token(SECRET, session.user_id, "c1", now=1e9)
    harness.worker.submit(session, JoinRequest("c1", token), answers.append)
    harness.deliver(1)
    assert isinstance(answers[0].reply, ChatSnapshot)


def test_requests_waiting_together_are_committed_together_and_answered_in_order(
    harness: Harness,
) -> None:
    ann = Session("ann")
    _join(harness, ann)
    release = harness.hold()
    answers: list[Answer] = []
    for n in range(20):
        harness.worker.submit(ann, PostMessageRequest("c1", f"m{n}", f"post {n}"), answers.append)
    assert harness.worker.backlog > 0
    release.set()
    harness.deliver(1)  # one hand-over for the whole batch

    assert harness.batches[-1] == 20
    assert [a.reply.id for a in answers if isinstance(a.reply, Message)] == [
        f"m{n}" for n in range(20)
    ]


def test_answers_leave_once_the_backlog_no_longer_counts_their_jobs(
    harness: Harness,
) -> None:
    """A client may connect as soon as it is answered: the backlog, by which a
    handshake tells an overloaded server, must not count the job it was answered for."""
    ann = Session("ann")
    _join(harness, ann)
    release = harness.hold()
    answers: list[Answer] = []
    harness.worker.submit(ann, PostMessageRequest("c1", "m1", "waits"), answers.append)
    time.sleep(0.1)  # the post waits behind the held job
    assert harness.worker.backlog >= 0.1
    release.set()
    harness.deliver(1)

    assert isinstance(answers[0].reply, Message)
    assert harness.backlogs[-1] == 0.0


def test_a_batch_holds_at_most_max_batch_requests() -> None:
    harness = Harness(max_batch=3)
    harness.worker.start(harness.service)
    try:
        release = harness.hold()
        for n in range(7):
            harness.worker.submit(Session("ann"), PostMessageRequest("c1", f"m{n}", "x"), _ignore)
        release.set()
        harness.deliver(3)
    finally:
        harness.worker.stop()
        harness.worker.join(5)
    assert harness.batches == [3, 3, 1]


def test_a_call_runs_after_what_was_submitted_before_it(harness: Harness) -> None:
    ann = Session("ann")
    _join(harness, ann)
    stored: list[Any] = []
    release = harness.hold()
    harness.worker.submit(ann, PostMessageRequest("c1", "m1", "hi"), _ignore)
    harness.worker.call(lambda: stored.append(harness.database.message("c1", "m1")))
    harness.worker.call(lambda: harness.results.put((_ignore, ("done",))))
    release.set()
    harness.deliver(2)

    (message,) = stored
    assert message is not None and message.message.content == "hi"  # committed first


def test_timers_run_on_the_worker_thread_and_a_cancelled_one_never_runs(harness: Harness) -> None:
    ran: list[str] = []
    cancelled = harness.worker.schedule(0.01, lambda: ran.append("cancelled"))
    cancelled.cancel()
    harness.worker.schedule(
        0.02, lambda: harness.results.put((ran.append, (threading.current_thread().name,)))
    )
    harness.deliver(1)

    assert ran == ["chats_store core"]


def test_stop_finishes_what_was_submitted_then_closes_the_service() -> None:
    harness = Harness()
    harness.worker.start(harness.service)
    closed = threading.Event()
    harness.service.close = closed.set  # type: ignore[method-assign]
    answers: list[Answer] = []
    harness.worker.submit(Session("ann"), PostMessageRequest("c1", "m1", "x"), answers.append)
    harness.worker.stop()
    harness.worker.join(5)
    harness.deliver(1)

    assert closed.is_set()
    assert isinstance(answers[0].reply, Failure)  # not joined: refused, but answered


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        CoreWorker(_ignore, max_batch=0)
