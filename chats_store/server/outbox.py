"""Each connection's outbox: frames queued without waiting, written in order, bounded.

The core's replies and pushes are queued in the connection's :class:`Outbox` at
once (nobody waits for a slow client) and written in order by one writer task
(:meth:`Outbox.run`), which hands each frame to ``websockets`` (and waits while the
transport's write buffer is full). The memory a connection takes is bounded:

* at most ``max_queued_frames`` frames and ``max_queued_bytes`` bytes queued in its
  outbox: the next frame closes the connection with **1008** ("read faster");
* at most ``max_write_buffer`` bytes in its transport's write buffer (``websockets``
  adds only what it must answer there, pongs and the closing handshake): more, and
  the connection is dropped at once;
* all outboxes together at most ``max_queued_bytes_total`` bytes: a frame that does
  not fit closes the connection holding the most with **1013** (try again later),
  as many as it takes.

And so is how stale what it shows may be. Until the peer has received it, a frame
is *unsent*: queued, in the transport's write buffer, or in the kernel's send queue
(on Linux, where ``SIOCOUTQ`` tells its size; elsewhere a frame the kernel took
counts as received). The peer receives a frame when its kernel acknowledges it:
what it has not read from its own receive buffer stays invisible, up to that
buffer's size, which a peer that reads slowly does not grow. A watchdog
(:meth:`Outboxes.watch`) looks at every connection each quarter of
``max_backlog_age`` (at most every second):

* the oldest unsent frame at most ``max_backlog_age`` seconds old: an older one
  closes the connection with **1008**, so that its client resyncs instead of
  showing old messages (a slow reader is closed within ``max_backlog_age`` plus one
  round of the watchdog);
* bytes on their way that the peer takes none of for ``max_backlog_age`` seconds
  drop the connection (a peer that reads nothing cannot read a close frame either;
  this covers websockets' keepalive, which waits for the write buffer to drain
  before its ping time-out starts).

Every frame is checked against the protocol's maximum
(:data:`~chats_store.protocol.MAX_SERVER_FRAME_SIZE`) before it is queued; one
over it is never sent (a bug: logged, and the connection closed with 1011).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from chats_store.protocol import MAX_SERVER_FRAME_SIZE, encode_event
from chats_store.server.limits import ServerLimits
from chats_store.server.service import Push, Session

if sys.platform == "linux":  # the kernel's send queue (SIOCOUTQ is TIOCOUTQ)
    import fcntl
    import termios

__all__ = ["Outbox", "Outboxes", "fits_in_a_frame", "write_buffer_over"]

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


def _kernel_unsent(connection: ServerConnection) -> int:
    """Bytes the kernel holds for the socket that the peer has not acknowledged yet
    (``SIOCOUTQ``; 0 where the platform cannot tell). A peer acknowledges what reaches
    its own receive buffer, read or not: what it has not read stays invisible up to the
    size of that buffer (which a peer that reads slowly does not grow)."""
    if sys.platform != "linux":
        return 0
    sock = connection.transport.get_extra_info("socket")
    if sock is None:
        return 0
    try:
        unsent = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except (OSError, ValueError):
        return 0
    return int.from_bytes(unsent, sys.byteorder, signed=True)


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
        self.queued_bytes = 0
        """Bytes of the queued frames (counted in the global budget)."""
        self._in_flight: deque[tuple[int, float]] = deque()
        """Frames handed to the connection that the peer may not have received: the
        wire offset where each ends, and the time it was queued."""
        self._handed = 0
        """Wire bytes handed to the connection so far."""
        self._ready = asyncio.Event()
        self._closed = False
        self._on_the_way = 0
        self._received = 0
        self._progress_at = now
        """When the bytes on their way were last seen taken by the peer (or none)."""

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
                    self.queued_bytes -= len(text)
                    self._outboxes.release(len(text))
                    self._handed += _wire_size(len(text))
                    self._in_flight.append((self._handed, queued_at))
                    await self._connection.send(text)
        except ConnectionClosed:
            return

    def _account_received(self) -> int:
        """Forget the handed frames the peer has received; the bytes still on their way
        (in the transport's write buffer and the kernel's send queue)."""
        connection = self._connection
        on_the_way = connection.transport.get_write_buffer_size() + _kernel_unsent(connection)
        received = self._handed - on_the_way
        in_flight = self._in_flight
        while in_flight and in_flight[0][0] <= received:
            in_flight.popleft()
        return on_the_way

    def backlog_age(self, now: float) -> float:
        """Seconds the oldest unsent frame has waited (0 when none)."""
        self._account_received()
        if self._in_flight:
            return now - self._in_flight[0][1]
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
        on_the_way = self._account_received()
        received = self._handed - on_the_way
        if on_the_way == 0 or on_the_way < self._on_the_way or received > self._received:
            self._progress_at = now
        self._on_the_way, self._received = on_the_way, received
        bound = limits.max_backlog_age
        if bound is None:
            return
        if now - self._progress_at > bound:
            self.drop(f"the peer took none of what was sent to it for {bound:g} s")
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
        if self.queued_bytes:
            self._outboxes.release(self.queued_bytes)
            self.queued_bytes = 0
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
        self._queued = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def queued_bytes(self) -> int:
        """Bytes of the frames queued in every connection's outbox."""
        return self._queued

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
