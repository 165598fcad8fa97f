"""docs/examples/tk_chat.py driven for real: a Tk window (under Xvfb when there is no
display) against the real reference server; a second client's message shows up in
the window, a message typed in the window reaches the server, and once the window
is closed its view receives nothing more."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "tk_chat.py"
SECRET = "tk-example-secret-that-is-long-enough-for-hs256"

tk = pytest.importorskip("tkinter")


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("no display and no Xvfb (apt-get install xvfb) to run Tk")
    number = next(n for n in range(90, 200) if not Path(f"/tmp/.X{n}-lock").exists())
    name = f":{number}"
    process = subprocess.Popen(
        [xvfb, name, "-nolisten", "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while not Path(f"/tmp/.X11-unix/X{number}").exists():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.skip("Xvfb did not start")
            time.sleep(0.05)
        os.environ["DISPLAY"] = name
        yield name
    finally:
        os.environ.pop("DISPLAY", None)
        process.terminate()
        process.wait(timeout=10)


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tk_chat", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["tk_chat"] = module
    spec.loader.exec_module(module)
    return module


def pump_until(root: Any, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Run Tk's main loop until ``predicate()`` (cross-thread Tk calls need the main loop)."""
    deadline = time.monotonic() + timeout

    def check() -> None:
        if predicate() or time.monotonic() > deadline:
            root.quit()
        else:
            root.after(10, check)

    root.after(0, check)
    root.mainloop()
    assert predicate(), f"still false after {timeout} s"


def test_tk_example_shows_sends_and_stops_after_close(display: str) -> None:
    from chats_store.server import run_server

    example = load_example()
    server_thread = example.StoreThread()  # the server and bob on their own loop
    store = example.StoreThread()  # ann's store, as the example runs it
    servers = run_server(port=0, db=":memory:", secret=SECRET)
    server = server_thread.submit(servers.__aenter__()).result(timeout=10)
    try:
        bob, bob_socket, _ = server_thread.submit(
            example.connect(
                server.address, server.session_token("bob"), server.chat_token("bob", "c1")
            )
        ).result(timeout=10)
        chats, websocket, chat_id = store.submit(
            example.connect(
                server.address, server.session_token("ann"), server.chat_token("ann", "c1")
            )
        ).result(timeout=10)
        root = tk.Tk()
        window = example.ChatWindow(root, store, chats, chat_id)
        pump_until(root, lambda: window.status.cget("text") == "c1: ready")

        server_thread.submit(bob.send_message("c1", "hello from bob")).result(timeout=5)
        pump_until(root, lambda: "bob: hello from bob" in window.shown())

        window.entry.insert(0, "hi bob")
        window.send_button.invoke()
        pump_until(root, lambda: "ann: hi bob" in window.shown())

        def bob_sees(content: str) -> bool:
            messages = bob.get_chat_messages("c1").value or ()
            return any(m.content == content for m in messages)

        deadline = time.monotonic() + 5
        while not bob_sees("hi bob") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert bob_sees("hi bob")

        received = window.received
        window.close()  # disposes on the store's thread, destroys the window
        server_thread.submit(bob.send_message("c1", "after close")).result(timeout=5)

        async def ann_has(content: str) -> bool:
            messages = chats.get_chat_messages("c1").value or ()
            return any(m.content == content for m in messages)

        deadline = time.monotonic() + 5
        while not store.submit(ann_has("after close")).result(timeout=5):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert window.received == received
        getter = chats.get_chat_messages("c1")
        assert store.submit(_no_subscribers(getter)).result(timeout=5)

        store.submit(websocket.disconnect()).result(timeout=5)
        store.submit(chats.close()).result(timeout=5)
        server_thread.submit(bob_socket.disconnect()).result(timeout=5)
        server_thread.submit(bob.close()).result(timeout=5)
    finally:
        server_thread.submit(servers.__aexit__(None, None, None)).result(timeout=10)
        store.stop()
        server_thread.stop()


async def _no_subscribers(getter: Any) -> bool:
    return not getter._subscribers
