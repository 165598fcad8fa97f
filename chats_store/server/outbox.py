"""Each connection's outbox: frames queued without waiting, written in order, bounded.

The core's replies and pushes are queued in the connection's :class:`Outbox` at
once (nobody waits for a slow client) and written in order by one writer task
(:meth:`Outbox.run`). Until the peer has read it, a frame is *unsent*: queued in
the outbox, or handed to the transport and still in its write buffer (a frame's
bytes leave the buffer when the kernel takes them; the outbox follows that from
the buffer's size). What a connection may hold unsent is bounded, and a watchdog
(:meth:`Outboxes.watch`) checks every connection a few times per
``max_backlog_age``:

* at most ``max_queued_frames`` frames and ``max_queued_bytes`` bytes unsent: the
  next frame closes the connection with **1008** ("read faster");
* all connections together at most ``max_queued_bytes_total`` bytes: a frame that
  does not fit closes the connection holding the most with **1013** (try again
  later), as many as it takes;
* the oldest unsent frame at most ``max_backlog_age`` seconds old: an older one
  closes the connection with **1008**, so that its client resyncs instead of
  showing old messages (a slow reader is closed within ``max_backlog_age`` plus one
  tick of the watchdog, a quarter of it, at most 1 s);
* a write buffer that stays non-empty without shrinking for ``max_backlog_age``
  seconds, or that holds more than ``max_write_buffer`` bytes, drops the
  connection at once (a peer that reads nothing cannot read a close frame either;
  this covers the pongs a ping flood makes, and websockets' keepalive, which waits
  for the buffer to drain before its ping time-out starts).

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

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from chats_store.protocol import MAX_SERVER_FRAME_SIZE, encode_event
from chats_store.server.limits import ServerLimits
from chats_store.server.service import Push, Session

__all__ = ["Outbox", "Outboxes", "fits_in_a_frame"]

logger = logging.getLogger("chats_store.server")

MAX_WATCH_TICK = 1.0
"""Seconds between two rounds of the watchdog, at most."""


def fits_in_a_frame(text: str) -> bool:
    """Whether ``text`` (ASCII, as every frame the server encodes) may be sent."""
    return len(text) <= MAX_SERVER_FRAME_SIZE


def _wire_size(size: int) -> int:
    """The bytes a text frame of ``size`` bytes takes on the wire (a server's frames
    are not masked: a 2, 4 or 10 byte header)."""
    return size + (2 if size < 126 else 4 if size < 65536 else 10)


def write_buffer_over(connection: ServerConnection, limit: int | None) -> bool:
    """Whether the connection's transport holds more than ``limit`` bytes unwritten."""
    return limit is not None and connection.transport.get_write_buffer_size() > limit


class Outbox:
    """One connection's unsent frames, written in order by :meth:`run` (see the module)."""

    def __init__(self, connection: ServerConnection, outboxes: Outboxes, now: float) -> None:
        self._connection = connection
        self._outboxes = outboxes
        self._limits = outboxes.limits
        self._queued: deque[tuple[str, float]] = deque()
        """Frames not yet handed to the connection, with the time each was queued."""
        self._in_flight: deque[tuple[int, int, float]] = deque()
        """Frames handed to the connection and maybe still in its write buffer: the
        wire offset where each ends, its size, the time it was queued."""
        self._handed = 0
        """Wire bytes handed to the connection so far."""
        self.unsent_bytes = 0
        """Bytes of the frames queued or in flight (counted in the global budget)."""
        self._ready = asyncio.Event()
        self._closed = False
        self._buffered = 0
        self._flushed = 0
        self._progress_at = now
        """When the write buffer was last seen empty or shrinking."""

    @property
    def unsent_frames(self) -> int:
        return len(self._queued) + len(self._in_flight)

    def send(self, text: str) -> None:
        """Queue ``text``, or close the connection if that breaks a bound."""
        if self._closed:
            return
        if not fits_in_a_frame(text):
            logger.error("a frame of %d bytes was not sent: over the maximum", len(text))
            self.close(1011, "internal error: the server made a frame over the maximum")
            return
        size = len(text)
        limits = self._limits
        frames_over = limits.max_queued_frames is not None and (
            self.unsent_frames >= limits.max_queued_frames
        )
        bytes_over = limits.max_queued_bytes is not None and (
            self.unsent_bytes + size > limits.max_queued_bytes
        )
        if frames_over or bytes_over:
            self.close(
                1008,
                f"too many unsent frames ({self.unsent_frames}, {self.unsent_bytes} bytes): "
                "read faster",
            )
            return
        if not self._outboxes.reserve(self, size):
            return  # this connection was the one closed to make room
        self.unsent_bytes += size
        self._queued.append((text, self._outboxes.now()))
        self._ready.set()

    async def run(self) -> None:
        """Write the queued frames in order until the connection closes."""
        try:
            while not self._closed:
                await self._ready.wait()
                self._ready.clear()
                while self._queued and not self._closed:
                    text, queued_at = self._queued.popleft()
                    self._handed += _wire_size(len(text))
                    self._in_flight.append((self._handed, len(text), queued_at))
                    await self._connection.send(text)
        except ConnectionClosed:
            return

    def _account_flushed(self) -> int:
        """Forget the frames the transport has written; the size of its write buffer."""
        buffered = self._connection.transport.get_write_buffer_size()
        flushed = self._handed - buffered
        in_flight = self._in_flight
        released = 0
        while in_flight and in_flight[0][0] <= flushed:
            released += in_flight.popleft()[1]
        if released:
            self.unsent_bytes -= released
            self._outboxes.release(released)
        return buffered

    def backlog_age(self, now: float) -> float:
        """Seconds the oldest unsent frame has waited (0 when none)."""
        self._account_flushed()
        if self._in_flight:
            return now - self._in_flight[0][2]
        if self._queued:
            return now - self._queued[0][1]
        return 0.0

    def check(self, now: float) -> None:
        """The watchdog's round: close or drop the connection if it broke a bound."""
        if self._closed:
            return
        limits = self._limits
        if write_buffer_over(self._connection, limits.max_write_buffer):
            self.drop("its write buffer is over the limit")
            return
        buffered = self._account_flushed()
        flushed = self._handed - buffered
        if buffered == 0 or buffered < self._buffered or flushed > self._flushed:
            self._progress_at = now
        self._buffered, self._flushed = buffered, flushed
        bound = limits.max_backlog_age
        if bound is None:
            return
        if now - self._progress_at > bound:
            self.drop(f"its write buffer made no progress for {bound:g} s")
            return
        age = self.backlog_age(now)
        if age > bound:
            self.close(
                1008,
                f"too slow: a frame waited {age:.1f} s to be read (more than {bound:g} s) - "
                "reconnect and resync",
            )

    def forget(self) -> None:
        """Queue nothing more and forget what is unsent (the connection is ending)."""
        self._closed = True
        self._queued.clear()
        self._in_flight.clear()
        if self.unsent_bytes:
            self._outboxes.release(self.unsent_bytes)
            self.unsent_bytes = 0
        self._ready.set()

    def close(self, code: int, reason: str) -> None:
        """Queue nothing more, forget what is unsent, and close the connection."""
        if self._closed:
            return
        logger.info("closing a connection: %d %s", code, reason)
        self.forget()
        self._outboxes.spawn(self._connection.close(code, reason))

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
        self._unsent = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def unsent_bytes(self) -> int:
        """Bytes of unsent frames of all connections."""
        return self._unsent

    def open(self, session: Session, connection: ServerConnection) -> Outbox:
        outbox = self._by_session[session] = Outbox(connection, self, self._clock())
        return outbox

    def close(self, session: Session) -> None:
        outbox = self._by_session.pop(session, None)
        if outbox is not None:
            outbox.forget()

    def send(self, session: Session, text: str) -> None:
        outbox = self._by_session.get(session)
        if outbox is not None:
            outbox.send(text)

    def publish(self, pushes: tuple[Push, ...]) -> None:
        """Encode each push once and queue the text for each of its recipients."""
        by_session = self._by_session
        for push in pushes:
            text = encode_event(push.event, seq=push.seq)
            for recipient in push.recipients:
                outbox = by_session.get(recipient)
                if outbox is not None:
                    outbox.send(text)

    # The global budget ---------------------------------------------------------------

    def reserve(self, outbox: Outbox, size: int) -> bool:
        """Count ``size`` more unsent bytes for ``outbox``, closing the connections that
        hold the most until they fit; False if ``outbox`` itself was closed for it."""
        limit = self.limits.max_queued_bytes_total
        while limit is not None and self._unsent + size > limit:
            largest = max(self._by_session.values(), key=lambda o: o.unsent_bytes)
            if largest.unsent_bytes == 0:
                break  # nothing to free: a frame larger than the budget goes anyway
            largest.close(1013, "the server holds too many unsent frames: reconnect in a while")
            if largest is outbox:
                return False
        self._unsent += size
        return True

    def release(self, size: int) -> None:
        self._unsent -= size

    def now(self) -> float:
        return self._clock()

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
