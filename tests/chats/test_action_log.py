"""Action logs: written by a real client, replayed through the pure reducer."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from chats_store.chats.action_log import (
    ActionLogError,
    ActionLogWriter,
    getter_values,
    read_action_log,
    replay,
)
from chats_store.cli import main
from chats_store.testing.pytest_plugin import ChatsClientFactory


async def write_log(chats_client: ChatsClientFactory, path: Path) -> dict[str, object]:
    ann = await chats_client("ann", action_log=path)
    bob = await chats_client("bob", chat="c1")
    await ann.join("c1", permissions=("send", "moderate"))
    sent = await ann.chats.send_message("c1", "hello")
    await ann.chats.update_message("c1", sent.id, "hello, edited")
    await bob.chats.send_message("c1", "hi ann")
    for _ in range(300):
        if len(ann.messages("c1")) == 2:
            break
        await asyncio.sleep(0.01)
    await ann.chats.mute_chat_member("c1", "bob", 5, reason="test")
    await asyncio.sleep(0.05)
    final = getter_values(ann.chats.store.state)
    await ann.close()
    return final


async def test_a_real_clients_log_replays_to_the_same_state(
    chats_client: ChatsClientFactory, chats_server: object, tmp_path: Path
) -> None:
    path = tmp_path / "ann.jsonl"
    final = await write_log(chats_client, path)
    text = path.read_text()
    assert "eyJ" not in text  # no JWT (chat token, membership credential) in the log
    lines = text.splitlines()
    assert json.loads(lines[0]) == {"chats_store_action_log": 1, "auto_resend": False}
    log = read_action_log(lines)
    assert [entry.n for entry in log.entries] == list(range(1, len(lines)))
    states = [state for _, state in replay(log)]
    assert getter_values(states[-1]) == final


async def test_replay_command_prints_changes_and_stops_at_n(
    chats_client: ChatsClientFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ann.jsonl"
    await write_log(chats_client, path)
    assert main(["replay", str(path)]) == 0
    out = capsys.readouterr().out
    assert "c1 status: 'ready'" in out
    assert "ann: 'hello, edited'" in out
    total = len(read_action_log(path.read_text().splitlines()).entries)
    assert main(["replay", str(path), "--at", "4"]) == 0
    out = capsys.readouterr().out
    assert f"replayed 4 of {total} actions" in out
    assert "#4 " in out and "#5 " not in out


def test_replay_help_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["replay", "--help"])
    assert exit_.value.code == 0
    assert "--at N" in capsys.readouterr().out
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"hello": 1}\n')
    assert main(["replay", str(bad)]) == 1
    assert "not a chats_store action log" in capsys.readouterr().err
    assert main(["replay", str(tmp_path / "missing.jsonl")]) == 1
    with pytest.raises(ActionLogError, match="line 2"):
        read_action_log(['{"chats_store_action_log": 1}', '{"n": 1, "at": 0, "action": {}}'])


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("chats-store 0.1.0")


def test_the_header_carries_max_messages_to_the_replay(tmp_path: Path) -> None:
    path = tmp_path / "bounded.jsonl"
    writer = ActionLogWriter(path, max_messages=500)
    writer.close()
    lines = path.read_text().splitlines()
    assert json.loads(lines[0])["max_messages"] == 500
    assert read_action_log(lines).max_messages == 500


async def test_a_bounded_clients_log_replays_with_its_bound(
    chats_client: ChatsClientFactory, chats_server: object, tmp_path: Path
) -> None:
    """The configuration is the reducer's: replay builds the reducer the header names."""
    path = tmp_path / "bounded.jsonl"
    ann = await chats_client("ann", chat="c1", action_log=path, max_messages_in_memory=2)
    for n in range(4):
        await ann.chats.send_message("c1", f"m{n}")
    final = getter_values(ann.chats.store.state)
    await ann.close()
    with path.open() as lines:
        log = read_action_log(lines)
    assert (log.max_messages, log.auto_resend) == (2, False)
    *_, (_, state) = replay(log)
    assert getter_values(state) == final
    assert [m.content for m in state.chats["c1"].messages] == ["m2", "m3"]
