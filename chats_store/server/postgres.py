"""The server's storage on PostgreSQL, shared by any number of server processes.

:class:`PostgresDatabase` implements :class:`~chats_store.server.storage.ChatStorage`
with the psycopg 3 driver (the extra ``chats_store[postgresql]``), on one connection
that one thread uses at a time (the core's worker). It keeps what
:class:`~chats_store.server.database.ChatDatabase` keeps on SQLite, in the same tables:
each chat's event counter, messages, memberships, restrictions, the event log and
the history's epoch.

**Schema.** The server creates and migrates it: ``schema_version`` holds the version
the tables are at, and opening applies the migrations after it, in order, in one
transaction, under an advisory lock so that processes starting together migrate
once.

**Transactions.** The connection is in autocommit mode and every transaction is
explicit: the outermost is ``BEGIN`` ... ``COMMIT`` at ``READ COMMITTED``, a nested
one a savepoint, kept or dropped alone. With ``durable`` (the default) a commit
returns once its WAL record is flushed (``synchronous_commit=on``): an acknowledged
request survives a crash of the database server; ``durable=False`` is
``synchronous_commit=off`` (a crash may lose the last commits, never corrupt).

**One chat, one writer at a time.** The first time a transaction touches a chat, it
takes that chat's lock (a transaction-level advisory lock, held until it commits or
rolls back), so every transaction sees each chat it touches as if it ran alone: a
snapshot's messages and ``last_seq`` agree, a repeated post of a message id finds
the message another process just committed (and is answered with it, never stored
twice; ``(chat_id, message_id)`` is the table's key besides). An expired restriction
is lifted once: every process's expiry timer reads the expired ones in one order
(:meth:`PostgresDatabase.expired_restrictions`) and lifts each under its chat's lock;
the first deletes it and tells the member, the others wait for that commit, find it
gone, and tell no one. ``next_seq`` then takes the chat's next seq on its
row (``UPDATE ... SET last_seq = last_seq + 1 ... RETURNING``), committed with the
event it numbers. Waiting for a lock is bounded by ``busy_timeout``
(``lock_timeout``); past it, or when PostgreSQL breaks a deadlock between two
processes' transactions, the statement raises
:class:`~chats_store.server.storage.StorageBusyError` and what the (inner)
transaction wrote is rolled back.

**The epoch** is kept in the ``meta`` table, so every process of a cluster serves
the same one, with the identity of the tables that served it: the cluster's system
identifier (when the role may read it), the database's oid and the ``meta`` table's.
Tables that say another identity (a dump restored into a new database, into
another cluster, or in place with its tables dropped and created again) start a new
epoch when a server opens them; so does a new database. A restore that keeps the
tables (data only, or the whole cluster put back from a physical backup) cannot be
told from the database it replaced: :meth:`PostgresDatabase.start_new_epoch`
(``chats-store restore --db postgresql://...``) starts a new epoch explicitly.

**The event log** is the SQLite one: the text of each ``event`` frame, trimmed to
the last ``keep_events`` events per chat (``log_floor`` says from where it is
complete); deleting a message drops its ``message_posted`` and ``message_edited``
events, editing it replaces them. **Superseded content on disk:** PostgreSQL never
overwrites a row in place, so the engine cannot keep the contract's "nothing
superseded stays on disk" the way SQLite does: an erased or edited content stays in
dead row versions until ``VACUUM`` (autovacuum, soon after) frees their space for
reuse, and in the WAL until its segments are recycled (and in any WAL archive or
base backup). Where that matters, encrypt the database's storage.

A broken connection (PostgreSQL restarted, the network cut) fails the transaction
it was in; the next one opens a new connection.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any, LiteralString

import psycopg
from psycopg import errors
from psycopg.rows import TupleRow

from chats_store.chats.actions import MessagePosted
from chats_store.chats.model import Message, Restriction, RestrictionKind
from chats_store.server.fanout import CHANNEL, LoggedFrame
from chats_store.server.rows import (
    BUSY_TIMEOUT,
    DEFAULT_KEEP_EVENTS,
    EventLog,
    LogTrim,
    bounded_frames,
    check_busy_timeout,
    event_row,
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

__all__ = ["SCHEMA_VERSION", "PostgresDatabase"]

_MIGRATIONS: tuple[LiteralString, ...] = (
    """
    CREATE TABLE chats (
        chat_id   TEXT PRIMARY KEY,
        last_seq  BIGINT NOT NULL,
        log_floor BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE messages (
        chat_id    TEXT NOT NULL,
        message_id TEXT NOT NULL,
        author_id  TEXT NOT NULL,
        content    TEXT NOT NULL,
        seq        BIGINT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        edited_at  DOUBLE PRECISION,
        deleted    BOOLEAN NOT NULL DEFAULT FALSE,
        PRIMARY KEY (chat_id, message_id)
    );
    CREATE INDEX messages_by_seq ON messages (chat_id, seq) WHERE NOT deleted;
    CREATE TABLE memberships (
        chat_id     TEXT NOT NULL,
        user_id     TEXT NOT NULL,
        permissions TEXT NOT NULL,
        metadata    TEXT NOT NULL,
        joined_at   DOUBLE PRECISION NOT NULL,
        joined_seq  BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (chat_id, user_id)
    );
    CREATE TABLE restrictions (
        chat_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        kind    TEXT NOT NULL,
        until   DOUBLE PRECISION,
        reason  TEXT,
        PRIMARY KEY (chat_id, user_id, kind)
    );
    CREATE INDEX restrictions_timed ON restrictions (until) WHERE until IS NOT NULL;
    CREATE TABLE events (
        chat_id    TEXT NOT NULL,
        seq        BIGINT NOT NULL,
        target     TEXT,
        message_id TEXT,
        frame      TEXT NOT NULL,
        PRIMARY KEY (chat_id, seq)
    );
    CREATE INDEX events_by_message ON events (chat_id, message_id)
        WHERE message_id IS NOT NULL;
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
)
"""The schema's migrations: number ``n`` takes the tables from version ``n - 1`` to ``n``."""

SCHEMA_VERSION = len(_MIGRATIONS)
"""The version of the tables this server reads and writes."""

_SCHEMA_LOCK = (0x63686174, 0)
"""The advisory lock (two 32-bit keys) held while a server checks and migrates the schema."""


def _message(row: TupleRow) -> Message:
    chat_id, message_id, author_id, content, seq, created_at, edited_at = row
    return Message(
        id=message_id,
        chat_id=chat_id,
        author_id=author_id,
        content=content,
        status="ready",
        seq=seq,
        created_at=created_at,
        edited_at=edited_at,
    )


_MESSAGE_COLUMNS: LiteralString = (
    "chat_id, message_id, author_id, content, seq, created_at, edited_at"
)


class PostgresDatabase(EventLog):
    """The chat tables in the PostgreSQL database at ``url`` (``postgresql://...``).

    ``keep_events``: how many events the log keeps per chat, at least. ``durable``
    False commits without waiting for the WAL flush. ``busy_timeout``: seconds a
    statement waits for a lock another process holds, then
    :class:`~chats_store.server.storage.StorageBusyError`. Raises
    ``psycopg.OperationalError`` if the database cannot be reached, and
    ``RuntimeError`` if its tables are of a newer version than this server.
    """

    def __init__(
        self,
        url: str,
        *,
        keep_events: int = DEFAULT_KEEP_EVENTS,
        durable: bool = True,
        busy_timeout: float = BUSY_TIMEOUT,
    ) -> None:
        self._url = url
        self._trim = LogTrim(keep_events)
        self._durable = durable
        # lock_timeout 0 would mean "wait forever": 0 s is the shortest wait instead.
        self._lock_timeout = f"{max(1, round(check_busy_timeout(busy_timeout) * 1000))}ms"
        self._locked: list[set[str]] = []
        """Per open transaction, outermost first: the chats whose lock it took. A
        savepoint rolled back releases the locks taken in it."""
        self._conn = self._connect()
        try:
            with self.transaction():
                self._execute("SELECT pg_advisory_xact_lock(%s, %s)", _SCHEMA_LOCK)
                self._migrate()
                self._epoch = self._open_history()
        except BaseException:
            self._conn.close()
            raise

    def _connect(self) -> psycopg.Connection[TupleRow]:
        conn = psycopg.connect(self._url, autocommit=True)
        conn.execute(
            "SELECT set_config('lock_timeout', %s, false), "
            "set_config('synchronous_commit', %s, false)",
            (self._lock_timeout, "on" if self._durable else "off"),
        )
        return conn

    def _migrate(self) -> None:
        self._execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = self._one("SELECT version FROM schema_version")
        version = 0 if row is None else int(row[0])
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"the database's tables are at schema version {version}, newer than this "
                f"server's {SCHEMA_VERSION} - upgrade chats_store to serve it"
            )
        for migration in _MIGRATIONS[version:]:
            self._execute(migration)
        if row is None:
            self._execute("INSERT INTO schema_version (version) VALUES (%s)", (SCHEMA_VERSION,))
        elif version < SCHEMA_VERSION:
            self._execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION,))

    # Statements ---------------------------------------------------------------

    def _execute(
        self, query: LiteralString, params: Sequence[Any] = ()
    ) -> psycopg.Cursor[TupleRow]:
        try:
            return self._conn.execute(query, params)
        except errors.LockNotAvailable as error:
            raise StorageBusyError(
                f"a lock of the PostgreSQL database stayed held by another process for "
                f"longer than busy_timeout ({error.diag.message_primary})"
            ) from None
        except errors.DeadlockDetected:
            raise StorageBusyError(
                "PostgreSQL broke a deadlock between this transaction and another "
                "process's by rolling this one back"
            ) from None

    def _one(self, query: LiteralString, params: Sequence[Any] = ()) -> TupleRow | None:
        return self._execute(query, params).fetchone()

    def _lock_chat(self, chat_id: str) -> None:
        """Take the chat's lock for the rest of the outermost transaction (see the module).

        Outside a transaction a statement reads what is committed, alone: no lock.
        """
        if not self._locked or any(chat_id in level for level in self._locked):
            return
        self._execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (chat_id,))
        self._locked[-1].add(chat_id)

    def lock_chats(self, chat_ids: Collection[str]) -> None:
        """Take the locks of a group commit's chats in their sorted order, so that two
        processes' group commits never deadlock (call inside the outermost transaction)."""
        for chat_id in sorted(chat_ids):
            self._lock_chat(chat_id)

    # The epoch ----------------------------------------------------------------

    @property
    def epoch(self) -> str:
        """The identity of the history this database holds (see the module's docstring)."""
        return self._epoch

    def _identity(self) -> str:
        """Which tables these are: the cluster's system identifier (if the role may
        read it), the database's oid and the ``meta`` table's (a dump restored in
        place creates the tables anew)."""
        row = self._one(
            "SELECT oid, 'meta'::regclass::oid, "
            "has_function_privilege('pg_control_system()', 'execute') "
            "FROM pg_database WHERE datname = current_database()"
        )
        assert row is not None
        database, table, may_read_system = row
        system = ""
        if may_read_system:
            system_row = self._one("SELECT system_identifier FROM pg_control_system()")
            system = "" if system_row is None else str(system_row[0])
        return f"{system}/{database}/{table}"

    def _open_history(self) -> str:
        """Keep the stored epoch if this database served it, or start a new one."""
        rows: dict[str, str] = dict(
            self._execute("SELECT key, value FROM meta WHERE key IN ('epoch', 'home')")
        )
        if "epoch" in rows and rows.get("home") == self._identity():
            return str(rows["epoch"])
        return self._store_new_epoch()

    def _store_new_epoch(self) -> str:
        epoch = new_epoch()
        for key, value in (("epoch", epoch), ("home", self._identity())):
            self._execute(
                "INSERT INTO meta (key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
        return epoch

    def start_new_epoch(self) -> str:
        """Give the history a new identity, so that clients drop what they hold of it.

        For a database restored in place from a backup: run it with every server of
        the cluster stopped (a running one keeps serving the epoch it read when it
        started). Returns the new epoch.
        """
        with self.transaction():
            self._epoch = self._store_new_epoch()
        return self._epoch

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Commit what the block changed, or roll all of it back if it raises.

        The outermost is ``BEGIN`` ... ``COMMIT`` (its WAL flushed when it returns,
        with ``durable``); a nested one is a savepoint, kept or dropped alone.
        Raises :class:`~chats_store.server.storage.StorageBusyError` if a lock
        stayed held by another process for longer than ``busy_timeout``.
        """
        with ExitStack() as stack:
            if self._locked:
                stack.enter_context(self._conn.transaction())
            else:
                self._begin(stack)
            self._locked.append(set())
            try:
                yield
            except BaseException:
                self._locked.pop()  # rolled back: its locks are released
                raise
            taken = self._locked.pop()
            if self._locked:
                self._locked[-1] |= taken

    def _begin(self, stack: ExitStack) -> None:
        """Open the outermost transaction, on a new connection if the last one broke.

        A connection found broken when nothing was done on it yet is replaced at
        once (PostgreSQL restarted, the network cut): no request fails for it.
        """
        if self._conn.broken:
            self._reconnect()
        try:
            stack.enter_context(self._conn.transaction())
        except psycopg.OperationalError:
            if not self._conn.broken:
                raise
            self._reconnect()
            stack.enter_context(self._conn.transaction())

    def _reconnect(self) -> None:
        self._conn.close()
        self._conn = self._connect()

    # Chats --------------------------------------------------------------------

    def last_seq(self, chat_id: str) -> int:
        self._lock_chat(chat_id)
        row = self._one("SELECT last_seq FROM chats WHERE chat_id = %s", (chat_id,))
        return int(row[0]) if row else 0

    def next_seq(self, chat_id: str) -> int:
        """Take the chat's next event seq (call inside a transaction)."""
        self._lock_chat(chat_id)
        # The notification wakes the other processes' fan-out (chats_store.server.fanout);
        # PostgreSQL sends it when, and only if, the transaction commits.
        row = self._one(
            "WITH taken AS (INSERT INTO chats (chat_id, last_seq) VALUES (%s, 1) "
            "ON CONFLICT (chat_id) DO UPDATE SET last_seq = chats.last_seq + 1 "
            "RETURNING chat_id, last_seq) "
            "SELECT last_seq, pg_notify(%s, chat_id || ' ' || last_seq) FROM taken",
            (chat_id, CHANNEL),
        )
        assert row is not None
        return int(row[0])

    def next_post_seq(self, chat_id: str, message_id: str) -> int | None:
        """See :meth:`ChatStorage.next_post_seq` (call inside a transaction)."""
        self._lock_chat(chat_id)
        row = self._one(  # with next_seq's notification
            "WITH taken AS (UPDATE chats SET last_seq = last_seq + 1 WHERE chat_id = %s "
            "AND NOT EXISTS (SELECT 1 FROM messages WHERE chat_id = %s AND message_id = %s) "
            "RETURNING chat_id, last_seq) "
            "SELECT last_seq, pg_notify(%s, chat_id || ' ' || last_seq) FROM taken",
            (chat_id, chat_id, message_id, CHANNEL),
        )
        return None if row is None else int(row[0])

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
        self._lock_chat(chat_id)
        self._execute(
            "INSERT INTO events (chat_id, seq, target, message_id, frame) "
            "VALUES (%s, %s, %s, %s, %s)",
            (chat_id, seq, target, message_id, frame),
        )
        floor = self._trim.floor_after(seq)
        if floor is not None:
            self._execute("DELETE FROM events WHERE chat_id = %s AND seq <= %s", (chat_id, floor))
            self._execute(
                "UPDATE chats SET log_floor = GREATEST(log_floor, %s) WHERE chat_id = %s",
                (floor, chat_id),
            )

    def erase_message_events(self, chat_id: str, message_id: str) -> None:
        """Drop the logged events that carry a message's content (it was deleted)."""
        self._lock_chat(chat_id)
        self._execute(
            "DELETE FROM events WHERE chat_id = %s AND message_id = %s", (chat_id, message_id)
        )

    def supersede_message_events(self, posted: MessagePosted) -> None:
        """Replace the logged ``message_posted`` event of an edited message by ``posted``
        and drop its ``message_edited`` events (the core logs the new one next)."""
        chat_id, message_id = posted.chat_id, posted.message.id
        self._lock_chat(chat_id)
        self._execute(
            "DELETE FROM events WHERE chat_id = %s AND message_id = %s AND seq <> %s",
            (chat_id, message_id, posted.seq),
        )
        self._execute(
            "UPDATE events SET frame = %s WHERE chat_id = %s AND seq = %s AND message_id = %s",
            (event_row(posted).frame, chat_id, posted.seq, message_id),
        )

    def log_floor(self, chat_id: str) -> int:
        self._lock_chat(chat_id)
        row = self._one("SELECT log_floor FROM chats WHERE chat_id = %s", (chat_id,))
        return int(row[0]) if row else 0

    def missed_frames(
        self, chat_id: str, user_id: str, since_seq: int, limit: int, max_bytes: int | None = None
    ) -> tuple[str, ...] | None:
        """The frames of the events ``user_id`` may read with ``seq > since_seq``.

        At most ``limit`` of them, oldest first, of at most ``max_bytes`` characters
        in all (None: no limit); None if the log was trimmed past ``since_seq`` or
        holds more than that.
        """
        if since_seq < self.log_floor(chat_id):
            return None
        rows = self._execute(
            "SELECT frame FROM events WHERE chat_id = %s AND seq > %s "
            "AND (target IS NULL OR target = %s) ORDER BY seq LIMIT %s",
            (chat_id, since_seq, user_id, limit + 1),
        )
        return bounded_frames(rows, limit, max_bytes)

    # What the fan-out reads (chats_store.server.fanout) ---------------------------

    def logged_range(
        self, chat_id: str, since_seq: int, through_seq: int, limit: int
    ) -> tuple[LoggedFrame, ...]:
        """The chat's logged events with ``since_seq < seq <= through_seq``, oldest first,
        at most ``limit`` (committed ones: read without taking the chat's lock)."""
        rows = self._execute(
            "SELECT seq, target, frame FROM events WHERE chat_id = %s AND seq > %s "
            "AND seq <= %s ORDER BY seq LIMIT %s",
            (chat_id, since_seq, through_seq, limit),
        ).fetchall()
        return tuple(LoggedFrame(seq, target, frame) for seq, target, frame in rows)

    def last_seqs(self, chat_ids: Collection[str]) -> dict[str, int]:
        """The last seq of each of these chats (those nothing happened in are left out)."""
        rows = self._execute(
            "SELECT chat_id, last_seq FROM chats WHERE chat_id = ANY(%s)", (list(chat_ids),)
        ).fetchall()
        return {chat_id: int(last_seq) for chat_id, last_seq in rows}

    # Memberships --------------------------------------------------------------

    def member(self, chat_id: str, user_id: str) -> Member | None:
        self._lock_chat(chat_id)
        rows = self._execute(
            "SELECT m.permissions, m.metadata, m.joined_seq, r.kind, r.until, r.reason "
            "FROM memberships AS m LEFT JOIN restrictions AS r "
            "ON r.chat_id = m.chat_id AND r.user_id = m.user_id "
            "WHERE m.chat_id = %s AND m.user_id = %s ORDER BY r.kind DESC",
            (chat_id, user_id),
        ).fetchall()
        return member_from_rows(chat_id, user_id, rows)

    def save_membership(self, membership: Membership, joined_at: float) -> None:
        self._lock_chat(membership.chat_id)
        self._execute(
            "INSERT INTO memberships (chat_id, user_id, permissions, metadata, joined_at, "
            "joined_seq) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (chat_id, user_id) "
            "DO UPDATE SET permissions = excluded.permissions, metadata = excluded.metadata",
            (
                membership.chat_id,
                membership.user_id,
                *membership_columns(membership),
                joined_at,
                membership.joined_seq,
            ),
        )

    def delete_membership(self, chat_id: str, user_id: str) -> bool:
        self._lock_chat(chat_id)
        cursor = self._execute(
            "DELETE FROM memberships WHERE chat_id = %s AND user_id = %s", (chat_id, user_id)
        )
        return cursor.rowcount > 0

    def members_amount(self, chat_id: str) -> int:
        self._lock_chat(chat_id)
        row = self._one("SELECT COUNT(*) FROM memberships WHERE chat_id = %s", (chat_id,))
        assert row is not None
        return int(row[0])

    # Messages -----------------------------------------------------------------

    def message(self, chat_id: str, message_id: str) -> StoredMessage | None:
        self._lock_chat(chat_id)
        row = self._one(
            f"SELECT {_MESSAGE_COLUMNS}, deleted FROM messages "
            "WHERE chat_id = %s AND message_id = %s",
            (chat_id, message_id),
        )
        return None if row is None else StoredMessage(_message(row[:-1]), bool(row[-1]))

    def insert_message(self, message: Message) -> None:
        self._lock_chat(message.chat_id)
        self._execute(
            f"INSERT INTO messages ({_MESSAGE_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)",
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
        self._lock_chat(chat_id)
        self._execute(
            "UPDATE messages SET content = %s, edited_at = %s "
            "WHERE chat_id = %s AND message_id = %s",
            (content, edited_at, chat_id, message_id),
        )

    def delete_message(self, chat_id: str, message_id: str) -> None:
        self._lock_chat(chat_id)
        self._execute(
            "UPDATE messages SET deleted = TRUE, content = '' "
            "WHERE chat_id = %s AND message_id = %s",
            (chat_id, message_id),
        )

    def messages_before(self, chat_id: str, before_seq: int, limit: int) -> tuple[Message, ...]:
        """The newest ``limit`` live messages with ``seq < before_seq``, oldest first."""
        self._lock_chat(chat_id)
        rows = self._execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages "
            "WHERE chat_id = %s AND NOT deleted AND seq < %s ORDER BY seq DESC LIMIT %s",
            (chat_id, before_seq, limit),
        ).fetchall()
        return tuple(_message(row) for row in reversed(rows))

    # Restrictions -------------------------------------------------------------

    def restrictions(self, chat_id: str, user_id: str) -> tuple[Restriction, ...]:
        """Every stored restriction of the member, expired ones included, mute first."""
        self._lock_chat(chat_id)
        rows = self._execute(
            "SELECT kind, until, reason FROM restrictions WHERE chat_id = %s AND user_id = %s "
            "ORDER BY kind DESC",
            (chat_id, user_id),
        ).fetchall()
        return restrictions_from_rows(rows)

    def save_restriction(self, chat_id: str, user_id: str, restriction: Restriction) -> None:
        self._lock_chat(chat_id)
        self._execute(
            "INSERT INTO restrictions (chat_id, user_id, kind, until, reason) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (chat_id, user_id, kind) DO UPDATE SET "
            "until = excluded.until, reason = excluded.reason",
            (chat_id, user_id, restriction.kind, restriction.until, restriction.reason),
        )

    def delete_restriction(self, chat_id: str, user_id: str, kind: RestrictionKind) -> bool:
        self._lock_chat(chat_id)
        cursor = self._execute(
            "DELETE FROM restrictions WHERE chat_id = %s AND user_id = %s AND kind = %s",
            (chat_id, user_id, kind),
        )
        return cursor.rowcount > 0

    def restrictions_amount(self, chat_id: str) -> int:
        self._lock_chat(chat_id)
        row = self._one("SELECT COUNT(*) FROM restrictions WHERE chat_id = %s", (chat_id,))
        assert row is not None
        return int(row[0])

    def next_expiry(self) -> float | None:
        """The earliest expiry time of a stored restriction, of any chat (None: none)."""
        row = self._one("SELECT MIN(until) FROM restrictions WHERE until IS NOT NULL")
        return None if row is None or row[0] is None else float(row[0])

    def expired_restrictions(self, now: float, limit: int) -> tuple[TimedRestriction, ...]:
        """At most ``limit`` restrictions expired by ``now`` (``until <= now``), earliest
        first; in one order for every process (see the module: lifted once)."""
        rows = self._execute(
            "SELECT chat_id, user_id, kind, until FROM restrictions "
            "WHERE until IS NOT NULL AND until <= %s "
            "ORDER BY until, chat_id, user_id, kind LIMIT %s",
            (now, limit),
        ).fetchall()
        return tuple(
            TimedRestriction(chat_id, user_id, restriction_kind(kind), until)
            for chat_id, user_id, kind, until in rows
        )
