"""The server clock estimate: bounds from the times the server sends."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from chats_store.chats.actions import ChatSnapshot, MessageEdited, MessagePosted, Resumption
from chats_store.chats.model import Message
from chats_store.chats.server_clock import ClockOffset, ServerClock, issued_at, latest_server_time
from chats_store.server import mint_chat_token, mint_membership_token, mint_session_token
from chats_store.testing.clock import FakeClock
from chats_store.tokens import CHAT_AUDIENCE, MEMBERSHIP_AUDIENCE, SESSION_AUDIENCE

SECRET = "server-clock-tests-secret-long-enough-for-hs256"


def message(created_at: float, edited_at: float | None = None) -> Message:
    return Message("m1", "c1", "ann", "hi", "ready", 1, created_at, edited_at)


def test_nothing_observed_is_the_local_clock() -> None:
    clock = ServerClock(FakeClock(1_000.0))

    assert not clock.offset.known
    assert clock() == 1_000.0
    assert clock.earliest() == -math.inf


def test_a_time_taken_before_it_arrived_bounds_the_server_clock_from_below() -> None:
    local = FakeClock(1_000.0)
    clock = ServerClock(local)

    clock.saw(1_600.0)  # the local clock is 10 minutes slow (or the push took as long)

    assert clock.offset == ClockOffset(600.0)
    assert clock() == clock.earliest() == 1_600.0
    clock.saw(1_200.0)  # an older time teaches nothing
    assert clock.offset == ClockOffset(600.0)
    local.advance(5)
    assert clock() == 1_605.0


def test_a_reply_bounds_it_within_the_round_trip() -> None:
    clock = ServerClock(FakeClock(1_000.0))

    clock.answered(400.0, sent=999.0, received=1_001.0)  # the client is 10 minutes fast

    assert clock.offset == ClockOffset(-601.0, -599.0)
    assert clock() == 400.0
    assert clock.earliest() == 399.0


def test_bounds_tighten_and_a_contradiction_starts_over() -> None:
    offset = ClockOffset().observed(-601.0, -599.0)

    assert offset.observed(-600.5) == ClockOffset(-600.5, -599.0)
    assert offset.observed(-700.0) is offset
    # The local clock was set back 10 minutes: every earlier bound is wrong.
    assert offset.observed(0.5, 1.5) == ClockOffset(0.5, 1.5)
    assert offset.observed(5.0) == ClockOffset(5.0)


@given(
    true_offset=st.floats(-1e6, 1e6),
    trips=st.lists(
        st.tuples(st.floats(0, 1e5), st.floats(0, 5), st.floats(0, 5)), min_size=1, max_size=8
    ),
)
def test_the_truth_stays_within_the_bounds_of_honest_observations(
    true_offset: float, trips: list[tuple[float, float, float]]
) -> None:
    """Requests that take ``out`` seconds to reach the server and ``back`` to return."""
    offset = ClockOffset()
    for sent, out, back in trips:
        server_time = sent + out + true_offset
        received = sent + out + back
        offset = offset.observed(server_time - received, server_time - sent)
    tolerance = 1e-6 * max(1.0, abs(true_offset))
    assert offset.lower - tolerance <= true_offset <= offset.upper + tolerance
    assert abs(offset.estimate - true_offset) <= max(out + back for _, out, back in trips) / 2 + (
        tolerance
    )


def test_the_latest_server_time_of_replies_and_events() -> None:
    credential = mint_membership_token(SECRET, "ann", "c1", ["send"], {}, 3600, now=5_000.0)
    edited = message(100.0, 300.0)

    assert latest_server_time(message(100.0)) == 100.0
    assert latest_server_time(MessagePosted("c1", 1, edited)) == 300.0
    assert latest_server_time(MessageEdited("c1", 2, message(50.0, 60.0))) == 60.0
    assert latest_server_time((message(10.0), edited)) == 300.0
    assert latest_server_time(ChatSnapshot((edited,), 1, {}, (), 1)) == 300.0
    assert latest_server_time(ChatSnapshot((edited,), 1, {}, (), 1, credential)) == 5_000.0
    resumption = Resumption((MessagePosted("c1", 1, edited),), None, 1, {}, (), 1, credential)
    assert latest_server_time(resumption) == 5_000.0
    assert latest_server_time(None) is None
    assert latest_server_time(ChatSnapshot((), 1, {}, (), 1)) is None


def test_issued_at_reads_the_iat_claim_of_a_token() -> None:
    assert issued_at(mint_session_token(SECRET, "ann", now=1_234.0), SESSION_AUDIENCE) == 1_234
    assert issued_at(mint_chat_token(SECRET, "ann", "c1", now=77.0), CHAT_AUDIENCE) == 77
    assert issued_at(mint_chat_token(SECRET, "ann", "c1"), MEMBERSHIP_AUDIENCE) is None
    assert issued_at("garbage", CHAT_AUDIENCE) is None
    assert issued_at(None, CHAT_AUDIENCE) is None
