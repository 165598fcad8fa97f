"""What the server core needs from its storage: :class:`ChatStorage`, and its records.

The core (:mod:`chats_store.server.service`) holds the rules; a storage only keeps
and reads back what the core decided. :class:`~chats_store.server.database.ChatDatabase`
implements it on SQLite; another engine implements the same methods.

Contract, for every engine:

* **One transaction per request, durable when it ends.** The core runs each request,
  and each change it makes on its own (a restriction expires, a members amount is
  pushed), inside one :meth:`ChatStorage.transaction`: what it reads there is
  consistent with what it writes, and if the block raises, nothing it wrote stays.
  Transactions nest: the core runs several requests in one outer transaction (a
  *group commit*), each in an inner one that rolls back alone. When the outermost
  block returns, what it wrote is on stable storage: a power loss afterwards loses
  none of it. An engine that cannot start a transaction because another process
  holds its write lock waits for it up to a bound, then raises
  :class:`StorageBusyError`.
* **Per-chat order.** :meth:`ChatStorage.next_seq` takes the chat's next event
  number inside that transaction, and the number is committed with the event it
  numbers. An engine shared by several processes allocates it on a per-chat row
  (``UPDATE ... SET last_seq = last_seq + 1 ... RETURNING``), so concurrent writers of
  one chat are serialized by that row's lock and every chat has one total order.
* **The event log** keeps every event :data:`LoggedEvent` with its ``seq`` as the
  text of its ``event`` frame (``encode_event``); a private event (``own_*``) is
  stored with the one user who may read it back. Reading gives the frames in
  ``seq`` order, or None when the log cannot give all of them (trimmed, or more
  than asked): the core then sends a snapshot instead. The frames go to the client
  as they are, never decoded on the way. Deleting a message erases the logged
  events that carry its content; editing it replaces them (the log never serves
  superseded content).
* **Nothing superseded stays on disk** longer than the engine must keep it: an engine
  that keeps old versions of its pages (SQLite's write-ahead log) writes them back and
  drops them once the transaction of an edit or a delete has committed.
* **The epoch** names the history the storage holds (see
  :attr:`ChatStorage.epoch`): two storages with the same epoch hold the same
  history, one possibly further on; the storage takes a new one whenever it cannot
  tell that it continues the history it last served (created, restored from a copy,
  replaced, or behind what it had committed).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from contextlib import AbstractContextManager
from typing import Protocol

import attrs

from chats_store.chats.actions import (
    MembersAmountChanged,
    MessageEdited,
    MessagePosted,
    MessageRemoved,
    OwnMetadataChanged,
    OwnRestrictionsChanged,
)
from chats_store.chats.model import Message, Restriction, RestrictionKind

__all__ = [
    "ChatStorage",
    "LoggedEvent",
    "Member",
    "Membership",
    "StorageBusyError",
    "StoredMessage",
    "TimedRestriction",
]

LoggedEvent = (
    MessagePosted
    | MessageEdited
    | MessageRemoved
    | MembersAmountChanged
    | OwnRestrictionsChanged
    | OwnMetadataChanged
)
"""The events the log keeps (``removed_from_chat`` is told only to those online)."""


class StorageBusyError(Exception):
    """The storage stayed locked by another process for longer than its bound.

    Nothing of the transaction that could not start was applied.
    """


@attrs.frozen
class Membership:
    """A member of a chat, with the permissions and metadata of the token it joined with."""

    chat_id: str
    user_id: str
    permissions: frozenset[str]
    metadata: Mapping[str, str]
    joined_seq: int = 0
    """The chat's seq when the membership began (its ``members_amount_changed``): a
    resume never reads the log from before it. A rejoin of a member keeps it."""


@attrs.frozen
class Member:
    """A membership with the member's stored restrictions, read together: what a
    request of a member needs to know of it, in one read."""

    membership: Membership
    restrictions: tuple[Restriction, ...]
    """Every stored restriction of the member, expired ones included, mute first."""


@attrs.frozen
class StoredMessage:
    """A message as stored; a deleted one keeps its row (content erased) so its id stays taken."""

    message: Message
    deleted: bool


@attrs.frozen
class TimedRestriction:
    """A restriction with an expiry time, of a member of a chat (one that has expired)."""

    chat_id: str
    user_id: str
    kind: RestrictionKind
    until: float


class ChatStorage(Protocol):
    """The operations the server core performs on its storage (see the module's contract)."""

    def transaction(self) -> AbstractContextManager[None]:
        """Commit what the block wrote, or roll all of it back if it raises.

        Nested in another, the block's writes are kept or dropped alone, and are
        committed with the outermost one. When the outermost block returns, its
        writes are on stable storage. Raises :class:`StorageBusyError` if another
        process kept the storage locked past the storage's bound.
        """
        ...

    @property
    def epoch(self) -> str:
        """The identity of the history this storage holds (an opaque string).

        It changes whenever the storage cannot show that it continues the history
        it served before: a new storage, a copy restored, a storage replaced, or
        one found behind what it had committed. Clients compare it, nothing else.
        """
        ...

    def lock_chats(self, chat_ids: Collection[str]) -> None:
        """Take the locks of the chats a group commit touches, first (inside its outer
        transaction).

        An engine shared by several processes with a lock per chat takes them here
        in one order, the same in every process, so that two group commits never
        wait for each other's chats in a cycle (a deadlock); an engine with one
        writer has nothing to do.
        """
        ...

    # Chats: the event counter.

    def last_seq(self, chat_id: str) -> int:
        """The chat's last event seq (0 for a chat nothing happened in)."""
        ...

    def next_seq(self, chat_id: str) -> int:
        """Take the chat's next event seq (inside the transaction that stores the event)."""
        ...

    def next_post_seq(self, chat_id: str, message_id: str) -> int | None:
        """Take the chat's next event seq for a new message ``message_id``, as
        :meth:`next_seq` does, unless the chat already has a message with that id
        (live or deleted) or has taken no seq yet: then None, taking nothing. One
        statement: the id check of a post costs no read of its own."""
        ...

    # Memberships.

    def member(self, chat_id: str, user_id: str) -> Member | None:
        """The membership and the member's restrictions (:class:`Member`), in one read;
        None if there is no such membership."""
        ...

    def save_membership(self, membership: Membership, joined_at: float) -> None:
        """Create the membership, or replace its permissions and metadata (an existing
        one keeps its ``joined_seq``)."""
        ...

    def delete_membership(self, chat_id: str, user_id: str) -> bool:
        """End the membership; False if there was none."""
        ...

    def members_amount(self, chat_id: str) -> int: ...

    # Messages.

    def message(self, chat_id: str, message_id: str) -> StoredMessage | None: ...

    def insert_message(self, message: Message) -> None: ...

    def edit_message(
        self, chat_id: str, message_id: str, content: str, edited_at: float
    ) -> None: ...

    def delete_message(self, chat_id: str, message_id: str) -> None:
        """Mark the message deleted and erase its content (its id stays taken)."""
        ...

    def messages_before(self, chat_id: str, before_seq: int, limit: int) -> tuple[Message, ...]:
        """The newest ``limit`` live messages with ``seq < before_seq``, oldest first."""
        ...

    # Restrictions.

    def restrictions(self, chat_id: str, user_id: str) -> tuple[Restriction, ...]:
        """Every stored restriction of the member, expired ones included, mute first."""
        ...

    def save_restriction(self, chat_id: str, user_id: str, restriction: Restriction) -> None:
        """Store the restriction, replacing the member's one of the same kind."""
        ...

    def delete_restriction(self, chat_id: str, user_id: str, kind: RestrictionKind) -> bool:
        """Lift the member's restriction of ``kind``; False if there was none."""
        ...

    def restrictions_amount(self, chat_id: str) -> int:
        """How many restrictions the chat holds (expired ones not yet lifted included)."""
        ...

    def next_expiry(self) -> float | None:
        """The earliest expiry time of a stored restriction, of any chat (None: none)."""
        ...

    def expired_restrictions(self, now: float, limit: int) -> tuple[TimedRestriction, ...]:
        """At most ``limit`` restrictions, of any chat, whose expiry time is ``now`` or
        earlier, earliest first."""
        ...

    # The event log.

    def append_event(self, event: LoggedEvent, *, target: str | None = None) -> str:
        """Log ``event`` (inside the transaction that took its seq); its frame's text.

        ``target``: the only user who may read it back (None: every member).
        """
        ...

    def missed_frames(
        self, chat_id: str, user_id: str, since_seq: int, limit: int, max_bytes: int | None = None
    ) -> tuple[str, ...] | None:
        """The ``event`` frames of the events ``user_id`` may read with
        ``seq > since_seq``, oldest first, as the text ``encode_event`` wrote.

        None if the log cannot give every one of them: it was trimmed past
        ``since_seq``, or there are more than ``limit``, or their frames' text is more
        than ``max_bytes`` bytes (frames are ASCII; None: no bound).
        """
        ...

    def erase_message_events(self, chat_id: str, message_id: str) -> None:
        """Drop the logged events that carry a message's content (it was deleted)."""
        ...

    def supersede_message_events(self, posted: MessagePosted) -> None:
        """The message was edited: its logged events stop carrying the earlier content.

        Its ``message_posted`` event (at ``posted.seq``, if the log still holds it) is
        replaced by ``posted`` (the edited message), and its ``message_edited`` events
        are dropped; the core then logs the new ``message_edited``.
        """
        ...
