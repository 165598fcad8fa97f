"""An overloaded server refuses new handshakes with HTTP 503 and a ``Retry-After``.

When thousands of clients reconnect at once (after a restart, a network blip), each
handshake costs the event loop, and each reconnection brings resumes for the core's
worker: served all at once they would stall the connections already open, whose
keepalives would then time out and reconnect too. :class:`Overload` watches two
signs: the event loop's **lag** (how late a task that sleeps :data:`PROBE_PERIOD`
wakes up, averaged over the last few samples) and the worker's **backlog** (how
long the oldest request not started yet has waited). While either is past its
bound (:data:`MAX_LAG`, :data:`MAX_BACKLOG`), :meth:`Overload.retry_after` gives the
seconds a refused client should wait: a random whole number in
``[base, 2 * base]``, ``base`` being the larger of 1 s and the backlog, so that a
herd that was refused comes back spread over a window instead of all at once.
:func:`overloaded` is the response. The check costs no token verification: it
runs first, before anything else in the handshake.
"""

from __future__ import annotations

import asyncio
import math
import random
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Response

from chats_store.server.worker import CoreWorker

__all__ = ["MAX_BACKLOG", "MAX_LAG", "PROBE_PERIOD", "Overload", "overloaded"]

PROBE_PERIOD = 0.05
"""Seconds between two samples of the event loop's lag."""
MAX_LAG = 0.25
"""Average lag of the event loop (seconds) past which the server refuses handshakes."""
MAX_BACKLOG = 2.0
"""Seconds the worker's oldest waiting request may have waited before handshakes are refused."""
_SMOOTHING = 0.3


class Overload:
    """The server's load as the handshake sees it (see the module's docstring)."""

    def __init__(
        self,
        worker: CoreWorker,
        *,
        max_lag: float = MAX_LAG,
        max_backlog: float = MAX_BACKLOG,
        randomness: random.Random | None = None,
    ) -> None:
        self._worker = worker
        self._max_lag = max_lag
        self._max_backlog = max_backlog
        self._random = randomness or random.Random()
        self.lag = 0.0
        """The event loop's recent lag, in seconds (an exponential moving average)."""

    async def watch(self) -> None:
        """Sample the event loop's lag until cancelled (run it as a task of the server)."""
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            await asyncio.sleep(PROBE_PERIOD)
            late = max(0.0, loop.time() - began - PROBE_PERIOD)
            self.lag += _SMOOTHING * (late - self.lag)

    def retry_after(self) -> int | None:
        """Seconds a new client should wait before it tries again; None when not overloaded."""
        backlog = self._worker.backlog
        if self.lag <= self._max_lag and backlog <= self._max_backlog:
            return None
        base = max(1, math.ceil(backlog))
        return self._random.randint(base, 2 * base)


def overloaded(connection: ServerConnection, retry_after: int) -> Response:
    """HTTP 503 with ``Retry-After`` (whole seconds) and a one-line reason."""
    response = connection.respond(
        HTTPStatus.SERVICE_UNAVAILABLE,
        f"server_overloaded: the server is overloaded - retry in {retry_after} s\n",
    )
    response.headers["Retry-After"] = str(retry_after)
    return response
