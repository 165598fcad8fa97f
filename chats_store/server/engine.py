"""Which storage engine a server runs on: :func:`open_storage` reads it from ``db``.

``db`` is a ``postgresql://`` (or ``postgres://``) URL for PostgreSQL
(:class:`~chats_store.server.postgres.PostgresDatabase`, shared by any number of
server processes), anything else an SQLite file or ``":memory:"``
(:class:`~chats_store.server.database.ChatDatabase`, one process).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from chats_store.server.database import ChatDatabase
from chats_store.server.rows import BUSY_TIMEOUT, DEFAULT_KEEP_EVENTS

if TYPE_CHECKING:
    from chats_store.server.postgres import PostgresDatabase

__all__ = ["is_postgres_url", "open_storage"]

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(db: str | os.PathLike[str]) -> bool:
    """Whether ``db`` names a PostgreSQL database rather than an SQLite file."""
    return isinstance(db, str) and db.startswith(_POSTGRES_SCHEMES)


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
