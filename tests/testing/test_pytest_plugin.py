"""The chats_store pytest plugin, used as a user would: through its fixtures."""

from __future__ import annotations

import asyncio
import importlib.metadata

from chats_store.server import ChatServer
from chats_store.testing.pytest_plugin import ChatsClientFactory


def test_the_plugin_is_registered_as_an_entry_point() -> None:
    entry_points = importlib.metadata.entry_points(group="pytest11")
    assert {(e.name, e.value) for e in entry_points} >= {
        ("chats_store", "chats_store.testing.pytest_plugin")
    }


async def test_chats_server_listens_on_a_free_port(chats_server: ChatServer) -> None:
    assert chats_server.port > 0
    assert chats_server.url.startswith("ws://127.0.0.1:")


async def test_chats_client_connects_and_two_clients_talk(chats_client: ChatsClientFactory) -> None:
    ann = await chats_client("ann", chat="c1")
    bob = await chats_client("bob", chat="c1")
    assert ann.websocket.status.value == "connected"
    await ann.chats.send_message("c1", "hello bob")
    for _ in range(300):
        if any(m.content == "hello bob" for m in bob.messages("c1")):
            break
        await asyncio.sleep(0.01)
    assert [m.content for m in bob.messages("c1")] == ["hello bob"]


async def test_chats_client_can_stay_disconnected(chats_client: ChatsClientFactory) -> None:
    cat = await chats_client("cat", connect=False)
    assert cat.websocket.status.value == "disconnected"
