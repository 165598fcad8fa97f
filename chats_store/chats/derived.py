"""The derived getters every chat UI needs, and the read markers they count from (runtime).

Built on :meth:`Store.derive <chats_store.core.store.Store.derive>` like any
application's own getters, and memoized under keys no application can spell:

* ``get_chat_last_message(chat_id)``: the last message shown, for a chat list row;
* ``get_chat_unread_count(chat_id)``: messages others wrote after the chat's read
  marker, which the application sets (``mark_chat_read``) and may persist and
  restore (``read_markers.set``);
* ``get_chat_summary(chat_id)``: a :class:`~chats_store.chats.selectors.ChatSummary`
  (status, members, last message, unread count) for one row of a chat list.

Each recomputes only when one of its inputs changed, and a change in another chat
costs it nothing (see the cost model of :mod:`chats_store.core.store`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING

import attrs

from chats_store.chats.model import ChatStatus, Message
from chats_store.chats.selectors import ChatSummary, last_message_of, unread_count_of
from chats_store.core.affinity import LoopAffinity
from chats_store.core.reducer import reducer_from_table
from chats_store.core.store import Getter, Store
from chats_store.errors import ActionCallError, ErrorCode

if TYPE_CHECKING:
    from chats_store.chats.facade import Chats

__all__ = [
    "ReadMarkerSet",
    "ReadMarkers",
    "chat_last_message",
    "chat_summary",
    "chat_unread_count",
    "mark_chat_read",
]


class _Key:
    """The namespace of this module's getters in a store's application key space."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "chats_store.chats.derived"


_KEY = _Key()

Markers = Mapping[str, int]
_NO_MARKERS: Markers = MappingProxyType({})


@attrs.frozen
class ReadMarkerSet:
    """The read marker of ``chat_id`` is now ``seq`` (None: no marker, all unread)."""

    chat_id: str
    seq: int | None


def _set_marker(markers: Markers, action: ReadMarkerSet) -> Markers:
    if markers.get(action.chat_id) == action.seq:
        return markers
    updated = {chat_id: seq for chat_id, seq in markers.items() if chat_id != action.chat_id}
    if action.seq is not None:
        updated[action.chat_id] = action.seq
    return MappingProxyType(updated)


def _marker_scope(action: ReadMarkerSet) -> str:
    return action.chat_id


class ReadMarkers:
    """The application's read marker per chat: the ``seq`` of the last message read.

    A small store of its own (a chat id -> ``seq`` mapping), so that setting a
    marker refreshes only the getters of that chat. It belongs to the same asyncio
    loop as its ``Chats`` module; markers survive leaving and rejoining a chat.
    """

    def __init__(self, affinity: LoopAffinity | None = None) -> None:
        self._store: Store[Markers] = Store(
            reducer_from_table({ReadMarkerSet: _set_marker}),
            _NO_MARKERS,
            scope_of=_marker_scope,
            affinity=affinity,
        )

    def get(self, chat_id: str) -> Getter[int | None]:
        """The read marker of ``chat_id`` (None while none is set)."""
        return self._store.getter(
            chat_id, lambda markers: markers.get(chat_id), _same, scope=chat_id
        )

    def set(self, chat_id: str, seq: int | None) -> None:
        """Set (``seq``) or clear (None) the read marker of ``chat_id``.

        For restoring saved markers; ``Chats.mark_chat_read`` sets one from a message.
        Raises ``ValueError`` for a ``seq`` that is not a whole number >= 0.
        """
        if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int) or seq < 0):
            raise ValueError(f"a read marker is a message seq (an int >= 0) or None, not {seq!r}")
        self._store.affinity.check_thread("setting a read marker")
        self._store.dispatch(ReadMarkerSet(chat_id, seq))

    @property
    def all(self) -> Markers:
        """Every marker set, by chat id (read-only: to save them)."""
        return self._store.state


def _same(value: int | None) -> int | None:
    return value


def chat_last_message(chats: Chats, chat_id: str) -> Getter[Message | None]:
    """The last message of ``chat_id`` shown (pending ones last), or None."""
    return chats.store.derive(
        chats.get_chat_messages(chat_id),
        project=last_message_of,
        key=(_KEY, "last_message", chat_id),
    )


def chat_unread_count(chats: Chats, chat_id: str, own_id: str) -> Getter[int]:
    """How many messages others wrote in ``chat_id`` after its read marker."""

    def count(messages: Sequence[Message] | None, read_seq: int | None) -> int:
        return unread_count_of(messages, read_seq, own_id)

    return chats.store.derive(
        chats.get_chat_messages(chat_id),
        chats.read_markers.get(chat_id),
        project=count,
        key=(_KEY, "unread_count", chat_id),
    )


def chat_summary(chats: Chats, chat_id: str, own_id: str) -> Getter[ChatSummary]:
    """One chat-list row for ``chat_id``: status, members, last message, unread count."""

    def summary(
        status: ChatStatus | None, members: int | None, last: Message | None, unread: int
    ) -> ChatSummary:
        return ChatSummary(chat_id, status, members, last, unread)

    return chats.store.derive(
        chats.get_chat_status(chat_id),
        chats.get_chat_members_amount(chat_id),
        chat_last_message(chats, chat_id),
        chat_unread_count(chats, chat_id, own_id),
        project=summary,
        key=(_KEY, "summary", chat_id),
    )


def mark_chat_read(chats: Chats, chat_id: str, message_id: str | None = None) -> int:
    """Set the read marker of ``chat_id`` at ``message_id`` (default: the last confirmed).

    Returns the marker's ``seq``. Raises :class:`ActionCallError` with
    ``chat_not_joined`` for a chat not joined, ``message_not_found`` for a message
    the chat does not hold or that the server has not confirmed yet.
    """
    action = "mark_chat_read"
    messages = chats.get_chat_messages(chat_id).value
    if messages is None:
        raise ActionCallError(
            action,
            ErrorCode.CHAT_NOT_JOINED,
            f"chat {chat_id!r} is not joined; to restore a saved marker, use "
            "chats.read_markers.set(chat_id, seq)",
        )
    if message_id is None:
        seq = next((m.seq for m in reversed(messages) if m.seq is not None), 0)
    else:
        found = next((m for m in reversed(messages) if m.id == message_id), None)
        if found is None or found.seq is None:
            state = "is not confirmed by the server yet" if found else "is not in the chat"
            raise ActionCallError(
                action,
                ErrorCode.MESSAGE_NOT_FOUND,
                f"message {message_id!r} {state}: mark a confirmed message as read, or "
                f"call mark_chat_read({chat_id!r}) to mark everything shown",
            )
        seq = found.seq
    chats.read_markers.set(chat_id, seq)
    return seq
