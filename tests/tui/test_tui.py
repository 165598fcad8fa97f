"""The terminal client, headless with Textual's pilot, against the real reference server.

Two apps run side by side in the test's loop, each on its own public-API client
(its own WebSocket connection to the server): what one types, the other's widgets show.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable

import pytest

pytest.importorskip("textual")

from textual.pilot import Pilot
from textual.widgets import Input, OptionList, RichLog, Static
from websockets.asyncio.server import ServerConnection, serve
from websockets.typing import Subprotocol

from chats_store import ChatsConfig, Message, create_chats, create_user, create_websocket
from chats_store.cli import main
from chats_store.protocol import PROTOCOL_VERSION
from chats_store.server import mint_session_token
from chats_store.tui import ChatApp, ConfirmDelete, MessageList, inert, render_message
from tests.e2e.conftest import Net, network

CHAT = "lobby"
WAIT = 5.0
SIZE = (100, 24)


async def until(check: Callable[[], bool], timeout: float = WAIT) -> None:
    """Wait until ``check()`` holds: pushes travel through real sockets."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still false after {timeout} s")
        await asyncio.sleep(0.01)


def message_lines(app: ChatApp) -> list[str]:
    """The message view as the user reads it (one plain line per message)."""
    view = app.query_one("#messages", MessageList)
    return [str(view.get_option_at_index(i).prompt) for i in range(view.option_count)]


def static_text(app: ChatApp, selector: str) -> str:
    return str(app.query_one(selector, Static).content)


def log_text(app: ChatApp) -> str:
    return "\n".join(line.text for line in app.query_one("#log", RichLog).lines)


async def type_text(pilot: Pilot[None], text: str) -> None:
    await pilot.press(*("space" if char == " " else char for char in text))


@contextlib.asynccontextmanager
async def client_app(
    net: Net, user_id: str, *, join: bool = True, skew: float = 0.0, **token: object
) -> AsyncIterator[Pilot[None]]:
    """``skew``: how far the client's clock is off (seconds)."""
    client = await net.client(user_id, connect=False, clock=lambda: time.time() + skew)
    tokens = [net.server.chat_token(user_id, CHAT, **token)] if join else []  # type: ignore[arg-type]
    app = ChatApp(client.chats, client.websocket, user_id, tokens)
    async with app.run_test(size=SIZE) as pilot:
        if join:  # the start-up worker is done with the join (the header is drawn before)
            await until(lambda: f"joined {CHAT}" in log_text(app))
        else:
            await until(lambda: "connected" in static_text(app, "#connection"))
        yield pilot
    assert app.subscriptions.is_disposed and app.chat_subscriptions.is_disposed


@pytest.fixture
async def net() -> AsyncIterator[Net]:
    async with network() as net:
        yield net


def moderator() -> dict[str, object]:
    return {"permissions": ("send", "moderate")}


async def test_a_message_typed_in_one_app_shows_in_the_other(net: Net) -> None:
    async with client_app(net, "ann", **moderator()) as ann, client_app(net, "bob") as bob:
        assert isinstance(ann.app, ChatApp) and isinstance(bob.app, ChatApp)
        await until(lambda: "2 members" in static_text(ann.app, "#chat-header"))
        assert "moderator" in static_text(ann.app, "#chat-header")
        assert "connected" in static_text(bob.app, "#connection")
        assert str(bob.app.query_one("#chats").get_option_at_index(0).prompt) == f"# {CHAT}"

        await type_text(ann, "hello bob")
        await ann.press("enter")

        await until(lambda: message_lines(bob.app) == ["ann: hello bob"])
        await until(lambda: message_lines(ann.app) == ["ann: hello bob"])  # ready, no mark

        await type_text(bob, "hi ann")
        await bob.press("enter")
        await until(lambda: message_lines(ann.app) == ["ann: hello bob", "bob: hi ann"])


async def test_edit_and_delete_own_message_with_key_bindings(net: Net) -> None:
    async with client_app(net, "ann") as ann, client_app(net, "bob") as bob:
        assert isinstance(ann.app, ChatApp) and isinstance(bob.app, ChatApp)
        await type_text(ann, "helo")
        await ann.press("enter")
        await until(lambda: message_lines(bob.app) == ["ann: helo"])

        await ann.press("shift+tab")  # the message list, last message highlighted
        assert ann.app.focused is ann.app.query_one("#messages")
        await ann.press("e")  # edit: the input holds the content
        field = ann.app.query_one("#input", Input)
        assert field.value == "helo" and ann.app.focused is field
        await ann.press("end", "backspace", "backspace", *"llo")
        await ann.press("enter")
        await until(lambda: message_lines(bob.app) == ["ann: hello (edited)"])

        await ann.press("shift+tab", "delete", "y")  # delete it, confirmed
        await until(lambda: message_lines(bob.app) == [] and message_lines(ann.app) == [])

        await bob.press("shift+tab")  # bob cannot edit ann's messages (there are none left)
        await bob.press("e")
        assert "select one of your messages" in log_text(bob.app)


@pytest.mark.parametrize("skew", [600.0, -600.0], ids=["10 minutes fast", "10 minutes slow"])
async def test_a_mute_counts_down_by_the_server_clock(net: Net, skew: float) -> None:
    async with (
        client_app(net, "ann", **moderator()) as ann,
        client_app(net, "bob", skew=skew) as bob,
    ):
        assert isinstance(ann.app, ChatApp) and isinstance(bob.app, ChatApp)
        await type_text(ann, "/mute bob 5")
        await ann.press("enter")

        await until(lambda: "left" in static_text(bob.app, "#restrictions"))
        shown = static_text(bob.app, "#restrictions")
        assert re.search(r"muted, (4 min 5\d|5 min 0[01]) s left", shown), shown


async def test_a_mute_typed_by_a_moderator_disables_the_targets_input(net: Net) -> None:
    async with client_app(net, "ann", **moderator()) as ann, client_app(net, "bob") as bob:
        assert isinstance(ann.app, ChatApp) and isinstance(bob.app, ChatApp)
        field = bob.app.query_one("#input", Input)
        assert not field.disabled

        await type_text(ann, "/mute bob 5 flooding")
        await ann.press("enter")

        await until(lambda: field.disabled)
        restrictions = static_text(bob.app, "#restrictions")
        assert (
            "muted (flooding)" in restrictions and "min" in restrictions and "left" in restrictions
        )
        assert "muted bob for 5 min" in log_text(ann.app)

        await type_text(ann, "/unmute bob")
        await ann.press("enter")
        await until(lambda: not field.disabled)

        await type_text(bob, "/kick ann")  # bob is no moderator: the server refuses
        await bob.press("enter")
        await until(lambda: "does not grant the 'moderate' permission" in log_text(bob.app))


async def test_a_kick_removes_the_chat_and_says_why(net: Net) -> None:
    async with client_app(net, "ann", **moderator()) as ann, client_app(net, "bob") as bob:
        assert isinstance(ann.app, ChatApp) and isinstance(bob.app, ChatApp)
        await type_text(ann, "/kick bob spamming")
        await ann.press("enter")
        await until(lambda: bob.app.current_chat is None)
        assert "kicked" in log_text(bob.app) and "spamming" in log_text(bob.app)
        assert static_text(bob.app, "#chat-header") == "no chat"
        await until(lambda: "1 members" in static_text(ann.app, "#chat-header"))


def test_every_status_is_visible_in_the_message_line() -> None:
    def line(status: str) -> str:
        message = Message("m1", CHAT, "ann", "hi", status)  # type: ignore[arg-type]
        return str(render_message(message, "ann"))

    assert line("ready") == "ann: hi"
    assert "sending" in line("sending")
    assert "interrupted" in line("interrupted") and "r to resend" in line("interrupted")
    assert "updating" in line("updating")
    assert "deleting" in line("deleting")


def test_tui_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["tui", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--session-token" in out and "--chat-token" in out and "--host" in out


def test_tui_without_textual_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delitem(sys.modules, "chats_store.tui")
    for name in [name for name in sys.modules if name.split(".")[0] == "textual"]:
        monkeypatch.setitem(sys.modules, name, None)  # import textual fails
    argv = ["tui", "--host", "h:1", "--session-token", "s", "--chat-token", "c"]
    assert main(argv) == 1
    assert "pip install 'chats_store[tui]'" in capsys.readouterr().err


def test_tui_with_a_bad_session_token_fails_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["tui", "--host", "h:1", "--session-token", "not-a-jwt", "--chat-token", "c"]
    assert main(argv) == 1
    assert capsys.readouterr().err.startswith("chats-store tui: ")


def test_the_core_package_and_the_cli_do_not_import_textual() -> None:
    code = "import sys, chats_store, chats_store.cli; sys.exit('textual' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


async def test_a_word_typed_on_the_message_list_deletes_nothing(net: Net) -> None:
    async with client_app(net, "ann") as ann:
        assert isinstance(ann.app, ChatApp)
        await type_text(ann, "keep me")
        await ann.press("enter")
        await until(lambda: message_lines(ann.app) == ["ann: keep me"])

        await ann.press("shift+tab", *"dad")  # a word typed with the list focused
        await ann.pause(0.2)
        assert message_lines(ann.app) == ["ann: keep me"]

        await ann.press("delete")  # the delete key asks first
        assert isinstance(ann.app.screen, ConfirmDelete)
        await ann.press("n")
        await ann.pause(0.2)
        assert message_lines(ann.app) == ["ann: keep me"]

        await ann.press("delete", "y")
        await until(lambda: message_lines(ann.app) == [])


async def test_join_command_joins_and_the_header_shows_the_tokens_grant(net: Net) -> None:
    async with client_app(net, "ann", join=False) as ann:
        assert isinstance(ann.app, ChatApp)
        assert static_text(ann.app, "#chat-header") == "no chat"
        token = net.server.chat_token("ann", "dev", permissions=("send", "moderate"))
        ann.app.query_one("#input", Input).value = f"/join {token}"  # pasted
        await ann.press("enter")
        await until(lambda: "# dev" in static_text(ann.app, "#chat-header"))
        await until(lambda: "joined dev" in log_text(ann.app))
        assert "moderator" in static_text(ann.app, "#chat-header")
        assert ann.app.query_one("#input", Input).value == ""

        await type_text(ann, "/join not-a-token")
        await ann.press("enter")
        await until(lambda: "cannot join" in log_text(ann.app))


async def test_the_moderator_label_comes_from_the_grant_not_the_metadata(net: Net) -> None:
    async with client_app(net, "bob", metadata={"role": "moderator"}) as bob:
        assert isinstance(bob.app, ChatApp)
        assert "moderator" not in static_text(bob.app, "#chat-header")


async def test_the_notice_log_takes_the_focus_and_scrolls(net: Net) -> None:
    async with client_app(net, "ann") as ann:
        assert isinstance(ann.app, ChatApp)
        for number in range(40):
            ann.app.say(f"notice {number}")
        log = ann.app.query_one("#log", RichLog)
        await ann.press("tab")  # input -> log
        assert ann.app.focused is log
        await ann.pause(0.1)
        assert log.max_scroll_y > 0 and log.scroll_y == log.max_scroll_y  # follows the end
        await ann.press("home")
        await until(lambda: log.scroll_y == 0)
        await ann.press("pagedown")
        await until(lambda: log.scroll_y > 0)


async def test_while_muted_e_does_not_fill_the_disabled_input(net: Net) -> None:
    async with client_app(net, "ann", **moderator()) as ann, client_app(net, "bob") as bob:
        assert isinstance(ann.app, ChatApp) and isinstance(bob.app, ChatApp)
        await type_text(bob, "before the mute")
        await bob.press("enter")
        await until(lambda: message_lines(bob.app) == ["bob: before the mute"])
        field = bob.app.query_one("#input", Input)

        await type_text(ann, "/mute bob 5")
        await ann.press("enter")
        await until(lambda: field.disabled)
        bob.app.query_one("#messages", MessageList).focus()  # the input cannot have it
        await bob.press("e")
        assert field.value == "" and field.disabled and bob.app.editing is None
        assert "you are muted" in log_text(bob.app)

        await type_text(ann, "/unmute bob")
        await ann.press("enter")
        await until(lambda: not field.disabled)
        await bob.press("shift+tab", "e")  # now it edits
        assert field.value == "before the mute" and bob.app.editing is not None


async def test_a_send_refused_before_it_left_gives_the_text_back(net: Net) -> None:
    async with client_app(net, "ann") as ann:
        assert isinstance(ann.app, ChatApp)
        field = ann.app.query_one("#input", Input)
        await ann.app.websocket.disconnect()
        await until(lambda: "disconnected" in static_text(ann.app, "#connection"))

        await type_text(ann, "typed while offline")
        await ann.press("enter")
        await until(lambda: "not connected" in log_text(ann.app))
        assert field.value == "typed while offline"
        assert message_lines(ann.app) == []


# Hostile strings from the server --------------------------------------------------------

ESCAPES = "\x1b]0;pwned\x07\x1b]52;c;cHduZWQ=\x07\x1b[2J\x9b31m\x9d0;x\x9c\u202eevil\x7f"
"""A window title (OSC 0), a clipboard write (OSC 52), a screen clear (CSI), the same in
C1 bytes, a right-to-left override and DEL."""
MARKUP = "[@click=app.quit]press me[/] [b]bold[/b] [/]"


def assert_inert(line: str) -> None:
    """Not one control character of the terminal's, nor a bidirectional override."""
    assert not [c for c in line if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0], repr(line)
    assert "\u202e" not in line, repr(line)


def test_inert_shows_every_control_character_as_a_harmless_one() -> None:
    shown = inert(ESCAPES + "\n\ttab")
    assert_inert(shown)
    assert shown.startswith("␛]0;pwned␇␛]52;c;cHduZWQ=␇␛[2J") and shown.endswith("␊␉tab")
    assert inert("plain text, emoji 😀 and accents é") == "plain text, emoji 😀 and accents é"


async def test_escape_sequences_and_markup_in_a_message_are_shown_inert(net: Net) -> None:
    async with client_app(net, "ann") as ann:
        assert isinstance(ann.app, ChatApp)
        bob = await net.joined("bob", CHAT)
        await bob.chats.send_message(CHAT, f"{ESCAPES} {MARKUP}")
        await until(lambda: len(message_lines(ann.app)) == 1)
        (line,) = message_lines(ann.app)
        assert_inert(line)
        assert line.startswith("bob: ␛]0;pwned␇") and line.endswith(MARKUP)  # markup not parsed
        await ann.press("shift+tab", "delete")  # bob's: not ours to delete
        await until(lambda: "select one of your messages" in log_text(ann.app))


async def test_markup_in_a_mute_reason_neither_crashes_nor_makes_a_link(net: Net) -> None:
    """Issue 11: ``[/]`` in a mute reason crashed the muted user's client at every start,
    ``[@click=app.quit]`` made a live action link."""
    async with client_app(net, "ann", **moderator()) as ann, client_app(net, "bob") as bob:
        assert isinstance(ann.app, ChatApp) and isinstance(bob.app, ChatApp)
        await ann.app.chats.mute_chat_member(CHAT, "bob", 0, f"{MARKUP} {ESCAPES}")
        await until(lambda: bob.app.query_one("#input", Input).disabled)
        restrictions = static_text(bob.app, "#restrictions")
        assert_inert(restrictions)
        assert MARKUP in restrictions and "permanently" in restrictions
        await bob.click("#restrictions")  # a link would quit the app
        await bob.pause(0.1)
        assert bob.app.is_running
        # Kicked with the same reason: the notice log quotes it, inert.
        await ann.app.chats.kick_chat_member(CHAT, "bob", f"{MARKUP} {ESCAPES}")
        await until(lambda: "kicked" in log_text(bob.app))
        for line in log_text(bob.app).splitlines():  # wrapped to the log's width
            assert_inert(line)
        assert MARKUP in log_text(bob.app).replace("\n", "")


async def test_a_hostile_chat_id_is_shown_inert_in_the_list_and_the_header(net: Net) -> None:
    chat_id = "room\x1b[2J[@click=app.quit]x[/]"
    async with client_app(net, "ann", join=False) as ann:
        assert isinstance(ann.app, ChatApp)
        await ann.app.join(net.server.chat_token("ann", chat_id))
        await until(lambda: "members" in static_text(ann.app, "#chat-header"))
        header = static_text(ann.app, "#chat-header")
        listed = str(ann.app.query_one("#chats", OptionList).get_option_at_index(0).prompt)
        for shown in (header, listed, log_text(ann.app).replace("\n", "")):
            assert_inert(shown)
            assert "room␛[2J[@click=app.quit]x[/]" in shown


async def test_the_connection_line_says_why_the_connection_is_down() -> None:
    """A server that breaks the protocol after each handshake: the line quotes the fault."""

    async def garbage(connection: ServerConnection) -> None:
        await connection.send("\x1b[2J not json")
        await connection.wait_closed()

    async with serve(garbage, "127.0.0.1", 0, subprotocols=[Subprotocol(PROTOCOL_VERSION)]) as ws:
        address = f"127.0.0.1:{ws.sockets[0].getsockname()[1]}"
        websocket = create_websocket(open_timeout=2.0)
        user = create_user(mint_session_token("tui-fault-secret-long-enough-for-hs256", "ann"))
        chats = create_chats(
            user_module=user, websocket_module=websocket, config=ChatsConfig(host=address)
        )
        app = ChatApp(chats, websocket, "ann")
        async with app.run_test(size=SIZE):
            await until(lambda: "the server broke the protocol" in static_text(app, "#connection"))
            line = static_text(app, "#connection")
            assert "connecting" in line and "is not valid JSON" in line
            assert_inert(line)
        await websocket.disconnect()
        await chats.close()
