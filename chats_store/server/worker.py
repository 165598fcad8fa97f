"""The server core on a thread of its own, so that the event loop never waits for storage.

:class:`CoreWorker` owns one thread, and only that thread runs the
:class:`~chats_store.server.service.ChatService` and touches its storage: every
request, every disconnection and every timer of the core (restriction expiries,
members amount pushes) runs there, one at a time, in the order they were
submitted. So the core's rule holds as before (requests never interleave, each
chat has one order), and a slow disk, a long fsync or another process's write lock
delays requests without freezing the connections.

**Group commit.** The thread takes every request waiting (up to ``max_batch``, and
never past a job that is not a request) and hands them to
:meth:`~chats_store.server.service.ChatService.handle_all`: one transaction, one
durable commit. Requests that arrive during that commit form the next batch. One
sender's request waits for its own fsync; a hundred senders share one.

**Results** come back through ``call_soon`` (the event loop's
``call_soon_threadsafe``), once per batch, after its commit: each request's
``done(answer)`` then runs on the loop's thread, in submission order. Nothing the
core did is seen before it is durable.

The core's timers are the worker's (:meth:`CoreWorker.schedule`): kept in a heap
and run on the worker thread between batches. Nothing here imports asyncio.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import attrs

from chats_store.chats.commands import ChatRequest
from chats_store.server.service import Answer, Session, Timer

__all__ = ["MAX_BATCH", "Core", "CoreWorker"]

logger = logging.getLogger("chats_store.server")

MAX_BATCH = 256
"""The most requests one commit holds (default)."""

CallSoon = Callable[..., Any]
"""``call_soon(callback, *args)``: run ``callback(*args)`` on the loop's thread (thread-safe)."""

Done = Callable[[Answer], None]


class Core(Protocol):
    """What the worker runs: a :class:`~chats_store.server.service.ChatService`, or a
    wrapper of one (the cluster's :class:`~chats_store.server.fanout.Fanout`)."""

    def start(self) -> None: ...

    def handle_all(self, requests: Sequence[tuple[Session, ChatRequest]]) -> list[Answer]: ...

    def close(self) -> None: ...


@attrs.define
class _Request:
    session: Session
    request: ChatRequest
    done: Done
    submitted: float


@attrs.define
class _Call:
    function: Callable[[], None]
    submitted: float


class _WorkerTimer:
    """A callback due at ``due`` (monotonic), run on the worker thread unless cancelled."""

    __slots__ = ("callback", "cancelled", "due")

    def __init__(self, due: float, callback: Callable[[], None]) -> None:
        self.due = due
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def _deliver(results: list[tuple[Done, Answer]]) -> None:
    for done, answer in results:
        done(answer)


class CoreWorker:
    """One thread that runs a :class:`ChatService` (see the module's docstring).

    ``call_soon`` hands results to the event loop's thread. Make the worker, give
    :meth:`schedule` to the service as its scheduler, then :meth:`start` it with the
    service.
    """

    def __init__(self, call_soon: CallSoon, *, max_batch: int = MAX_BATCH) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be 1 or more, not {max_batch!r}")
        self._call_soon = call_soon
        self._max_batch = max_batch
        self._jobs: deque[_Request | _Call] = deque()
        self._timers: list[tuple[float, int, _WorkerTimer]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._stopping = False
        self._started: float | None = None
        """When the oldest job of the batch (or call) running now was submitted."""
        self._service: Core | None = None
        self._thread = threading.Thread(target=self._run, name="chats_store core", daemon=True)

    # Any thread -------------------------------------------------------------------

    def start(self, service: Core) -> None:
        """Start the thread; its first job is ``service.start()``."""
        self._service = service
        self.call(service.start)
        self._thread.start()

    def submit(self, session: Session, request: ChatRequest, done: Done) -> None:
        """Handle ``request`` of ``session``; ``done(answer)`` runs on the loop after the
        commit, in submission order with the other results."""
        self._put(_Request(session, request, done, time.monotonic()))

    def call(self, function: Callable[[], None]) -> None:
        """Run ``function()`` on the worker thread, after what was submitted before."""
        self._put(_Call(function, time.monotonic()))

    def schedule(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback()`` on the worker thread in ``delay`` seconds (the core's timers)."""
        timer = _WorkerTimer(time.monotonic() + delay, callback)
        with self._wake:
            heapq.heappush(self._timers, (timer.due, next(self._order), timer))
            self._wake.notify()
        return timer

    def stop(self) -> None:
        """Finish what was submitted, close the service (``service.close()``), end the thread."""
        with self._wake:
            self._stopping = True
            self._wake.notify()

    def join(self, timeout: float | None = None) -> None:
        """Wait until the thread has ended (after :meth:`stop`)."""
        self._thread.join(timeout)

    @property
    def backlog(self) -> float:
        """Seconds the oldest job not done yet has waited (0 when there is none)."""
        oldest = self._started
        if oldest is None:
            try:
                oldest = self._jobs[0].submitted
            except IndexError:
                return 0.0
        return max(0.0, time.monotonic() - oldest)

    def _put(self, job: _Request | _Call) -> None:
        with self._wake:
            self._jobs.append(job)
            self._wake.notify()

    # The worker thread ------------------------------------------------------------

    def _run(self) -> None:
        service = self._service
        assert service is not None
        while True:
            with self._wake:
                while not self._jobs and not self._due() and not self._stopping:
                    self._wake.wait(self._until_next_timer())
                due = self._take_due()
                batch = self._take_batch()
                stopping = self._stopping and not self._jobs and not due and not batch
                if isinstance(batch, _Call):
                    self._started = batch.submitted
                elif batch:
                    self._started = batch[0].submitted
            for timer in due:
                self._guarded(timer.callback)
            results: list[tuple[Done, Answer]] = []
            if isinstance(batch, _Call):
                self._guarded(batch.function)
            elif batch:
                answers = service.handle_all([(job.session, job.request) for job in batch])
                results = [(job.done, answer) for job, answer in zip(batch, answers, strict=True)]
            # Done before the answers leave: a client answered may connect at once, and
            # the backlog (how a handshake tells overload) must no longer count its job.
            self._started = None
            if results:
                self._call_soon(_deliver, results)
            if stopping:
                self._guarded(service.close)
                return

    def _due(self) -> bool:
        timers = self._timers
        while timers and timers[0][2].cancelled:
            heapq.heappop(timers)
        return bool(timers) and timers[0][0] <= time.monotonic()

    def _until_next_timer(self) -> float | None:
        if not self._timers:
            return None
        return max(0.0, self._timers[0][0] - time.monotonic())

    def _take_due(self) -> list[_WorkerTimer]:
        due: list[_WorkerTimer] = []
        while self._due():
            due.append(heapq.heappop(self._timers)[2])
        return due

    def _take_batch(self) -> list[_Request] | _Call:
        """The requests at the head of the queue (up to ``max_batch``), or the call there."""
        jobs = self._jobs
        if jobs:
            head = jobs[0]
            if isinstance(head, _Call):
                jobs.popleft()
                return head
        batch: list[_Request] = []
        while jobs and len(batch) < self._max_batch:
            job = jobs[0]
            if not isinstance(job, _Request):
                break
            batch.append(job)
            jobs.popleft()
        return batch

    @staticmethod
    def _guarded(function: Callable[[], None]) -> None:
        try:
            function()
        except Exception:
            logger.exception("a job of the core failed: %r", function)
