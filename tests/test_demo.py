"""The README's first command: the demo plays its conversation through a real server."""

from __future__ import annotations

import subprocess
import sys

import pytest

from chats_store.cli import main
from chats_store.demo import run_demo


async def test_the_demo_plays_the_whole_conversation() -> None:
    lines: list[str] = []
    await run_demo(lines.append, pause=0.02)
    text = "\n".join(lines)
    for expected in (
        "ann │ status: ready",
        "bob │ messages: ann: 'Welcome to the lobby!'",
        "ann │ messages: ann: 'Welcome to the lobby, everyone!' (updating…)",
        "bob: 'teh typo' (deleting…)",
        "cat │ restrictions: mute (flooding)",
        "cat │ send_message refused: [member_muted]",
        "bob │ chats_ids: ()",
        "bob │ chats_ids: ('lobby',)",
    ):
        assert expected in text, expected
    final = [line for line in lines if "messages, seq" in line]
    assert len(final) == 3
    assert len({line.split("│")[1] for line in final}) == 1, "every client sees the same history"


@pytest.mark.parametrize("command", [[], ["serve"], ["token"], ["token", "chat"], ["demo"]])
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    assert "usage: chats-store" in capsys.readouterr().out


def test_the_console_script_runs_as_a_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chats_store.cli", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "demo" in result.stdout
