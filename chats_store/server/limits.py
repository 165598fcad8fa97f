"""Per-connection request rate limiting: a token bucket and a flood detector (no I/O).

Each connection of the reference server has one :class:`RateLimiter`. Every frame
it sends costs one token; the bucket holds ``burst`` tokens and refills at
``rate`` tokens per second. A frame that finds the bucket empty is *refused*: it
gets an ``error`` reply ``rate_limited`` and is not processed.

A client that keeps sending while refused is flooding. The limiter notes the time
of every refusal; when more than ``flood_limit`` refusals fall within
``flood_window`` seconds the verdict is :data:`FLOOD` and the server closes the
connection with 1008 (policy violation). ``flood_limit`` is
``(flood_factor - 1) * rate * flood_window``: what a client sending
``flood_factor`` (5) times the allowed rate for ``flood_window`` (2) seconds has
refused, since only ``rate`` per second of it are let through. By default
(20 requests/s, bursts of 200): more than 160 refusals within 2 s. A client that
backs off when refused never comes near it.

Time is given by the caller (``time.monotonic()`` in the server), so tests need no
sleeping.
"""

from __future__ import annotations

import math
from collections import deque
from enum import Enum

__all__ = [
    "DEFAULT_BURST",
    "DEFAULT_RATE",
    "FLOOD_FACTOR",
    "FLOOD_WINDOW",
    "RateLimiter",
    "Verdict",
]

DEFAULT_RATE = 20.0
"""Requests per second a connection may send, sustained."""
DEFAULT_BURST = 200
"""Requests a connection may send at once (the bucket's size)."""
FLOOD_FACTOR = 5.0
FLOOD_WINDOW = 2.0


class Verdict(Enum):
    """What to do with one request."""

    ACCEPT = "accept"
    """Process it."""
    REFUSE = "refuse"
    """Answer ``rate_limited`` without processing it."""
    FLOOD = "flood"
    """Close the connection with 1008."""


class RateLimiter:
    """A token bucket of ``burst`` tokens refilled at ``rate`` per second, plus flood
    detection (see the module's docstring). ``now`` is the time of creation."""

    __slots__ = (
        "_flood_limit",
        "_flood_window",
        "_refusals",
        "_tokens",
        "_updated",
        "burst",
        "rate",
    )

    def __init__(
        self,
        rate: float,
        burst: int,
        now: float,
        *,
        flood_factor: float = FLOOD_FACTOR,
        flood_window: float = FLOOD_WINDOW,
    ) -> None:
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
            raise ValueError(f"the rate limit must be a positive number, not {rate!r}")
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ValueError(f"the burst must be a positive integer, not {burst!r}")
        if not flood_factor > 1 or not flood_window > 0:
            raise ValueError("flood_factor must be above 1 and flood_window above 0")
        self.rate = float(rate)
        self.burst = burst
        self._tokens = float(burst)
        self._updated = now
        self._flood_window = flood_window
        self._flood_limit = max(1, math.ceil((flood_factor - 1) * rate * flood_window))
        self._refusals: deque[float] = deque(maxlen=self._flood_limit + 1)

    @property
    def flood_limit(self) -> int:
        """Refusals within ``flood_window`` seconds beyond which the verdict is FLOOD."""
        return self._flood_limit

    def admit(self, now: float) -> Verdict:
        """The verdict on one request arriving at ``now`` (it takes a token if ACCEPT)."""
        elapsed = max(0.0, now - self._updated)
        self._updated = max(self._updated, now)
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
        if self._tokens >= 1.0 - 1e-9:  # a token back after exactly 1/rate s, despite rounding
            self._tokens = max(0.0, self._tokens - 1.0)
            return Verdict.ACCEPT
        refusals = self._refusals
        refusals.append(now)
        if len(refusals) > self._flood_limit and now - refusals[0] <= self._flood_window:
            return Verdict.FLOOD
        return Verdict.REFUSE

    def retry_after(self) -> float:
        """Seconds until the next token (0 if one is there)."""
        return max(0.0, (1.0 - self._tokens) / self.rate)
