"""A fake clock for tests: time that moves only when the test says so."""

from __future__ import annotations

__all__ = ["FakeClock"]


class FakeClock:
    """A callable clock (epoch seconds) that only moves with :meth:`advance` or :meth:`set`.

    Pass it wherever chats_store takes a ``clock`` (``create_chats(clock=...)``,
    ``InMemoryChatServer(clock=...)``, ``ActionLogWriter(clock=...)``)::

        clock = FakeClock(1_000.0)
        clock()            # 1000.0
        clock.advance(60)  # a minute later: 1060.0

    It never goes backwards: ``advance`` refuses a negative amount and ``set`` an
    earlier time (``ValueError``).
    """

    __slots__ = ("_now",)

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = float(start)

    def __call__(self) -> float:
        return self._now

    @property
    def now(self) -> float:
        """The current time (what calling the clock returns)."""
        return self._now

    def advance(self, seconds: float) -> float:
        """Move the time ``seconds`` forward; returns the new time."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back: advance({seconds!r})")
        self._now += seconds
        return self._now

    def set(self, now: float) -> None:
        """Jump to ``now`` (not earlier than the current time)."""
        if now < self._now:
            raise ValueError(f"a clock cannot go back: set({now!r}) before {self._now!r}")
        self._now = float(now)

    def __repr__(self) -> str:
        return f"FakeClock({self._now!r})"
