"""Fan-out across server processes that share one PostgreSQL database.

Each process's core pushes what its own requests changed to its own sessions; the
events other processes commit reach this process's sessions through here, the
pattern of Synapse and Zulip: the database is the truth, a notification only
wakes the readers.

* **The wake-up.** The storage sends ``NOTIFY chats_store, '<chat_id> <seq>'`` in
  the transaction that takes each seq, so PostgreSQL delivers it when, and only
  if, that transaction commits. Each process listens on a connection of its own,
  on a thread of its own (:class:`Listener`), and hands the highest seq it heard
  of per chat to its core's worker thread.
* **The read.** :class:`Fanout` runs on that worker thread, beside the core (the
  core's subscriptions are the worker's alone). It keeps, per chat some session
  of this process receives, the last seq it delivered here, and reads what is
  past it from the event log, by seq (:meth:`EventFeed.logged_range`): each event
  goes to the chat's sessions here (a private ``own_*`` event only to its target
  user's), encoded as the log keeps it. A members amount read from the log also
  means a membership changed elsewhere: the core tells the sessions of a member
  whose membership ended that they were removed
  (:meth:`~chats_store.server.service.ChatService.membership_ended`).
* **One order.** Before the core's own pushes of a chat go out (an answer, or what
  the core publishes on its own), the events of that chat committed before them
  and not delivered here yet are read and go first, so every session gets each
  chat's events in seq order, whichever process wrote them.
* **Nothing lost.** A notification missed (the listening connection broke, the
  process was not listening yet) costs latency, never an event: after each
  (re)connection and every :data:`SWEEP_INTERVAL` the chats' last seqs are read
  (:meth:`EventFeed.last_seqs`) and whatever is behind is caught up. A read that
  fails leaves the last seq delivered where it was, and what the core pushed after
  it waits for the next catch-up (from the log, in order).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from chats_store.chats.actions import ChatSnapshot, MembersAmountChanged, Resumption
from chats_store.chats.commands import ChatRequest, JoinRequest, ResumeRequest
from chats_store.protocol import decode_event
from chats_store.server.service import Answer, ChatService, Publish, Push, Session
from chats_store.server.storage import ChatStorage

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "CATCH_UP_PAGE",
    "CHANNEL",
    "LISTENER_NAME",
    "SWEEP_INTERVAL",
    "EventFeed",
    "Fanout",
    "Listener",
    "LoggedFrame",
]

logger = logging.getLogger("chats_store.server")

CHANNEL = "chats_store"
"""The PostgreSQL notification channel: payload ``'<chat_id> <seq>'``."""
LISTENER_NAME = "chats_store listener"
"""The ``application_name`` of each process's listening connection."""
SWEEP_INTERVAL = 2.0
"""Seconds between two reads of the chats' last seqs (what a lost notification costs)."""
CATCH_UP_PAGE = 500
"""The most events one read of the log returns; a catch-up reads page after page."""
_POLL = 0.5
"""Seconds the listener waits for a notification before it looks whether to stop."""
_MAX_RECONNECT_DELAY = 5.0


@attrs.frozen
class LoggedFrame:
    """One event of the log as the fan-out reads it: its seq, its reader, its frame."""

    seq: int
    target: str | None
    """The only user who may read it (None: every member)."""
    frame: str


class EventFeed(ChatStorage, Protocol):
    """What the fan-out reads, besides the core's storage operations."""

    def logged_range(
        self, chat_id: str, since_seq: int, through_seq: int, limit: int
    ) -> tuple[LoggedFrame, ...]:
        """The chat's logged events with ``since_seq < seq <= through_seq``, oldest first,
        at most ``limit`` of them (read without taking the chat's lock)."""
        ...

    def last_seqs(self, chat_ids: Collection[str]) -> Mapping[str, int]:
        """The last seq of each of these chats (those nothing happened in are left out)."""
        ...


def _seq_of(push: Push) -> int:
    if push.seq is not None:
        return push.seq
    seq: int = push.event.seq  # type: ignore[union-attr]  # every other event has one
    return seq


class Fanout:
    """The core as the worker runs it in a cluster (see the module's docstring).

    ``service`` runs on ``feed``; ``publish`` hands pushes to the event loop (the
    dispatcher's). Give :meth:`published` to the service as its ``publish``, and
    this object to :meth:`CoreWorker.start <chats_store.server.worker.CoreWorker.start>`.
    Used on the worker thread only.
    """

    def __init__(
        self,
        service: ChatService,
        feed: EventFeed,
        publish: Publish,
        *,
        page: int = CATCH_UP_PAGE,
    ) -> None:
        self._service = service
        self._feed = feed
        self._publish = publish
        self._page = page
        self._delivered: dict[str, int] = {}
        """Per chat some session here receives: every event up to this seq went to them."""

    # What the worker runs ---------------------------------------------------------

    def start(self) -> None:
        self._service.start()

    def close(self) -> None:
        self._service.close()

    def handle_all(self, requests: Sequence[tuple[Session, ChatRequest]]) -> list[Answer]:
        """The core's answers, each one's pushes behind what other processes committed
        before them in the same chats."""
        answers = self._service.handle_all(requests)
        return [
            self._answered(session, request, answer)
            for (session, request), answer in zip(requests, answers, strict=True)
        ]

    def published(self, pushes: tuple[Push, ...]) -> None:
        """The core's own pushes (expiries, members amounts), in order, to the loop."""
        ordered = self._in_order(pushes)
        if ordered:
            self._publish(ordered)

    def caught_up(self, heard: Mapping[str, int]) -> None:
        """Deliver each chat's events up to the seq another process committed."""
        pushes: list[Push] = []
        for chat_id, seq in heard.items():
            delivered = self._delivered.get(chat_id)
            if delivered is None or seq <= delivered:
                continue
            if not self._service.online(chat_id):
                del self._delivered[chat_id]  # nobody here reads it any more
                continue
            pushes += self._read(chat_id, delivered, seq)
        if pushes:
            self._publish(tuple(pushes))

    def sweep(self) -> None:
        """Catch up every chat read here that is behind the database (a lost wake-up)."""
        for chat_id in [c for c in self._delivered if not self._service.online(c)]:
            del self._delivered[chat_id]
        if not self._delivered:
            return
        try:
            last = self._feed.last_seqs(tuple(self._delivered))
        except Exception:
            logger.exception("the fan-out could not read the chats' last seqs")
            return
        self.caught_up(last)

    # The order of each chat -------------------------------------------------------

    def _answered(self, session: Session, request: ChatRequest, answer: Answer) -> Answer:
        result = answer.result
        if isinstance(request, JoinRequest | ResumeRequest) and isinstance(
            result, ChatSnapshot | Resumption
        ):
            chat_id = request.chat_id
            # The first session of a chat here has everything up to the reply's seq;
            # those before it may not: they are caught up from where they are.
            if chat_id not in self._delivered or self._service.online(chat_id) == (session,):
                self._delivered[chat_id] = result.last_seq
        if not answer.pushes:
            return answer
        return attrs.evolve(answer, pushes=self._in_order(answer.pushes))

    def _in_order(self, pushes: tuple[Push, ...]) -> tuple[Push, ...]:
        """``pushes``, each after the events of its chat not delivered here before it."""
        ordered: list[Push] = []
        behind: set[str] = set()
        for push in pushes:
            chat_id = push.event.chat_id
            if chat_id in behind:
                continue
            seq = _seq_of(push)
            delivered = self._delivered.get(chat_id)
            if delivered is not None and seq > delivered + 1:
                try:
                    ordered += self._read(chat_id, delivered, seq - 1, fail=True)
                except Exception:
                    logger.exception("the fan-out could not read chat %r: it waits", chat_id)
                    behind.add(chat_id)  # the next catch-up reads them all, in order
                    continue
            if delivered is None or seq > delivered:
                self._delivered[chat_id] = seq
            ordered.append(push)
        return tuple(ordered)

    def _read(
        self, chat_id: str, since_seq: int, through_seq: int, *, fail: bool = False
    ) -> list[Push]:
        """The pushes of the chat's logged events in ``(since_seq, through_seq]`` to its
        sessions here; the last seq delivered moves past each page read."""
        pushes: list[Push] = []
        while since_seq < through_seq:
            try:
                with self._feed.transaction():
                    page = self._feed.logged_range(chat_id, since_seq, through_seq, self._page)
            except Exception:
                if fail:
                    raise
                logger.exception("the fan-out could not read chat %r: it tries again", chat_id)
                break
            for logged in page:
                pushes += self._pushes_of(chat_id, logged)
            # A short page is the end: nothing else up to through_seq is in the log.
            since_seq = through_seq if len(page) < self._page else page[-1].seq
            self._delivered[chat_id] = max(self._delivered.get(chat_id, 0), since_seq)
        return pushes

    def _pushes_of(self, chat_id: str, logged: LoggedFrame) -> list[Push]:
        event = decode_event(logged.frame)
        pushes: list[Push] = []
        if isinstance(event, MembersAmountChanged):
            pushes += self._service.membership_ended(chat_id, logged.seq)
        recipients = self._service.online(chat_id)
        if logged.target is not None:
            recipients = tuple(s for s in recipients if s.user_id == logged.target)
        if recipients:
            pushes.append(Push(event, recipients, frame=logged.frame))
        return pushes


class Listener:
    """One process's listening connection to PostgreSQL, on a thread of its own.

    It wakes the fan-out: each batch of notifications becomes one
    :meth:`Fanout.caught_up` run through ``call`` (the worker's
    :meth:`~chats_store.server.worker.CoreWorker.call`), with the highest seq heard
    per chat; after each (re)connection, and every ``sweep_interval`` seconds,
    :meth:`Fanout.sweep`. A broken connection is opened again (waiting longer
    each time it fails, up to a few seconds).
    """

    def __init__(
        self,
        url: str,
        call: Callable[[Callable[[], None]], None],
        fanout: Fanout,
        *,
        sweep_interval: float = SWEEP_INTERVAL,
    ) -> None:
        if not sweep_interval > 0:
            raise ValueError(f"sweep_interval must be positive, not {sweep_interval!r}")
        self._url = url
        self._call = call
        self._fanout = fanout
        self._sweep_interval = sweep_interval
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._heard: dict[str, int] = {}
        self._handing_over = False
        self._thread = threading.Thread(target=self._run, name="chats_store listener", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop listening (the thread ends within a fraction of a second)."""
        self._stopping.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        import psycopg  # the extra chats_store[postgresql], there whenever this runs

        delay = 0.0
        while not self._stopping.is_set():
            try:
                with psycopg.connect(
                    self._url, autocommit=True, application_name=LISTENER_NAME
                ) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    delay = 0.0
                    self._call(self._fanout.sweep)  # what was committed while not listening
                    self._listen(connection)
            except psycopg.Error as error:
                delay = min(_MAX_RECONNECT_DELAY, max(0.05, delay * 2))
                logger.warning(
                    "the fan-out's connection to PostgreSQL failed (%s): again in %.2f s",
                    error,
                    delay,
                )
                self._stopping.wait(delay)

    def _listen(self, connection: psycopg.Connection[Any]) -> None:
        next_sweep = time.monotonic() + self._sweep_interval
        while not self._stopping.is_set():
            heard: dict[str, int] = {}
            timeout = max(0.0, min(_POLL, next_sweep - time.monotonic()))
            for notify in connection.notifies(timeout=timeout, stop_after=1):
                _note(heard, notify.payload)
            if heard:
                for notify in connection.notifies(timeout=0):  # what else is waiting
                    _note(heard, notify.payload)
                self._hand_over(heard)
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + self._sweep_interval
                self._call(self._fanout.sweep)

    def _hand_over(self, heard: Mapping[str, int]) -> None:
        """Merge into what waits for the worker; one call to it at a time."""
        with self._lock:
            for chat_id, seq in heard.items():
                if seq > self._heard.get(chat_id, 0):
                    self._heard[chat_id] = seq
            if self._handing_over:
                return
            self._handing_over = True
        self._call(self._deliver)

    def _deliver(self) -> None:
        with self._lock:
            heard, self._heard = self._heard, {}
            self._handing_over = False
        self._fanout.caught_up(heard)


def _note(heard: dict[str, int], payload: str) -> None:
    chat_id, _, seq = payload.rpartition(" ")
    try:
        number = int(seq)
    except ValueError:
        logger.warning("a notification on %r that is not '<chat_id> <seq>': %r", CHANNEL, payload)
        return
    if number > heard.get(chat_id, 0):
        heard[chat_id] = number
