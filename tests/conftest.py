"""Fixtures shared across the test packages.

A PostgreSQL cluster for the session (``postgres_cluster``, see
:mod:`tests.postgres`) and a fresh database of it per test (``postgres_url``);
they skip the test, saying why, only where PostgreSQL is not installed.
``each_db`` runs a test on each storage engine: a new SQLite file, then a new
PostgreSQL database.

The schema check of every frame the server sends in the server, end-to-end, fault,
fuzz and browser tests.

The GUI tests (tests/gui) and the examples' tests (tests/docs):

One Tk root and one QApplication for the whole session: Tk aborts the process when
its interpreter is freed on another thread than its own, and the garbage collector
runs on whatever thread allocates (the store's loop thread, in these tests), so the
root must stay alive until the session ends; Qt allows one QApplication per process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gui.display import NoDisplayError, virtual_display
from tests.postgres import PostgresCluster, PostgresUnavailableError


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster of the session's own (skips if PostgreSQL is not installed)."""
    try:
        cluster = PostgresCluster()
    except PostgresUnavailableError as reason:
        pytest.skip(str(reason))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """The URL of new, empty PostgreSQL tables (``postgresql://...``): a schema of their own."""
    return postgres_cluster.new_database_url()


@pytest.fixture(params=["sqlite", "postgresql"])
def each_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty database of each storage engine in turn, as ``run_server``'s ``db``:
    an SQLite file, then a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "chats.sqlite3")
    url: str = request.getfixturevalue("postgres_url")
    return url


CHECKED_SUITES = frozenset({"server", "e2e", "fuzz", "testing", "browser"})
"""The directories of tests whose servers' frames are checked against the schema."""
UNCHECKED = frozenset({"test_outbox.py"})
"""Files of those whose outboxes carry made-up texts, not frames."""


@pytest.fixture(autouse=True)
def server_frames_checked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    """In :data:`CHECKED_SUITES`, every frame a server of the test sends must match the
    published schema (``tests/schema_check.py``); the test fails at its end otherwise."""
    if request.path.parent.name not in CHECKED_SUITES or request.path.name in UNCHECKED:
        yield None
        return
    from chats_store.server.outbox import Outbox
    from tests.schema_check import ServerFrameCheck

    check = ServerFrameCheck()
    monkeypatch.setattr(Outbox, "send", check.wrap(Outbox.send))
    yield check
    failures = check.verify()
    assert not failures, "frames off the schema:\n" + "\n".join(failures[:10])


@pytest.fixture(scope="session")
def display() -> Iterator[str]:
    """An X display for Tk: ``$DISPLAY``, or Xvfb started for the session."""
    try:
        with virtual_display() as name:
            yield name
    except NoDisplayError as reason:
        pytest.skip(str(reason))


@pytest.fixture(scope="session")
def tk_root(display: str) -> Iterator[Any]:
    """The session's Tk root (hidden); tests open ``Toplevel`` windows on it."""
    tkinter = pytest.importorskip("tkinter", reason="this Python has no tkinter")
    root = tkinter.Tk()
    root.withdraw()
    yield root
    root.destroy()


@pytest.fixture(scope="session")
def qt_app() -> Any:
    """The session's QApplication, on Qt's offscreen platform unless one is set."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    widgets = pytest.importorskip("PySide6.QtWidgets", reason="PySide6 is not installed")
    return widgets.QApplication.instance() or widgets.QApplication([])
