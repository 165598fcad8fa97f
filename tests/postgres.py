"""A real PostgreSQL for the tests: one throwaway cluster, a fresh database per test.

:class:`PostgresCluster` runs ``initdb`` and ``pg_ctl`` from the Debian package
``postgresql`` (``/usr/lib/postgresql/<version>/bin``) in a temporary directory, on a
free port of 127.0.0.1, with trust authentication on loopback and its Unix socket in
that directory. PostgreSQL refuses to run as root: as root, the binaries run as the
``postgres`` user (``runuser``), in a directory that user owns. ``fsync`` stays on, so
that the durability the tests see is the production one.

Each test gets a database of its own (:meth:`PostgresCluster.create_database`), made
from ``template0``: cheap, and nothing of one test leaks into the next.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence

__all__ = ["PostgresCluster", "PostgresUnavailableError", "postgres_binaries"]

_USER = "postgres"
"""The unprivileged user that runs the cluster when the tests run as root."""

_START_TIMEOUT = 30
"""Seconds ``pg_ctl`` waits for the cluster to accept connections."""


class PostgresUnavailableError(Exception):
    """PostgreSQL cannot be had on this machine (the reason says what to install)."""


def postgres_binaries() -> str:
    """The directory of ``initdb`` and ``pg_ctl``, the newest version installed.

    Raises :class:`PostgresUnavailableError` when there is none.
    """
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(path.split("/")[4]) if path.split("/")[4].isdigit() else 0,
    )
    if not found:
        on_path = shutil.which("initdb")
        if on_path is None:
            raise PostgresUnavailableError(
                "PostgreSQL is not installed: apt-get install postgresql"
            )
        return os.path.dirname(on_path)
    return os.path.dirname(found[-1])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresCluster:
    """A PostgreSQL cluster of the tests' own, started by :meth:`start`."""

    def __init__(self) -> None:
        self._bin = postgres_binaries()
        self._as_root = os.geteuid() == 0
        if self._as_root:
            try:
                pwd.getpwnam(_USER)
            except KeyError:
                raise PostgresUnavailableError(
                    f"the tests run as root and there is no {_USER!r} user to run "
                    "PostgreSQL as: apt-get install postgresql"
                ) from None
        self._dir = tempfile.mkdtemp(prefix="chats_store-pg-")
        self._data = os.path.join(self._dir, "data")
        self.port = _free_port()
        self._names = itertools.count(1)
        self._started = False

    def _run(self, *command: str) -> None:
        argv: Sequence[str] = (os.path.join(self._bin, command[0]), *command[1:])
        if self._as_root:
            argv = ("runuser", "-u", _USER, "--", *argv)
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise PostgresUnavailableError(
                f"{command[0]} failed ({result.returncode}): {result.stderr.strip()}"
            )

    def start(self) -> None:
        if self._as_root:
            user = pwd.getpwnam(_USER)
            os.chown(self._dir, user.pw_uid, user.pw_gid)
        self._run(
            "initdb",
            "--pgdata",
            self._data,
            "--username",
            _USER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--no-instructions",
        )
        options = (
            f"-c port={self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self._dir} -c fsync=on "
            "-c max_connections=200 -c shared_buffers=32MB"
        )
        self._run(
            "pg_ctl",
            "--pgdata",
            self._data,
            "--log",
            os.path.join(self._dir, "log"),
            "--options",
            options,
            "--wait",
            "--timeout",
            str(_START_TIMEOUT),
            "start",
        )
        self._started = True

    def url(self, database: str = "postgres") -> str:
        """The ``postgresql://`` URL of one of the cluster's databases."""
        return f"postgresql://{_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new, empty database; its URL."""
        import psycopg

        name = f"test_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def stop(self) -> None:
        try:
            if self._started:
                self._run("pg_ctl", "--pgdata", self._data, "--mode", "immediate", "stop")
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)
