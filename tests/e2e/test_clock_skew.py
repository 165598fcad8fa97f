"""A client whose clock is 10 minutes fast or slow judges server deadlines as the server does.

The reference server runs on the true time; the client is given a clock 600 s off
(``create_chats(clock=...)``). Joins with default (300 s) chat tokens work, a mute
counts down by the server's clock, and the local mute check refuses exactly while
the server would.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import pytest

from chats_store import (
    ActionCallError,
    Restriction,
)
from chats_store.errors import ErrorCode
from chats_store.server import mint_chat_token
from chats_store.tui import describe_restriction
from tests.e2e.conftest import SECRET, WAIT, Client, Net, eventually, network

SKEWS = {"10 minutes fast": 600.0, "10 minutes slow": -600.0}
MINUTE = 1.0
"""The server's moderation minute in these tests (seconds), so that a mute ends soon."""


@pytest.fixture
async def net() -> AsyncIterator[Net]:
    async with network(seconds_per_minute=MINUTE) as net:
        yield net


async def skewed_client(net: Net, user_id: str, skew: float) -> tuple[Client, Callable[[], float]]:
    """A client whose clock is ``skew`` seconds off, connected, and its clock."""

    def clock() -> float:
        return time.time() + skew

    return await net.client(user_id, clock=clock), clock


@pytest.mark.parametrize("skew", SKEWS.values(), ids=SKEWS.keys())
async def test_joins_with_default_tokens_work(net: Net, skew: float) -> None:
    ann, _ = await skewed_client(net, "ann", skew)

    context = await ann.chats.join_chat(net.server.chat_token("ann", "c1"))  # 300 s

    assert context.status == "ready"
    offset = ann.chats.server_clock() - time.time()
    assert abs(offset) < 0.5, "the join's reply put the estimate within its round trip"


async def test_a_token_with_minutes_left_goes_to_a_fast_client_server(net: Net) -> None:
    """4 minutes left by the server's clock; 6 minutes past by the local one."""
    ann, _ = await skewed_client(net, "ann", SKEWS["10 minutes fast"])
    token = mint_chat_token(SECRET, "ann", "c1", now=time.time() - 60)

    assert (await ann.chats.join_chat(token)).status == "ready"


async def test_a_slow_client_refuses_a_token_the_server_calls_expired(net: Net) -> None:
    """Expired 5 minutes ago by the server's clock; 5 minutes left by the local one."""
    ann, _ = await skewed_client(net, "ann", SKEWS["10 minutes slow"])
    token = mint_chat_token(SECRET, "ann", "c1", now=time.time() - 600)

    with pytest.raises(ActionCallError) as raised:
        await ann.chats.join_chat(token)

    assert raised.value.code == ErrorCode.EXPIRED_TOKEN


@pytest.mark.parametrize("skew", SKEWS.values(), ids=SKEWS.keys())
async def test_a_mute_counts_down_and_ends_by_the_server_clock(net: Net, skew: float) -> None:
    moderator = await net.joined("mod", permissions=("send", "moderate"))
    ann, local_clock = await skewed_client(net, "ann", skew)
    await ann.chats.join_chat(net.server.chat_token("ann", "c1"))
    restrictions = ann.chats.get_client_chat_member_restrictions("c1")

    await moderator.chats.mute_chat_member("c1", "ann", 2, reason="spam")  # 2 s here
    await eventually(lambda: bool(restrictions.value))

    assert restrictions.value is not None
    (mute,) = restrictions.value
    assert mute == Restriction("mute", mute.until, "spam") and mute.until is not None
    left = mute.until - ann.chats.server_clock()
    assert 1.0 < left <= 2.0 * MINUTE + 0.05, left  # within the estimate's round trip
    assert abs((mute.until - local_clock()) - (left - skew)) < 0.5, "the local clock is off"
    # By the local clock, a fast client would call the mute over already (and send what
    # the server refuses); a slow one would keep it 10 more minutes.
    assert mute.is_active(local_clock()) is (skew < 0)
    assert describe_restriction(mute, ann.chats.server_clock()).endswith(" s left")
    assert "min" not in describe_restriction(mute, ann.chats.server_clock())
    with pytest.raises(ActionCallError) as raised:
        await ann.chats.send_message("c1", "while muted")  # the server would refuse too
    assert raised.value.code == ErrorCode.MEMBER_MUTED

    # Over by the server's clock (with a margin for the estimate's round trip): the
    # local check lets a send go, whether or not the server's lift has arrived, and
    # the server takes it.
    ended = lambda: not mute.is_active(ann.chats.server_clock() - 0.05)  # noqa: E731
    await eventually(ended, timeout=2 * WAIT)
    assert mute.is_active(local_clock()) is (skew < 0)
    sent = await ann.chats.send_message("c1", "after the mute")
    assert sent.status == "ready"
    await eventually(lambda: restrictions.value == ())
