"""An overloaded server refuses new handshakes with HTTP 503 and a ``Retry-After``.

When thousands of clients reconnect at once (after a restart, a network blip),
each reconnection brings resumes for the core's worker: served all at once they
would keep the requests of the connections already open waiting, and the herd
would grow with every client that gives up and reconnects. :class:`Overload`
watches the worker's **backlog**: how long the oldest request not answered yet
has waited. While it is past :data:`MAX_BACKLOG`, :meth:`Overload.retry_after`
gives the seconds a refused client should wait: a random whole number in
``[base, 2 * base]``, ``base`` being the larger of 1 s and the backlog, so that a
herd that was refused comes back spread over a window instead of all at once.
:func:`overloaded` is the response. The check costs no token verification: it
runs first, before anything else in the handshake. (The event loop's own lag is
not a sign: a client in the server's process, as in tests, makes it lag without
loading the server.)
"""

from __future__ import annotations

import math
import random
from http import HTTPStatus

from websockets.http11 import Response

from chats_store.errors import ErrorCode
from chats_store.server.gate import refusal
from chats_store.server.worker import CoreWorker

__all__ = ["MAX_BACKLOG", "Overload", "overloaded"]

MAX_BACKLOG = 2.0
"""Seconds the worker's oldest waiting request may have waited before handshakes are refused."""


class Overload:
    """The server's load as the handshake sees it (see the module's docstring)."""

    def __init__(
        self,
        worker: CoreWorker,
        *,
        max_backlog: float = MAX_BACKLOG,
        randomness: random.Random | None = None,
    ) -> None:
        self._worker = worker
        self._max_backlog = max_backlog
        self._random = randomness or random.Random()

    def retry_after(self) -> int | None:
        """Seconds a new client should wait before it tries again; None when not overloaded."""
        backlog = self._worker.backlog
        if backlog <= self._max_backlog:
            return None
        base = max(1, math.ceil(backlog))
        return self._random.randint(base, 2 * base)


def overloaded(retry_after: int) -> Response:
    """HTTP 503 ``server_busy`` with ``Retry-After`` (whole seconds), as every refusal."""
    return refusal(
        HTTPStatus.SERVICE_UNAVAILABLE,
        ErrorCode.SERVER_BUSY,
        f"the server is overloaded - retry in {retry_after} s",
        retry_after,
    )
