"""The ``chats-store`` command: run the reference server, mint development tokens.

::

    chats-store serve [--host 127.0.0.1] [--port 8765] [--db chats_store.sqlite3] [--secret S]
                      [--origin https://chat.example.com ...] [--rate-limit 20] [...]
                      [--workers N]   (N > 1: with --db postgresql://...)
    chats-store restore COPY [--db chats_store.sqlite3]
    chats-store restore --db postgresql://...
    chats-store token session USER [--name NAME] [--ttl 3600] [--secret S]
    chats-store token chat USER CHAT [--permission moderate] [--metadata role=moderator]
                                     [--ttl 300] [--secret S]
    chats-store demo [--pause 0.05] [--log FILE]
    chats-store replay LOG [--at N]
    chats-store tui --host HOST --session-token T --chat-token T [--chat-token T ...]
    chats-store --version

The secret is ``--secret`` or the ``CHATS_STORE_SECRET`` environment variable; it
must be at least 32 bytes. Each subcommand is one ``_add_*`` function below.
Exit status: 0 on success, 1 when the command failed (message on stderr), 2 for a
usage error (argparse).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import signal
import sqlite3
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from chats_store.protocol import PROTOCOL_VERSION
from chats_store.server import (
    HANDSHAKE_TIMEOUT,
    MAX_CONNECTIONS_PER_USER,
    SECRET_ENV,
    ServerLimits,
    check_secret,
    mint_chat_token,
    mint_session_token,
    run_server,
)
from chats_store.server.engine import is_postgres_url, open_storage, shown_db
from chats_store.server.limits import DEFAULT_BURST, DEFAULT_RATE
from chats_store.server.service import (
    MAX_RESTRICTIONS_PER_CHAT,
    MAX_RESUME_BYTES,
    MAX_RESUME_EVENTS,
)

__all__ = ["build_parser", "main"]

Command = Callable[[argparse.Namespace], int]


def _add_secret_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--secret",
        default=None,
        help=f"the HS256 signing secret, at least 32 bytes (default: ${SECRET_ENV})",
    )


def _secret(parser: argparse.ArgumentParser, args: argparse.Namespace) -> bytes:
    secret = args.secret if args.secret is not None else os.environ.get(SECRET_ENV)
    if not secret:
        parser.error(f"no secret: pass --secret or set {SECRET_ENV} (at least 32 bytes)")
    try:
        return check_secret(secret)
    except ValueError as error:
        parser.error(str(error))


# serve -------------------------------------------------------------------------------


def _limit_value(integer: bool) -> Callable[[str], float | None]:
    """argparse type of a limit: a positive number, or ``none`` for no limit."""

    def parse(text: str) -> float | None:
        if text.lower() == "none":
            return None
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a positive {'integer' if integer else 'number'} or none, not {text!r}"
            ) from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a positive value or none, not {text!r}")
        return value

    return parse


_SERVE_SETTINGS: tuple[tuple[str, Any, bool, str], ...] = (
    ("rate_limit", DEFAULT_RATE, False, "requests per second per user, over its connections"),
    ("rate_burst", DEFAULT_BURST, True, "requests a user may send at once"),
    ("handshake_timeout", HANDSHAKE_TIMEOUT, False, "seconds to complete the handshake"),
    ("max_connections_per_user", MAX_CONNECTIONS_PER_USER, True, "open connections per user"),
    ("max_resume_events", MAX_RESUME_EVENTS, True, "events a resume carries, then a snapshot"),
    ("max_resume_bytes", MAX_RESUME_BYTES, True, "bytes of events a resume carries"),
    ("max_restrictions_per_chat", MAX_RESTRICTIONS_PER_CHAT, True, "mutes and blocks per chat"),
)
"""The settings of run_server that ``serve`` takes as flags besides ServerLimits': name,
default, whether an integer, help. Those that run_server lets be None take ``none``."""

_NOT_LIFTABLE = frozenset(
    {"rate_burst", "max_resume_events", "max_resume_bytes", "max_restrictions_per_chat"}
)


def _shown(default: float | None) -> str:
    return (
        "none"
        if default is None
        else f"{default:,}"
        if isinstance(default, int)
        else f"{default:g}"
    )


def _add_settings(parser: argparse.ArgumentParser) -> None:
    """One flag per protection setting: run_server's own, then each of ServerLimits."""
    group = parser.add_argument_group(
        "protection",
        "limits of the server (the security documentation explains each); 'none' lifts a limit",
    )
    for name, default, integer, help_text in _SERVE_SETTINGS:
        liftable = name not in _NOT_LIFTABLE
        group.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=_limit_value(integer) if liftable else (int if integer else float),
            default=default,
            metavar="N",
            help=f"{help_text} (default: {_shown(default)})",
        )
    for field in attrs.fields(ServerLimits):
        group.add_argument(
            "--" + field.name.replace("_", "-"),
            dest="limit_" + field.name,
            type=_limit_value(field.metadata["integer"]),
            default=field.default,
            metavar="N",
            help=f"{field.metadata['help']} (default: {_shown(field.default)})",
        )


def _server_options(args: argparse.Namespace) -> dict[str, Any]:
    """run_server's keyword arguments from the parsed ``serve`` flags."""
    options: dict[str, Any] = {name: getattr(args, name) for name, *_ in _SERVE_SETTINGS}
    limits = {f.name: getattr(args, "limit_" + f.name) for f in attrs.fields(ServerLimits)}
    options["limits"] = ServerLimits(**limits)
    options["origins"] = tuple(args.origins)
    return options


async def _serve(
    host: str,
    port: int,
    db: str,
    secret: bytes,
    options: dict[str, Any],
    *,
    worker: int | None = None,
) -> None:
    """Run one server until SIGINT or SIGTERM; ``worker``: its index among ``--workers``."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on this platform
            loop.add_signal_handler(signum, stop.set)
    async with run_server(
        host, port, db, secret, reuse_port=worker is not None, **options
    ) as server:
        # What start-up made (modules, classes, functions) lives as long as the
        # process: out of the collector's sight, full collections skip it.
        gc.freeze()
        who = "chats_store server" if worker is None else f"chats_store worker {worker}"
        _announce(
            f"{who} (pid {os.getpid()}) listening on {server.url} "
            f"(subprotocol {PROTOCOL_VERSION}, database {shown_db(db)}); Ctrl-C stops it"
        )
        await stop.wait()
    _announce(f"{who} stopped")


def _announce(line: str) -> None:
    """Print ``line`` on standard output in one write, newline included: the workers of
    ``--workers`` share it, and ``print`` writes the text and its newline apart, so two
    workers' lines could run into one."""
    sys.stdout.write(f"{line}\n")
    sys.stdout.flush()


def _serve_worker(
    index: int, host: str, port: int, db: str, secret: bytes, options: dict[str, Any]
) -> None:
    """One process of ``--workers`` (started by the supervisor)."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(host, port, db, secret, options, worker=index))


def _serve_workers(
    count: int, host: str, port: int, db: str, secret: bytes, options: dict[str, Any]
) -> None:
    """Run ``count`` server processes on one port until SIGINT or SIGTERM."""
    from chats_store.server.workers import Supervisor, reserve_port

    with reserve_port(host, port) as reserved:
        bound = int(reserved.getsockname()[1])

        def exited(index: int, exitcode: int | None) -> None:
            print(
                f"chats_store worker {index} ended (exit code {exitcode}); starting it again",
                file=sys.stderr,
                flush=True,
            )

        supervisor = Supervisor(
            count, _serve_worker, (host, bound, db, secret, options), on_exit=exited
        )
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda _signum, _frame: supervisor.stop())
        print(f"chats_store: {count} workers on port {bound}", flush=True)
        supervisor.run()
    print("chats_store server stopped", flush=True)


def _add_serve(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the reference chat server",
        description="Run the reference chat server (WebSocket, subprotocol "
        f"{PROTOCOL_VERSION}) until Ctrl-C.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port, 0 = any (default: 8765)")
    parser.add_argument(
        "--db",
        default="chats_store.sqlite3",
        help="SQLite file, :memory:, or a postgresql:// URL (PostgreSQL, shared by several "
        "servers) (default: chats_store.sqlite3)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes on the port, sharing a PostgreSQL database (default: 1)",
    )
    parser.add_argument(
        "--origin",
        dest="origins",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a web page origin whose scripts may connect, e.g. https://chat.example.com "
        "(repeat for more; default: none, so browsers are refused and programs, which send "
        "no Origin, are not)",
    )
    _add_secret_option(parser)
    _add_settings(parser)

    def serve(args: argparse.Namespace) -> int:
        secret = _secret(parser, args)
        if args.workers < 1:
            parser.error(f"--workers must be 1 or more, not {args.workers}")
        if args.workers > 1 and not is_postgres_url(args.db):
            parser.error(
                f"--workers {args.workers} needs a PostgreSQL database (--db "
                "postgresql://...): an SQLite file is written by one process only"
            )
        failures: tuple[type[Exception], ...] = (
            OSError,
            ValueError,
            ModuleNotFoundError,
            *_storage_errors(args.db),
        )
        try:
            options = _server_options(args)
        except ValueError as error:
            parser.error(str(error))
        try:
            if args.workers > 1:
                _serve_workers(args.workers, args.host, args.port, args.db, secret, options)
            else:
                asyncio.run(_serve(args.host, args.port, args.db, secret, options))
        except KeyboardInterrupt:
            pass
        except failures as error:
            print(f"chats-store serve: {error}", file=sys.stderr)
            return 1
        return 0

    parser.set_defaults(command=serve)


def _storage_errors(db: str) -> tuple[type[Exception], ...]:
    """What opening the storage ``db`` raises when it cannot be had (told, not traced)."""
    if not is_postgres_url(db):
        return (sqlite3.Error,)
    try:
        import psycopg
    except ModuleNotFoundError:
        return ()  # open_storage says what to install
    return (psycopg.Error, RuntimeError)  # unreachable, refused, or tables too new


# restore -----------------------------------------------------------------------------


def _add_restore(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "restore",
        help="put a copy of the server's database back, as a new epoch",
        description="Copy the database COPY (a backup, even one taken while the server ran) "
        "over the server's database and give its history a new epoch, so that clients that "
        "saw a later history replace it on their next resume. Stop the server first. For "
        "PostgreSQL, restore the backup with PostgreSQL's tools, then run this without COPY: "
        "it gives the history a new epoch.",
    )
    parser.add_argument("copy", metavar="COPY", nargs="?", help="the SQLite file to put back")
    parser.add_argument(
        "--db",
        default="chats_store.sqlite3",
        help="the server's SQLite file, or its postgresql:// URL (default: chats_store.sqlite3)",
    )

    def restore(args: argparse.Namespace) -> int:
        from chats_store.server.database import restore_database

        if is_postgres_url(args.db):
            return _new_postgres_epoch(parser, args)
        if args.copy is None:
            parser.error("COPY is required: the SQLite file to put back")
        if not Path(args.copy).is_file():
            print(f"chats-store restore: no such file: {args.copy}", file=sys.stderr)
            return 1
        try:
            epoch = restore_database(args.copy, args.db)
        except (OSError, sqlite3.Error) as error:
            print(f"chats-store restore: {error}", file=sys.stderr)
            return 1
        print(f"restored {args.copy} into {args.db}; its history is the new epoch {epoch}")
        return 0

    parser.set_defaults(command=restore)


def _new_postgres_epoch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.copy is not None:
        parser.error(
            "a PostgreSQL database is restored with PostgreSQL's tools (pg_restore, psql): "
            "restore it, then run chats-store restore --db URL without COPY"
        )
    failures: tuple[type[Exception], ...] = (ModuleNotFoundError, *_storage_errors(args.db))
    try:
        database = open_storage(args.db)
    except failures as error:
        print(f"chats-store restore: {error}", file=sys.stderr)
        return 1
    try:
        epoch = database.start_new_epoch()
    finally:
        database.close()
    print(f"the history of {shown_db(args.db)} is the new epoch {epoch}")
    return 0


# token -------------------------------------------------------------------------------


def _metadata_item(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {text!r}")
    return key, value


def _add_token(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "token",
        help="mint a development token",
        description="Print a JWT signed with the server's secret.",
    )
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="{session,chat}")

    session = kinds.add_parser(
        "session",
        help="a session token (sent in the WebSocket handshake)",
        description="Print a session token for USER (audience chats_store:session).",
    )
    session.add_argument("user", metavar="USER", help="the user id (claim sub)")
    session.add_argument("--name", default=None, help="display name (claim name)")
    session.add_argument("--ttl", type=float, default=3600, help="seconds (default: 3600)")
    _add_secret_option(session)

    def mint_session(args: argparse.Namespace) -> int:
        secret = _secret(session, args)
        print(mint_session_token(secret, args.user, args.ttl, args.name))
        return 0

    session.set_defaults(command=mint_session)

    chat = kinds.add_parser(
        "chat",
        help="a chat token (to join one chat)",
        description="Print a chat token letting USER join CHAT (audience chats_store:chat). "
        "Every token grants 'send'; add others with --permission.",
    )
    chat.add_argument("user", metavar="USER", help="the user id (claim sub)")
    chat.add_argument("chat", metavar="CHAT", help="the chat id (claim chat)")
    chat.add_argument(
        "--permission",
        action="append",
        default=[],
        metavar="NAME",
        help="grant a permission besides 'send' (e.g. moderate); repeatable",
    )
    chat.add_argument(
        "--metadata",
        action="append",
        default=[],
        type=_metadata_item,
        metavar="KEY=VALUE",
        help="member metadata returned on join; repeatable",
    )
    chat.add_argument("--ttl", type=float, default=300, help="seconds (default: 300)")
    _add_secret_option(chat)

    def mint_chat(args: argparse.Namespace) -> int:
        secret = _secret(chat, args)
        permissions = ["send", *(p for p in args.permission if p != "send")]
        token = mint_chat_token(
            secret, args.user, args.chat, permissions, dict(args.metadata), args.ttl
        )
        print(token)
        return 0

    chat.set_defaults(command=mint_chat)


def _add_demo(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="three real clients chat through an in-process server, printing every getter",
        description=(
            "Start the reference server in this process on a temporary SQLite file, connect "
            "three clients over loopback WebSockets and play a short conversation (join, "
            "send, edit, delete, mute, kick, rejoin), printing each getter emission."
        ),
    )
    parser.add_argument(
        "--pause",
        type=float,
        default=0.05,
        help="seconds between steps, for the pushes to arrive (default: 0.05)",
    )
    parser.add_argument(
        "--log",
        default=None,
        metavar="FILE",
        help="write ann's action log to FILE (JSON lines; see 'chats-store replay')",
    )

    def demo(args: argparse.Namespace) -> int:
        from chats_store.demo import run_demo

        try:
            asyncio.run(run_demo(pause=args.pause, log=args.log))
        except OSError as error:
            print(f"chats-store demo: {error}", file=sys.stderr)
            return 1
        return 0

    parser.set_defaults(command=demo)


# replay ------------------------------------------------------------------------------


def _render(value: Any) -> str:
    """A getter value on one line: messages as ``author: 'content' (status)``."""
    from collections.abc import Iterable, Mapping

    from chats_store.chats.model import Message

    if isinstance(value, Mapping):
        return repr(dict(value))
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
        items = list(value)
        if items and all(isinstance(m, Message) for m in items):
            return " | ".join(
                f"{m.author_id}: {m.content!r}" + ("" if m.status == "ready" else f" ({m.status})")
                for m in items
            )
        if not items and not isinstance(value, tuple):
            return "(none)"
    return repr(value)


def _add_replay(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="replay an action log through the reducer, printing getter changes",
        description=(
            "Read an action log (written by create_chats(..., action_log=FILE) or "
            "'chats-store demo --log FILE'), reduce its actions in order with the pure "
            "reducer (no server, nothing sent) and print, after each action, every getter "
            "whose value changed."
        ),
    )
    parser.add_argument("log", metavar="LOG", help="the action log (JSON lines)")
    parser.add_argument(
        "--at",
        type=int,
        default=None,
        metavar="N",
        help="stop after action number N (numbered from 1)",
    )

    def replay_command(args: argparse.Namespace) -> int:
        from chats_store.chats.action_log import (
            ActionLogError,
            getter_values,
            read_action_log,
            replay,
        )

        if args.at is not None and args.at < 0:
            parser.error("--at must be 0 or more")
        try:
            with Path(args.log).open(encoding="utf-8") as file:
                log = read_action_log(file)
        except (OSError, ActionLogError) as error:
            print(f"chats-store replay: {args.log}: {error}", file=sys.stderr)
            return 1
        previous = getter_values(log.initial_state)
        seen: list[str] = []
        start = log.entries[0].at if log.entries else 0.0
        last = 0
        for entry, state in replay(log, at=args.at):
            last = entry.n
            print(f"#{entry.n} +{entry.at - start:.3f}s {entry.action!r}")
            seen.extend(chat_id for chat_id in state.chat_ids if chat_id not in seen)
            values = getter_values(state, seen)
            for key, value in values.items():
                if key not in previous and value is None:
                    continue
                if key not in previous or previous[key] != value:
                    print(f"    {key}: {_render(value)}")
            previous = values
        print(f"replayed {last} of {len(log.entries)} actions")
        return 0

    parser.set_defaults(command=replay_command)


# tui ---------------------------------------------------------------------------------


def _add_tui(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "tui",
        help="a terminal chat client (needs the 'tui' extra: Textual)",
        description=(
            "A terminal chat client on the public API: chats, messages with their status, "
            "members, own restrictions, connection status; e edits, d deletes, r resends the "
            "selected message; /mute USER MINUTES [reason], /unmute, /block, /unblock, /kick "
            "USER [reason], /leave and /help in the input. Ctrl-Q quits. "
            "Needs Textual: pip install 'chats_store[tui]'."
        ),
    )
    parser.add_argument("--host", required=True, help="the chat server, host:port")
    parser.add_argument("--secure", action="store_true", help="use wss:// instead of ws://")
    parser.add_argument("--session-token", required=True, metavar="T", help="your session token")
    parser.add_argument(
        "--chat-token",
        required=True,
        action="append",
        dest="chat_tokens",
        metavar="T",
        help="a chat token: join its chat on start; repeatable",
    )

    def tui(args: argparse.Namespace) -> int:
        from chats_store.errors import ChatsStoreError

        try:
            from chats_store.tui import run_tui
        except ModuleNotFoundError as error:
            if not (error.name or "").startswith(("textual", "rich")):
                raise
            print("chats-store tui: needs Textual: pip install 'chats_store[tui]'", file=sys.stderr)
            return 1
        try:
            return run_tui(args.host, args.session_token, args.chat_tokens, secure=args.secure)
        except ChatsStoreError as error:
            print(f"chats-store tui: {error}", file=sys.stderr)
            return 1

    parser.set_defaults(command=tui)


# main --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``chats-store`` argument parser with every subcommand."""
    from chats_store import __version__

    parser = argparse.ArgumentParser(
        prog="chats-store", description="The chats_store reference chat server and tools."
    )
    parser.add_argument("--version", action="version", version=f"chats-store {__version__}")
    subparsers = parser.add_subparsers(dest="subcommand", required=True, metavar="COMMAND")
    _add_serve(subparsers)
    _add_restore(subparsers)
    _add_token(subparsers)
    _add_demo(subparsers)
    _add_replay(subparsers)
    _add_tui(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``chats-store`` with ``argv`` (default: the command line); returns the exit status."""
    args = build_parser().parse_args(argv)
    command: Command = args.command
    try:
        return command(args)
    except BrokenPipeError:  # e.g. `chats-store replay LOG | head`: not an error
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - interpreter exit flushes it
        return 0


if __name__ == "__main__":
    sys.exit(main())
