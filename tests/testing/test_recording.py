"""FakeClock, record_store and the store middleware hook they rely on."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from chats_store.chats.actions import ConnectionStatusChanged
from chats_store.chats.model import ChatsState
from chats_store.chats.reducer import reduce_chats
from chats_store.core.store import Store
from chats_store.testing.clock import FakeClock
from chats_store.testing.pytest_plugin import ChatsClientFactory
from chats_store.testing.recording import record_store


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(100.0)
    assert clock() == 100.0
    assert clock.advance(60) == 160.0
    assert clock() == clock.now == 160.0
    clock.set(200)
    assert clock() == 200.0
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="cannot go back"):
        clock.set(10)


def chats_store_() -> Store[ChatsState]:
    return Store(reduce_chats, ChatsState())


def test_recording_keeps_every_action_and_state() -> None:
    store = chats_store_()
    with record_store(store) as recording:
        store.dispatch(ConnectionStatusChanged("connecting"))
        store.dispatch(ConnectionStatusChanged("connecting"))  # changes nothing
        store.dispatch(ConnectionStatusChanged("connected"))
    store.dispatch(ConnectionStatusChanged("disconnected"))  # after stop: not recorded
    assert [a.status for a in recording.actions] == ["connecting", "connecting", "connected"]
    assert [s.connection for s in recording.states] == [
        "disconnected",
        "connecting",
        "connecting",
        "connected",
    ]
    assert recording.states[2] is recording.states[1]
    assert recording.of_type(ConnectionStatusChanged) == recording.actions


def test_middleware_sees_queued_actions_in_order_and_a_raising_one_is_removed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = chats_store_()
    seen: list[Any] = []

    def broken(action: Any, state: Any) -> None:
        raise RuntimeError("boom")

    store.add_middleware(broken)
    remove = store.add_middleware(lambda action, state: seen.append((action.status, state)))
    with caplog.at_level(logging.ERROR, logger="chats_store.core"):
        store.dispatch(ConnectionStatusChanged("connecting"))
        store.dispatch(ConnectionStatusChanged("connected"))
    assert len([r for r in caplog.records if "middleware" in r.message]) == 1
    assert [status for status, _ in seen] == ["connecting", "connected"]
    assert seen[-1][1] is store.state
    remove()
    remove()
    store.dispatch(ConnectionStatusChanged("disconnected"))
    assert len(seen) == 2


async def test_recording_a_real_client(chats_client: ChatsClientFactory) -> None:
    ann = await chats_client("ann")
    with record_store(ann.chats) as recording:
        await ann.join("c1")
        await ann.chats.send_message("c1", "recorded")
    kinds = [type(a).__name__ for a in recording.actions]
    assert kinds[0] == "JoinChat" and "ChatJoined" in kinds and "MessageSent" in kinds
    assert recording.states[-1] is ann.chats.store.state or len(recording.actions) > 0
