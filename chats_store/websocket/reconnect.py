"""When to try again: the reconnection policy and its schedule (no I/O).

:class:`ReconnectSchedule` answers one question, "how long until the next
attempt?", after an attempt failed or after a connection ended. It keeps the
backoff growing across connections that do not last: a server that breaks the
protocol right after each handshake (or closes it at once) is retried more and
more slowly, not at once each time, and only a connection that stayed open for
``ReconnectPolicy.healthy_after`` seconds resets the backoff. A server that says
when to come back (``Retry-After`` on a 429 or 503 answer to the handshake) is
heard, with jitter so that the clients it turned away do not return together.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Generator
from email.utils import parsedate_to_datetime

import attrs
from websockets.client import backoff

__all__ = ["MAX_RETRY_AFTER", "RETRY_AFTER_JITTER", "ReconnectPolicy", "ReconnectSchedule"]

MAX_RETRY_AFTER = 600.0
"""The longest ``Retry-After`` (seconds) the client waits for: past it, a server (or
anything between) could stop the client for good with one header."""

RETRY_AFTER_JITTER = 0.25
"""A ``Retry-After`` of ``s`` seconds is waited ``s`` to ``s * (1 + RETRY_AFTER_JITTER)``."""


@attrs.frozen
class ReconnectPolicy:
    """Delays (seconds) between reconnection attempts after a drop.

    The first retry after a drop is immediate; if it fails, the next waits a
    random time up to ``first_delay`` (jitter, so that many clients do not come
    back at once), then ``min_delay`` growing by ``factor`` up to ``max_delay``
    while attempts keep failing. A connection that ends within ``healthy_after``
    seconds of its handshake counts as a failed attempt (the sequence goes on, and
    its next retry is not immediate); only one that stayed open that long resets
    the sequence. The defaults bring a chat back within about a second after a
    short outage, and retry a server that drops every connection at once about
    once every ``max_delay`` seconds.
    """

    first_delay: float = 0.5
    min_delay: float = 0.5
    max_delay: float = 10.0
    factor: float = 1.618
    healthy_after: float = 10.0


class ReconnectSchedule:
    """The delays of one :class:`ReconnectPolicy`, for one connection's life.

    The backoff is ``websockets``' own (:func:`websockets.client.backoff`), restarted
    only by a healthy connection.
    """

    def __init__(self, policy: ReconnectPolicy) -> None:
        self._policy = policy
        self._delays: Generator[float] | None = None

    def _next_backoff(self) -> float:
        if self._delays is None:
            policy = self._policy
            self._delays = backoff(
                policy.first_delay, policy.min_delay, policy.max_delay, policy.factor
            )
        return next(self._delays)

    def after_failure(self, retry_after: float | None = None) -> float:
        """The delay after an attempt that failed; ``retry_after``: what the server asked.

        The server's delay is a minimum: it is kept when the backoff has grown past it.
        """
        delay = self._next_backoff()
        if retry_after is not None:
            wait = min(max(retry_after, 0.0), MAX_RETRY_AFTER)
            delay = max(delay, wait * (1 + RETRY_AFTER_JITTER * random.random()))
        return delay

    def after_drop(self, lasted: float) -> float:
        """The delay after a connection that was open for ``lasted`` seconds ended."""
        if lasted >= self._policy.healthy_after:
            self._delays = None
            return 0.0
        return self._next_backoff()


def retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """The seconds a ``Retry-After`` header value asks for (a number, or an HTTP date).

    None when there is no header or it cannot be read.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return parsedate_to_datetime(value).timestamp() - now()
    except (TypeError, ValueError):
        return None
