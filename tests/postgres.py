"""A real PostgreSQL for the tests: one throwaway cluster, a fresh database per test.

:class:`PostgresCluster` runs ``initdb`` and ``pg_ctl`` from the Debian package
``postgresql`` (``/usr/lib/postgresql/<version>/bin``) in a temporary directory, on a
free port of 127.0.0.1, with trust authentication on loopback and its Unix socket in
that directory. PostgreSQL refuses to run as root: as root, the binaries run as the
``postgres`` user (``runuser``), in a directory that user owns. ``fsync`` stays on, so
that the durability the tests see is the production one.

Each test gets tables of its own (:meth:`PostgresCluster.new_database_url`): a new
schema in the cluster's database ``chats``, first on the URL's ``search_path``. A
schema costs a few milliseconds where ``CREATE DATABASE`` copies and fsyncs a
template (about a second here), and nothing of one test leaks into the next.
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
from typing import Any

__all__ = ["PostgresCluster", "PostgresUnavailableError", "postgres_binaries"]

_USER = "postgres"
"""The unprivileged user that runs the cluster when the tests run as root."""

_DATABASE = "chats"
"""The database the tests' schemas are made in."""

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
            "--no-sync",  # the cluster is thrown away; the server runs with fsync on
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
        self.sql(f"CREATE DATABASE {_DATABASE}", database="postgres")

    def url(self, database: str = _DATABASE, schema: str | None = None) -> str:
        """The ``postgresql://`` URL of one of the cluster's databases (and ``schema``
        first on its search path)."""
        url = f"postgresql://{_USER}@127.0.0.1:{self.port}/{database}"
        return url if schema is None else f"{url}?options=-csearch_path%3D{schema}"

    def sql(self, query: str, database: str = _DATABASE) -> list[tuple[Any, ...]]:
        """Run ``query`` alone (autocommit) in ``database``; the rows it returned."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as connection:
            cursor = connection.execute(query.encode())
            return cursor.fetchall() if cursor.description else []

    def new_database_url(self) -> str:
        """The URL of new, empty tables: a schema of their own (see the module)."""
        schema = f"test_{next(self._names)}"
        self.sql(f"CREATE SCHEMA {schema}")
        return self.url(schema=schema)

    def stop(self) -> None:
        try:
            if self._started:
                self._run("pg_ctl", "--pgdata", self._data, "--mode", "immediate", "stop")
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)
