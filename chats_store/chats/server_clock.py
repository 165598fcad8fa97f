"""The server's clock as the client estimates it, from the times the server sends (pure).

The server enforces its deadlines by its own clock: a token's ``exp``, the end of a
mute. A client whose clock is minutes off must judge them by the server's clock, not
by its own: 10 minutes fast, it would call a fresh 300 s chat token expired; 10
minutes slow, it would show a 5-minute mute as 15.

Every time the server sends is an observation of the offset, server time minus
local time:

* a time the server took before something reached the client, at local time
  ``received`` (a message's ``created_at`` or ``edited_at``, a token's ``iat``),
  says that ``offset >= time - received``: a lower bound;
* the ``server_time`` of a join or resume reply was also taken after its request
  left the client, at local time ``sent``: ``offset <= server_time - sent`` too, so
  the offset is known within the request's round trip.

:class:`ClockOffset` keeps the intersection of every bound observed. An observation
that contradicts it (the local clock was set, or a token came from a machine with
another clock) starts the estimate over from that observation alone.
:class:`ServerClock` holds the current estimate next to the local clock; the Chats
facade owns one (``Chats.server_clock``), feeds it every reply, event and token, and
everything that judges or shows a server deadline reads it: the facade's checks (mutes,
token expiry) and countdowns (the terminal client's mute line).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs

from chats_store.chats.actions import (
    ChatSnapshot,
    MessageEdited,
    MessagePosted,
    Resumption,
)
from chats_store.chats.model import Message
from chats_store.errors import TokenError
from chats_store.tokens import MEMBERSHIP_AUDIENCE, read_unverified_claims

__all__ = ["ClockOffset", "ServerClock", "issued_at", "latest_server_time"]


@attrs.frozen
class ClockOffset:
    """What the client knows of the server's clock: ``lower <= server - local <= upper``.

    Unbounded sides are infinite; the default knows nothing.
    """

    lower: float = -math.inf
    upper: float = math.inf

    def observed(self, lower: float, upper: float = math.inf) -> ClockOffset:
        """The estimate after an observation ``lower <= offset <= upper``.

        The intersection with what was known; the observation alone when they do not
        meet (the newest evidence wins: a local clock that was set makes every earlier
        bound wrong). The same object when the observation teaches nothing.
        """
        low, high = max(self.lower, lower), min(self.upper, upper)
        if low > high:
            return ClockOffset(lower, upper)
        if low == self.lower and high == self.upper:
            return self
        return ClockOffset(low, high)

    @property
    def known(self) -> bool:
        """Whether anything bounds the offset from below (every observation does)."""
        return self.lower > -math.inf

    @property
    def estimate(self) -> float:
        """The likeliest offset: the middle of a round trip's bounds, else the lower
        bound (the server's time of a push, minus its travel), else 0 (no observation:
        the local clock is all there is)."""
        if not self.known:
            return 0.0
        if self.upper == math.inf:
            return self.lower
        return (self.lower + self.upper) / 2


class ServerClock:
    """The server's current time as the client estimates it; call it like a clock.

    ``local`` is the client's own clock (epoch seconds). Calling the object returns
    the local time plus the estimated offset; :meth:`earliest` the earliest the
    server's time can be, for rules that must not refuse what the server would
    accept (a token is expired only if it is by that time).
    """

    __slots__ = ("_local", "offset")

    def __init__(self, local: Callable[[], float]) -> None:
        self._local = local
        self.offset = ClockOffset()
        """The current :class:`ClockOffset`."""

    def __call__(self) -> float:
        return self._local() + self.offset.estimate

    def local(self) -> float:
        """The client's own clock."""
        return self._local()

    def earliest(self) -> float:
        """The earliest the server's clock can read now (``-inf`` before any observation)."""
        return self._local() + self.offset.lower

    def saw(self, server_time: float | None, received: float | None = None) -> None:
        """The server took ``server_time`` before it reached the client at ``received``
        (default: now). None is no observation."""
        if server_time is None:
            return
        if received is None:
            received = self._local()
        self.offset = self.offset.observed(server_time - received)

    def answered(self, server_time: float | None, sent: float, received: float) -> None:
        """A reply to a request sent at local time ``sent``, received at ``received``,
        says the server's clock read ``server_time`` in between."""
        if server_time is None:
            return
        self.offset = self.offset.observed(server_time - received, server_time - sent)


def _latest_time(message: Message) -> float:
    """The later of the message's server times (``created_at``, ``edited_at``)."""
    edited = message.edited_at
    return message.created_at if edited is None else max(message.created_at, edited)


def issued_at(token: str | None, audience: str) -> float | None:
    """The ``iat`` claim of ``token`` (a JWT of ``audience``), None when it has none."""
    if token is None:
        return None
    try:
        claims = read_unverified_claims(token, audience, required=())
    except TokenError:
        return None
    value = claims.get("iat")
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def latest_server_time(value: object) -> float | None:
    """The latest time the server took in ``value``, a reply or an event, or None.

    The times of the messages it holds (``created_at``, ``edited_at``) and, in a
    snapshot or resumption, the ``iat`` of the membership credential the server
    minted for the reply. (A reply's ``server_time`` is not one of them: it bounds the
    offset from both sides, see :meth:`ServerClock.answered`.)
    """
    messages: list[Message] = []
    times: list[float] = []
    match value:
        case Message():
            return _latest_time(value)
        case MessagePosted(message=message) | MessageEdited(message=message):
            return _latest_time(message)  # most of what arrives: no list to build
        case ChatSnapshot(messages=held, membership=membership):
            messages.extend(held)
            times.extend(_issued(membership))
        case Resumption(events=events, snapshot=snapshot, membership=membership):
            for event in events:
                if isinstance(event, MessagePosted | MessageEdited):
                    messages.append(event.message)
            if snapshot is not None:
                messages.extend(snapshot.messages)
            times.extend(_issued(membership))
        case tuple():
            messages.extend(m for m in value if isinstance(m, Message))
    return max((*map(_latest_time, messages), *times), default=None)


def _issued(membership: str | None) -> tuple[float, ...]:
    iat = issued_at(membership, MEMBERSHIP_AUDIENCE)
    return () if iat is None else (iat,)
