"""docs/examples/qt_chat.py and tk_chat.py driven for real: each window, on its real
toolkit (Qt offscreen, Tk under Xvfb), against the real server with a second client.

A second client's message shows up in the window, a message typed in the window
reaches the server, a refused send says why and keeps the typed text, and once the
window is destroyed its views receive nothing more (their getters lose every
subscriber)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.gui.network import CHAT, ChatNet, chat_net
from tests.gui.toolkits import QtToolkit, TkToolkit

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


async def _subscribers(chats: Any) -> int:
    return len(chats.get_chat_messages(CHAT)._subscribers)


async def _bob_sees(net: ChatNet, content: str) -> bool:
    return any(m.content == content for m in net.bob.get_chat_messages(CHAT).value or ())


def drive(toolkit: QtToolkit | TkToolkit, window: Any, net: ChatNet, close: Any) -> None:
    """The scenario of the module docstring, on ``window`` (an example's ChatWindow)."""
    toolkit.run_until(lambda: window.header_text() == f"# {CHAT} · 2 members")

    net.bob_says("hello from bob")
    toolkit.run_until(lambda: "bob: hello from bob" in window.shown())

    window.type("hi bob")
    window.click_send()
    toolkit.run_until(lambda: "ann: hi bob" in window.shown())
    assert net.server_loop.run(_bob_sees(net, "hi bob"))

    window.type("x" * 300)  # longer than a message may be: refused before sending
    window.click_send()
    toolkit.run_until(lambda: "not sent" in window.notice_text())
    assert "the maximum is 256" in window.notice_text()
    assert window.entry_text() == "x" * 300  # the typed text is kept

    close()
    net.bob_says("after the close")
    net.ann_holds(3)
    assert net.store.run(_subscribers(net.ann)) == 0  # nothing left to deliver to it


def test_the_qt_example_shows_sends_and_stops_after_close(qt_app: Any) -> None:
    example = load_example("qt_chat")
    toolkit = QtToolkit(qt_app)
    with chat_net() as net:
        bridge = toolkit.bridge(net.store)
        window = example.ChatWindow(bridge, net.ann, CHAT)
        window.show()
        probe = QtWindow(window)

        def close() -> None:
            window.close()  # WA_DeleteOnClose: deleted, its bindings disposed
            toolkit.run_until(lambda: net.store.run(_subscribers(net.ann)) == 0)

        drive(toolkit, probe, net, close)
        bridge.close()


def test_the_tk_example_shows_sends_and_stops_after_close(tk_root: Any) -> None:
    example = load_example("tk_chat")
    toolkit = TkToolkit(tk_root)
    with chat_net() as net:
        window = example.ChatWindow(toolkit.window, toolkit.bridge(net.store), net.ann, CHAT)
        probe = TkWindow(window)

        def close() -> None:
            toolkit.window.destroy()
            toolkit.run_until(lambda: net.store.run(_subscribers(net.ann)) == 0)

        drive(toolkit, probe, net, close)


class QtWindow:
    """What the test reads and does on the Qt example's window."""

    def __init__(self, window: Any) -> None:
        self.window = window

    def header_text(self) -> str:
        return str(self.window.header.text())

    def shown(self) -> list[str]:
        return list(self.window.shown())

    def notice_text(self) -> str:
        return str(self.window.notice.text())

    def entry_text(self) -> str:
        return str(self.window.entry.text())

    def type(self, text: str) -> None:
        self.window.entry.setText(text)

    def click_send(self) -> None:
        self.window.send_button.click()


class TkWindow:
    """What the test reads and does on the Tk example's window."""

    def __init__(self, window: Any) -> None:
        self.window = window

    def header_text(self) -> str:
        return str(self.window.header.cget("text"))

    def shown(self) -> list[str]:
        return list(self.window.shown())

    def notice_text(self) -> str:
        return str(self.window.notice.cget("text"))

    def entry_text(self) -> str:
        return str(self.window.entry.get())

    def type(self, text: str) -> None:
        self.window.entry.delete(0, "end")
        self.window.entry.insert(0, text)

    def click_send(self) -> None:
        self.window.send_button.invoke()
