"""Durable client state: the state file of ``ChatsConfig(state_file=PATH)`` (runtime).

An SQLite file (WAL, created with mode 0600: it holds membership credentials) that
keeps, for one user, every joined chat: its id, its last applied ``seq``, its
membership credential, members amount, metadata and restrictions, its newest
confirmed messages (the ``max_messages_in_memory`` window, or
:data:`DEFAULT_KEPT_MESSAGES`) and its pending ones, and every send, edit and delete
the server has not acknowledged (:class:`~chats_store.chats.model.PendingOperation`,
by message id, in the order they were made). It also keeps the client's estimate of
the server's clock, so that a restored mute counts down by the server's clock before
any connection.

What the file holds is a projection of the store's state, and :class:`StateFile` keeps
it so: a store middleware that, after each action, writes what changed in the chats
that action may have changed, in one transaction. The middleware runs after the
reducer and before the commands, so

* **write-ahead**: the record of a request is committed before the request leaves
  (the effects ask :meth:`StateFile.unrecorded` before sending; a request whose
  record could not be committed does not leave, its call fails with
  ``state_file_failed``); such a commit is synced to the disk (``synchronous=FULL``);
* acknowledgements and pushes are recorded after they are applied, committed without
  a sync of their own (a power cut may lose the last ones: the resume brings them
  back).

A new module on the same file restores at once, before any connection
(:class:`~chats_store.chats.actions.ChatsRestored`): every chat ``reloading``, its
messages shown, those that were in flight ``interrupted``, its pending operations in
:attr:`~chats_store.chats.model.ChatState.recovered`, which the reducer sends again
with their original ids (see ``chats.reducer``). A restart is a lost connection and
a reconnection, plus the operations the dead process could not finish.

The file is refused with a :class:`~chats_store.errors.StateFileError` when it is
another user's, another program's, damaged, written by a newer version, or open in
another module; it is never reset. The schema is versioned (``PRAGMA user_version``)
and upgraded in place by :data:`MIGRATIONS`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import attrs
import cattrs
from immutables import Map

from chats_store.chats.actions import ChatHistoryRestored, ChatsRestored, Failure, RestoredChat
from chats_store.chats.commands import (
    ChatRequest,
    DeleteMessageRequest,
    EditMessageRequest,
    PostMessageRequest,
)
from chats_store.chats.model import (
    ChatsState,
    ChatState,
    Message,
    PendingOperation,
    Restriction,
)
from chats_store.chats.server_clock import ClockOffset, ServerClock
from chats_store.errors import ErrorCode, StateFileError

__all__ = [
    "APPLICATION_ID",
    "DEFAULT_KEPT_MESSAGES",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "StateFile",
    "operations_of",
]

logger = logging.getLogger("chats_store.chats.persistence")

APPLICATION_ID = 0x63_73_73_66  # "cssf": chats_store state file, in the SQLite header
"""The ``PRAGMA application_id`` of a state file: what tells it from another SQLite file."""

DEFAULT_KEPT_MESSAGES = 1_000
"""How many confirmed messages per chat the file keeps when ``max_messages_in_memory`` is None."""

RESTORED_AT_ONCE = 100
"""How many of its newest messages a restored chat shows at once (a join shows as many);
the older ones the file keeps follow, a chat at a time (:meth:`StateFile.history`)."""

_TRIM_SLACK = 64
"""The file trims a chat back to its window once it holds this many messages more."""

MIGRATIONS: tuple[str, ...] = (
    # Version 1: the user, the chats, their confirmed messages (by seq: a chat's newest
    # are read in one range) and pending ones (in order), the operations not acknowledged.
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE chats (
        chat_id TEXT PRIMARY KEY,
        position INTEGER NOT NULL,
        last_seq INTEGER NOT NULL,
        membership TEXT NOT NULL,
        members_amount INTEGER,
        member_metadata TEXT NOT NULL,
        restrictions TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE messages (
        chat_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        id TEXT NOT NULL,
        author_id TEXT NOT NULL,
        content TEXT NOT NULL,
        created_at REAL NOT NULL,
        edited_at REAL,
        PRIMARY KEY (chat_id, seq)
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX messages_by_id ON messages (chat_id, id);
    CREATE TABLE pending (
        chat_id TEXT NOT NULL,
        rank INTEGER NOT NULL,
        id TEXT NOT NULL,
        author_id TEXT NOT NULL,
        content TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (chat_id, rank)
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX pending_by_id ON pending (chat_id, id);
    CREATE TABLE operations (
        number INTEGER PRIMARY KEY,
        chat_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        content TEXT,
        UNIQUE (chat_id, message_id)
    );
    """,
    # Version 2: the estimate of the server's clock (offset bounds; NULL: unbounded).
    """
    CREATE TABLE server_clock (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        lower REAL,
        upper REAL
    );
    """,
)
"""The schema, one script per version: a new file runs them all, an older one the rest."""

SCHEMA_VERSION = len(MIGRATIONS)
"""The version of the files this code writes (``PRAGMA user_version``)."""

_converter = cattrs.Converter()

_Row = tuple[str, str, str, str, int | None, float, float | None]
"""A message as the file keeps it: id, chat, author, content, seq, created_at, edited_at."""


def _row(message: Message) -> _Row:
    return (
        message.id,
        message.chat_id,
        message.author_id,
        message.content,
        message.seq,
        message.created_at,
        message.edited_at,
    )


def _kept(chat: ChatState | None) -> ChatState | None:
    """``chat`` if the file keeps it: joined (not ``loading``) with a membership credential."""
    if chat is None or chat.status == "loading" or chat.membership is None:
        return None
    return chat


def _file_view(chat: ChatState, message_id: str) -> _Row | None:
    """Message ``message_id`` of ``chat`` as the file keeps it: as the server last
    confirmed it (the original of one being updated or deleted), or None."""
    message = chat.originals.get(message_id) or chat.messages.find(message_id)
    return None if message is None else _row(message)


def operations_of(chat: ChatState) -> dict[str, PendingOperation]:
    """The chat's operations not acknowledged, by message id.

    The recovered ones (a restored chat's), then the requests in flight: a ``sending``
    message is a send (in the order of the send queue, the order they were made in: a
    message sent again goes behind the sends made before it), an ``updating`` one an
    edit to its new content, a ``deleting`` one a delete. A request in flight replaces
    a recovered operation of the same message (the user acted on it again). The file
    numbers each operation as it is first written, in this order: the order they were
    made in.
    """
    operations = {operation.message_id: operation for operation in chat.recovered}
    for entry in chat.send_queue:
        message = chat.messages.find(entry.message_id)
        if message is not None and message.status == "sending":
            operations[message.id] = PendingOperation("send", message.id)
    for message_id in chat.originals:
        shown = chat.messages.find(message_id)
        if shown is None:
            continue
        if shown.status == "updating":
            operations[message_id] = PendingOperation("edit", message_id, shown.content)
        elif shown.status == "deleting":
            operations[message_id] = PendingOperation("delete", message_id)
    return operations


def _chat_values(chat: ChatState) -> tuple[Any, ...]:
    metadata = dict(chat.member_metadata or {})
    return (chat.last_seq, chat.membership, chat.members_amount, metadata, chat.restrictions)


class StateFile:
    """One user's state file, open; see the module docstring.

    :meth:`open` checks the file (or creates it) and reads what it keeps;
    :attr:`restored` is the action that restores it. Once the store holds that state,
    :meth:`follow` starts the middleware: :meth:`record` is to be added to the store
    (``Store.add_middleware``), and :meth:`unrecorded` to be asked by the effects
    before each request leaves.
    """

    def __init__(
        self,
        path: str,
        connection: sqlite3.Connection,
        kept_messages: int,
        restored: ChatsRestored,
        offset: ClockOffset,
    ) -> None:
        self.path = path
        self._db = connection
        self._kept_messages = kept_messages
        self.restored = restored
        """The :class:`ChatsRestored` action of what the file keeps."""
        self.offset = offset
        """The estimate of the server's clock the file keeps."""
        self._chats: Map[str, ChatState] = Map()  # as last committed
        self._seen: Map[str, ChatState] = Map()  # the state's chats at the last record
        self._counts: dict[str, int] = {}  # confirmed messages of each chat in the file
        self._dirty: set[str] = set()  # chats whose last write failed
        self._ranks = itertools.count(1)
        self._server_clock: ServerClock | None = None
        self._closed = False
        self.older: dict[str, int] = {}
        """The chats that keep older messages than they show at once, and the ``seq`` of
        the oldest one they show (see :meth:`history`)."""

    # Opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str], user_id: str, *, kept_messages: int) -> StateFile:
        """The state file at ``path`` for ``user_id``, created (mode 0600) if missing.

        ``kept_messages``: how many confirmed messages per chat to keep. Raises
        :class:`~chats_store.errors.StateFileError` (``other_user``,
        ``not_a_state_file``, ``damaged``, ``newer_version``, ``in_use``); an older
        version is upgraded.
        """
        name = os.fspath(path)
        created = _create(name)
        try:
            connection = sqlite3.connect(name, timeout=0.1, isolation_level=None)
        except sqlite3.Error as error:
            raise StateFileError(name, "damaged", f"cannot be opened ({error})") from None
        try:
            cls._prepare(name, connection, user_id, created)
            contents = _read(name, connection)
        except BaseException:
            connection.close()
            raise
        state_file = cls(name, connection, kept_messages, contents.restored, contents.offset)
        state_file._ranks = itertools.count(contents.last_rank + 1)
        state_file.older = contents.older
        logger.info("state file %s: %d chats restored", name, len(contents.restored.chats))
        return state_file

    @staticmethod
    def _prepare(path: str, db: sqlite3.Connection, user_id: str, created: bool) -> None:
        """Lock the file for this module, check whose and which it is, upgrade it."""
        try:
            # Exclusive before WAL: one module per file, and no shared-memory index.
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
            db.execute("PRAGMA journal_mode=WAL")
            # Acknowledgements and pushes: committed, not synced; requests: see _commit.
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if "locked" in str(error):
                raise StateFileError(
                    path,
                    "in_use",
                    "another Chats module has it open (maybe in another process) - give "
                    "each module a file of its own, or close the other one first",
                ) from None
            raise StateFileError(
                path, "damaged", f"is not a readable SQLite file ({error})"
            ) from None
        except sqlite3.DatabaseError as error:
            raise StateFileError(
                path, "damaged", f"is not a readable SQLite file ({error})"
            ) from None
        try:
            _check(path, db, user_id)
            db.execute("COMMIT")
        except BaseException as error:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            if created:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            if isinstance(error, sqlite3.DatabaseError):
                raise StateFileError(path, "damaged", f"cannot be read ({error})") from None
            raise

    # Following the store -------------------------------------------------------------

    def follow(self, state: ChatsState, server_clock: ServerClock) -> None:
        """Start recording from ``state``, the store's state once :attr:`restored`
        was dispatched (what the file holds), and keep ``server_clock``'s estimate."""
        self._chats = Map({k: chat for k, chat in state.chats.items() if _kept(chat)})
        self._seen = state.chats
        self._server_clock = server_clock

    def history(self, chat_id: str) -> ChatHistoryRestored | None:
        """The action that brings back the older messages of ``chat_id`` (once; None
        when there are none, or when they cannot be read: they stay on the server)."""
        before_seq = self.older.pop(chat_id, None)
        if before_seq is None or self._closed:
            return None
        try:
            rows = self._db.execute(
                f"{_SELECT_CONFIRMED} AND seq < ? ORDER BY seq", (chat_id, before_seq)
            ).fetchall()
        except sqlite3.Error:
            logger.exception("state file %s: the older messages of %r", self.path, chat_id)
            return None
        if not rows:
            return None
        return ChatHistoryRestored(chat_id, before_seq, tuple(_confirmed(rows)))

    def record(self, action: Any, state: ChatsState) -> None:
        """The store middleware: write what ``action`` changed, in one transaction.

        A write that fails is logged and its chats are marked, so that their next
        requests do not leave (:meth:`unrecorded`); the next action writes them again.
        """
        if self._closed or (state.chats is self._seen and not self._dirty):
            return
        if isinstance(action, ChatHistoryRestored) and action.chat_id not in self._dirty:
            # What it brought back comes from the file: nothing to write.
            self._seen = state.chats
            chat = _kept(state.chats.get(action.chat_id))
            if chat is not None and action.chat_id in self._chats:
                self._chats = self._chats.set(action.chat_id, chat)
            return
        scope: str | None = getattr(action, "chat_id", None)
        # In join order: a chat new to the file takes the next position.
        candidates: Iterable[str] = dict.fromkeys(
            [*state.chat_ids, *self._chats.keys()] if scope is None else [*self._dirty, scope]
        )
        changes = [
            (chat_id, before, after)
            for chat_id in candidates
            if (before := self._chats.get(chat_id))
            is not (after := _kept(state.chats.get(chat_id)))
        ]
        self._seen = state.chats
        if not changes:
            return
        writes = _Writes(self._kept_messages, self._count_of, self._ranks)
        try:
            for chat_id, before, after in changes:
                writes.chat(chat_id, before, after)
            if any(before is None and after is not None for _, before, after in changes):
                writes.positions([c for c in state.chat_ids if _kept(state.chats.get(c))])
            writes.offset(self._server_clock, self.offset)
            self._commit(writes)
        except Exception:
            # Whatever failed (a full disk, a bug), these chats' requests must not leave
            # unrecorded: never raise to the store, which would drop this middleware.
            with contextlib.suppress(sqlite3.Error):
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
            if not self._dirty:
                logger.exception("state file %s: a write failed", self.path)
            self._dirty.update(chat_id for chat_id, _, _ in changes)
            return
        self._counts.update(writes.counts)
        if writes.clock is not None:
            self.offset = writes.clock
        chats = self._chats
        for chat_id, _, after in changes:
            if after is None:
                chats = chats.delete(chat_id) if chat_id in chats else chats
                self._counts.pop(chat_id, None)
            else:
                chats = chats.set(chat_id, after)
            self._dirty.discard(chat_id)
        self._chats = chats

    def _count_of(self, chat_id: str) -> int:
        """How many confirmed messages of ``chat_id`` the file holds (read once, then kept)."""
        count = self._counts.get(chat_id)
        if count is None:
            row = self._db.execute(
                "SELECT count(*) FROM messages WHERE chat_id = ?", (chat_id,)
            ).fetchone()
            count = self._counts[chat_id] = row[0]
        return count

    def _commit(self, writes: _Writes) -> None:
        """Run ``writes`` in one transaction, synced to the disk if it records a request."""
        db = self._db
        if writes.requested:
            db.execute("PRAGMA synchronous=FULL")
        try:
            db.execute("BEGIN")
            for statement, parameters in writes.statements:
                db.execute(statement, parameters)
            db.execute("COMMIT")
        finally:
            if writes.requested:
                db.execute("PRAGMA synchronous=NORMAL")

    def unrecorded(self, request: ChatRequest) -> Failure | None:
        """Why ``request`` must not leave: its record is not in the file (None: it is)."""
        if not isinstance(request, PostMessageRequest | EditMessageRequest | DeleteMessageRequest):
            return None
        if request.chat_id not in self._dirty:
            return None
        return Failure(
            "cancelled",
            ErrorCode.STATE_FILE_FAILED,
            f"the state file {self.path!r} could not record this request, so it was not sent "
            "(see the log) - free some disk space, then try again",
        )

    def close(self) -> None:
        """Stop recording and close the file (idempotent)."""
        if not self._closed:
            self._closed = True
            self._db.close()


class _Writes:
    """The statements that bring the file from the chats as committed to the chats now.

    Planned before the transaction, so that it is known before it starts whether it
    records a request (and must be synced to the disk).
    """

    def __init__(
        self,
        kept_messages: int,
        count_of: Callable[[str], int],
        ranks: Iterator[int],
    ) -> None:
        self.statements: list[tuple[str, tuple[Any, ...]]] = []
        self.requested = False
        """Whether an operation is added: a request that must be recorded before it leaves."""
        self.counts: dict[str, int] = {}
        """The confirmed messages each chat written holds in the file afterwards."""
        self.clock: ClockOffset | None = None
        """The clock estimate written, if it changed."""
        self._kept_messages = kept_messages
        self._count_of = count_of
        self._ranks = ranks

    def _add(self, statement: str, *parameters: Any) -> None:
        self.statements.append((statement, parameters))

    def chat(self, chat_id: str, before: ChatState | None, after: ChatState | None) -> None:
        if after is None:
            for table in _CHAT_TABLES:
                self._add(f"DELETE FROM {table} WHERE chat_id = ?", chat_id)
            return
        if before is None:
            self._add(
                "INSERT OR REPLACE INTO chats VALUES (?, ?, ?, ?, ?, ?, ?)",
                chat_id,
                0,  # see positions
                *_encoded(after),
            )
            for table in _CHAT_TABLES[1:]:
                self._add(f"DELETE FROM {table} WHERE chat_id = ?", chat_id)
            self._messages(ChatState(chat_id=chat_id, status="ready", join_call_id=0), after, 0)
            self._operations(chat_id, {}, operations_of(after))
            return
        if _chat_values(before) != _chat_values(after):
            self._add(
                "UPDATE chats SET last_seq = ?, membership = ?, members_amount = ?, "
                "member_metadata = ?, restrictions = ? WHERE chat_id = ?",
                *_encoded(after),
                chat_id,
            )
        if before.messages is not after.messages or before.originals is not after.originals:
            self._messages(before, after, self._count_of(chat_id))
        if (
            before.messages.pending is not after.messages.pending
            or before.send_queue is not after.send_queue
            or before.originals is not after.originals
            or before.recovered is not after.recovered
        ):
            self._operations(chat_id, operations_of(before), operations_of(after))

    def positions(self, chat_ids: list[str]) -> None:
        """The chats kept, in join order (``chats_ids``): a chat that was joined earlier
        may have become ready later."""
        for position, chat_id in enumerate(chat_ids, 1):
            self._add("UPDATE chats SET position = ? WHERE chat_id = ?", position, chat_id)

    def _messages(self, before: ChatState, after: ChatState, count: int) -> None:
        """The messages whose kept version differs between ``before`` and ``after``;
        ``count``: the chat's confirmed messages in the file."""
        changed, gone = after.messages.changes_since(before.messages)
        ids = dict.fromkeys(
            itertools.chain(
                (m.id for m in changed),
                (m.id for m in gone),
                _changed_keys(before.originals, after.originals),
            )
        )
        chat_id = after.chat_id
        for message_id in ids:
            old, new = _file_view(before, message_id), _file_view(after, message_id)
            if old == new:
                continue
            was_pending = old is not None and old[4] is None
            was_confirmed = old is not None and old[4] is not None
            if was_pending and (new is None or new[4] is not None):
                self._add("DELETE FROM pending WHERE chat_id = ? AND id = ?", chat_id, message_id)
            if new is None:
                if was_confirmed:
                    self._add(
                        "DELETE FROM messages WHERE chat_id = ? AND id = ?", chat_id, message_id
                    )
                    count -= 1
                continue
            _, _, author_id, content, seq, created_at, edited_at = new
            if seq is None:
                self._add(
                    "INSERT INTO pending VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (chat_id, id) "
                    "DO UPDATE SET content = excluded.content",
                    chat_id,
                    next(self._ranks),
                    message_id,
                    author_id,
                    content,
                    created_at,
                )
                continue
            self._add(
                "INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (chat_id, seq) "
                "DO UPDATE SET id = excluded.id, author_id = excluded.author_id, "
                "content = excluded.content, created_at = excluded.created_at, "
                "edited_at = excluded.edited_at",
                chat_id,
                seq,
                message_id,
                author_id,
                content,
                created_at,
                edited_at,
            )
            count += not was_confirmed
        kept = self._kept_messages
        log = after.messages
        if count > kept + _TRIM_SLACK and log.confirmed_count >= kept:
            # Every message reaches the file through the state, so the file's newest are
            # the state's (a restored chat may hold fewer until its history is back).
            oldest_kept = log.items[log.confirmed_count - kept].seq
            self._add("DELETE FROM messages WHERE chat_id = ? AND seq < ?", chat_id, oldest_kept)
            count = kept
        self.counts[chat_id] = count

    def _operations(
        self,
        chat_id: str,
        before: Mapping[str, PendingOperation],
        after: Mapping[str, PendingOperation],
    ) -> None:
        for message_id in before.keys() - after.keys():
            self._add(
                "DELETE FROM operations WHERE chat_id = ? AND message_id = ?", chat_id, message_id
            )
        for message_id, operation in after.items():
            if before.get(message_id) == operation:
                continue
            # A new row, numbered after every other: the order the requests were made.
            self._add(
                "INSERT OR REPLACE INTO operations (chat_id, message_id, kind, content) "
                "VALUES (?, ?, ?, ?)",
                chat_id,
                message_id,
                operation.kind,
                operation.content,
            )
            self.requested = True

    def offset(self, clock: ServerClock | None, written: ClockOffset) -> None:
        if clock is None or clock.offset is written:
            return
        self.clock = offset = clock.offset
        self._add(
            "INSERT OR REPLACE INTO server_clock VALUES (1, ?, ?)",
            _finite(offset.lower),
            _finite(offset.upper),
        )


def _encoded(chat: ChatState) -> tuple[Any, ...]:
    last_seq, membership, members_amount, metadata, restrictions = _chat_values(chat)
    return (
        last_seq,
        membership,
        members_amount,
        json.dumps(metadata, ensure_ascii=False),
        json.dumps(_converter.unstructure(restrictions), ensure_ascii=False),
    )


def _changed_keys(before: Map[str, Message], after: Map[str, Message]) -> Iterator[str]:
    if before is after:
        return
    for key in {*before.keys(), *after.keys()}:
        if before.get(key) is not after.get(key):
            yield key


def _finite(value: float) -> float | None:
    return value if value not in (float("inf"), float("-inf")) else None


def _check(path: str, db: sqlite3.Connection, user_id: str) -> None:
    """Initialize an empty file for ``user_id``; check one that is not empty: its kind,
    its version (upgrading an older one) and its owner."""
    application_id = db.execute("PRAGMA application_id").fetchone()[0]
    version = db.execute("PRAGMA user_version").fetchone()[0]
    tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if application_id == 0 and version == 0 and tables == 0:
        _migrate(db, 0)
        db.execute(f"PRAGMA application_id={APPLICATION_ID}")
        db.execute("INSERT INTO meta (key, value) VALUES ('user_id', ?)", (user_id,))
    elif application_id != APPLICATION_ID:
        raise StateFileError(
            path,
            "not_a_state_file",
            "is an SQLite file of another program, not a chats_store state file - "
            "give create_chats a path of its own",
        )
    elif version > SCHEMA_VERSION:
        raise StateFileError(
            path,
            "newer_version",
            f"was written by a newer chats_store (schema version {version}; this "
            f"version reads up to {SCHEMA_VERSION}) - upgrade chats_store",
        )
    else:
        if version < SCHEMA_VERSION:
            _migrate(db, version)
            logger.info("state file %s upgraded to version %d", path, SCHEMA_VERSION)
        owner = db.execute("SELECT value FROM meta WHERE key = 'user_id'").fetchone()
        if owner is None:
            raise StateFileError(path, "damaged", "does not say whose it is")
        if owner[0] != user_id:
            raise StateFileError(
                path,
                "other_user",
                f"keeps the chats of user {owner[0]!r}, not {user_id!r} - give each "
                "user a state file of their own",
            )


# Files ---------------------------------------------------------------------------------


def _create(path: str) -> bool:
    """Create ``path`` empty with mode 0600 if it does not exist; whether it was created."""
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return False
    except OSError as error:
        raise StateFileError(path, "damaged", f"cannot be created ({error.strerror})") from None
    os.close(descriptor)
    return True


def _migrate(db: sqlite3.Connection, version: int) -> None:
    """Run the migrations after ``version`` (inside the caller's transaction)."""
    for script in MIGRATIONS[version:]:
        for statement in script.split(";"):
            if statement.strip():
                db.execute(statement)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


@attrs.frozen
class _Contents:
    """What a file keeps: the action that restores it, its clock estimate, where its
    numbering goes on (the last pending rank), and the chats that may
    keep more messages than they show at once (the ``seq`` of the oldest one shown)."""

    restored: ChatsRestored
    offset: ClockOffset
    last_rank: int
    older: dict[str, int]


def _read(path: str, db: sqlite3.Connection) -> _Contents:
    """What the file keeps (``damaged`` if any of it is unreadable)."""
    try:
        chats = db.execute(
            "SELECT chat_id, position, last_seq, membership, members_amount, member_metadata, "
            "restrictions FROM chats ORDER BY position"
        ).fetchall()
        confirmed = {
            row[0]: _confirmed(
                db.execute(
                    f"{_SELECT_CONFIRMED} ORDER BY seq DESC LIMIT ?", (row[0], RESTORED_AT_ONCE)
                ).fetchall()[::-1]
            )
            for row in chats
        }
        pending: dict[str, list[Message]] = {}
        for chat_id, message_id, author_id, content, created_at in db.execute(
            "SELECT chat_id, id, author_id, content, created_at FROM pending ORDER BY chat_id, rank"
        ):
            message = Message(
                message_id, chat_id, author_id, content, "interrupted", None, created_at
            )
            pending.setdefault(chat_id, []).append(message)
        operations: dict[str, list[PendingOperation]] = {}
        for chat_id, message_id, kind, content in db.execute(
            "SELECT chat_id, message_id, kind, content FROM operations ORDER BY number"
        ):
            if kind not in ("send", "edit", "delete"):
                raise ValueError(f"operation {kind!r} of message {message_id!r}")
            operations.setdefault(chat_id, []).append(PendingOperation(kind, message_id, content))
        clock = db.execute("SELECT lower, upper FROM server_clock").fetchone()
        last_rank = db.execute("SELECT coalesce(max(rank), 0) FROM pending").fetchone()[0]
        restored = tuple(
            RestoredChat(
                chat_id=chat_id,
                last_seq=last_seq,
                membership=membership,
                members_amount=members_amount,
                member_metadata=_metadata(json.loads(metadata)),
                restrictions=_converter.structure(
                    json.loads(restrictions), tuple[Restriction, ...]
                ),
                messages=(*confirmed.get(chat_id, ()), *pending.get(chat_id, ())),
                operations=tuple(operations.get(chat_id, ())),
            )
            for chat_id, _, last_seq, membership, members_amount, metadata, restrictions in chats
        )
    except (sqlite3.DatabaseError, ValueError, TypeError, cattrs.BaseValidationError) as error:
        raise StateFileError(path, "damaged", f"cannot be read ({error})") from None
    offset = ClockOffset()
    if clock is not None:
        lower, upper = clock
        offset = ClockOffset(
            float("-inf") if lower is None else lower, float("inf") if upper is None else upper
        )
    return _Contents(
        restored=ChatsRestored(restored),
        offset=offset,
        last_rank=last_rank,
        older={
            chat_id: messages[0].seq
            for chat_id, messages in confirmed.items()
            if len(messages) == RESTORED_AT_ONCE and messages[0].seq is not None
        },
    )


_SELECT_CONFIRMED = (
    "SELECT id, chat_id, author_id, content, seq, created_at, edited_at FROM messages "
    "WHERE chat_id = ?"
)

_CHAT_TABLES = ("chats", "messages", "pending", "operations")
"""The tables that hold a chat's rows (``chats`` first)."""


def _confirmed(rows: Iterable[tuple[Any, ...]]) -> list[Message]:
    """The messages of ``rows`` (as :data:`_SELECT_CONFIRMED` reads them), ``ready``."""
    return [
        Message(m_id, chat_id, author, content, "ready", seq, created, edited)
        for m_id, chat_id, author, content, seq, created, edited in rows
    ]


def _metadata(value: object) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError(f"member metadata {value!r} is not an object of strings")
    return value
