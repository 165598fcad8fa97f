"""Regenerate ``docs/tui.png``: the terminal client of a moderator, against the real server.

Run ``python -m tests.tui.screenshot [docs/tui.png]`` (needs the ``tui`` extra and
cairosvg: ``pip install cairosvg``). Three clients chat in ``lobby``; ann, a moderator,
edits a message and mutes cat; the picture is ann's screen.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from chats_store.tui import ChatApp
from tests.e2e.conftest import network
from tests.tui.test_tui import SIZE, log_text, message_lines, static_text, type_text, until

MODERATOR: dict[str, object] = {"permissions": ("send", "moderate"), "metadata": {"role": "mod"}}


async def screenshot(target: Path) -> None:
    async with network() as net:
        bob = await net.joined("bob", "lobby")
        cat = await net.joined("cat", "lobby")
        await net.joined("bob", "dev")
        ann = await net.client("ann", connect=False)
        tokens = [
            net.server.chat_token("ann", "lobby", **MODERATOR),  # type: ignore[arg-type]
            net.server.chat_token("ann", "dev"),
        ]
        app = ChatApp(ann.chats, ann.websocket, "ann", tokens)
        async with app.run_test(size=(SIZE[0], 26)) as pilot:
            await until(lambda: "3 members" in static_text(app, "#chat-header"))
            await bob.chats.send_message("lobby", "Morning all! Release notes are up.")
            await type_text(pilot, "Thanks bob, reading them now")
            await pilot.press("enter")
            await cat.chats.send_message("lobby", "BUY CHEAP TOKENS!!!")
            await until(lambda: len(message_lines(app)) == 3)
            await pilot.press("shift+tab", "up", "e", "end", *" - looks great", "enter")
            await type_text(pilot, "/mute cat 10 spam")
            await pilot.press("enter")
            await until(lambda: "muted cat" in log_text(app))
            await asyncio.sleep(0.2)
            svg = app.export_screenshot(title="chats-store tui")
    import cairosvg  # type: ignore[import-untyped]

    # A font every Linux has, with the cell width of Fira Code (the SVG's font).
    svg = svg.replace("Fira Code, monospace", "DejaVu Sans Mono, monospace")
    cairosvg.svg2png(bytestring=svg.encode(), write_to=str(target), output_width=1400)


if __name__ == "__main__":
    asyncio.run(screenshot(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/tui.png")))
