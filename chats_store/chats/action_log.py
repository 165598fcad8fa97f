"""Action logs: write every action of a store as JSON lines, read and replay them.

A log is a text file of JSON lines. The first is a header::

    {"chats_store_action_log": 1, "auto_resend": false}

(with ``"max_messages": N`` too when ``ChatsConfig.max_messages_in_memory`` is set)

then one line per dispatched action, in dispatch order::

    {"n": 1, "at": 1718000000.123, "action": {"type": "ConnectionStatusChanged", ...}}

``n`` counts from 1, ``at`` is the wall-clock time (epoch seconds) of the dispatch,
``action`` is :func:`~chats_store.chats.serialization.action_to_data` of the action:
tokens and membership credentials are redacted.

:class:`ActionLogWriter` is a store middleware (``Store.add_middleware``) that
writes such a file; ``create_chats(..., action_log=path)`` installs one.
:func:`read_action_log` reads a log back and :func:`replay` runs its actions through
the pure reducer, which is what ``chats-store replay LOG`` prints: a user's bug
reproduced without a server. :func:`getter_values` gives the value of every getter
of the Chats facade for a state, as replay shows them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import attrs

from chats_store.chats.model import ChatsState
from chats_store.chats.reducer import chats_reducer
from chats_store.chats.selectors import (
    is_syncing_of,
    members_amount_of,
    messages_of,
    metadata_of,
    restrictions_of,
    status_of,
    sync_statuses_of,
)
from chats_store.chats.serialization import action_from_data, action_to_data

__all__ = [
    "FORMAT_VERSION",
    "ActionLog",
    "ActionLogError",
    "ActionLogWriter",
    "LogEntry",
    "getter_values",
    "read_action_log",
    "replay",
]

FORMAT_VERSION = 1
"""The value of the header's ``chats_store_action_log`` key."""

logger = logging.getLogger("chats_store.chats.action_log")


class ActionLogError(ValueError):
    """A file is not a readable action log (the message names the line)."""


class ActionLogWriter:
    """A store middleware that appends every action to ``path`` as a JSON line.

    The file is created (truncated if it exists) with the header line at once;
    each line is flushed as it is written, so a crash loses nothing written before
    it. ``clock`` gives the time stamps (epoch seconds). ``close`` closes the
    file; actions after it are ignored. Write errors propagate to the store, which
    logs them and removes the middleware (the application goes on, unlogged).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        auto_resend: bool = False,
        max_messages: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._count = 0
        self._file: IO[str] | None = self.path.open("w", encoding="utf-8")
        header: dict[str, Any] = {
            "chats_store_action_log": FORMAT_VERSION,
            "auto_resend": auto_resend,
        }
        if max_messages is not None:
            header["max_messages"] = max_messages
        self._write(header)
        logger.info("writing the action log %s", self.path)

    def _write(self, record: dict[str, Any]) -> None:
        assert self._file is not None
        self._file.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        self._file.flush()

    def __call__(self, action: Any, state: Any) -> None:
        if self._file is None:
            return
        self._count += 1
        self._write({"n": self._count, "at": self._clock(), "action": action_to_data(action)})

    @property
    def count(self) -> int:
        """How many actions have been written."""
        return self._count

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._file is not None:
            self._file.close()
            self._file = None


@attrs.frozen
class LogEntry:
    """One logged action: its number ``n`` (from 1), time stamp ``at`` and the action."""

    n: int
    at: float
    action: Any


@attrs.frozen
class ActionLog:
    """A log read back: the state to start from, the entries in order, and the
    configuration of the module that wrote it (``auto_resend``, ``max_messages``:
    the reducer's, see :func:`~chats_store.chats.reducer.chats_reducer`)."""

    initial_state: ChatsState
    entries: tuple[LogEntry, ...]
    auto_resend: bool = False
    max_messages: int | None = None


def _parse(line: str, number: int) -> Any:
    try:
        return json.loads(line)
    except ValueError as error:
        raise ActionLogError(f"line {number}: not JSON ({error})") from None


def read_action_log(lines: Iterable[str]) -> ActionLog:
    """Parse a log's lines (an open file will do); raises :class:`ActionLogError`."""
    iterator = iter(enumerate(lines, 1))
    header: Any = None
    for number, line in iterator:
        if line.strip():
            header = _parse(line, number)
            break
    if not isinstance(header, dict) or header.get("chats_store_action_log") != FORMAT_VERSION:
        raise ActionLogError(
            f"line 1: not a chats_store action log (expected a header "
            f'{{"chats_store_action_log": {FORMAT_VERSION}, ...}})'
        )
    entries: list[LogEntry] = []
    for number, line in iterator:
        if not line.strip():
            continue
        record = _parse(line, number)
        try:
            entries.append(
                LogEntry(int(record["n"]), float(record["at"]), action_from_data(record["action"]))
            )
        except Exception as error:  # cattrs reports through several exception types
            raise ActionLogError(f"line {number}: not a logged action ({error!r})") from None
    limit = header.get("max_messages")
    return ActionLog(
        ChatsState(),
        tuple(entries),
        auto_resend=bool(header.get("auto_resend", False)),
        max_messages=int(limit) if limit is not None else None,
    )


def replay(log: ActionLog, *, at: int | None = None) -> Iterator[tuple[LogEntry, ChatsState]]:
    """Reduce the log's actions in order; yield each entry with the state after it.

    ``at`` stops after the entry numbered ``at``. Commands the reducer returns are
    ignored: nothing is sent anywhere, the outcomes are in the log already. The reducer
    is configured as the module that wrote the log was.
    """
    reduce = chats_reducer(auto_resend=log.auto_resend, max_messages=log.max_messages)
    state = log.initial_state
    for entry in log.entries:
        if at is not None and entry.n > at:
            return
        state = reduce(state, entry.action).state
        yield entry, state


_CHAT_GETTERS: tuple[tuple[str, Callable[[Any], Any]], ...] = (
    ("status", status_of),
    ("members_amount", members_amount_of),
    ("messages", messages_of),
    ("sync_statuses", sync_statuses_of),
    ("is_syncing", is_syncing_of),
    ("metadata", metadata_of),
    ("restrictions", restrictions_of),
)


def getter_values(state: ChatsState, chat_ids: Iterable[str] = ()) -> dict[str, Any]:
    """The value of every getter for ``state``, keyed ``"chats_ids"`` or ``"CHAT getter"``.

    Chats are those of ``state``, those it says were removed, and ``chat_ids``
    (so that a chat that went away shows its getters going back to None).
    """
    values: dict[str, Any] = {"chats_ids": state.chat_ids}
    for chat_id in dict.fromkeys([*state.chat_ids, *state.removed, *chat_ids]):
        chat = state.chats.get(chat_id)
        for name, project in _CHAT_GETTERS:
            values[f"{chat_id} {name}"] = project(chat)
        values[f"{chat_id} removal"] = state.removed.get(chat_id)
    return values
