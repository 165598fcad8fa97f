"""The chats_store pytest plugin, used as a user would: through its fixtures, here
(in this suite's auto mode) and, with ``pytester``, in projects of their own (strict
mode, no pytest-asyncio), with nothing installed by hand."""

from __future__ import annotations

import asyncio
import importlib.metadata
import re
from pathlib import Path

import pytest

from chats_store.server import ChatServer
from chats_store.testing.pytest_plugin import ChatsClientFactory

pytest_plugins = ["pytester"]

TESTING_PAGE = Path(__file__).resolve().parents[2] / "docs" / "testing.md"


def plugin_section_code() -> str:
    """The python blocks of docs/testing.md's section on the plugin, as one module."""
    page = TESTING_PAGE.read_text(encoding="utf-8")
    section = page.split("## The pytest plugin", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```python\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    assert len(blocks) >= 2
    return "\n\n".join(blocks)


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


async def test_chats_client_grants_permissions_and_metadata(
    chats_client: ChatsClientFactory,
) -> None:
    ann = await chats_client(
        "ann", chat="c1", permissions=("send", "moderate"), metadata={"role": "moderator"}
    )
    bob = await chats_client("bob", chat="c1")
    assert ann.chats.get_client_chat_member_metadata("c1").value == {"role": "moderator"}
    await ann.chats.kick_chat_member("c1", "bob")  # the server accepts: ann may moderate
    for _ in range(300):
        if bob.chats.get_chat_removal("c1").value is not None:
            break
        await asyncio.sleep(0.01)
    removal = bob.chats.get_chat_removal("c1").value
    assert removal is not None and removal.reason == "kicked"


@pytest.mark.chats_server(seconds_per_minute=0.02, rate_limit=None)
async def test_the_chats_server_marker_sets_the_servers_options(
    chats_server_options: dict[str, object], chats_client: ChatsClientFactory
) -> None:
    assert chats_server_options == {"seconds_per_minute": 0.02, "rate_limit": None}
    ann = await chats_client("ann", chat="c1", permissions=("send", "moderate"))
    bob = await chats_client("bob", chat="c1")
    started = asyncio.get_running_loop().time()
    await ann.chats.mute_chat_member("c1", "bob", 1)
    restrictions = bob.chats.get_client_chat_member_restrictions("c1")
    while not restrictions.value:
        await asyncio.sleep(0.005)
    while restrictions.value:
        await asyncio.sleep(0.005)
    assert asyncio.get_running_loop().time() - started < 5  # a "minute" of 0.02 s


def test_the_documented_samples_pass_in_strict_mode_in_a_project_of_their_own(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(
        "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(test_app=plugin_section_code())
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error")
    result.assert_outcomes(passed=3)


def test_without_pytest_asyncio_a_fixture_says_what_it_needs(pytester: pytest.Pytester) -> None:
    # An importable pytest_asyncio that fails to import stands for "not installed".
    pytester.makepyfile(pytest_asyncio="raise ImportError('pytest-asyncio is not installed')")
    pytester.makepyfile(
        test_app="""
        def test_uses_the_server(chats_server):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:asyncio", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    message = (
        "chats_server: the chats_store fixtures are asyncio fixtures and need "
        "pytest-asyncio: pip install 'chats_store[testing]'"
    )
    result.stdout.re_match_lines([re.escape(message)])


def test_an_unknown_server_option_is_refused_with_the_list_of_options(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_app="""
        import pytest

        @pytest.mark.chats_server(seconds_per_hour=1)
        async def test_uses_the_server(chats_server):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.re_match_lines(
        [re.escape("chats_server options ['seconds_per_hour'] are not run_server's; it takes")]
    )
