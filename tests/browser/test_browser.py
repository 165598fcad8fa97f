"""docs/examples/browser in a real browser: headless Chromium, driven by selenium.

The example page is served by a local HTTP server; its origin is the one the
reference server allows. The page authenticates with the bearer subprotocol (a
browser cannot set ``Authorization``) and chats with a Python client through the
reference server: each side sees the other's messages, edits and deletes; then the
server restarts on the same SQLite file and port, and both carry on.

It skips only when no browser can be had (no selenium, no Chromium or chromedriver,
or a Chromium that does not start), saying why. ``.ci/run`` installs the Debian
packages ``chromium`` and ``chromium-driver``.
"""

from __future__ import annotations

import asyncio
import functools
import http.server
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from chats_store import ChatsConfig, ReconnectPolicy, create_chats, create_user, create_websocket
from chats_store.server import run_server
from tests.e2e.conftest import SECRET, Client, eventually
from tests.e2e.test_resync import free_port

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "browser"
WAIT = 10.0
FAST = ReconnectPolicy(first_delay=0.05, min_delay=0.05, max_delay=0.2)
until = functools.partial(eventually, timeout=WAIT)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def page_origin() -> Iterator[str]:
    """The example's directory over HTTP, on a free port: its origin."""
    handler = functools.partial(_QuietHandler, directory=str(EXAMPLE))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium under chromedriver (skips, saying why, where there is none)."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    exceptions = pytest.importorskip("selenium.common.exceptions")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip(
            "no Chromium or no chromedriver on PATH (Debian: apt-get install chromium "
            "chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)  # --no-sandbox: Chromium refuses root otherwise
    try:
        driver = webdriver.Chrome(
            options=options, service=webdriver.ChromeService(executable_path=driver_path)
        )
    except exceptions.WebDriverException as error:
        pytest.skip(f"Chromium could not be started: {error.msg}")
    try:
        yield driver
    finally:
        driver.quit()


class Page:
    """The example page, driven from a thread (selenium blocks; the server needs the loop)."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(function, *args)

    async def script(self, source: str, *args: Any) -> Any:
        return await self.run(self.driver.execute_script, source, *args)

    async def messages(self) -> list[tuple[str, str, str]]:
        """(id, author, content) of each confirmed message shown, in order."""
        shown: list[list[str]] = await self.script(
            "return [...document.querySelectorAll('#messages li[data-pending=false]')].map("
            "li => [li.dataset.id, li.querySelector('.author').textContent,"
            " li.querySelector('.content').textContent])"
        )
        return [(i, a, c) for i, a, c in shown]

    async def status(self) -> str:
        status: str = await self.script("return document.getElementById('status').dataset.status")
        return status

    async def type_and_submit(self, text: str) -> None:
        await self.script(
            "const input = document.getElementById('text'); input.value = arguments[0];"
            "document.getElementById('send').click();",
            text,
        )

    async def click(self, message_id: str, button: str) -> None:
        await self.script(
            "document.querySelector(`#messages li[data-id='${arguments[0]}'] .${arguments[1]}`)"
            ".click()",
            message_id,
            button,
        )

    async def until(self, check: Callable[[], Any], timeout: float = WAIT) -> None:
        """Wait until ``await check()`` is true."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not await check():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"still false after {timeout} s: {check}")
            await asyncio.sleep(0.05)


def _history(client: Client) -> list[tuple[str, str, str]]:
    return [(m.id, m.author_id, m.content) for m in client.messages()]


async def test_a_browser_and_a_python_client_chat_and_survive_a_restart(
    tmp_path: Path, page_origin: str, browser: Any
) -> None:
    db = str(tmp_path / "chats.sqlite3")
    port = free_port()
    page = Page(browser)
    serve = functools.partial(run_server, port=port, db=db, secret=SECRET, origins=(page_origin,))
    async with serve() as server:
        websocket = create_websocket(open_timeout=WAIT, reconnect=FAST)
        chats = create_chats(
            user_module=create_user(server.session_token("bob")),
            websocket_module=websocket,
            config=ChatsConfig(host=server.address, request_timeout=WAIT),
        )
        bob = Client("bob", chats, websocket)
        await websocket.connect()
        await chats.join_chat(server.chat_token("bob", "c1"))
        fragment = urlencode(
            {
                "server": server.url,
                "session": server.session_token("ann"),
                "chat": "c1",
                "chat_token": server.chat_token("ann", "c1"),
            }
        )
        await page.run(browser.get, f"{page_origin}/#{fragment}")
        await page.until(lambda: _is(page.status(), "ready"))
        server_line = await page.script("return document.getElementById('status').textContent")
        assert "chats_store/" in server_line and "chats_store.v1" in server_line  # the hello

        # Each sees the other's messages.
        await page.type_and_submit("hello from the browser")
        await until(lambda: [c for _, _, c in _history(bob)] == ["hello from the browser"])
        ann_message = _history(bob)[0][0]
        bobs = await chats.send_message("c1", "hello from python")
        await page.until(
            lambda: _is(
                page.messages(),
                [
                    (ann_message, "ann", "hello from the browser"),
                    (bobs.id, "bob", "hello from python"),
                ],
            )
        )

        # ... and edits.
        await page.click(ann_message, "edit")
        await page.type_and_submit("edited in the browser")
        await until(lambda: _history(bob)[0] == (ann_message, "ann", "edited in the browser"))
        await chats.update_message("c1", bobs.id, "edited in python")
        await page.until(lambda: _has(page.messages(), (bobs.id, "bob", "edited in python")))

        # ... and deletes.
        await page.click(ann_message, "delete")
        await until(lambda: [i for i, _, _ in _history(bob)] == [bobs.id])
        await chats.delete_message("c1", bobs.id)
        await page.until(lambda: _is(page.messages(), []))
        await chats.send_message("c1", "before the restart")

    # The server is down: the page sees it and tries again.
    await page.until(lambda: _is(page.status(), "reconnecting"))
    async with serve() as server:
        await until(lambda: websocket.status.value == "connected")
        await page.until(lambda: _is(page.status(), "ready"))
        await page.type_and_submit("after the restart, from the browser")
        after = await chats.send_message("c1", "after the restart, from python")
        expected = [
            "before the restart",
            "after the restart, from the browser",
            "after the restart, from python",
        ]
        await until(lambda: sorted(c for _, _, c in _history(bob)) == sorted(expected))
        await page.until(
            lambda: _contents_are(page.messages(), sorted(expected)),
        )
        assert after.id in [i for i, _, _ in await page.messages()]
        await websocket.disconnect()
        await chats.close()
        await page.script("client.stop()")


async def _is(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def _has(value: Any, item: Any) -> bool:
    return item in await value


async def _contents_are(value: Any, expected: list[str]) -> bool:
    return sorted(c for _, _, c in await value) == expected
