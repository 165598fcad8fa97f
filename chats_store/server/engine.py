"""Which storage engine a server runs on: :func:`open_storage` reads it from ``db``.

``db`` is a ``postgresql://`` (or ``postgres://``) URL for PostgreSQL
(:class:`~chats_store.server.postgres.PostgresDatabase`, shared by any number of
server processes), anything else an SQLite file or ``":memory:"``
(:class:`~chats_store.server.database.ChatDatabase`, one process).
"""

from __future__ import annotations

import os
import urllib.parse
from typing import TYPE_CHECKING

from chats_store.server.database import ChatDatabase
from chats_store.server.rows import BUSY_TIMEOUT, DEFAULT_KEEP_EVENTS

if TYPE_CHECKING:
    from chats_store.server.postgres import PostgresDatabase

__all__ = ["is_postgres_url", "open_storage", "shown_db"]

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(db: str | os.PathLike[str]) -> bool:
    """Whether ``db`` names a PostgreSQL database rather than an SQLite file."""
    return isinstance(db, str) and db.startswith(_POSTGRES_SCHEMES)


def shown_db(db: str | os.PathLike[str]) -> str:
    """``db`` as it may be shown (printed, logged): a URL's password masked."""
    if not is_postgres_url(db):
        return os.fspath(db)
    assert isinstance(db, str)
    url = urllib.parse.urlsplit(db)
    if url.password is None:
        return db
    user, _, host = url.netloc.rpartition("@")
    masked = f"{user.partition(':')[0]}:***@{host}"
    return urllib.parse.urlunsplit(url._replace(netloc=masked))


def open_storage(
    db: str | os.PathLike[str],
    *,
    keep_events: int = DEFAULT_KEEP_EVENTS,
    durable: bool = True,
    busy_timeout: float = BUSY_TIMEOUT,
) -> ChatDatabase | PostgresDatabase:
    """Open the storage ``db`` names, for the core's worker thread (see the module).

    Raises ``ModuleNotFoundError`` for a PostgreSQL URL without the driver
    installed, and what the engine raises when it cannot open the database.
    """
    if is_postgres_url(db):
        assert isinstance(db, str)
        try:
            from chats_store.server.postgres import PostgresDatabase
        except ModuleNotFoundError as missing:
            raise ModuleNotFoundError(
                f"db is a PostgreSQL URL but its driver is missing ({missing}): "
                "pip install 'chats_store[postgresql]'"
            ) from None
        return PostgresDatabase(
            db, keep_events=keep_events, durable=durable, busy_timeout=busy_timeout
        )
    return ChatDatabase(
        db,
        keep_events=keep_events,
        check_same_thread=False,  # opened by the caller, then used by the worker's thread only
        durable=durable,
        busy_timeout=busy_timeout,
    )
