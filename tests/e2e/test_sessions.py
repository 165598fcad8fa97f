"""Sessions that outlive their tokens, against the real server (issue 12, item 1).

A session token expires while the client is connected (the server's clock jumps two
hours ahead: its one-hour tokens are then past ``exp``), then the server restarts: the
handshake is refused as expired, the user module's token provider is asked for a fresh
token, and the client is back at once, its chats ``ready``. A provider that fails, or a
token the server refuses too, end the connection ``disconnected``, with the reason in
``websocket.last_error`` and in the error of every call made then.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

from chats_store import (
    ActionCallError,
    AuthenticationError,
    ChatsConfig,
    ErrorCode,
    create_chats,
    create_user,
    create_websocket,
)
from chats_store.server import mint_session_token
from chats_store.testing.faults import RestartableServer
from tests.e2e.conftest import SECRET, WAIT, Client, eventually, network

TWO_HOURS = 7200.0


@attrs.define
class ShiftedClock:
    """The server's clock: the local one, ``ahead`` seconds ahead."""

    ahead: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead


@attrs.define
class World:
    server: RestartableServer
    clock: ShiftedClock
    provided: list[str] = attrs.Factory(list)
    statuses: list[Any] = attrs.Factory(list)
    """Ann's chat c1 status, from just before the expiry."""

    def resynced(self) -> bool:
        return self.statuses[-2:] == ["reloading", "ready"]

    def client(self, provider: Callable[[], Any] | None) -> Client:
        """Ann, whose session token is the server's (valid one hour by its clock)."""
        websocket = create_websocket(open_timeout=WAIT)
        chats = create_chats(
            user_module=create_user(
                self.server.server.session_token("ann"), token_provider=provider
            ),
            websocket_module=websocket,
            config=ChatsConfig(host=self.server.address, request_timeout=WAIT),
        )
        return Client("ann", chats, websocket)

    def fresh_token(self) -> str:
        """A provider: a session token minted now by the server's clock."""
        token = self.server.server.session_token("ann")
        self.provided.append(token)
        return token


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clock = ShiftedClock()
    async with RestartableServer(str(tmp_path / "chats.sqlite3"), SECRET, clock=clock) as server:
        yield World(server, clock)


async def joined_then_expired(world: World, provider: Callable[[], Any] | None) -> Client:
    """Ann joined and chatting; then her session token expires, then the server restarts."""
    ann = world.client(provider)
    await ann.websocket.connect()
    await ann.chats.join_chat(world.server.server.chat_token("ann", "c1"))
    await ann.chats.send_message("c1", "before")
    ann.chats.get_chat_status("c1").subscribe(world.statuses.append)
    world.clock.ahead = TWO_HOURS  # expired while connected: nothing happens yet
    assert ann.websocket.status.value == "connected"
    await world.server.restart()
    return ann


async def test_an_expired_session_token_is_renewed_and_the_chats_come_back(world: World) -> None:
    ann = await joined_then_expired(world, world.fresh_token)

    await eventually(world.resynced)
    assert ann.websocket.status.value == "connected" and ann.websocket.last_error.value is None
    sent = await ann.chats.send_message("c1", "after the renewal")
    assert sent.status == "ready"
    assert [m.content for m in ann.messages()] == ["before", "after the renewal"]
    assert len(world.provided) == 1
    await ann.websocket.disconnect()
    await ann.chats.close()


async def test_an_async_provider_is_awaited(world: World) -> None:
    async def provider() -> str:
        return world.fresh_token()

    ann = await joined_then_expired(world, provider)
    await eventually(world.resynced)
    assert (await ann.chats.send_message("c1", "after")).status == "ready"
    await ann.websocket.disconnect()
    await ann.chats.close()


async def test_without_a_provider_the_expired_token_ends_the_connection(world: World) -> None:
    ann = await joined_then_expired(world, None)
    await eventually(lambda: ann.websocket.status.value == "disconnected")
    fault = ann.websocket.last_error.value
    assert fault is not None and fault.final and fault.code == ErrorCode.EXPIRED_TOKEN
    assert "token_provider" in fault.detail  # says what to do
    await ann.chats.close()


def _broken() -> str:
    raise RuntimeError("the identity provider is down")


@pytest.mark.parametrize(
    ("provider", "code", "words"),
    [
        (_broken, ErrorCode.TOKEN_PROVIDER_FAILED, "RuntimeError: the identity provider is down"),
        (
            lambda: mint_session_token("another-secret-that-is-long-enough-here", "ann"),
            ErrorCode.INVALID_TOKEN,
            "refused the session token the token provider returned",
        ),
        (
            lambda: mint_session_token(SECRET, "mallory"),
            ErrorCode.INVALID_TOKEN,
            "of user 'mallory'",
        ),
    ],
    ids=["raises", "refused", "other user"],
)
async def test_a_provider_that_fails_ends_the_connection_with_the_reason(
    world: World, provider: Callable[[], str], code: ErrorCode, words: str
) -> None:
    ann = await joined_then_expired(world, provider)

    await eventually(lambda: ann.websocket.status.value == "disconnected")
    fault = ann.websocket.last_error.value
    assert fault is not None and fault.final and fault.code == code and words in fault.detail
    with pytest.raises(ActionCallError) as raised:
        await ann.chats.send_message("c1", "nobody hears this")
    assert raised.value.code == ErrorCode.NOT_CONNECTED
    # Connecting again asks the provider again, and fails the same way, clearly.
    with pytest.raises(AuthenticationError, match=words) as again:
        await ann.websocket.connect()
    assert again.value.code == code
    await ann.chats.close()


async def test_a_token_about_to_expire_is_renewed_before_the_handshake(world: World) -> None:
    world.clock.ahead = -3570.0  # the server mints a token that expires in 30 s
    ann = world.client(world.fresh_token)
    world.clock.ahead = 0.0
    await ann.websocket.connect()

    assert len(world.provided) == 1  # asked before the handshake, not after a refusal
    assert ann.websocket.status.value == "connected"
    await ann.websocket.disconnect()
    await ann.chats.close()


async def test_a_membership_credential_is_renewed_on_a_connection_that_stays_up() -> None:
    """A connection that stays open longer than its credential lasts (4 s here, 7 days by
    default) must still resume afterwards: the credential is renewed at half its life."""
    async with network(membership_ttl=4) as net:
        ann = await net.joined("ann")
        joined_with = ann.chats.store.state.chats["c1"].membership
        await asyncio.sleep(5.0)  # past the credential of the join
        held = ann.chats.store.state.chats["c1"].membership
        assert held != joined_with, "never renewed"
        bob = await net.joined("bob")
        await ann.websocket.disconnect()
        await bob.chats.send_message("c1", "while ann was away")
        await ann.websocket.connect()
        await eventually(lambda: [m.content for m in ann.messages()] == ["while ann was away"])
        assert ann.chats.get_chat_status("c1").value == "ready"
        assert ann.chats.get_chat_removal("c1").value is None
