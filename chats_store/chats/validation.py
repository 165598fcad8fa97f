"""Checks every Chats action against the current state before anything happens (pure).

Each ``check_*`` function raises :class:`ActionCallError` with the spec's meaning
(typos fixed) and a stable code, or returns what the action needs. Because the
facade runs these checks first and dispatches nothing when they fail, a refused
call leaves the store exactly as it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chats_store.chats.model import ChatsState, ChatState, Message
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

MAX_CONTENT_LENGTH = 256

_NOUN = {
    "send_message": "send a message to",
    "resend_message": "send a message to",
    "update_message": "update a message from",
    "delete_message": "delete a message from",
    "load_older_messages": "load older messages of",
}

MAX_HISTORY_PAGE = 200


def check_connected(state: ChatsState, action: str) -> None:
    """``not_connected`` unless the WebSocket connection is open."""
    if state.connection != "connected":
        raise ActionCallError(
            action,
            ErrorCode.NOT_CONNECTED,
            f"cannot perform this action ({action}) while the module is not connected "
            "with the WebSocket - call websocket.connect() first and wait for it",
        )


def _joined_chat(state: ChatsState, chat_id: str, action: str, verb: str) -> ChatState:
    chat = state.chats.get(chat_id)
    if chat is None:
        raise ActionCallError(
            action,
            ErrorCode.CHAT_NOT_JOINED,
            f"cannot {verb} a chat you have not joined ({chat_id!r}) - use join_chat before",
        )
    return chat


def _ready_chat(state: ChatsState, chat_id: str, action: str) -> ChatState:
    verb = _NOUN.get(action, "moderate members of")
    chat = _joined_chat(state, chat_id, action, verb)
    if chat.status == "loading":
        raise ActionCallError(
            action,
            ErrorCode.CHAT_LOADING,
            f"cannot {verb} a chat that is loading ({chat_id!r}) - wait for join_chat to finish",
        )
    return chat


def _existing_message(chat: ChatState, message_id: str, action: str) -> Message:
    message = chat.messages.find(message_id)
    if message is None:
        verb = action.split("_")[0]
        raise ActionCallError(
            action,
            ErrorCode.MESSAGE_NOT_FOUND,
            f"cannot {verb} a message that does not exist - no message with id "
            f"{message_id!r} in chat {chat.chat_id!r}",
        )
    return message


def check_content(content: object, action: str) -> str:
    """Content must be a non-blank string of at most 256 characters."""
    if not isinstance(content, str):
        raise TypeError(f"{action}: content must be a str, not {type(content).__name__}")
    if not content.strip():
        raise ActionCallError(
            action, ErrorCode.CONTENT_EMPTY, "the message content is empty - write something"
        )
    if len(content) > MAX_CONTENT_LENGTH:
        raise ActionCallError(
            action,
            ErrorCode.CONTENT_TOO_LONG,
            f"the message content is {len(content)} characters long; the maximum is "
            f"{MAX_CONTENT_LENGTH} - shorten it or split it into several messages",
        )
    return content


def check_join_chat(
    state: ChatsState, token: object, user_id: str, now: float
) -> Mapping[str, Any]:
    """The chat token's claims, if the client can join with it now."""
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
    if claims["chat"] in state.chats:
        raise ActionCallError(
            action,
            ErrorCode.ALREADY_JOINED,
            f"cannot join a chat that you have joined already ({claims['chat']!r})",
        )
    return claims


def check_leave_chat(state: ChatsState, chat_id: str) -> ChatState:
    """The chat to leave; leaving a chat still loading is allowed."""
    check_connected(state, "leave_chat")
    return _joined_chat(state, chat_id, "leave_chat", "leave")


def _check_not_muted(chat: ChatState, action: str, now: float) -> None:
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


def check_send_message(state: ChatsState, chat_id: str, content: object, now: float) -> str:
    """The content to send to ``chat_id``."""
    action = "send_message"
    check_connected(state, action)
    chat = _ready_chat(state, chat_id, action)
    checked = check_content(content, action)
    _check_not_muted(chat, action, now)
    return checked


def check_resend_message(state: ChatsState, chat_id: str, message_id: str, now: float) -> None:
    action = "resend_message"
    check_connected(state, action)
    chat = _ready_chat(state, chat_id, action)
    message = _existing_message(chat, message_id, action)
    if message.status != "interrupted":
        raise ActionCallError(
            action,
            ErrorCode.MESSAGE_NOT_INTERRUPTED,
            "you can only resend a message that failed to be sent - it needs the status "
            f"'interrupted', and this one is {message.status!r}",
        )
    _check_not_muted(chat, action, now)


def _check_not_in_flight(message: Message, action: str) -> None:
    verb = action.split("_")[0]
    if message.status == "deleting":
        raise ActionCallError(
            action,
            ErrorCode.MESSAGE_BEING_DELETED,
            f"the message is being deleted - you cannot {verb} it at the moment",
        )
    if message.status == "updating":
        raise ActionCallError(
            action,
            ErrorCode.MESSAGE_BEING_UPDATED,
            f"the message is being updated - you cannot {verb} it at the moment",
        )


def check_update_message(
    state: ChatsState, chat_id: str, message_id: str, content: object, user_id: str
) -> str:
    """The new content for the message."""
    action = "update_message"
    check_connected(state, action)
    chat = _ready_chat(state, chat_id, action)
    message = _existing_message(chat, message_id, action)
    _check_not_in_flight(message, action)
    if message.status != "ready":
        raise ActionCallError(
            action,
            ErrorCode.MESSAGE_NOT_UPDATABLE,
            f"you can only update a message with the status 'ready', and this one is "
            f"{message.status!r}",
        )
    if message.author_id != user_id:
        raise ActionCallError(
            action,
            ErrorCode.NOT_MESSAGE_AUTHOR,
            f"only the author of a message can update it; this one is by {message.author_id!r}",
        )
    return check_content(content, action)


def check_delete_message(state: ChatsState, chat_id: str, message_id: str) -> None:
    action = "delete_message"
    check_connected(state, action)
    chat = _ready_chat(state, chat_id, action)
    message = _existing_message(chat, message_id, action)
    _check_not_in_flight(message, action)
    if message.status not in ("ready", "interrupted"):
        raise ActionCallError(
            action,
            ErrorCode.MESSAGE_NOT_DELETABLE,
            "you can only delete a message with the status 'ready' or 'interrupted', and "
            f"this one is {message.status!r}",
        )


def check_moderation(
    state: ChatsState,
    action: str,
    chat_id: str,
    member_id: str,
    user_id: str,
    duration: object = 0,
) -> None:
    """Moderation needs a connection, a joined chat, another member, a valid duration."""
    check_connected(state, action)
    _ready_chat(state, chat_id, action)
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
    check_connected(state, action)
    _ready_chat(state, chat_id, action)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_HISTORY_PAGE:
        raise ActionCallError(
            action,
            ErrorCode.INVALID_LIMIT,
            f"the limit must be a whole number from 1 to {MAX_HISTORY_PAGE}, not {limit!r}",
        )
    return limit
