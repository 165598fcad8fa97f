"""Fair shares without I/O: token buckets, buckets per key, reply costs, the settings."""

from __future__ import annotations

import attrs
import pytest

from chats_store.protocol import MAX_SERVER_FRAME_SIZE
from chats_store.server import ServerLimits
from chats_store.server.limits import (
    REPLY_BYTES_PER_TOKEN,
    Buckets,
    RateLimiter,
    TokenBucket,
    Verdict,
    reply_cost,
)


def test_a_large_reply_costs_one_token_per_16_kib() -> None:
    assert REPLY_BYTES_PER_TOKEN == 16 * 1024
    assert [reply_cost(size) for size in (0, 16383, 16384, MAX_SERVER_FRAME_SIZE)] == [
        0,
        0,
        1,
        256,
    ]


def test_a_charge_takes_the_bucket_below_zero_and_the_next_request_waits() -> None:
    bucket = TokenBucket(10, 5, 0.0)

    assert bucket.take(0.0)
    bucket.charge(10)  # a large reply: 4 tokens left, then 10 more taken

    assert not bucket.take(0.0)
    assert bucket.retry_after() == pytest.approx(0.7)
    assert not bucket.take(0.6)
    assert bucket.take(0.7)


def test_two_connections_of_one_user_share_its_bucket_but_not_their_flood_counts() -> None:
    bucket = TokenBucket(10, 4, 0.0)
    first = RateLimiter(10, 4, 0.0, bucket=bucket, flood_window=1.0)
    second = RateLimiter(10, 4, 0.0, bucket=bucket, flood_window=1.0)

    verdicts = [first.admit(0.0) for _ in range(3)] + [second.admit(0.0) for _ in range(2)]
    floods = [first.admit(0.001 * i) for i in range(first.flood_limit + 1)]

    assert verdicts == [Verdict.ACCEPT] * 4 + [Verdict.REFUSE]
    assert floods[-1] is Verdict.FLOOD
    assert second.admit(0.02) is Verdict.REFUSE  # refused, not a flood: it did not flood


def test_a_bucket_outlives_its_connections_until_it_is_full_again() -> None:
    buckets = Buckets(10, 5)
    bucket = buckets.hold("alice", 0.0)
    for _ in range(5):
        assert bucket.take(0.0)
    buckets.release("alice")

    again = buckets.hold("alice", 0.1)  # a reconnection: the same, nearly empty, bucket
    assert again is bucket
    assert again.take(0.1) and not again.take(0.1)
    buckets.release("alice")
    buckets.take("bob", 10.0)  # a later call sweeps: alice's bucket is full again
    buckets.take("carol", 10.0)

    assert "alice" not in buckets
    assert buckets.hold("alice", 10.0) is not bucket


def test_a_held_bucket_is_never_swept() -> None:
    buckets = Buckets(10, 5)
    bucket = buckets.hold("alice", 0.0)

    for step in range(10):
        buckets.take(f"user{step}", 100.0 + step)

    assert buckets.hold("alice", 200.0) is bucket


def test_take_answers_the_wait_for_the_next_token() -> None:
    buckets = Buckets(2, 2)

    assert [buckets.take("10.0.0.1", 0.0) for _ in range(3)] == [None, None, 0.5]
    assert buckets.take("10.0.0.2", 0.0) is None  # another key, another bucket


def test_the_idle_buckets_kept_are_those_not_yet_full_again() -> None:
    buckets = Buckets(100, 10)
    for index in range(1000):  # a key a millisecond, each refilled within 0.1 s
        buckets.take(f"10.0.{index // 256}.{index % 256}", index / 1000)

    assert len(buckets) <= 120


def test_the_default_limits_and_that_off_lifts_every_one() -> None:
    limits = ServerLimits()
    off = ServerLimits.off()

    assert (limits.max_connections, limits.max_connections_per_ip) == (10_000, 1_000)
    assert (limits.max_handshakes, limits.max_handshakes_per_ip) == (500, 50)
    assert (limits.max_header_bytes, limits.max_headers) == (16 * 1024, 64)
    assert (limits.max_queued_frames, limits.max_backlog_age) == (1_000, 30.0)
    lifted = {f.name for f in attrs.fields(ServerLimits) if getattr(off, f.name) is None}
    assert lifted == {f.name for f in attrs.fields(ServerLimits) if "burst" not in f.name}
    assert all(field.metadata["help"] for field in attrs.fields(ServerLimits))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("max_connections", 0),
        ("max_connections", 1.5),
        ("max_backlog_age", -1.0),
        ("ping_burst", None),
        ("handshake_rate_per_ip", True),
    ],
)
def test_a_bad_setting_is_refused_with_its_name(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=name):
        ServerLimits(**{name: value})
