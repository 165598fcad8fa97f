"""Checks every Chats action against the current state before anything happens (pure).

Each ``check_*`` function raises :class:`ActionCallError` with the spec's meaning
(typos fixed) and a stable code, or returns what the action needs. Because the
facade runs these checks first and dispatches nothing when they fail, a refused
call leaves the store exactly as it was.

What the connection, the chat's status and the message's status allow comes from
the lifecycle tables (:mod:`chats_store.chats.lifecycle`), which the reducer
consults too; those rules are checked first, then what only the call's arguments
(content, limit, duration, token), the clock (mutes, expiry) and the user (author,
moderating oneself) can tell, which the reducer never sees.

Times are the server's: the deadlines these checks judge (a token's expiry, the end
of a mute) are the server's, so the facade gives them its estimate of the server's
clock (:mod:`chats_store.chats.server_clock`), never the local one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chats_store.chats.actions import Failure
from chats_store.chats.lifecycle import connection_refusal, refusal
from chats_store.chats.model import ChatsState, ChatState, Message
from chats_store.content import MAX_CONTENT_LENGTH, content_failure
from chats_store.errors import ActionCallError, ErrorCode, TokenError
from chats_store.tokens import CHAT_AUDIENCE, read_unverified_claims

__all__ = [
    "MAX_CONTENT_LENGTH",
    "MAX_HISTORY_PAGE",
    "check_connected",
    "check_content",
    "check_delete_message",
    "check_join_chat",
    "check_leave_chat",
    "check_load_older_messages",
    "check_moderation",
    "check_resend_message",
    "check_send_message",
    "check_update_message",
]

MAX_HISTORY_PAGE = 200


def _raise(action: str, failure: Failure | None) -> None:
    if failure is not None:
        raise ActionCallError(action, failure.code, failure.detail)


def check_connected(state: ChatsState, action: str) -> None:
    """``not_connected`` unless the WebSocket connection is open."""
    _raise(action, connection_refusal(state.connection, action))


def _allowed_chat(state: ChatsState, action: str, chat_id: str) -> ChatState:
    """The chat ``action`` names, if the lifecycle tables allow ``action`` now."""
    _raise(action, refusal(state, action, chat_id))
    return state.chats[chat_id]


def _allowed_message(state: ChatsState, action: str, chat_id: str, message_id: str) -> Message:
    """The message ``action`` names, if the lifecycle tables allow ``action`` on it now."""
    _raise(action, refusal(state, action, chat_id, message_id))
    message = state.chats[chat_id].messages.find(message_id)
    assert message is not None
    return message


def check_content(content: object, action: str) -> str:
    """Content must be a string that :func:`chats_store.content.content_failure` accepts:
    not blank, at most ``MAX_CONTENT_LENGTH`` characters (the server's rule too)."""
    if not isinstance(content, str):
        raise TypeError(f"{action}: content must be a str, not {type(content).__name__}")
    _raise(action, content_failure(content))
    return content


def check_join_chat(
    state: ChatsState, token: object, user_id: str, now: float
) -> Mapping[str, Any]:
    """The chat token's claims, if the client can join with it now.

    ``now`` is the earliest the server's clock can read (``ServerClock.earliest``):
    a token is refused as expired only if the server would refuse it; one that only
    the local clock calls expired goes to the server, which decides.
    """
    action = "join_chat"
    check_connected(state, action)
    try:
        claims = read_unverified_claims(token, CHAT_AUDIENCE, required=("sub", "chat", "exp"))
    except TokenError as error:
        raise ActionCallError(action, ErrorCode.INVALID_TOKEN, f"invalid token: {error}") from None
    if claims["sub"] != user_id:
        raise ActionCallError(
            action,
            ErrorCode.INVALID_TOKEN,
            f"invalid token: it was issued for user {claims['sub']!r}, but this client is "
            f"{user_id!r} - ask the server for a chat token for this user",
        )
    if claims["exp"] <= now:
        raise ActionCallError(
            action,
            ErrorCode.EXPIRED_TOKEN,
            "expired token: chat tokens are short-lived - ask the server for a new one",
        )
    _raise(action, refusal(state, action, claims["chat"]))
    return claims


def check_leave_chat(state: ChatsState, chat_id: str) -> ChatState:
    """The chat to leave; leaving a chat still loading is allowed."""
    return _allowed_chat(state, "leave_chat", chat_id)


def _check_not_muted(chat: ChatState, action: str, now: float) -> None:
    """``member_muted`` while a mute is active at ``now``, the server's time."""
    for restriction in chat.restrictions or ():
        if restriction.kind == "mute" and restriction.is_active(now):
            until = (
                "permanently"
                if restriction.until is None
                else f"for {max(1, round((restriction.until - now) / 60))} more minute(s)"
            )
            because = f" ({restriction.reason})" if restriction.reason else ""
            raise ActionCallError(
                action,
                ErrorCode.MEMBER_MUTED,
                f"you are muted in chat {chat.chat_id!r} {until}{because} - you can read "
                "but not send until the mute ends",
            )


def check_send_message(
    state: ChatsState, chat_id: str, content: object, now: float, *, message_id: str | None = None
) -> str:
    """The content to send to ``chat_id``; ``message_id`` is the new message's id.

    ``now`` is the server's time, as the client estimates it (``ServerClock``).
    """
    action = "send_message"
    _raise(action, refusal(state, action, chat_id, message_id))
    checked = check_content(content, action)
    _check_not_muted(state.chats[chat_id], action, now)
    return checked


def check_resend_message(state: ChatsState, chat_id: str, message_id: str, now: float) -> None:
    action = "resend_message"
    _allowed_message(state, action, chat_id, message_id)
    _check_not_muted(state.chats[chat_id], action, now)


def check_update_message(
    state: ChatsState, chat_id: str, message_id: str, content: object, user_id: str
) -> str:
    """The new content for the message."""
    action = "update_message"
    message = _allowed_message(state, action, chat_id, message_id)
    if message.author_id != user_id:
        raise ActionCallError(
            action,
            ErrorCode.NOT_MESSAGE_AUTHOR,
            f"only the author of a message can update it; this one is by {message.author_id!r}",
        )
    return check_content(content, action)


def check_delete_message(state: ChatsState, chat_id: str, message_id: str) -> None:
    _allowed_message(state, "delete_message", chat_id, message_id)


def check_moderation(
    state: ChatsState,
    action: str,
    chat_id: str,
    member_id: str,
    user_id: str,
    duration: object = 0,
) -> None:
    """Moderation needs a connection, a joined chat, another member, a valid duration."""
    _allowed_chat(state, action, chat_id)
    if member_id == user_id:
        raise ActionCallError(
            action,
            ErrorCode.MODERATION_TARGET_IS_SELF,
            "you cannot moderate yourself - give the id of another member",
        )
    if not isinstance(duration, int) or isinstance(duration, bool) or duration < 0:
        raise ActionCallError(
            action,
            ErrorCode.INVALID_DURATION,
            f"the duration must be a whole number of minutes >= 0 (0 = permanent), "
            f"not {duration!r}",
        )


def check_load_older_messages(state: ChatsState, chat_id: str, limit: object) -> int:
    """The page size, a whole number from 1 to ``MAX_HISTORY_PAGE``."""
    action = "load_older_messages"
    _allowed_chat(state, action, chat_id)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_HISTORY_PAGE:
        raise ActionCallError(
            action,
            ErrorCode.INVALID_LIMIT,
            f"the limit must be a whole number from 1 to {MAX_HISTORY_PAGE}, not {limit!r}",
        )
    return limit
