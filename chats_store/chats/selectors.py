"""Selectors: pure functions from state to the values the getters expose.

Each chat getter is split in two for speed (see ``core.store``): the *input*
``select_chat(state, chat_id)`` (the chat's state object, identical while the
chat is unchanged) and a *projection* ``*_of(chat)`` of that chat, which also
accepts None (a chat not joined). ``select_*(state, chat_id)`` compose the two
and are what tests compare getters against.

The projections of the derived getters every chat UI needs (``last_message_of``,
``unread_count_of``) and their value type :class:`ChatSummary` are here too; they
are wired to getters in :mod:`chats_store.chats.derived`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TypeVar

import attrs

from chats_store.chats.model import (
    ChatContext,
    ChatsState,
    ChatState,
    ChatStatus,
    Message,
    Restriction,
    SyncStatuses,
)

__all__ = [
    "PROJECTION_FIELDS",
    "ChatSummary",
    "chat_context",
    "context_of",
    "is_syncing_of",
    "last_message_of",
    "members_amount_of",
    "messages_of",
    "metadata_of",
    "restrictions_of",
    "select_chat",
    "select_chat_context",
    "select_chat_members_amount",
    "select_chat_messages",
    "select_chat_status",
    "select_chat_sync_statuses",
    "select_chats_ids",
    "select_client_chat_member_metadata",
    "select_client_chat_member_restrictions",
    "select_is_chat_syncing",
    "status_of",
    "sync_statuses_of",
    "unread_count_of",
]

T = TypeVar("T")


def select_chats_ids(state: ChatsState) -> tuple[str, ...]:
    """Ids of the chats joined or being joined, in join order."""
    return state.chat_ids


def select_chat(state: ChatsState, chat_id: str) -> ChatState | None:
    """The chat's state object (the input of every per-chat getter)."""
    return state.chats.get(chat_id)


def chat_context(chat: ChatState) -> ChatContext:
    """The public snapshot of one chat."""
    return ChatContext(
        chat_id=chat.chat_id,
        status=chat.status,
        messages=chat.messages.items,
        members_amount=chat.members_amount,
        sync_statuses=chat.sync_statuses,
        member_metadata=chat.member_metadata,
        restrictions=chat.restrictions,
    )


def status_of(chat: ChatState | None) -> ChatStatus | None:
    return chat.status if chat is not None else None


def messages_of(chat: ChatState | None) -> Sequence[Message] | None:
    return chat.messages.items if chat is not None else None


def members_amount_of(chat: ChatState | None) -> int | None:
    return chat.members_amount if chat is not None else None


def sync_statuses_of(chat: ChatState | None) -> SyncStatuses | None:
    return chat.sync_statuses if chat is not None else None


def is_syncing_of(chat: ChatState | None) -> bool:
    return chat is not None and chat.sync_statuses.is_syncing


def metadata_of(chat: ChatState | None) -> Mapping[str, str] | None:
    return chat.member_metadata if chat is not None else None


def restrictions_of(chat: ChatState | None) -> tuple[Restriction, ...] | None:
    return chat.restrictions if chat is not None else None


def context_of(chat: ChatState | None) -> ChatContext | None:
    return chat_context(chat) if chat is not None else None


PROJECTION_FIELDS: Mapping[Callable[[ChatState | None], object], str] = MappingProxyType(
    {
        status_of: "status",
        messages_of: "messages",
        members_amount_of: "members_amount",
        sync_statuses_of: "sync_statuses",
        is_syncing_of: "sync_statuses",
        metadata_of: "member_metadata",
        restrictions_of: "restrictions",
    }
)
"""The one attribute of the chat each per-chat getter's projection reads: the
``field`` its getter is made with (``Store.getter``), so that a dispatch passes over
the getters of the attributes it left as they were."""


def _composed(project: Callable[[ChatState | None], T]) -> Callable[[ChatsState, str], T]:
    def select(state: ChatsState, chat_id: str) -> T:
        return project(state.chats.get(chat_id))

    return select


select_chat_status = _composed(status_of)
select_chat_messages = _composed(messages_of)
select_chat_members_amount = _composed(members_amount_of)
select_chat_sync_statuses = _composed(sync_statuses_of)
select_is_chat_syncing = _composed(is_syncing_of)
select_client_chat_member_metadata = _composed(metadata_of)
select_client_chat_member_restrictions = _composed(restrictions_of)
select_chat_context = _composed(context_of)


# The derived getters' projections ------------------------------------------------------


def last_message_of(messages: Sequence[Message] | None) -> Message | None:
    """The last message shown (pending ones come last), or None."""
    return messages[-1] if messages else None


def unread_count_of(messages: Sequence[Message] | None, read_seq: int | None, own_id: str) -> int:
    """How many confirmed messages after ``read_seq`` others wrote (all held when None).

    Walks the messages from the newest and stops at the read marker, so it costs the
    number of unread messages (all those held when no marker is set). Pending
    messages are the client's own, never unread.
    """
    count = 0
    for message in reversed(messages or ()):
        seq = message.seq
        if seq is None:
            continue
        if read_seq is not None and seq <= read_seq:
            break
        if message.author_id != own_id:
            count += 1
    return count


@attrs.frozen
class ChatSummary:
    """One row of a chat list: what ``get_chat_summary`` emits.

    ``status`` and ``members_amount`` are None for a chat not joined;
    ``last_message`` is the last message shown; ``unread_count`` counts the
    messages others wrote after the chat's read marker (see ``mark_chat_read``).
    """

    chat_id: str
    status: ChatStatus | None
    members_amount: int | None
    last_message: Message | None
    unread_count: int
