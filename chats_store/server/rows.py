"""What every storage engine stores the same way: the columns of a record, the log's trim.

:class:`~chats_store.server.database.ChatDatabase` (SQLite) and
:class:`~chats_store.server.postgres.PostgresDatabase` keep the same tables; the
rules for what goes in a column, and when the event log is trimmed, live here once.
"""

from __future__ import annotations

import functools
import json
import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from chats_store.chats.actions import MessageEdited, MessagePosted
from chats_store.chats.model import Restriction, RestrictionKind
from chats_store.protocol import encode_event
from chats_store.server.storage import LoggedEvent, Member, Membership

__all__ = [
    "BUSY_TIMEOUT",
    "DEFAULT_KEEP_EVENTS",
    "EventLog",
    "EventRow",
    "LogTrim",
    "bounded_frames",
    "check_busy_timeout",
    "event_row",
    "member_from_rows",
    "membership_columns",
    "membership_from_columns",
    "new_epoch",
    "restriction_kind",
    "restrictions_from_rows",
]

DEFAULT_KEEP_EVENTS = 10_000
"""Events the log keeps per chat, at least."""

BUSY_TIMEOUT = 10.0
"""Seconds a transaction waits for another process's lock before it gives up."""


def new_epoch() -> str:
    """A new history identity: random, so that no two storages ever share one by chance."""
    return secrets.token_hex(16)


def check_busy_timeout(busy_timeout: float) -> float:
    """``busy_timeout`` if it is 0 or more seconds; ``ValueError`` otherwise."""
    if isinstance(busy_timeout, bool) or not busy_timeout >= 0:
        raise ValueError(f"busy_timeout must be 0 or more seconds, not {busy_timeout!r}")
    return busy_timeout


def restriction_kind(value: str) -> RestrictionKind:
    """The restriction kind a ``kind`` column holds."""
    if value == "mute":
        return "mute"
    if value == "block":
        return "block"
    raise ValueError(f"unknown restriction kind {value!r} in the database")


def membership_columns(membership: Membership) -> tuple[str, str]:
    """The ``permissions`` and ``metadata`` columns of a membership (JSON text)."""
    return (
        json.dumps(sorted(membership.permissions)),
        json.dumps(membership.metadata, sort_keys=True),
    )


def membership_from_columns(
    chat_id: str, user_id: str, permissions: str, metadata: str, joined_seq: int
) -> Membership:
    """The membership that :func:`membership_columns` stored."""
    # Every request of a member reads its membership. Permission sets are few: each
    # is parsed once (a frozenset is shared safely); metadata is parsed each time
    # (a dict of its own).
    loaded: Mapping[str, str] = {} if metadata == "{}" else json.loads(metadata)
    return Membership(chat_id, user_id, _permissions(permissions), loaded, joined_seq)


@functools.lru_cache(maxsize=256)
def _permissions(column: str) -> frozenset[str]:
    return frozenset(json.loads(column))


def member_from_rows(chat_id: str, user_id: str, rows: Sequence[Sequence[Any]]) -> Member | None:
    """The member that a read of its membership joined with its restrictions returned.

    Each row: ``permissions``, ``metadata``, ``joined_seq`` (as
    :func:`membership_columns` stored them), then ``kind``, ``until``, ``reason`` of
    one restriction, or three nulls for a member without any; mute first. No row:
    no such membership (None).
    """
    if not rows:
        return None
    permissions, metadata, joined_seq = rows[0][:3]
    return Member(
        membership_from_columns(chat_id, user_id, permissions, metadata, joined_seq),
        restrictions_from_rows(rows),
    )


def restrictions_from_rows(rows: Iterable[Sequence[Any]]) -> tuple[Restriction, ...]:
    """The restrictions in the last three columns of ``rows`` (``kind``, ``until``,
    ``reason``, as stored), in their order; a row whose ``kind`` is null holds none
    (a member without restrictions, read joined with them)."""
    return tuple(
        Restriction(restriction_kind(kind), until, reason)
        for *_, kind, until, reason in rows
        if kind is not None
    )


@attrs.frozen
class EventRow:
    """A logged event's ``events`` row, but for its chat, seq and target."""

    frame: str
    """The text of its ``event`` frame, sent as it is on a resume."""
    message_id: str | None
    """The message whose content it carries (erased with it), if any."""


def event_row(event: LoggedEvent) -> EventRow:
    """How ``event`` is logged."""
    message_id = event.message.id if isinstance(event, MessagePosted | MessageEdited) else None
    return EventRow(encode_event(event), message_id)


class EventLog(ABC):
    """What the engines' event logs share: an event is logged as its frame text
    (:func:`event_row`) by the engine's :meth:`log_event`."""

    @abstractmethod
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

    def append_event(self, event: LoggedEvent, *, target: str | None = None) -> str:
        """Log ``event`` as its frame text (inside the transaction that took its seq); the text.

        ``target``: the only user who may read it back (None: every member).
        """
        row = event_row(event)
        self.log_event(
            event.chat_id, event.seq, row.frame, target=target, message_id=row.message_id
        )
        return row.frame


@attrs.frozen
class LogTrim:
    """The trim policy of the event log: per chat, keep at least the last ``keep`` events.

    Every ``keep // 10`` events (at most 1,000) the older ones are dropped and the
    chat's ``log_floor`` raised (every event with ``seq > log_floor`` is in the log).
    """

    keep: int = attrs.field()
    every: int = attrs.field(init=False)

    @keep.validator
    def _check_keep(self, _attribute: object, keep: object) -> None:
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"keep_events must be a positive integer, not {keep!r}")

    @every.default
    def _every(self) -> int:
        return max(1, min(1000, self.keep // 10))

    def floor_after(self, seq: int) -> int | None:
        """The new ``log_floor`` once event ``seq`` is logged, or None: no trim yet."""
        if seq % self.every == 0 and seq > self.keep:
            return seq - self.keep
        return None


def bounded_frames(
    rows: Iterable[tuple[str]], limit: int, max_bytes: int | None
) -> tuple[str, ...] | None:
    """The frames of ``rows``, in order, if there are at most ``limit`` of them of at
    most ``max_bytes`` characters in all (frames are ASCII: characters are bytes; None:
    no bound); None past either bound, and no further row is read."""
    frames: list[str] = []
    size = 0
    for (frame,) in rows:
        size += len(frame)
        if len(frames) == limit or (max_bytes is not None and size > max_bytes):
            return None
        frames.append(frame)
    return tuple(frames)
