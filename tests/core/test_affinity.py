"""LoopAffinity: a store and a Chats module belong to one asyncio loop; calls from
elsewhere raise WrongThreadError with a message that says how to cross over."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from chats_store import ChatsConfig, WrongThreadError, create_chats
from chats_store.chats.model import ChatsState
from chats_store.chats.reducer import reduce_chats
from chats_store.core.affinity import LoopAffinity
from chats_store.core.store import Store
from chats_store.testing.in_memory import InMemoryChatServer

T = TypeVar("T")


def in_thread(function: Callable[[], T]) -> T:
    """Run ``function`` on a fresh thread named "gui"; return or raise what it did."""
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="gui") as pool:
        return pool.submit(function).result(timeout=5)


@pytest.fixture
def other_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An asyncio loop running on its own thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="other-loop", daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)
    loop.close()


def test_unbound_outside_a_loop_and_then_every_call_is_allowed() -> None:
    affinity = LoopAffinity("this store")
    assert affinity.loop is None
    affinity.check_thread("subscribing")
    in_thread(lambda: affinity.check_thread("subscribing"))


async def test_created_in_a_loop_it_belongs_to_that_loop_and_its_thread() -> None:
    affinity = LoopAffinity("this store")
    assert affinity.loop is asyncio.get_running_loop()
    affinity.check_loop("an action")
    affinity.check_thread("subscribing")

    with pytest.raises(WrongThreadError) as raised:
        in_thread(lambda: affinity.check_thread("subscribing to a getter"))
    message = str(raised.value)
    assert "subscribing to a getter must run on the asyncio loop that owns this store" in message
    assert "gui" in message and "call_soon_threadsafe" in message
    assert isinstance(raised.value, RuntimeError)


async def test_an_action_on_another_loop_raises(other_loop: asyncio.AbstractEventLoop) -> None:
    affinity = LoopAffinity("this store")

    async def act() -> None:
        affinity.check_loop("a Chats action")

    future = asyncio.run_coroutine_threadsafe(act(), other_loop)
    with pytest.raises(WrongThreadError, match="another asyncio loop"):
        future.result(timeout=5)
    with pytest.raises(WrongThreadError, match="run_coroutine_threadsafe"):
        in_thread(lambda: asyncio.run(act()))


def test_the_first_checked_action_binds_an_unbound_affinity(
    other_loop: asyncio.AbstractEventLoop,
) -> None:
    affinity = LoopAffinity("this Chats module")

    async def act() -> None:
        affinity.check_loop("an action")

    asyncio.run_coroutine_threadsafe(act(), other_loop).result(timeout=5)
    assert affinity.loop is other_loop
    with pytest.raises(WrongThreadError):
        asyncio.run(act())


async def test_subscribing_to_a_getter_from_another_thread_raises() -> None:
    store = Store(reduce_chats, ChatsState())
    getter = store.select(lambda state: state.connection, lambda status: status)
    seen: list[Any] = []

    with pytest.raises(WrongThreadError, match="subscribing to a getter"):
        in_thread(lambda: getter.subscribe(seen.append))
    assert seen == []  # nothing delivered on the wrong thread
    getter.subscribe(seen.append)
    assert seen == ["disconnected"]


def test_a_chats_action_awaited_off_its_loop_raises_and_sends_nothing(
    other_loop: asyncio.AbstractEventLoop,
) -> None:
    server = InMemoryChatServer()
    websocket = server.websocket()

    async def start() -> Any:
        chats = create_chats(
            user_module=server.user("ann"),
            websocket_module=websocket,
            config=ChatsConfig(host="memory"),
        )
        await websocket.connect()
        await chats.join_chat(server.chat_token("ann", "lobby"))
        return chats

    chats = asyncio.run_coroutine_threadsafe(start(), other_loop).result(timeout=5)
    state = chats.store.state

    with pytest.raises(WrongThreadError, match="a Chats action must run on the asyncio loop"):
        asyncio.run(chats.send_message("lobby", "from the wrong thread"))
    assert chats.store.state is state

    sent = asyncio.run_coroutine_threadsafe(chats.send_message("lobby", "hi"), other_loop)
    assert sent.result(timeout=5).content == "hi"
