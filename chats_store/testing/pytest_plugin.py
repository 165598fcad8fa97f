"""The ``chats_store`` pytest plugin: a real reference server and connected clients.

Installed with the package as the ``pytest11`` entry point ``chats_store``, so any
project that depends on chats_store gets these fixtures without importing
anything (``-p no:chats_store`` turns it off). They are asyncio fixtures, run by
``pytest-asyncio`` (``pip install 'chats_store[testing]'``); without it, requesting
one fails the test with a message saying so.

``chats_server``
    A :class:`~chats_store.server.ChatServer` started for the test on a free
    loopback port, with an in-memory database; stopped after the test. Its
    ``session_token(user)``, ``chat_token(user, chat, ...)`` mint tokens. Options of
    :func:`~chats_store.server.run_server` (``clock``, ``seconds_per_minute``,
    ``rate_limit``, ``membership_ttl``, ...) come from the ``chats_server_options``
    fixture: by default, the keywords of the test's ``@pytest.mark.chats_server(...)``
    marker; override the fixture to compute them (from a ``FakeClock`` fixture, say).

``chats_client``
    An async factory: ``await chats_client("ann")`` creates a user, a WebSocket
    module and a Chats module against ``chats_server``, connects it and returns a
    :class:`ChatsClient`; ``await chats_client("ann", chat="c1")`` also joins
    ``c1`` (``permissions=``, ``metadata=``: the chat token's grant). Every client
    is disconnected and closed after the test.

In pytest-asyncio's strict mode (its default), coroutine tests that use these
fixtures are marked ``asyncio`` by the plugin, as ``@pytest.mark.asyncio`` would, so
they run without a marker; other coroutine tests are pytest-asyncio's business.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import attrs
import pytest

from chats_store.chats.facade import Chats, ChatsConfig, create_chats
from chats_store.chats.model import Message
from chats_store.server import ChatServer, run_server
from chats_store.user.module import create_user
from chats_store.websocket.module import WebSocket, create_websocket

__all__ = ["SECRET", "ChatsClient", "ChatsClientFactory"]

SECRET = "chats-store-pytest-plugin-secret-0123456789"
"""The signing secret of the ``chats_server`` fixture (test use only)."""

FIXTURES = frozenset({"chats_server", "chats_client", "chats_server_options"})
"""The plugin's fixtures: a coroutine test using one is run by pytest-asyncio."""

SERVER_OPTIONS = frozenset(inspect.signature(run_server).parameters) - {"port", "secret"}
"""What ``@pytest.mark.chats_server(...)`` may set: ``run_server``'s parameters."""

NEEDS_PYTEST_ASYNCIO = (
    "the chats_store fixtures are asyncio fixtures and need pytest-asyncio: "
    "pip install 'chats_store[testing]' (or pip install pytest-asyncio)"
)


@attrs.define
class ChatsClient:
    """One connected client of the ``chats_client`` fixture."""

    user_id: str
    chats: Chats
    websocket: WebSocket
    server: ChatServer

    async def join(
        self,
        chat_id: str,
        *,
        permissions: Sequence[str] = ("send",),
        metadata: Mapping[str, str] | None = None,
        ttl: float = 300,
    ) -> None:
        """Join ``chat_id`` with a fresh chat token granting ``permissions`` and ``metadata``."""
        token = self.server.chat_token(
            self.user_id, chat_id, permissions=permissions, metadata=metadata, ttl=ttl
        )
        await self.chats.join_chat(token)

    def messages(self, chat_id: str) -> tuple[Message, ...]:
        """The chat's messages now, as a tuple (``()`` for a chat not joined)."""
        return tuple(self.chats.get_chat_messages(chat_id).value or ())

    async def close(self) -> None:
        """Disconnect and close (the fixture does it after the test)."""
        await self.websocket.disconnect()
        await self.chats.close()


ChatsClientFactory = Callable[..., Awaitable[ChatsClient]]
"""``chats_client(user_id, *, chat=None, permissions=("send",), metadata=None,
connect=True, clock=time.time, action_log=None, **config)``: ``config`` goes to
:class:`ChatsConfig`, ``clock`` to ``create_chats``."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "chats_server(**options): options of the chats_server fixture's server "
        "(run_server's keywords: clock, seconds_per_minute, rate_limit, ...)",
    )


@pytest.fixture
def chats_server_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """``run_server`` options of ``chats_server``: the ``chats_server`` marker's keywords.

    Override this fixture (in a test module or a conftest) to compute them.
    """
    options: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers("chats_server"))):
        if marker.args:
            pytest.fail("@pytest.mark.chats_server takes keywords only", pytrace=False)
        options.update(marker.kwargs)
    return options


def _check_server_options(options: Mapping[str, Any]) -> None:
    unknown = sorted(set(options) - SERVER_OPTIONS)
    if unknown:
        pytest.fail(
            f"chats_server options {unknown} are not run_server's; it takes "
            f"{sorted(SERVER_OPTIONS)} (the port is free and the secret is the plugin's)",
            pytrace=False,
        )


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_pycollect_makeitem(
    collector: pytest.Module | pytest.Class, name: str, obj: object
) -> Generator[None, Any, Any]:
    """In strict mode, mark the coroutine tests that use the plugin's fixtures ``asyncio``.

    Runs inside pytest-asyncio's own wrapper of this hook (``trylast``), so the mark
    is there when pytest-asyncio decides which tests it runs.
    """
    result = yield
    if not inspect.iscoroutinefunction(obj) or _asyncio_mode(collector.config) != "strict":
        return result
    items = result if isinstance(result, list) else [result]
    marked = False
    for item in items:
        if (
            isinstance(item, pytest.Function)
            and FIXTURES & set(item.fixturenames)
            and item.get_closest_marker("asyncio") is None
        ):
            item.add_marker(pytest.mark.asyncio)
            marked = True
    if marked and not any(mark.name == "asyncio" for mark in getattr(obj, "pytestmark", ())):
        pytest.mark.asyncio(obj)  # the item pytest-asyncio makes reads the function's marks
    return result


def _asyncio_mode(config: pytest.Config) -> str | None:
    if not config.pluginmanager.has_plugin("asyncio"):
        return None
    return str(config.getoption("asyncio_mode", None) or config.getini("asyncio_mode"))


def _asyncio_fixture(function: Callable[..., Any]) -> Any:
    """pytest-asyncio's fixture of ``function``; without pytest-asyncio, one that fails.

    The failing one has the same name, so requesting it says what is missing
    instead of "fixture not found" (or nothing at all).
    """
    try:
        import pytest_asyncio
    except ImportError:

        def needs_pytest_asyncio() -> NoReturn:
            pytest.fail(f"{function.__name__}: {NEEDS_PYTEST_ASYNCIO}", pytrace=False)

        needs_pytest_asyncio.__doc__ = function.__doc__
        return pytest.fixture(name=function.__name__)(needs_pytest_asyncio)
    return pytest_asyncio.fixture(function)


@_asyncio_fixture
async def chats_server(chats_server_options: dict[str, Any]) -> AsyncIterator[ChatServer]:
    """The reference server on a free loopback port, for one test."""
    _check_server_options(chats_server_options)
    options = {"db": ":memory:", **chats_server_options}
    async with run_server(port=0, secret=SECRET, **options) as server:
        yield server


@_asyncio_fixture
async def chats_client(chats_server: ChatServer) -> AsyncIterator[ChatsClientFactory]:
    """A factory of connected clients of ``chats_server``, closed after the test."""
    clients: list[ChatsClient] = []

    async def make(
        user_id: str,
        *,
        chat: str | None = None,
        permissions: Sequence[str] = ("send",),
        metadata: Mapping[str, str] | None = None,
        connect: bool = True,
        clock: Callable[[], float] = time.time,
        action_log: str | Path | None = None,
        **config: Any,
    ) -> ChatsClient:
        websocket = create_websocket(open_timeout=config.get("request_timeout", 5.0))
        chats = create_chats(
            user_module=create_user(chats_server.session_token(user_id)),
            websocket_module=websocket,
            config=ChatsConfig(host=chats_server.address, **config),
            clock=clock,
            action_log=action_log,
        )
        client = ChatsClient(user_id, chats, websocket, chats_server)
        clients.append(client)
        if connect:
            await websocket.connect()
            if chat is not None:
                await client.join(chat, permissions=permissions, metadata=metadata)
        return client

    yield make
    for client in reversed(clients):
        await client.close()
