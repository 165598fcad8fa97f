"""Several server processes on one port: ``chats-store serve --workers N``.

:class:`Supervisor` starts ``N`` worker processes; each is a whole reference server
(:func:`~chats_store.server.run_server` with ``reuse_port=True``) on the one port,
sharing one PostgreSQL database: the kernel spreads new connections over the
listening sockets (``SO_REUSEPORT``), and what a worker commits reaches the
others' clients through :mod:`chats_store.server.fanout`. A worker that dies is
started again (a client of it reconnects to the port, lands on a live worker and
resumes); one that keeps dying right after its start is started again later and
later (up to :data:`MAX_RESTART_DELAY`), so that a worker that cannot start (the
database is down) does not spin. :meth:`Supervisor.stop` (the parent's SIGTERM or
SIGINT) stops every worker with SIGTERM, then kills those still running after
:data:`STOP_TIMEOUT`.

Workers are started with the ``spawn`` method: a fresh interpreter each, nothing
inherited from the parent but the arguments. Port 0 is resolved here first, by
binding a socket with ``SO_REUSEPORT`` that the parent keeps (never listening on
it) while the workers run, so that they all bind that same port.
"""

from __future__ import annotations

import logging
import multiprocessing
import socket
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from typing import Any

__all__ = ["MAX_RESTART_DELAY", "STOP_TIMEOUT", "Supervisor", "reserve_port"]

logger = logging.getLogger("chats_store.server")

STOP_TIMEOUT = 10.0
"""Seconds a worker has to stop after SIGTERM before it is killed."""
MAX_RESTART_DELAY = 5.0
"""The longest a worker that keeps dying waits before it is started again."""
_HEALTHY_AFTER = 10.0
"""A worker that ran this long before it died is started again at once."""


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` with ``SO_REUSEPORT``, not listening.

    Its port (the one the kernel chose, for port 0) can be bound by every worker
    while the socket is open; keep it open as long as they run.
    """
    if not hasattr(socket, "SO_REUSEPORT"):
        raise OSError("--workers needs SO_REUSEPORT, which this platform does not have")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    reserved = socket.socket(family, socket.SOCK_STREAM)
    try:
        reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        reserved.bind((host, port))
    except BaseException:
        reserved.close()
        raise
    return reserved


class _Slot:
    """One worker's place: its process now, and how its restarts are spaced."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: BaseProcess | None = None
        self.started = 0.0
        self.delay = 0.0
        self.due = 0.0


class Supervisor:
    """Runs ``count`` processes of ``target(index, *args)`` until :meth:`stop`.

    ``target`` must be importable by name (``spawn`` pickles it) and its
    ``args`` picklable. ``on_exit(index, exitcode)`` is told of each worker that
    ended on its own, before it is started again.
    """

    def __init__(
        self,
        count: int,
        target: Callable[..., Any],
        args: Sequence[Any] = (),
        *,
        on_exit: Callable[[int, int | None], None] | None = None,
    ) -> None:
        if count < 1:
            raise ValueError(f"the number of workers must be 1 or more, not {count!r}")
        self._context = multiprocessing.get_context("spawn")
        self._target = target
        self._args = tuple(args)
        self._on_exit = on_exit
        self._slots = [_Slot(index) for index in range(count)]
        self._stopping = False

    @property
    def pids(self) -> tuple[int | None, ...]:
        """The process id of each worker (None while one waits to be started again)."""
        return tuple(slot.process.pid if slot.process is not None else None for slot in self._slots)

    def run(self) -> None:
        """Start every worker and keep them running until :meth:`stop` is called."""
        for slot in self._slots:
            self._start(slot)
        while not self._stopping:
            now = time.monotonic()
            for slot in self._slots:
                if slot.process is None and slot.due <= now:
                    self._start(slot)
            running = [slot.process.sentinel for slot in self._slots if slot.process is not None]
            waiting = [slot.due - now for slot in self._slots if slot.process is None]
            timeout = max(0.0, min(waiting)) if waiting else 1.0
            wait(running, timeout=min(timeout, 1.0))
            for slot in self._slots:
                if slot.process is not None and not slot.process.is_alive():
                    self._ended(slot)
        self._stop_all()

    def stop(self) -> None:
        """Ask :meth:`run` to stop the workers and return (safe in a signal handler)."""
        self._stopping = True

    def _start(self, slot: _Slot) -> None:
        process = self._context.Process(
            target=self._target,
            args=(slot.index, *self._args),
            name=f"chats_store worker {slot.index}",
        )
        process.start()
        slot.process = process
        slot.started = time.monotonic()

    def _ended(self, slot: _Slot) -> None:
        process = slot.process
        assert process is not None
        process.join()
        slot.process = None
        if self._stopping:
            return
        if self._on_exit is not None:
            self._on_exit(slot.index, process.exitcode)
        ran = time.monotonic() - slot.started
        slot.delay = (
            0.0 if ran >= _HEALTHY_AFTER else min(MAX_RESTART_DELAY, max(0.1, slot.delay * 2))
        )
        slot.due = time.monotonic() + slot.delay

    def _stop_all(self) -> None:
        processes = [slot.process for slot in self._slots if slot.process is not None]
        for process in processes:
            process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                logger.warning("worker %s did not stop in %g s: killed", process.pid, STOP_TIMEOUT)
                process.kill()
                process.join()
        for slot in self._slots:
            slot.process = None
