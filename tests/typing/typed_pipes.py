"""An application's typed code on chats_store's getters: ``mypy --strict`` accepts it.

``tests/typing/test_typed_pipes.py`` type-checks this file; it is never run. The last
function holds mistakes mypy must catch: each carries a ``type: ignore`` that
``--strict`` reports as unused if the mistake went unnoticed.

In a ``pipe`` of several operators, give ``ops.map`` and ``ops.filter`` typed
functions rather than lambdas: each operator is built before ``pipe`` sees it, so
mypy cannot infer a lambda's parameter there (it can in ``derive`` and ``select``).
"""

from __future__ import annotations

from collections.abc import Sequence

import reactivex
from reactivex import Observable
from reactivex import operators as ops

from chats_store import (
    ActionError,
    Chats,
    ChatStatus,
    ChatSummary,
    ConnectionStatus,
    ErrorCode,
    Getter,
    Message,
    WebSocket,
)


def status_line(chats: Chats, chat_id: str) -> Observable[str]:
    """A getter of a Literal union is a getter of ``str | None`` (covariance)."""
    status: Getter[ChatStatus | None] = chats.get_chat_status(chat_id)
    wide: Getter[str | None] = status
    return wide.pipe(ops.map(lambda value: value or "not joined"), ops.distinct_until_changed())


def count_of(messages: Sequence[Message] | None) -> int:
    return len(messages or ())


def is_positive(count: int) -> bool:
    return count > 0


def message_count(chats: Chats, chat_id: str) -> Observable[int]:
    messages: Getter[Sequence[Message] | None] = chats.get_chat_messages(chat_id)
    return messages.pipe(ops.map(count_of), ops.filter(is_positive), ops.distinct_until_changed())


def line_of(message: Message | None) -> str:
    return f"{message.author_id}: {message.content}" if message else ""


def last_line(chats: Chats, chat_id: str) -> Observable[str]:
    return chats.get_chat_last_message(chat_id).pipe(ops.map(line_of), ops.debounce(0.1))


def header(chats: Chats, chat_id: str) -> Getter[str]:
    """``derive`` types ``project``'s parameters from its sources."""
    return chats.store.derive(
        chats.get_chat_status(chat_id),
        chats.get_chat_members_amount(chat_id),
        project=lambda status, members: f"{status or 'left'} · {members or 0} members",
    )


def can_send(chats: Chats, websocket: WebSocket, chat_id: str) -> Getter[bool]:
    """Sources from two stores: the WebSocket module's status and a chat's restrictions."""

    def allowed(connection: ConnectionStatus, summary: ChatSummary) -> bool:
        return connection == "connected" and summary.status == "ready"

    return chats.store.derive(websocket.status, chats.get_chat_summary(chat_id), project=allowed)


def is_muted(chats: Chats, chat_id: str) -> Getter[bool]:
    return chats.store.select(
        lambda state: state.chats.get(chat_id),
        lambda chat: chat is not None and any(r.kind == "mute" for r in chat.restrictions or ()),
        scope=chat_id,
    )


def unread_pair(chats: Chats, first: str, second: str) -> Observable[tuple[int, int]]:
    return reactivex.combine_latest(
        chats.get_chat_unread_count(first), chats.get_chat_unread_count(second)
    )


def error_code(error: ActionError) -> ErrorCode:
    return error.code


def mistakes(chats: Chats) -> None:
    count: Getter[int] = chats.get_chat_status("c1")  # type: ignore[assignment]
    chats.store.derive(
        chats.get_chat_members_amount("c1"),
        project=lambda members: members.bit_length(),  # type: ignore[union-attr]
    )
    chats.get_chat_messages("c1").pipe(ops.map(line_of))  # type: ignore[arg-type]
    del count
