"""Fair shares: token buckets per user and per address, flood detection, the settings (no I/O).

**Requests.** Every user has one :class:`TokenBucket` of ``burst`` tokens refilled
at ``rate`` per second, shared by all of that user's connections and kept across
reconnections (a bucket is dropped only once it is full again and no connection
holds it: a fresh one would be no different). Every frame a connection sends
takes one token; a frame that finds the bucket empty is *refused*: it gets an
``error`` reply ``rate_limited`` and is not processed. A request whose reply is
large costs more, after the fact: :func:`reply_cost` more tokens, one per
:data:`REPLY_BYTES_PER_TOKEN` bytes of its reply (a resume, a join snapshot, a
history page), so a user pays for what the server sends as well as for what it
asks; the bucket may go below zero, and the user's next requests wait until it
is back above one.

**Floods.** A connection that keeps sending while refused is flooding. Each
connection's :class:`RateLimiter` notes the time of every refusal it got; when
more than ``flood_limit`` refusals fall within ``flood_window`` seconds the
verdict is :data:`Verdict.FLOOD` and the server closes that connection with 1008
(policy violation); the user's other connections are not closed. ``flood_limit``
is ``(flood_factor - 1) * rate * flood_window``: what a client sending
``flood_factor`` (5) times the allowed rate for ``flood_window`` (2) seconds has
refused, since only ``rate`` per second of it are let through. By default (20
requests/s, bursts of 200): more than 160 refusals within 2 s. A client that
backs off when refused never comes near it.

**Handshakes and pings** take tokens of their own buckets (per user, per network
address, per connection for pings), with the rates of :class:`ServerLimits`.

Time is given by the caller (``time.monotonic()`` in the server), so tests need no
sleeping.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from enum import Enum
from typing import Any

import attrs

from chats_store.protocol import MAX_SERVER_FRAME_SIZE

__all__ = [
    "DEFAULT_BURST",
    "DEFAULT_RATE",
    "FLOOD_FACTOR",
    "FLOOD_WINDOW",
    "MAX_QUEUED_FRAMES",
    "REPLY_BYTES_PER_TOKEN",
    "Buckets",
    "RateLimiter",
    "ServerLimits",
    "TokenBucket",
    "Verdict",
    "reply_cost",
]

DEFAULT_RATE = 20.0
"""Requests per second a user may send, sustained, over all its connections."""
DEFAULT_BURST = 200
"""Requests a user may send at once (the bucket's size)."""
FLOOD_FACTOR = 5.0
FLOOD_WINDOW = 2.0
REPLY_BYTES_PER_TOKEN = 16 * 1024
"""A reply costs one more token for each this many bytes it holds."""
MAX_QUEUED_FRAMES = 1000
"""Unsent frames a connection may have queued before it is closed as too slow (default)."""


def reply_cost(size: int) -> int:
    """The tokens a reply of ``size`` bytes costs beyond the request's own token."""
    return size // REPLY_BYTES_PER_TOKEN


def _check_rate(rate: object, burst: object, what: str) -> None:
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
        raise ValueError(f"the {what} rate must be a positive number, not {rate!r}")
    if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
        raise ValueError(f"the {what} burst must be a positive integer, not {burst!r}")


class Verdict(Enum):
    """What to do with one request."""

    ACCEPT = "accept"
    """Process it."""
    REFUSE = "refuse"
    """Answer ``rate_limited`` without processing it."""
    FLOOD = "flood"
    """Close the connection with 1008."""


class TokenBucket:
    """``burst`` tokens refilled at ``rate`` per second; full at ``now``, its creation."""

    __slots__ = ("_tokens", "_updated", "burst", "rate")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        _check_rate(rate, burst, "token bucket's")
        self.rate = float(rate)
        self.burst = burst
        self._tokens = float(burst)
        self._updated = now

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        self._updated = max(self._updated, now)
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)

    def take(self, now: float) -> bool:
        """Take one token if there is one (then True)."""
        self._refill(now)
        if self._tokens >= 1.0 - 1e-9:  # a token back after exactly 1/rate s, despite rounding
            self._tokens = max(0.0, self._tokens - 1.0) if self._tokens < 1.0 else self._tokens - 1
            return True
        return False

    def charge(self, tokens: float) -> None:
        """Take ``tokens`` more, after the fact: the bucket may go below zero."""
        self._tokens -= tokens

    def retry_after(self) -> float:
        """Seconds until the next token (0 if one is there), as of the last take."""
        return max(0.0, (1.0 - self._tokens) / self.rate)

    def full_at(self) -> float:
        """When the bucket will be full again if nothing takes from it."""
        return self._updated + max(0.0, self.burst - self._tokens) / self.rate


class RateLimiter:
    """One connection's limiter: a token bucket (shared with the user's other
    connections when ``bucket`` is given, else its own of ``rate`` and ``burst``)
    plus this connection's flood detection (see the module's docstring). ``now`` is
    the time of creation."""

    __slots__ = ("_flood_limit", "_flood_window", "_refusals", "bucket")

    def __init__(
        self,
        rate: float,
        burst: int,
        now: float,
        *,
        flood_factor: float = FLOOD_FACTOR,
        flood_window: float = FLOOD_WINDOW,
        bucket: TokenBucket | None = None,
    ) -> None:
        _check_rate(rate, burst, "request")
        if not flood_factor > 1 or not flood_window > 0:
            raise ValueError("flood_factor must be above 1 and flood_window above 0")
        self.bucket = TokenBucket(rate, burst, now) if bucket is None else bucket
        self._flood_window = flood_window
        self._flood_limit = max(1, math.ceil((flood_factor - 1) * rate * flood_window))
        self._refusals: deque[float] = deque(maxlen=self._flood_limit + 1)

    @property
    def rate(self) -> float:
        return self.bucket.rate

    @property
    def burst(self) -> int:
        return self.bucket.burst

    @property
    def flood_limit(self) -> int:
        """Refusals within ``flood_window`` seconds beyond which the verdict is FLOOD."""
        return self._flood_limit

    def admit(self, now: float) -> Verdict:
        """The verdict on one request arriving at ``now`` (it takes a token if ACCEPT)."""
        if self.bucket.take(now):
            return Verdict.ACCEPT
        refusals = self._refusals
        refusals.append(now)
        if len(refusals) > self._flood_limit and now - refusals[0] <= self._flood_window:
            return Verdict.FLOOD
        return Verdict.REFUSE

    def charge(self, tokens: float) -> None:
        """Take ``tokens`` more from the bucket (the cost of a large reply)."""
        self.bucket.charge(tokens)

    def retry_after(self) -> float:
        """Seconds until the next token (0 if one is there)."""
        return self.bucket.retry_after()


class Buckets:
    """One :class:`TokenBucket` per key (a user id, a network address), made on demand.

    :meth:`hold` and :meth:`release` bracket a connection's use of its user's bucket;
    :meth:`take` takes one token of a key's bucket at once (a handshake). A bucket no
    connection holds is dropped once it is full again, when a later call sweeps: the
    memory is that of the keys seen within the time a bucket takes to refill.
    """

    def __init__(self, rate: float, burst: int) -> None:
        _check_rate(rate, burst, "bucket")
        self.rate = float(rate)
        self.burst = burst
        self._buckets: dict[str, TokenBucket] = {}
        self._holders: dict[str, int] = {}
        self._idle: OrderedDict[str, None] = OrderedDict()
        """Keys no connection holds, least recently used first."""

    def __len__(self) -> int:
        return len(self._buckets)

    def __contains__(self, key: str) -> bool:
        return key in self._buckets

    def _bucket(self, key: str, now: float) -> TokenBucket:
        self._sweep(now)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
        return bucket

    def _sweep(self, now: float) -> None:
        """Drop the least recently used idle buckets that are full again."""
        for _ in range(2):  # a bounded amount of work per call keeps up with the calls
            if not self._idle:
                return
            key = next(iter(self._idle))
            if self._buckets[key].full_at() > now:
                return
            del self._idle[key], self._buckets[key]

    def hold(self, key: str, now: float) -> TokenBucket:
        """``key``'s bucket, held until :meth:`release`."""
        bucket = self._bucket(key, now)
        self._holders[key] = self._holders.get(key, 0) + 1
        self._idle.pop(key, None)
        return bucket

    def release(self, key: str) -> None:
        holders = self._holders[key] - 1
        if holders:
            self._holders[key] = holders
        else:
            del self._holders[key]
            self._idle[key] = None

    def take(self, key: str, now: float) -> float | None:
        """Take a token of ``key``'s bucket: None if there was one, else the seconds to
        wait for the next one."""
        bucket = self._bucket(key, now)
        if key not in self._holders:
            self._idle[key] = None
            self._idle.move_to_end(key)
        if bucket.take(now):
            return None
        return bucket.retry_after()


def _check_limit(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    integer = attribute.metadata["integer"]
    if value is None and attribute.metadata["limit"]:
        return
    kind = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not value > 0:
        what = "integer" if integer else "number"
        lifted = " or None" if attribute.metadata["limit"] else ""
        raise ValueError(f"{attribute.name} must be a positive {what}{lifted}, not {value!r}")


def _limit(default: float, help: str, *, integer: bool = True) -> Any:
    """A setting that None lifts."""
    metadata = {"help": help, "integer": integer, "limit": True}
    return attrs.field(default=default, validator=_check_limit, metadata=metadata)


def _burst(default: int, help: str) -> Any:
    """The size of a bucket whose rate is another setting (never None)."""
    metadata = {"help": help, "integer": True, "limit": False}
    return attrs.field(default=default, validator=_check_limit, metadata=metadata)


@attrs.frozen
class ServerLimits:
    """The reference server's protection settings besides ``run_server``'s own
    (``rate_limit``, ``rate_burst``, ``handshake_timeout``, ``max_connections_per_user``).

    Every limit is a positive number, or None for no limit (bursts are the sizes of
    the buckets of the rates before them); the defaults suit a server facing the
    internet directly. Behind a reverse proxy every client has the proxy's address:
    raise or lift the ``*_per_ip`` limits there (the proxy limits per client). An
    IPv6 address counts by its /64 network. ``chats-store serve`` has one flag per
    setting (``--max-connections`` for ``max_connections``...); :meth:`off` lifts
    every limit (benchmarks, tests).
    """

    max_connections: int | None = _limit(10_000, "open connections in all (then HTTP 503)")
    max_connections_per_ip: int | None = _limit(
        1_000, "open connections from one network address (then HTTP 429)"
    )
    max_handshakes: int | None = _limit(
        500, "handshakes in progress in all (then HTTP 503 at once)"
    )
    max_handshakes_per_ip: int | None = _limit(
        50, "handshakes in progress from one network address (then HTTP 429 at once)"
    )
    handshake_rate_per_ip: float | None = _limit(
        20.0, "handshakes per second from one network address, sustained", integer=False
    )
    handshake_burst_per_ip: int = _burst(1_000, "handshakes from one network address at once")
    handshake_rate_per_user: float | None = _limit(
        2.0, "handshakes per second of one user, sustained", integer=False
    )
    handshake_burst_per_user: int = _burst(30, "handshakes of one user at once")
    max_header_bytes: int | None = _limit(
        16 * 1024, "bytes of a handshake request's line and headers (then HTTP 431)"
    )
    max_headers: int | None = _limit(64, "headers of a handshake request (then HTTP 431)")
    ping_rate: float | None = _limit(
        1.0, "pings per second a connection may send, sustained (then closed 1008)", integer=False
    )
    ping_burst: int = _burst(20, "pings a connection may send at once")
    max_queued_frames: int | None = _limit(
        MAX_QUEUED_FRAMES, "frames queued in one connection's outbox (then closed 1008)"
    )
    max_queued_bytes: int | None = _limit(
        2 * MAX_SERVER_FRAME_SIZE,
        "bytes of frames queued in one connection's outbox (then closed 1008)",
    )
    max_queued_bytes_total: int | None = _limit(
        256 * 1024 * 1024,
        "bytes of frames queued in all outboxes (then the connection holding the most is "
        "closed 1013)",
    )
    max_backlog_age: float | None = _limit(
        30.0,
        "seconds a frame may wait to be read by the client (then closed 1008)",
        integer=False,
    )
    max_write_buffer: int | None = _limit(
        2 * MAX_SERVER_FRAME_SIZE,
        "bytes a connection's transport may hold unwritten (then dropped at once)",
    )

    @classmethod
    def off(cls) -> ServerLimits:
        """Every limit lifted (for benchmarks and tests that open many connections)."""
        lifted: dict[str, Any] = {f.name: None for f in attrs.fields(cls) if f.metadata["limit"]}
        return cls(**lifted)
