"""Every call settles within a bound: the scenarios of issue 10's hangs, for any world.

Each scenario is a coroutine function taking a world (:class:`HoldingWorld`, or
:class:`ResyncWorld` for the scenarios of a resync), so it runs against the real
reference server (``tests/e2e/test_settlement.py``, through a fault proxy) and against
the in-memory server, which runs the same server core (``tests/chats/test_facade.py``).
A scenario fails if a call does not return or raise within :data:`BOUND` seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

import pytest

from chats_store import (
    ActionCallError,
    CallCancelledError,
    Chats,
    ErrorCode,
    Message,
    SyncStatuses,
)

BOUND = 5.0
"""Seconds within which every call must return or raise."""

T = TypeVar("T")


class HoldingWorld(Protocol):
    """A server and the means to hold a client's requests on their way to it."""

    async def joined(self, user_id: str, chat_id: str = "c1", **options: Any) -> Chats:
        """A connected client that joined ``chat_id``; ``options`` go to ``create_chats``
        (``new_message_id``) or to ``ChatsConfig`` (``max_messages_in_memory``)."""
        ...

    def hold(self) -> None:
        """Hold every request sent from now on (the server does not get it yet)."""
        ...

    def release(self) -> None:
        """Let the held requests through, in the order they were sent."""
        ...


class ResyncWorld(HoldingWorld, Protocol):
    """A :class:`HoldingWorld` whose server resumes memberships after a reconnect."""

    async def reloading(self, chats: Chats) -> None:
        """Cut the client's connection and let it come back holding every request it
        sends from then on: its chats stay ``reloading`` until :meth:`release`."""
        ...


async def within_bound(call: Awaitable[T]) -> T:
    """``await call``, failing the test if it neither returns nor raises in time."""
    try:
        return await asyncio.wait_for(call, BOUND)
    except TimeoutError:
        pytest.fail(f"the call did not settle within {BOUND} s (it hangs)")


async def started(call: Awaitable[T]) -> asyncio.Task[T]:
    """Run ``call`` in the background and let it dispatch its intent."""
    task = asyncio.ensure_future(call)
    for _ in range(5):
        await asyncio.sleep(0)
    return task


def messages(chats: Chats, chat_id: str = "c1") -> Sequence[Message]:
    value = chats.get_chat_messages(chat_id).value
    assert value is not None
    return value


async def eventually(check: Callable[[], bool]) -> None:
    deadline = asyncio.get_running_loop().time() + BOUND
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"still false after {BOUND} s"
        await asyncio.sleep(0.005)


# During a resync (the chat is ``reloading``) -------------------------------------------


async def _reloading_with(world: ResyncWorld, **options: Any) -> tuple[Chats, Message]:
    chats = await world.joined("ann", **options)
    for n in range(3):
        await within_bound(chats.send_message("c1", f"before {n}"))
    mine = messages(chats)[-1]
    await world.reloading(chats)
    assert chats.get_chat_status("c1").value == "reloading"
    return chats, mine


async def _after_the_resync(world: ResyncWorld, chats: Chats, task: asyncio.Task[T]) -> T:
    assert not task.done(), "the call settled before the resync was let through"
    world.release()
    result = await within_bound(task)
    await eventually(lambda: chats.get_chat_status("c1").value == "ready")
    assert chats.get_chat_sync_statuses("c1").value == SyncStatuses()
    return result


async def update_during_a_resync(world: ResyncWorld) -> None:
    chats, mine = await _reloading_with(world)
    task = await started(chats.update_message("c1", mine.id, "edited during the resync"))
    assert messages(chats)[-1].status == "updating"
    updated = await _after_the_resync(world, chats, task)
    assert (updated.content, updated.status) == ("edited during the resync", "ready")
    assert messages(chats)[-1] == updated


async def delete_during_a_resync(world: ResyncWorld) -> None:
    chats, mine = await _reloading_with(world)
    task = await started(chats.delete_message("c1", mine.id))
    assert messages(chats)[-1].status == "deleting"
    deleted = await _after_the_resync(world, chats, task)
    assert deleted.id == mine.id
    assert [m.content for m in messages(chats)] == ["before 0", "before 1"]


async def load_older_during_a_resync(world: ResyncWorld) -> None:
    chats, _ = await _reloading_with(world, max_messages_in_memory=1)
    assert [m.content for m in messages(chats)] == ["before 2"]
    task = await started(chats.load_older_messages("c1", limit=5))
    older = await _after_the_resync(world, chats, task)
    assert [m.content for m in older] == ["before 0", "before 1"]


async def send_during_a_resync(world: ResyncWorld) -> None:
    chats, _ = await _reloading_with(world)
    task = await started(chats.send_message("c1", "sent during the resync"))
    assert messages(chats)[-1].status == "sending"
    sent = await _after_the_resync(world, chats, task)
    assert (sent.content, sent.status) == ("sent during the resync", "ready")
    assert [m.content for m in messages(chats)][-2:] == ["before 2", "sent during the resync"]


RESYNC_SCENARIOS = (
    update_during_a_resync,
    delete_during_a_resync,
    load_older_during_a_resync,
    send_during_a_resync,
)


# Closing with calls in flight ------------------------------------------------------------


async def close_with_calls_in_flight(world: HoldingWorld, token_for_c2: str) -> None:
    """``close()`` ends every pending call with ``module_closed`` and rolls each back.

    ``token_for_c2`` is a chat token of ann for chat ``c2`` (a join left waiting).
    """
    chats = await world.joined("ann")
    to_update = await within_bound(chats.send_message("c1", "to update"))
    to_delete = await within_bound(chats.send_message("c1", "to delete"))
    world.hold()
    calls = [
        await started(chats.update_message("c1", to_update.id, "never applied")),
        await started(chats.delete_message("c1", to_delete.id)),
        await started(chats.send_message("c1", "in flight")),
        await started(chats.send_message("c1", "queued behind it")),
        await started(chats.load_older_messages("c1")),
        await started(chats.join_chat(token_for_c2)),
    ]
    assert [m.status for m in messages(chats)] == ["updating", "deleting", "sending", "sending"]
    assert chats.get_chat_status("c2").value == "loading"

    await within_bound(chats.close())

    for call in calls:
        with pytest.raises(CallCancelledError) as raised:
            await within_bound(call)
        assert raised.value.code == ErrorCode.MODULE_CLOSED
        assert "close" in raised.value.detail
    assert [(m.content, m.status) for m in messages(chats)] == [
        ("to update", "ready"),
        ("to delete", "ready"),
        ("in flight", "interrupted"),
        ("queued behind it", "interrupted"),
    ]
    assert chats.get_chat_sync_statuses("c1").value == SyncStatuses()
    assert chats.get_chat_status("c2").value is None
    with pytest.raises(ActionCallError) as after:
        await within_bound(chats.send_message("c1", "after close"))
    assert after.value.code == ErrorCode.MODULE_CLOSED
    world.release()


# A duplicate message id -----------------------------------------------------------------


async def a_duplicate_message_id(world: HoldingWorld) -> None:
    chats = await world.joined("ann", new_message_id=lambda: "always-the-same")
    first = await within_bound(chats.send_message("c1", "first"))
    state = chats.store.state
    with pytest.raises(ActionCallError) as raised:
        await within_bound(chats.send_message("c1", "second"))
    assert raised.value.code == ErrorCode.MESSAGE_ID_TAKEN
    assert "always-the-same" in raised.value.detail
    assert chats.store.state is state and messages(chats) == (first,)
