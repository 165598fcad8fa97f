"""The ``chats-store`` command: ``serve`` and ``token``."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import attrs
import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from chats_store.chats.commands import JoinRequest
from chats_store.cli import _server_options, build_parser, main
from chats_store.protocol import PROTOCOL_VERSION, ClientProtocol, ReplyReceived
from chats_store.server import (
    ServerLimits,
    mint_chat_token,
    mint_session_token,
    verify_chat_token,
    verify_session_token,
)
from chats_store.server.engine import shown_db
from tests.postgres import PostgresCluster
from tests.server.conftest import SECRET, read_hello, serve_command

KEY = SECRET.encode()


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out.strip()


def test_token_session_prints_a_session_token(capsys: pytest.CaptureFixture[str]) -> None:
    token = _run(capsys, "token", "session", "alice", "--secret", SECRET)

    assert verify_session_token(KEY, token) == "alice"


def test_token_chat_grants_send_plus_the_given_permissions_and_metadata(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATS_STORE_SECRET", SECRET)

    token = _run(
        capsys,
        "token",
        "chat",
        "bob",
        "c1",
        "--permission",
        "moderate",
        "--metadata",
        "role=moderator",
        "--metadata",
        "team=a=b",
    )

    grant = verify_chat_token(KEY, token)
    assert (grant.user_id, grant.chat_id) == ("bob", "c1")
    assert grant.permissions == {"send", "moderate"}
    assert grant.metadata == {"role": "moderator", "team": "a=b"}


@pytest.mark.parametrize(
    "argv",
    [
        ["token", "session", "alice", "--secret", "short"],
        ["token", "session", "alice"],
        ["token", "chat", "bob", "c1", "--secret", SECRET, "--metadata", "novalue"],
        ["serve", "--secret", "short"],
    ],
)
def test_bad_arguments_exit_with_a_message(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHATS_STORE_SECRET", raising=False)

    with pytest.raises(SystemExit) as caught:
        main(argv)

    assert caught.value.code == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--help"], ["serve", "--help"], ["token", "--help"]])
def test_help_works(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)

    assert caught.value.code == 0
    assert "usage: chats-store" in capsys.readouterr().out


async def test_serve_runs_a_server_until_interrupted(each_db: str) -> None:
    env = {**os.environ, "CHATS_STORE_SECRET": SECRET}
    process = subprocess.Popen(
        serve_command(each_db),
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert PROTOCOL_VERSION in banner
        url = banner.split(" on ")[1].split()[0]
        headers = {"Authorization": "Bearer " + mint_session_token(SECRET, "alice")}
        async with connect(
            url, subprotocols=[Subprotocol(PROTOCOL_VERSION)], additional_headers=headers
        ) as connection:
            await read_hello(connection)
            protocol = ClientProtocol()
            protocol.send_request(JoinRequest("c1", mint_chat_token(SECRET, "alice", "c1")))
            for text in protocol.data_to_send():
                await connection.send(text)
            protocol.receive_data(await connection.recv())
            (reply,) = protocol.events_received()
            assert isinstance(reply, ReplyReceived)
            assert reply.result.members_amount == 1  # type: ignore[union-attr]
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
        assert "stopped" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_restore_puts_a_copy_back_as_a_new_epoch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from chats_store.server.database import ChatDatabase

    copy, db = tmp_path / "copy.sqlite3", tmp_path / "chats.sqlite3"
    ChatDatabase(copy).close()
    old = ChatDatabase(db)
    old_epoch = old.epoch
    old.close()

    printed = _run(capsys, "restore", str(copy), "--db", str(db))

    restored = ChatDatabase(db)
    assert restored.epoch != old_epoch and restored.epoch in printed
    restored.close()


def test_restore_of_a_missing_copy_fails_saying_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["restore", str(tmp_path / "nope.sqlite3"), "--db", str(tmp_path / "db")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_restore_gives_a_postgresql_database_a_new_epoch(
    postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from chats_store.server.postgres import PostgresDatabase

    old = PostgresDatabase(postgres_url)
    old_epoch = old.epoch
    old.close()

    printed = _run(capsys, "restore", "--db", postgres_url)

    restored = PostgresDatabase(postgres_url)
    assert restored.epoch != old_epoch and restored.epoch in printed
    restored.close()


@pytest.mark.parametrize(
    ("argv", "told"),
    [
        (["restore", "copy.sqlite3", "--db", "postgresql://h/d"], "PostgreSQL's tools"),
        (["restore", "--db", "chats.sqlite3"], "COPY is required"),
    ],
)
def test_restore_says_what_each_engine_needs(
    argv: list[str], told: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and told in capsys.readouterr().err


def test_serve_of_an_unreachable_postgresql_fails_saying_so(
    postgres_cluster: PostgresCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    url = postgres_cluster.url("no_such_database").replace("postgres@", "postgres:hidden@")
    assert main(["serve", "--port", "0", "--db", url, "--secret", SECRET]) == 1
    told = capsys.readouterr().err
    assert 'database "no_such_database" does not exist' in told and "hidden" not in told


def test_a_postgresql_url_s_password_is_masked_where_it_is_shown() -> None:
    assert shown_db("postgresql://ann:secret@db:5432/chats?sslmode=require") == (
        "postgresql://ann:***@db:5432/chats?sslmode=require"
    )
    assert shown_db("postgresql://ann@db/chats") == "postgresql://ann@db/chats"
    assert shown_db("chats.sqlite3") == "chats.sqlite3"


def test_serve_takes_every_protection_setting_as_a_flag() -> None:
    args = build_parser().parse_args(
        [
            "serve",
            "--rate-limit",
            "5",
            "--max-connections-per-user",
            "none",
            "--max-connections-per-ip",
            "none",
            "--max-backlog-age",
            "2.5",
            "--ping-burst",
            "3",
        ]
    )

    options = _server_options(args)

    assert (options["rate_limit"], options["max_connections_per_user"]) == (5.0, None)
    assert options["rate_burst"] == 200
    limits = options["limits"]
    assert (limits.max_connections_per_ip, limits.max_backlog_age, limits.ping_burst) == (
        None,
        2.5,
        3,
    )
    defaults = attrs.asdict(ServerLimits())
    changed = {k for k, v in attrs.asdict(limits).items() if v != defaults[k]}
    assert changed == {"max_connections_per_ip", "max_backlog_age", "ping_burst"}


def test_serve_takes_the_origins_browsers_may_connect_from() -> None:
    none = _server_options(build_parser().parse_args(["serve"]))
    two = _server_options(
        build_parser().parse_args(
            ["serve", "--origin", "https://chat.example.com", "--origin", "http://127.0.0.1:8000"]
        )
    )

    assert none["origins"] == ()  # browsers refused until listed
    assert two["origins"] == ("https://chat.example.com", "http://127.0.0.1:8000")


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--max-connections", "0"],
        ["serve", "--max-connections", "many"],
        ["serve", "--rate-burst", "none"],
        ["serve", "--max-backlog-age", "-1"],
    ],
)
def test_a_bad_setting_is_a_usage_error(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main([*argv, "--secret", SECRET])

    assert caught.value.code == 2
    assert f"argument {argv[1]}" in capsys.readouterr().err
