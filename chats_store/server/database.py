"""The reference server's storage: stdlib ``sqlite3`` in WAL mode.

:class:`ChatDatabase` implements :class:`~chats_store.server.storage.ChatStorage`,
the interface of the server core. Everything that must survive a restart lives
here: each chat's event counter (``last_seq``), messages (edits and deletions
included), memberships with the permissions and metadata of the token they joined
with, restrictions, and the **event log** a resume reads.

The event log holds every chat event as the text of its ``event`` frame (so that a
resume could be served from the stored text as it is), with its ``seq`` and, for a
private event (``own_restrictions_changed``, ``own_metadata_changed``), the user it
is for: :meth:`ChatDatabase.append_event` encodes, :meth:`ChatDatabase.events_for`
decodes; :meth:`~ChatDatabase.log_event` and :meth:`~ChatDatabase.events_since` are
the same log at the level of frames. Trim policy: per chat, the log keeps at least
the last ``keep_events`` events (10,000 by default); every ``keep_events // 10``
events (at most 1,000) it drops the older ones and raises the chat's ``log_floor``
(every event with ``seq > log_floor`` is in the log). A resume from before
``log_floor`` gets a full snapshot instead. Deleting a message also erases its
``message_posted`` and ``message_edited`` events from the log (its content must not
outlive it); its ``message_removed`` event stays. Editing a message replaces its
``message_posted`` event by one carrying the edited message and drops its earlier
``message_edited`` events: the log never serves superseded content. On disk,
``secure_delete`` overwrites what a delete or an edit freed with zeros, and each
transaction that edited or deleted a message ends with a checkpoint that writes the
write-ahead log back and truncates it (:meth:`ChatDatabase.checkpoint`).

One connection, used by one thread at a time: each request of the core is one
transaction (:meth:`ChatDatabase.transaction`), and nothing interleaves. Within one process,
``next_seq``'s upsert is the per-chat order. A deleted message keeps its row
(``deleted`` = 1, content erased) so that its id stays taken: a re-post of it is
recognised, never stored twice.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import attrs

from chats_store.chats.actions import MessageEdited, MessagePosted, ServerEvent
from chats_store.chats.model import Message, Restriction, RestrictionKind
from chats_store.protocol import decode_event, encode_event
from chats_store.server.storage import LoggedEvent, Membership, StoredMessage, TimedRestriction

__all__ = [
    "DEFAULT_KEEP_EVENTS",
    "ChatDatabase",
    "LoggedEvents",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chats (
    chat_id   TEXT PRIMARY KEY,
    last_seq  INTEGER NOT NULL,
    log_floor INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS messages (
    chat_id    TEXT NOT NULL,
    message_id TEXT NOT NULL,
    author_id  TEXT NOT NULL,
    content    TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    created_at REAL NOT NULL,
    edited_at  REAL,
    deleted    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (chat_id, message_id)
);
CREATE INDEX IF NOT EXISTS messages_by_seq ON messages (chat_id, deleted, seq);
CREATE TABLE IF NOT EXISTS memberships (
    chat_id     TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    permissions TEXT NOT NULL,
    metadata    TEXT NOT NULL,
    joined_at   REAL NOT NULL,
    joined_seq  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (chat_id, user_id)
);
CREATE TABLE IF NOT EXISTS restrictions (
    chat_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    kind    TEXT NOT NULL,
    until   REAL,
    reason  TEXT,
    PRIMARY KEY (chat_id, user_id, kind)
);
CREATE INDEX IF NOT EXISTS restrictions_by_until ON restrictions (until) WHERE until IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
    chat_id    TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    target     TEXT,
    message_id TEXT,
    frame      TEXT NOT NULL,
    PRIMARY KEY (chat_id, seq)
) WITHOUT ROWID;
"""

DEFAULT_KEEP_EVENTS = 10_000
"""Events the log keeps per chat, at least (see the module's docstring)."""


@attrs.frozen
class LoggedEvents:
    """Event frames read from the log, oldest first; ``complete`` is False when the
    log could not give all of them (trimmed, or more than the limit asked)."""

    frames: tuple[str, ...]
    complete: bool


def _kind(value: str) -> RestrictionKind:
    if value == "mute":
        return "mute"
    if value == "block":
        return "block"
    raise ValueError(f"unknown restriction kind {value!r} in the database")


def _message(row: sqlite3.Row) -> Message:
    return Message(
        id=row["message_id"],
        chat_id=row["chat_id"],
        author_id=row["author_id"],
        content=row["content"],
        status="ready",
        seq=row["seq"],
        created_at=row["created_at"],
        edited_at=row["edited_at"],
    )


class ChatDatabase:
    """Synchronous access to the chat tables; ``path`` is a file or ``":memory:"``.

    ``keep_events``: how many events the log keeps per chat, at least.
    ``check_same_thread`` False lets the connection be used by another thread than
    the one that opened it (by one thread at a time: the caller serializes).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        keep_events: int = DEFAULT_KEEP_EVENTS,
        check_same_thread: bool = True,
    ) -> None:
        if isinstance(keep_events, bool) or not isinstance(keep_events, int) or keep_events < 1:
            raise ValueError(f"keep_events must be a positive integer, not {keep_events!r}")
        self._keep = keep_events
        self._superseded = False
        """Whether the current transaction edited or deleted content (see transaction)."""
        self._trim_every = max(1, min(1000, keep_events // 10))
        self._conn = sqlite3.connect(os.fspath(path), check_same_thread=check_same_thread)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA secure_delete=ON")  # deleted content is zeroed on disk
        self._conn.executescript(_SCHEMA)
        self._migrate()

    def _columns(self, table: str) -> set[str]:
        return {row["name"] for row in self._conn.execute(f"PRAGMA table_info({table})")}

    def _migrate(self) -> None:
        """Bring a database of an earlier version up to date.

        Without an event log, its chats start with an empty one (``log_floor`` =
        ``last_seq``), so a resume gets a snapshot. Without the seq each membership
        began at, every membership counts as begun at its chat's ``last_seq``: a
        resume from before then gets a snapshot, never older events.
        """
        if "log_floor" not in self._columns("chats"):
            with self._conn:
                self._conn.execute(
                    "ALTER TABLE chats ADD COLUMN log_floor INTEGER NOT NULL DEFAULT 0"
                )
                self._conn.execute("UPDATE chats SET log_floor = last_seq")
        if "joined_seq" not in self._columns("memberships"):
            with self._conn:
                self._conn.execute(
                    "ALTER TABLE memberships ADD COLUMN joined_seq INTEGER NOT NULL DEFAULT 0"
                )
                self._conn.execute(
                    "UPDATE memberships SET joined_seq = COALESCE((SELECT last_seq FROM chats "
                    "WHERE chats.chat_id = memberships.chat_id), 0)"
                )

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Commit what the block changed, or roll all of it back if it raises.

        After a transaction that edited or deleted a message has committed, the
        write-ahead log is written back into the database file and truncated
        (:meth:`checkpoint`), so that no earlier version of the content stays in it.
        """
        self._superseded = False
        with self._conn:
            yield
        if self._superseded:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Write the write-ahead log back into the database file and truncate it to zero
        bytes (``PRAGMA wal_checkpoint(TRUNCATE)``; nothing for ``":memory:"``).

        With ``secure_delete``, the content of a deleted or edited message is then
        nowhere in the files: the pages that held it were overwritten with zeros or the
        new content, and the log that held older copies of them is empty. A reader of
        another connection holding an older snapshot keeps the log from being truncated
        until it ends (the next edit or delete checkpoints again).
        """
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    # Chats --------------------------------------------------------------------

    def last_seq(self, chat_id: str) -> int:
        row = self._conn.execute(
            "SELECT last_seq FROM chats WHERE chat_id = ?", (chat_id,)
        ).fetchone()
        return int(row["last_seq"]) if row else 0

    def next_seq(self, chat_id: str) -> int:
        """Take the chat's next event seq (call inside a transaction)."""
        row = self._conn.execute(
            "INSERT INTO chats (chat_id, last_seq) VALUES (?, 1) "
            "ON CONFLICT (chat_id) DO UPDATE SET last_seq = last_seq + 1 "
            "RETURNING last_seq",
            (chat_id,),
        ).fetchone()
        return int(row["last_seq"])

    # Event log ----------------------------------------------------------------

    def append_event(self, event: LoggedEvent, *, target: str | None = None) -> None:
        """Log ``event`` as its frame text (inside the transaction that took its seq).

        ``target``: the only user who may read it back (None: every member).
        """
        message_id = event.message.id if isinstance(event, MessagePosted | MessageEdited) else None
        self.log_event(
            event.chat_id, event.seq, encode_event(event), target=target, message_id=message_id
        )

    def events_for(
        self, chat_id: str, user_id: str, since_seq: int, limit: int, max_bytes: int
    ) -> tuple[ServerEvent, ...] | None:
        """The logged events ``user_id`` may read with ``seq > since_seq``, oldest first;
        None if the log was trimmed past ``since_seq`` or holds more than ``limit`` of
        them, or more than ``max_bytes`` of frame text."""
        logged = self.events_since(chat_id, since_seq, user_id, limit, max_bytes)
        if not logged.complete:
            return None
        return tuple(decode_event(frame) for frame in logged.frames)

    def log_event(
        self,
        chat_id: str,
        seq: int,
        frame: str,
        *,
        target: str | None = None,
        message_id: str | None = None,
    ) -> None:
        """Store event ``seq`` of a chat (call inside the transaction that took ``seq``).

        ``target``: the only user who may read it (None: every member).
        ``message_id``: the message a ``message_posted``/``message_edited`` event
        carries, so that deleting the message can erase it.
        """
        self._conn.execute(
            "INSERT INTO events (chat_id, seq, target, message_id, frame) VALUES (?, ?, ?, ?, ?)",
            (chat_id, seq, target, message_id, frame),
        )
        if seq % self._trim_every == 0 and seq > self._keep:
            floor = seq - self._keep
            self._conn.execute(
                "DELETE FROM events WHERE chat_id = ? AND seq <= ?", (chat_id, floor)
            )
            self._conn.execute(
                "UPDATE chats SET log_floor = MAX(log_floor, ?) WHERE chat_id = ?",
                (floor, chat_id),
            )

    def erase_message_events(self, chat_id: str, message_id: str) -> None:
        """Drop the logged events that carry a message's content (it was deleted)."""
        self._superseded = True
        self._conn.execute(
            "DELETE FROM events WHERE chat_id = ? AND message_id = ?", (chat_id, message_id)
        )

    def supersede_message_events(self, posted: MessagePosted) -> None:
        """Replace the logged ``message_posted`` event of an edited message by ``posted``
        and drop its ``message_edited`` events (the core logs the new one next)."""
        self._superseded = True
        chat_id, message_id = posted.chat_id, posted.message.id
        self._conn.execute(
            "DELETE FROM events WHERE chat_id = ? AND message_id = ? AND seq != ?",
            (chat_id, message_id, posted.seq),
        )
        self._conn.execute(
            "UPDATE events SET frame = ? WHERE chat_id = ? AND seq = ? AND message_id = ?",
            (encode_event(posted), chat_id, posted.seq, message_id),
        )

    def log_floor(self, chat_id: str) -> int:
        row = self._conn.execute(
            "SELECT log_floor FROM chats WHERE chat_id = ?", (chat_id,)
        ).fetchone()
        return int(row["log_floor"]) if row else 0

    def events_since(
        self,
        chat_id: str,
        since_seq: int,
        user_id: str,
        limit: int,
        max_bytes: int | None = None,
    ) -> LoggedEvents:
        """The frames of the events ``user_id`` may read with ``seq > since_seq``.

        At most ``limit`` of them, oldest first, of at most ``max_bytes`` characters
        in all (frames are ASCII: characters are bytes; None: no limit); not
        ``complete`` (and none of them) if the log was trimmed past ``since_seq`` or
        holds more than that. Rows are read one at a time: past a limit, no more
        are read.
        """
        if since_seq < self.log_floor(chat_id):
            return LoggedEvents((), complete=False)
        rows = self._conn.execute(
            "SELECT frame FROM events WHERE chat_id = ? AND seq > ? "
            "AND (target IS NULL OR target = ?) ORDER BY seq LIMIT ?",
            (chat_id, since_seq, user_id, limit + 1),
        )
        frames: list[str] = []
        size = 0
        for (frame,) in rows:
            size += len(frame)
            if len(frames) == limit or (max_bytes is not None and size > max_bytes):
                rows.close()
                return LoggedEvents((), complete=False)
            frames.append(frame)
        return LoggedEvents(tuple(frames), complete=True)

    # Memberships --------------------------------------------------------------

    def membership(self, chat_id: str, user_id: str) -> Membership | None:
        row = self._conn.execute(
            "SELECT * FROM memberships WHERE chat_id = ? AND user_id = ?", (chat_id, user_id)
        ).fetchone()
        if row is None:
            return None
        return Membership(
            chat_id,
            user_id,
            frozenset(json.loads(row["permissions"])),
            json.loads(row["metadata"]),
            row["joined_seq"],
        )

    def save_membership(self, membership: Membership, joined_at: float) -> None:
        self._conn.execute(
            "INSERT INTO memberships (chat_id, user_id, permissions, metadata, joined_at, "
            "joined_seq) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (chat_id, user_id) DO UPDATE "
            "SET permissions = excluded.permissions, metadata = excluded.metadata",
            (
                membership.chat_id,
                membership.user_id,
                json.dumps(sorted(membership.permissions)),
                json.dumps(membership.metadata, sort_keys=True),
                joined_at,
                membership.joined_seq,
            ),
        )

    def delete_membership(self, chat_id: str, user_id: str) -> bool:
        cursor = self._conn.execute(
            "DELETE FROM memberships WHERE chat_id = ? AND user_id = ?", (chat_id, user_id)
        )
        return cursor.rowcount > 0

    def members_amount(self, chat_id: str) -> int:
        row = self._conn.execute(
            "SELECT COUNT(*) AS amount FROM memberships WHERE chat_id = ?", (chat_id,)
        ).fetchone()
        return int(row["amount"])

    # Messages -----------------------------------------------------------------

    def message(self, chat_id: str, message_id: str) -> StoredMessage | None:
        row = self._conn.execute(
            "SELECT * FROM messages WHERE chat_id = ? AND message_id = ?", (chat_id, message_id)
        ).fetchone()
        return None if row is None else StoredMessage(_message(row), bool(row["deleted"]))

    def insert_message(self, message: Message) -> None:
        self._conn.execute(
            "INSERT INTO messages (chat_id, message_id, author_id, content, seq, created_at, "
            "edited_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                message.chat_id,
                message.id,
                message.author_id,
                message.content,
                message.seq,
                message.created_at,
                message.edited_at,
            ),
        )

    def edit_message(self, chat_id: str, message_id: str, content: str, edited_at: float) -> None:
        self._superseded = True
        self._conn.execute(
            "UPDATE messages SET content = ?, edited_at = ? WHERE chat_id = ? AND message_id = ?",
            (content, edited_at, chat_id, message_id),
        )

    def delete_message(self, chat_id: str, message_id: str) -> None:
        self._superseded = True
        self._conn.execute(
            "UPDATE messages SET deleted = 1, content = '' WHERE chat_id = ? AND message_id = ?",
            (chat_id, message_id),
        )

    def messages_before(self, chat_id: str, before_seq: int, limit: int) -> tuple[Message, ...]:
        """The newest ``limit`` live messages with ``seq < before_seq``, oldest first."""
        rows = self._conn.execute(
            "SELECT * FROM messages WHERE chat_id = ? AND deleted = 0 AND seq < ? "
            "ORDER BY seq DESC LIMIT ?",
            (chat_id, before_seq, limit),
        ).fetchall()
        return tuple(_message(row) for row in reversed(rows))

    # Restrictions -------------------------------------------------------------

    def restrictions(self, chat_id: str, user_id: str) -> tuple[Restriction, ...]:
        """Every stored restriction of the member, expired ones included, mute first."""
        rows = self._conn.execute(
            "SELECT kind, until, reason FROM restrictions WHERE chat_id = ? AND user_id = ? "
            "ORDER BY kind DESC",
            (chat_id, user_id),
        ).fetchall()
        return tuple(Restriction(_kind(r["kind"]), r["until"], r["reason"]) for r in rows)

    def save_restriction(self, chat_id: str, user_id: str, restriction: Restriction) -> None:
        self._conn.execute(
            "INSERT INTO restrictions (chat_id, user_id, kind, until, reason) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (chat_id, user_id, kind) DO UPDATE SET "
            "until = excluded.until, reason = excluded.reason",
            (chat_id, user_id, restriction.kind, restriction.until, restriction.reason),
        )

    def delete_restriction(self, chat_id: str, user_id: str, kind: RestrictionKind) -> bool:
        cursor = self._conn.execute(
            "DELETE FROM restrictions WHERE chat_id = ? AND user_id = ? AND kind = ?",
            (chat_id, user_id, kind),
        )
        return cursor.rowcount > 0

    def restrictions_amount(self, chat_id: str) -> int:
        row = self._conn.execute(
            "SELECT COUNT(*) AS amount FROM restrictions WHERE chat_id = ?", (chat_id,)
        ).fetchone()
        return int(row["amount"])

    def next_expiry(self) -> float | None:
        """The earliest expiry time of a stored restriction, of any chat (None: none)."""
        row = self._conn.execute(
            "SELECT MIN(until) AS until FROM restrictions WHERE until IS NOT NULL"
        ).fetchone()
        return None if row["until"] is None else float(row["until"])

    def expired_restrictions(self, now: float, limit: int) -> tuple[TimedRestriction, ...]:
        """At most ``limit`` restrictions expired by ``now`` (``until <= now``), earliest first."""
        rows = self._conn.execute(
            "SELECT chat_id, user_id, kind, until FROM restrictions "
            "WHERE until IS NOT NULL AND until <= ? ORDER BY until LIMIT ?",
            (now, limit),
        ).fetchall()
        return tuple(
            TimedRestriction(r["chat_id"], r["user_id"], _kind(r["kind"]), r["until"]) for r in rows
        )
