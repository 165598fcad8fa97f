"""Each connection's outbox: frames queued without waiting, written in order, bounded.

The core's replies and pushes are queued in the connection's :class:`Outbox` at
once (nobody waits for a slow client) and written in order: what the loop's
callback queued for a connection goes out in one write once the callback is done
(:meth:`Outbox.flush`), each frame's bytes made once for all its recipients
(:mod:`chats_store.server.wire`); while the transport's write buffer is full the
connection's writer task (:meth:`Outbox.run`) waits for room. The memory a
connection takes is bounded:

* at most ``max_queued_frames`` frames and ``max_queued_bytes`` bytes queued in its
  outbox: the next frame closes the connection with **1008** ("read faster");
* at most ``max_write_buffer`` bytes in its transport's write buffer (``websockets``
  adds only what it must answer there, pongs and the closing handshake): more, and
  the connection is dropped at once (:class:`~chats_store.server.gate.GuardedConnection`
  checks it after every read, the watchdog at each round);
* all outboxes together at most ``max_queued_bytes_total`` bytes: a frame that does
  not fit closes the connection holding the most with **1013** (try again later),
  as many as it takes.

And so is how stale what a client shows may be. A frame is *confirmed* once the
client's WebSocket layer has read it: the watchdog (:meth:`Outboxes.watch`), each
quarter of ``max_backlog_age`` (at most every second), sends a ping behind the
frames handed over since the last one, and its pong (a client answers pings in the
order it reads frames) confirms them all. A ping goes only when the oldest
frame not confirmed yet is a quarter of ``max_backlog_age`` old, so a client that
reads gets at most one such ping per quarter of the bound. The oldest frame not confirmed yet (or
still queued) may be at most ``max_backlog_age`` seconds old: an older one closes
the connection with **1008**, so that its client resyncs instead of showing old
messages. A slow reader is closed within ``max_backlog_age`` plus one round of the
watchdog. A connection closed so that does not finish the closing handshake within
:data:`CLOSE_TIMEOUT` seconds (a peer that reads nothing cannot read the close
frame either: ``websockets`` would wait for its write buffer to drain forever, as
its keepalive does before its ping time-out starts) is dropped.

Every frame is checked against the protocol's maximum
(:data:`~chats_store.protocol.MAX_SERVER_FRAME_SIZE`) before it is queued; one
over it is never sent (a bug: logged, and the connection closed with 1011).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from websockets.protocol import State

from chats_store.protocol import MAX_SERVER_FRAME_SIZE
from chats_store.server.flag import Flag
from chats_store.server.gate import GuardedConnection, write_buffer_over
from chats_store.server.limits import ServerLimits
from chats_store.server.service import Session
from chats_store.server.wire import WireFrame

__all__ = ["CLOSE_TIMEOUT", "Outbox", "Outboxes", "fits_in_a_frame"]

logger = logging.getLogger("chats_store.server")

MAX_WATCH_TICK = 1.0
"""Seconds between two rounds of the watchdog, at most."""

CLOSE_TIMEOUT = 10.0
"""Seconds a connection the outbox closes has to finish the closing handshake."""

WRITE_BYTES = 64 * 1024
"""Bytes of frames a writer hands to the transport in one write, at most (one frame
may be larger): with the transport's own high-water mark, what it holds stays well
under ``max_write_buffer``."""


def fits_in_a_frame(text: str) -> bool:
    """Whether ``text`` (ASCII, as every frame the server encodes) may be sent."""
    return len(text) <= MAX_SERVER_FRAME_SIZE


class Outbox:
    """One connection's unsent frames, written in order by :meth:`run` (see the module)."""

    def __init__(self, connection: GuardedConnection, outboxes: Outboxes) -> None:
        self._connection = connection
        self._outboxes = outboxes
        self._limits = outboxes.limits
        self._queued: deque[tuple[WireFrame, float]] = deque()
        """Frames not yet handed to the connection, with the time each was queued."""
        self.queued_bytes = 0
        """Bytes of the queued frames (counted in the global budget)."""
        self._unconfirmed: deque[float] = deque()
        """When each frame handed over but not confirmed yet was queued, oldest first."""
        self._handed = 0
        """Frames handed to the connection so far."""
        self._ping: tuple[bytes, int] | None = None
        """The ping in flight, and how many frames had been handed over before it."""
        self._pings = 0
        self._confirmed = 0
        self._ready = Flag()
        """Set when a write found the transport full: :meth:`run` waits for room."""
        self._waiting = False
        """Whether the writer task is waiting for room in the transport."""
        self._flush_due = False
        """Whether a :meth:`flush` is scheduled (:meth:`Outboxes.flush_soon`)."""
        self._flushed = Flag(True)
        """Set while every frame queued has been written to the connection."""
        self._closed = False
        connection.on_pong = self._pong

    def send(self, frame: WireFrame) -> None:
        """Queue ``frame``, or close the connection if that breaks a bound."""
        if self._closed:
            return
        text = frame.text
        if not fits_in_a_frame(text):
            logger.error("a frame of %d bytes was not sent: over the maximum", len(text))
            self.close(1011, "internal error: the server made a frame over the maximum")
            return
        size = len(text)
        limits = self._limits
        frames_over = limits.max_queued_frames is not None and (
            len(self._queued) >= limits.max_queued_frames
        )
        bytes_over = limits.max_queued_bytes is not None and (
            self.queued_bytes + size > limits.max_queued_bytes
        )
        if frames_over or bytes_over:
            self.close(
                1008,
                f"too many unsent frames ({len(self._queued)}, {self.queued_bytes} bytes): "
                "read faster",
            )
            return
        if not self._outboxes.reserve(self, size):
            return  # this connection was the one closed to make room
        self.queued_bytes += size
        self._queued.append((frame, self._outboxes.now()))
        self._flushed.clear()
        if not self._flush_due:
            self._flush_due = True
            self._outboxes.flush_soon(self)

    def flush(self) -> None:
        """Write the queued frames, in pieces of up to :data:`WRITE_BYTES`, unless the
        transport is full: then :meth:`run` waits for room and writes on."""
        self._flush_due = False
        if self._closed or self._waiting:
            return
        connection = self._connection
        queued = self._queued
        while queued:
            if connection.write_paused:
                self._waiting = True
                self._ready.set()
                return
            frames: list[WireFrame] = []
            size = 0
            while queued and (not frames or size < WRITE_BYTES):
                frame, queued_at = queued.popleft()
                frames.append(frame)
                size += len(frame.text)
                self._unconfirmed.append(queued_at)
            self.queued_bytes -= size
            self._outboxes.release(size)
            self._handed += len(frames)
            if not connection.write_frames(frames):
                self.forget()  # the connection is closing: nothing more can go
                return
        self._flushed.set()

    async def run(self) -> None:
        """The connection's writer task: each time a write found the transport full,
        wait until it has room, then write on; until the connection closes."""
        try:
            while not self._closed:
                await self._ready.wait()
                self._ready.clear()
                if self._closed or not await self._connection.writable():
                    return
                self._waiting = False
                self.flush()
        finally:
            self._flushed.set()  # nothing more will be written

    async def flushed(self) -> None:
        """Wait until every frame queued so far is written to the connection (or will
        never be: the outbox closed, or the connection did), so that a close sent next
        comes after them."""
        await self._flushed.wait()

    def _pong(self, payload: bytes) -> None:
        """A pong came: if it answers the outbox's ping, the frames before it are read."""
        if self._ping is None or payload != self._ping[0]:
            return  # a keepalive pong, or an unsolicited one
        handed_before = self._ping[1]
        self._ping = None
        while self._confirmed < handed_before and self._unconfirmed:
            self._unconfirmed.popleft()
            self._confirmed += 1

    def backlog_age(self, now: float) -> float:
        """Seconds the oldest frame not confirmed yet has waited (0 when none)."""
        if self._unconfirmed:
            return now - self._unconfirmed[0]
        if self._queued:
            return now - self._queued[0][1]
        return 0.0

    def check(self, now: float) -> None:
        """The watchdog's round: close or drop the connection if it broke a bound, and
        ask the client to confirm what it was handed since the last round."""
        if self._closed:
            return
        limits = self._limits
        if write_buffer_over(self._connection, limits.max_write_buffer):
            self.drop("its write buffer is over the limit")
            return
        bound = limits.max_backlog_age
        if bound is None:
            return
        age = self.backlog_age(now)
        if age > bound:
            self.close(
                1008,
                f"too slow: a frame waited {age:.1f} s to be read (more than {bound:g} s) - "
                "reconnect and resync",
            )
        elif self._ping is None and self._unconfirmed and age >= bound / 4:
            self._send_ping()  # only when it matters: at most one per quarter of the bound

    def _send_ping(self) -> None:
        """A ping behind the frames handed over, written at once (never waiting to drain)."""
        connection = self._connection
        if connection.protocol.state is not State.OPEN:
            return
        self._pings += 1
        payload = b"outbox %d" % self._pings
        self._ping = (payload, self._handed)
        connection.protocol.send_ping(payload)
        connection.send_data()

    def forget(self) -> None:
        """Queue nothing more and forget what is unsent (the connection is ending)."""
        self._closed = True
        self._queued.clear()
        self._unconfirmed.clear()
        if self.queued_bytes:
            self._outboxes.release(self.queued_bytes)
            self.queued_bytes = 0
        self._ready.set()
        self._flushed.set()

    def close(self, code: int, reason: str) -> None:
        """Queue nothing more, forget what is unsent, and close the connection (dropping
        it if the closing handshake takes more than :data:`CLOSE_TIMEOUT` seconds)."""
        if self._closed:
            return
        logger.info("closing a connection: %d %s", code, reason)
        self.forget()
        self._outboxes.spawn(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        try:
            await asyncio.wait_for(self._connection.close(code, reason), CLOSE_TIMEOUT)
        except TimeoutError:
            logger.info("dropping a connection: its closing handshake did not end")
            self._connection.transport.abort()

    def drop(self, why: str) -> None:
        """Forget what is unsent and drop the TCP connection without a closing handshake."""
        if self._closed:
            return
        logger.info("dropping a connection: %s", why)
        self.forget()
        self._connection.transport.abort()


class Outboxes:
    """The outbox of each open connection's session (where the core's pushes go), the
    global budget of unsent bytes, and the watchdog."""

    def __init__(self, limits: ServerLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._by_session: dict[Session, Outbox] = {}
        self._queued = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._to_flush: list[Outbox] = []

    @property
    def queued_bytes(self) -> int:
        """Bytes of the frames queued in every connection's outbox."""
        return self._queued

    def open(self, session: Session, connection: GuardedConnection) -> Outbox:
        outbox = self._by_session[session] = Outbox(connection, self)
        return outbox

    def close(self, session: Session) -> None:
        outbox = self._by_session.pop(session, None)
        if outbox is not None:
            outbox.forget()

    def send(self, session: Session, frame: WireFrame) -> None:
        outbox = self._by_session.get(session)
        if outbox is not None:
            outbox.send(frame)

    # The global budget ---------------------------------------------------------------

    def reserve(self, outbox: Outbox, size: int) -> bool:
        """Count ``size`` more queued bytes for ``outbox``, closing the connections that
        hold the most until they fit; False if ``outbox`` itself was closed for it."""
        limit = self.limits.max_queued_bytes_total
        while limit is not None and self._queued + size > limit:
            largest = max(self._by_session.values(), key=lambda o: o.queued_bytes)
            if largest.queued_bytes == 0:
                break  # nothing to free: a frame larger than the budget goes anyway
            largest.close(1013, "the server holds too many unsent frames: reconnect in a while")
            if largest is outbox:
                return False
        self._queued += size
        return True

    def release(self, size: int) -> None:
        self._queued -= size

    def now(self) -> float:
        return self._clock()

    def flush_soon(self, outbox: Outbox) -> None:
        """Have ``outbox`` write what it queued once the loop's current callback is
        done: what a callback queues for a connection (a slice of the dispatcher's
        answers) goes out in one write, with no task woken per connection."""
        self._to_flush.append(outbox)
        if len(self._to_flush) == 1:
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        outboxes, self._to_flush = self._to_flush, []
        for outbox in outboxes:
            outbox.flush()

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run ``coroutine`` (a close) as a task that the server keeps until it ends."""
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # The watchdog ----------------------------------------------------------------------

    def tick(self) -> float | None:
        """Seconds between two rounds of the watchdog (None: no watchdog needed)."""
        bound = self.limits.max_backlog_age
        if bound is None:
            return None if self.limits.max_write_buffer is None else MAX_WATCH_TICK
        return min(MAX_WATCH_TICK, bound / 4)

    async def watch(self) -> None:
        """Check every connection's outbox each :meth:`tick`, forever."""
        tick = self.tick()
        if tick is None:
            return
        while True:
            await asyncio.sleep(tick)
            now = self._clock()
            for outbox in tuple(self._by_session.values()):
                outbox.check(now)
