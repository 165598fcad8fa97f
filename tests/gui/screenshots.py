"""Regenerate ``docs/qt_chat.png`` and ``docs/tk_chat.png``: the GUI examples, headless.

Run ``python -m tests.gui.screenshots [DIRECTORY]`` (default ``docs``; needs PySide6,
and Xvfb for Tk when there is no display). Three clients chat in ``lobby`` through the
real server; each picture is ann's window: Qt on its offscreen platform
(``QWidget.grab``), Tk on a virtual X display (grabbed with Pillow).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from tests.docs.test_examples import load_example
from tests.gui.display import virtual_display
from tests.gui.network import CHAT, ChatNet, chat_net
from tests.gui.toolkits import QtToolkit, TkToolkit


def converse(net: ChatNet, toolkit: Any, window: Any, type_and_send: Any) -> None:
    """The conversation both pictures show, ann's lines typed in her window."""
    net.join("cat")
    net.bob_says("Morning all! The release notes are up.")
    type_and_send("Thanks bob, reading them now")
    net.says("cat", "Is the Tk bridge in this release?")
    net.bob_says("Yes: values reach the GUI thread, the store never waits for it.")
    type_and_send("Even with a slow view? Nice.")
    net.ann_holds(5)
    toolkit.run_until(lambda: len(window.shown()) == 5 and "3 members" in window_header(window))


def window_header(window: Any) -> str:
    header = window.header
    return str(header.text() if hasattr(header, "text") else header.cget("text"))


def qt_screenshot(target: Path) -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    example = load_example("qt_chat")
    toolkit = QtToolkit(app)
    with chat_net() as net:
        bridge = toolkit.bridge(net.store)
        window = example.ChatWindow(bridge, net.ann, CHAT)
        window.show()

        def type_and_send(text: str) -> None:
            window.entry.setText(text)
            window.send_button.click()
            toolkit.run_until(lambda: any(line.endswith(text) for line in window.shown()))

        converse(net, toolkit, window, type_and_send)
        window.grab().save(str(target))
        window.close()
        bridge.close()


def tk_screenshot(target: Path) -> None:
    import tkinter

    from PIL import ImageGrab

    example = load_example("tk_chat")
    with virtual_display() as display:
        root = tkinter.Tk()
        root.withdraw()
        toolkit = TkToolkit(root)
        toolkit.window.title("chats_store · lobby")
        with chat_net() as net:
            window = example.ChatWindow(toolkit.window, toolkit.bridge(net.store), net.ann, CHAT)

            def type_and_send(text: str) -> None:
                window.entry.insert(0, text)
                window.send_button.invoke()
                toolkit.run_until(lambda: any(line.endswith(text) for line in window.shown()))

            converse(net, toolkit, window, type_and_send)
            top = toolkit.window
            top.update()
            x, y = top.winfo_rootx(), top.winfo_rooty()
            box = (x, y, x + top.winfo_width(), y + top.winfo_height())
            ImageGrab.grab(bbox=box, xdisplay=display).save(target)
            top.destroy()
        root.destroy()


if __name__ == "__main__":
    directory = Path(sys.argv[1] if len(sys.argv) > 1 else "docs")
    qt_screenshot(directory / "qt_chat.png")
    tk_screenshot(directory / "tk_chat.png")
