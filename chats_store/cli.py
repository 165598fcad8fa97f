"""The ``chats-store`` command: run the reference server, mint development tokens.

::

    chats-store serve [--host 127.0.0.1] [--port 8765] [--db chats_store.sqlite3] [--secret S]
    chats-store token session USER [--name NAME] [--ttl 3600] [--secret S]
    chats-store token chat USER CHAT [--permission moderate] [--metadata role=moderator]
                                     [--ttl 300] [--secret S]
    chats-store demo [--pause 0.05]

The secret is ``--secret`` or the ``CHATS_STORE_SECRET`` environment variable; it
must be at least 32 bytes. Each subcommand is one ``_add_*`` function below.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Sequence

from chats_store.protocol import PROTOCOL_VERSION
from chats_store.server import (
    SECRET_ENV,
    check_secret,
    mint_chat_token,
    mint_session_token,
    run_server,
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


async def _serve(host: str, port: int, db: str, secret: bytes) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on this platform
            loop.add_signal_handler(signum, stop.set)
    async with run_server(host, port, db, secret) as server:
        print(
            f"chats_store server listening on {server.url} "
            f"(subprotocol {PROTOCOL_VERSION}, database {db}); Ctrl-C stops it",
            flush=True,
        )
        await stop.wait()
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
        help="SQLite file, or :memory: (default: chats_store.sqlite3)",
    )
    _add_secret_option(parser)

    def serve(args: argparse.Namespace) -> int:
        secret = _secret(parser, args)
        try:
            asyncio.run(_serve(args.host, args.port, args.db, secret))
        except KeyboardInterrupt:
            pass
        except OSError as error:
            print(f"chats-store serve: {error}", file=sys.stderr)
            return 1
        return 0

    parser.set_defaults(command=serve)


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

    def demo(args: argparse.Namespace) -> int:
        from chats_store.demo import run_demo

        asyncio.run(run_demo(pause=args.pause))
        return 0

    parser.set_defaults(command=demo)


# main --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``chats-store`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="chats-store", description="The chats_store reference chat server and tools."
    )
    subparsers = parser.add_subparsers(dest="subcommand", required=True, metavar="COMMAND")
    _add_serve(subparsers)
    _add_token(subparsers)
    _add_demo(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``chats-store`` with ``argv`` (default: the command line); returns the exit status."""
    args = build_parser().parse_args(argv)
    command: Command = args.command
    return command(args)


if __name__ == "__main__":
    sys.exit(main())
