"""The reconnection schedule: a backoff that only a healthy connection resets."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from chats_store import ReconnectPolicy
from chats_store.websocket.reconnect import (
    MAX_RETRY_AFTER,
    RETRY_AFTER_JITTER,
    ReconnectSchedule,
    retry_after,
)

POLICY = ReconnectPolicy()


def failures(schedule: ReconnectSchedule, count: int) -> list[float]:
    return [schedule.after_failure() for _ in range(count)]


def test_failed_attempts_start_sub_second_and_grow_to_the_maximum() -> None:
    delays = failures(ReconnectSchedule(POLICY), 12)

    assert 0 <= delays[0] <= POLICY.first_delay < 1
    assert delays[1] == POLICY.min_delay
    assert all(b >= a for a, b in itertools.pairwise(delays[1:]))
    assert max(delays) == delays[-1] == POLICY.max_delay


def test_a_healthy_connection_resets_the_backoff_and_comes_back_at_once() -> None:
    schedule = ReconnectSchedule(POLICY)
    failures(schedule, 8)

    assert schedule.after_drop(POLICY.healthy_after) == 0.0
    assert schedule.after_failure() <= POLICY.first_delay  # a fresh sequence


def test_connections_that_end_at_once_keep_the_backoff_growing() -> None:
    """Issue 11: the backoff reset at every handshake, so a server that broke the
    protocol right after each one got about 6,000 reconnections in 6 seconds."""
    schedule = ReconnectSchedule(POLICY)
    delays = [schedule.after_drop(0.01) for _ in range(12)]

    assert delays[0] <= POLICY.first_delay and delays[1] == POLICY.min_delay
    assert delays[-1] == POLICY.max_delay
    # Time to make 12 short-lived connections: over half a minute, not milliseconds.
    assert sum(delays) > 30


def test_retry_after_is_a_minimum_with_jitter_and_a_bound() -> None:
    asked = [ReconnectSchedule(POLICY).after_failure(retry_after=4.0) for _ in range(50)]
    assert all(4.0 <= delay <= 4.0 * (1 + RETRY_AFTER_JITTER) for delay in asked)
    assert len(set(asked)) > 1, "no jitter"

    assert ReconnectSchedule(POLICY).after_failure(retry_after=10**9) <= MAX_RETRY_AFTER * (
        1 + RETRY_AFTER_JITTER
    )
    grown = ReconnectSchedule(POLICY)
    failures(grown, 12)
    assert grown.after_failure(retry_after=0.1) == POLICY.max_delay  # the backoff is longer


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("120", 120.0), (" 3 ", 3.0), ("soon", None), ("-5", None), ("", None), (None, None)],
)
def test_retry_after_reads_seconds(header: str | None, seconds: float | None) -> None:
    assert retry_after(header) == seconds


def test_retry_after_reads_an_http_date() -> None:
    when = datetime(2030, 1, 1, 12, 0, 30, tzinfo=UTC)
    now = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()

    assert retry_after(format_datetime(when, usegmt=True), now=lambda: now) == 30.0
