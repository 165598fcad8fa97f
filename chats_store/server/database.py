"""The reference server's storage: stdlib ``sqlite3`` in WAL mode.

:class:`ChatDatabase` implements :class:`~chats_store.server.storage.ChatStorage`,
the interface of the server core. Everything that must survive a restart lives
here: each chat's event counter (``last_seq``), messages (edits and deletions
included), memberships with the permissions and metadata of the token they joined
with, restrictions, the **event log** a resume reads, and the history's **epoch**.

**Durability.** With ``durable`` (the default) SQLite runs with
``synchronous=FULL``: in WAL mode, the write-ahead log is fsynced at every commit,
so when the outermost :meth:`ChatDatabase.transaction` returns, its writes survive a
power loss. The core runs the requests that arrive together in one outer
transaction (a group commit): one fsync for all of them. ``durable=False`` is
``synchronous=NORMAL``: fsyncs only at checkpoints, a power loss may roll back the
last commits. Transactions are explicit: the outermost is ``BEGIN IMMEDIATE`` (it
takes the write lock at once, so a write never fails half-way for a lock), a
nested one a ``SAVEPOINT``. Another process holding the write lock delays a
transaction by up to ``busy_timeout`` seconds; past it the transaction raises
:class:`~chats_store.server.storage.StorageBusyError` and nothing was applied.

**The epoch.** A file database keeps its epoch in the ``meta`` table and, next to
it, a small file ``<database>-history`` saying which epoch this file served and how
many seqs it had committed (rewritten after every commit, without fsync: it may
only lag behind the database, never run ahead of it). On opening, the database keeps
its epoch only if that file names the same epoch and the database holds at least
as many seqs; otherwise (a new database, a copy put back in its place, a database
of another server, one that lost commits in a crash without ``durable``, or the
file missing) it starts a new epoch. :func:`restore_database` puts a copy back and starts a
new epoch explicitly. ``":memory:"`` starts a new epoch every time.

The event log holds every chat event as the text of its ``event`` frame (a resume
sends the stored text as it is), with its ``seq`` and, for a private event
(``own_restrictions_changed``, ``own_metadata_changed``), the user it is for:
:meth:`ChatDatabase.append_event` encodes, :meth:`ChatDatabase.missed_frames` reads
the frames back; :meth:`~ChatDatabase.log_event` is the same log at the level of
frames. Trim policy: per chat, the log keeps at least the last ``keep_events``
events (10,000 by default); every ``keep_events // 10`` events (at most 1,000) it
drops the older ones and raises the chat's ``log_floor`` (every event with
``seq > log_floor`` is in the log). A resume from before ``log_floor`` gets a full
snapshot instead. Deleting a message also erases its ``message_posted`` and
``message_edited`` events from the log (its content must not outlive it); its
``message_removed`` event stays. Editing a message replaces its ``message_posted``
event by one carrying the edited message and drops its earlier ``message_edited``
events: the log never serves superseded content. On disk, ``secure_delete``
overwrites what a delete or an edit freed with zeros, and each transaction that
edited or deleted a message ends with a checkpoint that writes the write-ahead log
back and truncates it (:meth:`ChatDatabase.checkpoint`).

One connection, used by one thread at a time: each request of the core is one
transaction, and nothing interleaves. Within one process, ``next_seq``'s upsert is
the per-chat order. A deleted message keeps its row (``deleted`` = 1, content
erased) so that its id stays taken: a re-post of it is recognised, never stored
twice.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Collection, Iterator
from contextlib import closing, contextmanager

from chats_store.chats.actions import MessagePosted
from chats_store.chats.model import Message, Restriction, RestrictionKind
from chats_store.protocol import encode_event
from chats_store.server.rows import (
    BUSY_TIMEOUT,
    DEFAULT_KEEP_EVENTS,
    EventLog,
    LogTrim,
    bounded_frames,
    check_busy_timeout,
    member_from_rows,
    membership_columns,
    new_epoch,
    restriction_kind,
    restrictions_from_rows,
)
from chats_store.server.storage import (
    Member,
    Membership,
    StorageBusyError,
    StoredMessage,
    TimedRestriction,
)

__all__ = [
    "BUSY_TIMEOUT",
    "DEFAULT_KEEP_EVENTS",
    "HISTORY_SUFFIX",
    "ChatDatabase",
    "restore_database",
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
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

HISTORY_SUFFIX = "-history"
"""The file next to a database (its path plus this) that says which history it served."""

_HISTORY_RECORD = "{epoch} {seqs:020d}\n"
"""The history file's one line: the epoch, then how many seqs were committed."""


def _is_file(path: str) -> bool:
    return path not in ("", ":memory:")


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


class ChatDatabase(EventLog):
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
        durable: bool = True,
        busy_timeout: float = BUSY_TIMEOUT,
    ) -> None:
        self._trim = LogTrim(keep_events)
        check_busy_timeout(busy_timeout)
        self._superseded = False
        """Whether the current transaction edited or deleted content (see transaction)."""
        self._path = os.fspath(path)
        self._conn = sqlite3.connect(
            self._path,
            check_same_thread=check_same_thread,
            isolation_level=None,  # transactions are explicit: see transaction()
            timeout=busy_timeout,
        )
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._conn.execute("PRAGMA secure_delete=ON")  # deleted content is zeroed on disk
        self._taken: list[int] = []
        """Seqs taken in each open transaction, outermost first."""
        self._seqs = 0
        """Seqs committed in this database, over all chats (its history's length)."""
        self._history: int | None = None
        """The open history file's descriptor (None for ``:memory:``)."""
        self._epoch = ""
        self._conn.executescript(_SCHEMA)  # (executescript commits: not in a transaction)
        with self.transaction():
            self._migrate()
        self._seqs = self._committed_seqs()
        self._epoch = self._open_history()

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
            self._conn.execute("ALTER TABLE chats ADD COLUMN log_floor INTEGER NOT NULL DEFAULT 0")
            self._conn.execute("UPDATE chats SET log_floor = last_seq")
        if "joined_seq" not in self._columns("memberships"):
            self._conn.execute(
                "ALTER TABLE memberships ADD COLUMN joined_seq INTEGER NOT NULL DEFAULT 0"
            )
            self._conn.execute(
                "UPDATE memberships SET joined_seq = COALESCE((SELECT last_seq FROM chats "
                "WHERE chats.chat_id = memberships.chat_id), 0)"
            )

    def _committed_seqs(self) -> int:
        row = self._conn.execute("SELECT COALESCE(SUM(last_seq), 0) AS seqs FROM chats").fetchone()
        return int(row["seqs"])

    # The epoch ----------------------------------------------------------------

    @property
    def epoch(self) -> str:
        """The identity of the history this database holds (see the module's docstring)."""
        return self._epoch

    def _stored_epoch(self) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
        return None if row is None else str(row["value"])

    def _open_history(self) -> str:
        """Keep the stored epoch if the history file vouches for it, or start a new one."""
        if not _is_file(self._path):
            return self.start_new_epoch()
        history_path = self._path + HISTORY_SUFFIX
        served = _read_history(history_path)
        self._history = os.open(history_path, os.O_RDWR | os.O_CREAT, 0o644)
        stored = self._stored_epoch()
        if stored is None or served is None:
            return self.start_new_epoch()
        served_epoch, served_seqs = served
        # The file is rewritten after each commit, so it never counts more seqs than
        # the database committed: more means this is not the database it saw.
        if served_epoch != stored or served_seqs > self._seqs:
            return self.start_new_epoch()
        self._epoch = stored
        self._write_history(sync=True)
        return stored

    def start_new_epoch(self) -> str:
        """Give the history a new identity, so that clients drop what they hold of it.

        For a database put back from a copy (see :func:`restore_database`); the server does
        it by itself when it opens a database it cannot vouch for. Returns the new
        epoch.
        """
        epoch = new_epoch()
        with self.transaction():
            self._conn.execute(
                "INSERT INTO meta (key, value) VALUES ('epoch', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (epoch,),
            )
        self._epoch = epoch
        self._write_history(sync=True)
        return epoch

    def _write_history(self, *, sync: bool = False) -> None:
        if self._history is None or not self._epoch:
            return
        record = _HISTORY_RECORD.format(epoch=self._epoch, seqs=self._seqs).encode()
        os.pwrite(self._history, record, 0)
        if sync:
            os.fsync(self._history)

    def close(self) -> None:
        self._conn.close()
        if self._history is not None:
            os.close(self._history)
            self._history = None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Commit what the block changed, or roll all of it back if it raises.

        The outermost is ``BEGIN IMMEDIATE`` ... ``COMMIT`` (durable when it returns,
        with ``durable``); a nested one is a savepoint, kept or dropped alone.
        Raises :class:`~chats_store.server.storage.StorageBusyError` if another
        process held the write lock for longer than ``busy_timeout``. After an
        outermost transaction that edited or deleted a message has committed, the
        write-ahead log is written back into the database file and truncated
        (:meth:`checkpoint`), so that no earlier version of the content stays in it.
        """
        depth = len(self._taken)
        if depth:
            self._conn.execute(f"SAVEPOINT level{depth}")
        else:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as error:
                if "locked" in str(error) or "busy" in str(error):
                    raise StorageBusyError(
                        f"the database {self._path!r} stayed locked by another process ({error})"
                    ) from None
                raise
        self._taken.append(0)
        try:
            yield
        except BaseException:
            self._taken.pop()
            if depth:
                self._conn.execute(f"ROLLBACK TO level{depth}")
                self._conn.execute(f"RELEASE level{depth}")
            else:
                self._conn.execute("ROLLBACK")
            raise
        if depth:
            self._conn.execute(f"RELEASE level{depth}")
            taken = self._taken.pop()
            self._taken[-1] += taken
            return
        try:
            self._conn.execute("COMMIT")
        except BaseException:
            self._taken.pop()
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        self._seqs += self._taken.pop()
        self._write_history()
        if self._superseded:
            self._superseded = False
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

    def lock_chats(self, chat_ids: Collection[str]) -> None:
        """Nothing to take: the outermost transaction holds the database's write lock."""

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
        self._taken[-1] += 1
        return int(row["last_seq"])

    def next_post_seq(self, chat_id: str, message_id: str) -> int | None:
        """See :meth:`ChatStorage.next_post_seq` (call inside a transaction)."""
        # An UPDATE, not next_seq's upsert: SQLite runs an INSERT ... SELECT with
        # a condition several times slower.
        row = self._conn.execute(
            "UPDATE chats SET last_seq = last_seq + 1 WHERE chat_id = ? AND NOT EXISTS "
            "(SELECT 1 FROM messages WHERE chat_id = ? AND message_id = ?) "
            "RETURNING last_seq",
            (chat_id, chat_id, message_id),
        ).fetchone()
        if row is None:
            return None
        self._taken[-1] += 1
        return int(row["last_seq"])

    # Event log ----------------------------------------------------------------

    def log_event(
        self,
        chat_id: str,
        seq: int,
        frame: str,
        *,
        target: str | None = None,
        message_id: str | None = None,
    ) -> None:
        """See :meth:`EventLog.log_event`."""
        self._conn.execute(
            "INSERT INTO events (chat_id, seq, target, message_id, frame) VALUES (?, ?, ?, ?, ?)",
            (chat_id, seq, target, message_id, frame),
        )
        floor = self._trim.floor_after(seq)
        if floor is not None:
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

    def missed_frames(
        self, chat_id: str, user_id: str, since_seq: int, limit: int, max_bytes: int | None = None
    ) -> tuple[str, ...] | None:
        """The frames of the events ``user_id`` may read with ``seq > since_seq``.

        At most ``limit`` of them, oldest first, of at most ``max_bytes`` characters
        in all (frames are ASCII: characters are bytes; None: no limit); None if the
        log was trimmed past ``since_seq`` or holds more than that. Rows are read one
        at a time: past a limit, no more are read.
        """
        if since_seq < self.log_floor(chat_id):
            return None
        # Plain tuples, not Rows: the garbage collector untracks a tuple of strings at
        # once, where a thousand Rows alive during a collection would be promoted to
        # the old generation and bring the next full collection closer.
        cursor = self._conn.cursor()
        cursor.row_factory = None
        rows = cursor.execute(
            "SELECT frame FROM events WHERE chat_id = ? AND seq > ? "
            "AND (target IS NULL OR target = ?) ORDER BY seq LIMIT ?",
            (chat_id, since_seq, user_id, limit + 1),
        )
        frames = bounded_frames(rows, limit, max_bytes)
        rows.close()
        return frames

    # Memberships --------------------------------------------------------------

    def member(self, chat_id: str, user_id: str) -> Member | None:
        cursor = self._conn.cursor()
        cursor.row_factory = None
        rows = cursor.execute(
            "SELECT m.permissions, m.metadata, m.joined_seq, r.kind, r.until, r.reason "
            "FROM memberships AS m LEFT JOIN restrictions AS r "
            "ON r.chat_id = m.chat_id AND r.user_id = m.user_id "
            "WHERE m.chat_id = ? AND m.user_id = ? ORDER BY r.kind DESC",
            (chat_id, user_id),
        ).fetchall()
        return member_from_rows(chat_id, user_id, rows)

    def save_membership(self, membership: Membership, joined_at: float) -> None:
        self._conn.execute(
            "INSERT INTO memberships (chat_id, user_id, permissions, metadata, joined_at, "
            "joined_seq) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (chat_id, user_id) DO UPDATE "
            "SET permissions = excluded.permissions, metadata = excluded.metadata",
            (
                membership.chat_id,
                membership.user_id,
                *membership_columns(membership),
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
        return restrictions_from_rows(rows)

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
            TimedRestriction(r["chat_id"], r["user_id"], restriction_kind(r["kind"]), r["until"])
            for r in rows
        )


def _read_history(path: str) -> tuple[str, int] | None:
    """The epoch a history file names and the seqs it counted (None if unreadable)."""
    try:
        with open(path, encoding="ascii") as file:
            epoch, _, seqs = file.readline().strip().partition(" ")
        return (epoch, int(seqs)) if epoch else None
    except (OSError, ValueError):  # missing, torn, not ASCII
        return None


def restore_database(copy: str | os.PathLike[str], path: str | os.PathLike[str]) -> str:
    """Put the database ``copy`` in place of the database at ``path``; its new epoch.

    The copy is read with SQLite's backup API (so it may be a live database),
    written over ``path`` (created if needed), then given a new epoch: clients that
    saw a later history replace it with this one on their next resume. Stop the
    server that uses ``path`` first.
    """
    with (
        closing(sqlite3.connect(os.fspath(copy))) as source,
        closing(sqlite3.connect(os.fspath(path))) as target,
    ):
        source.backup(target)
    database = ChatDatabase(path)
    try:
        return database.start_new_epoch()
    finally:
        database.close()
