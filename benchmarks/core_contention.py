"""The server core's group commit alone, and beside a busy event-loop thread, in one run.

The reference server runs its core (``ChatService.handle_all``: SQLite statements,
then one durable commit) on a worker thread, and the connections on the event loop's
thread; both share one interpreter lock. SQLite's calls give the lock up around
each step of a statement (six statements per post), and a thread that gave it up
waits, to take it back, until the thread holding it gives it up in turn: at its
next system call, or after the switch interval (``sys.getswitchinterval()``).

This script measures what that costs a post. A real ``ChatService`` on an SQLite
file with durable commits (in a fresh directory of ``--dir``: on tmpfs an fsync
costs nothing), 100 sessions joined to 10 chats, batches of ``--batch`` posts
handled on a thread of their own. Two contenders, alternated round after round:

* **alone**: nothing else runs in the process;
* **beside a busy thread**: another thread runs Python in short spans, each ended
  by a system call (a write of one byte to ``/dev/null``), as a busy event loop does.

Per post: the batch's wall time and the worker thread's CPU time, divided by the
batch's size (the medians over the rounds). It asserts nothing about time.

    python benchmarks/core_contention.py            # ~30 s
    python benchmarks/core_contention.py --quick    # a few seconds (CI)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from server_process import SECRET

from chats_store.chats.actions import Failure
from chats_store.chats.commands import ChatRequest, JoinRequest, PostMessageRequest
from chats_store.server import mint_chat_token
from chats_store.server.engine import open_storage
from chats_store.server.service import ChatService, Session, Timer

SESSIONS = 100
CHATS = 10


class Core:
    """A real core on a durable SQLite file, its sessions joined."""

    def __init__(self, directory: str) -> None:
        storage = open_storage(Path(directory) / "core.sqlite3")
        self.service = ChatService(
            storage, SECRET.encode(), clock=time.time, schedule=_no_timer, publish=_nowhere
        )
        self.service.start()
        self.sessions: list[tuple[Session, str]] = []
        for number in range(SESSIONS):
            session, chat_id = Session(f"user{number}"), f"chat{number % CHATS}"
            token = mint_chat_token(SECRET, session.user_id, chat_id)
            (answer,) = self.service.handle_all([(session, JoinRequest(chat_id, token))])
            assert not isinstance(answer.result, Failure), answer.result
            self.sessions.append((session, chat_id))
        self._posted = 0

    def batch(self, size: int) -> list[tuple[Session, ChatRequest]]:
        """``size`` new posts, the sessions in turn."""
        requests: list[tuple[Session, ChatRequest]] = []
        for index in range(size):
            session, chat_id = self.sessions[index % SESSIONS]
            self._posted += 1
            request = PostMessageRequest(chat_id, f"post{self._posted}", "a post of the benchmark")
            requests.append((session, request))
        return requests

    def close(self) -> None:
        self.service.close()


class _Unrun:
    """A timer of the core, never run: none is due within a few seconds of posts."""

    def cancel(self) -> None:
        """Nothing to cancel."""


def _no_timer(delay: float, callback: Callable[[], None]) -> Timer:
    return _Unrun()


def _nowhere(pushes: object) -> None:
    """The pushes go nowhere: no connection here."""


def _busy(stop: threading.Event) -> None:
    """Python in short spans, each ended by a system call, until ``stop``."""
    descriptor = os.open(os.devnull, os.O_WRONLY)
    try:
        while not stop.is_set():
            total = 0
            for number in range(300):
                total += number
            os.write(descriptor, b"x")
    finally:
        os.close(descriptor)


def one_round(core: Core, size: int, busy: bool) -> tuple[float, float]:
    """One batch of ``size`` posts on a thread of its own: (wall, CPU) µs per post."""
    requests = core.batch(size)
    figures: list[tuple[float, float]] = []

    def work() -> None:
        began, cpu = time.perf_counter(), time.thread_time()
        answers = core.service.handle_all(requests)
        figures.append((time.perf_counter() - began, time.thread_time() - cpu))
        assert not any(isinstance(answer.result, Failure) for answer in answers)

    stop = threading.Event()
    neighbour = threading.Thread(target=_busy, args=(stop,)) if busy else None
    if neighbour is not None:
        neighbour.start()
    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    stop.set()
    if neighbour is not None:
        neighbour.join()
    ((wall, cpu),) = figures
    return wall / size * 1e6, cpu / size * 1e6


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch", type=int, default=100, help="posts per commit")
    parser.add_argument("--dir", default=None, help="where the SQLite file goes (a real disk)")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 10 posts (CI)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.batch = 2, 10
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        core = Core(directory)
        try:
            samples: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
            for index in range(args.rounds):
                for busy in (False, True) if index % 2 == 0 else (True, False):
                    samples[busy].append(one_round(core, args.batch, busy))
        finally:
            core.close()
    print(
        f"## The core's group commit: {args.rounds} batches of {args.batch} posts each way,"
        f" alternated; switch interval {sys.getswitchinterval() * 1000:g} ms\n"
    )
    print("| contender | wall per post, µs | worker CPU per post, µs |\n|---|---:|---:|")
    for busy, label in ((False, "alone"), (True, "beside a busy thread")):
        walls = [wall for wall, _ in samples[busy]]
        cpus = [cpu for _, cpu in samples[busy]]
        print(f"| {label} | {statistics.median(walls):,.0f} | {statistics.median(cpus):,.0f} |")


if __name__ == "__main__":
    main()
