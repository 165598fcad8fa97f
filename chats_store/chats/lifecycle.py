"""The Chats module's lifecycles, as tables read top to bottom (pure).

Like h11's ``_state.py``, this module is the one place that says what the client may
do, when: which intent each status of a chat accepts, which intent each status of a
message accepts, and which message status changes each action may cause. The facade's
checks (:mod:`chats_store.chats.validation`) raise their ``ActionCallError`` from
these tables, the reducer refuses an intent with the same tables (and the same
words), and the state-machine test takes its allowed edges from here, so the three
cannot drift apart.

An intent goes through three rules, in this order; the first that refuses it decides
its :class:`~chats_store.chats.actions.Failure` (kind ``rejected``):

1. :data:`CONNECTION_RULE`: every intent needs the WebSocket connection open.
2. :data:`CHAT_RULES`: for each intent, by the facade's action name, and each status of
   the chat it names (:data:`NOT_JOINED` for a chat the state does not hold):
   :data:`ACCEPTED`, or the :class:`~chats_store.errors.ErrorCode` it is refused with.
3. :data:`MESSAGE_RULES`: for the intents that name a message, and each status of that
   message (:data:`NO_MESSAGE` when the chat does not hold it): accepted or refused.
   ``send_message`` names the id of the message it creates, so any existing message
   with that id refuses it.

Argument checks (content length, page size, durations, tokens, mutes, authorship,
moderating oneself) depend on the call's arguments, the clock or who the user is, not
on a lifecycle: they live in ``validation`` alone and the reducer never sees them.

**A chat that is** ``reloading`` **accepts everything a** ``ready`` **chat accepts.**
``reloading`` means the connection is back and the resume request of the chat is out:
the user keeps acting during a resync. It works because the resume is sent first, on
the connection it was made for, and the server answers a connection's requests in
order: sends go through the chat's send queue as always (the server gets each post
after the resume, so the membership is attached again), updates, deletes, history
pages and moderation go out after the resume request, and the server's events that
arrive meanwhile are buffered in the chat until the resume's outcome is applied; the
``seq`` rule drops what the resume already brought. With ``auto_resend``, the
interrupted messages are queued again when the resume is applied, after any send
made during the resync.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chats_store.chats.actions import (
    ChatResumed,
    ChatResumeFailed,
    ConnectionStatusChanged,
    DeleteMessage,
    Failure,
    JoinChat,
    LeaveChat,
    LoadOlderMessages,
    MessageDeleted,
    MessageDeleteFailed,
    MessageEdited,
    MessagePosted,
    MessageRemoved,
    MessageSendFailed,
    MessageSent,
    MessageUpdated,
    MessageUpdateFailed,
    ModerateChatMember,
    ResendMessage,
    SendMessage,
    UpdateMessage,
)
from chats_store.chats.model import ChatsState, ChatStatus, ConnectionStatus, MessageStatus
from chats_store.errors import ErrorCode

__all__ = [
    "ACCEPTED",
    "CHAT_RULES",
    "CONNECTION_RULE",
    "INTENTS",
    "INTENT_ACTIONS",
    "LIFECYCLE_CODES",
    "MESSAGE_EDGES",
    "MESSAGE_RULES",
    "MODERATION_ACTIONS",
    "NOT_JOINED",
    "NO_MESSAGE",
    "REMOVING_ACTIONS",
    "Edge",
    "Rule",
    "action_of",
    "connection_refusal",
    "refusal",
]

ACCEPTED = None
"""What a rule says of an intent it lets through."""

NOT_JOINED = None
"""The status column of a chat the state does not hold."""

NO_MESSAGE = None
"""The status column of a message the chat does not hold."""

Rule = Mapping[Any, ErrorCode | None]
"""One row: for each status (a column), ``ACCEPTED`` or the code of the refusal."""


# 1. The connection ---------------------------------------------------------------------

CONNECTION_RULE: Mapping[ConnectionStatus, ErrorCode | None] = {
    "disconnected": ErrorCode.NOT_CONNECTED,
    "connecting": ErrorCode.NOT_CONNECTED,
    "connected": ACCEPTED,
}
"""Every intent, for each connection status."""


# 2. The chat ----------------------------------------------------------------------------

_NOT_JOINED_YET: Mapping[ChatStatus | None, ErrorCode | None] = {
    NOT_JOINED: ACCEPTED,
    "loading": ErrorCode.ALREADY_JOINED,
    "ready": ErrorCode.ALREADY_JOINED,
    "reloading": ErrorCode.ALREADY_JOINED,
}
_JOINED: Mapping[ChatStatus | None, ErrorCode | None] = {
    NOT_JOINED: ErrorCode.CHAT_NOT_JOINED,
    "loading": ACCEPTED,  # the pending join_chat raises chat_left_during_join
    "ready": ACCEPTED,
    "reloading": ACCEPTED,
}
_LOADED: Mapping[ChatStatus | None, ErrorCode | None] = {
    NOT_JOINED: ErrorCode.CHAT_NOT_JOINED,
    "loading": ErrorCode.CHAT_LOADING,
    "ready": ACCEPTED,
    "reloading": ACCEPTED,  # see the module docstring
}

MODERATION_ACTIONS = (
    "block_chat_member",
    "unblock_chat_member",
    "mute_chat_member",
    "unmute_chat_member",
    "kick_chat_member",
)
"""The five moderation actions (one intent, :class:`ModerateChatMember`)."""

CHAT_RULES: Mapping[str, Rule] = {
    "join_chat": _NOT_JOINED_YET,
    "leave_chat": _JOINED,
    "send_message": _LOADED,
    "resend_message": _LOADED,
    "update_message": _LOADED,
    "delete_message": _LOADED,
    "load_older_messages": _LOADED,
    **dict.fromkeys(MODERATION_ACTIONS, _LOADED),
}
"""For each action, and each status of its chat: accepted, or the refusal's code."""


# 3. The message --------------------------------------------------------------------------

MESSAGE_RULES: Mapping[str, Rule] = {
    "send_message": {
        NO_MESSAGE: ACCEPTED,
        "sending": ErrorCode.MESSAGE_ID_TAKEN,
        "ready": ErrorCode.MESSAGE_ID_TAKEN,
        "interrupted": ErrorCode.MESSAGE_ID_TAKEN,
        "updating": ErrorCode.MESSAGE_ID_TAKEN,
        "deleting": ErrorCode.MESSAGE_ID_TAKEN,
    },
    "resend_message": {
        NO_MESSAGE: ErrorCode.MESSAGE_NOT_FOUND,
        "sending": ErrorCode.MESSAGE_NOT_INTERRUPTED,
        "ready": ErrorCode.MESSAGE_NOT_INTERRUPTED,
        "interrupted": ACCEPTED,
        "updating": ErrorCode.MESSAGE_NOT_INTERRUPTED,
        "deleting": ErrorCode.MESSAGE_NOT_INTERRUPTED,
    },
    "update_message": {
        NO_MESSAGE: ErrorCode.MESSAGE_NOT_FOUND,
        "sending": ErrorCode.MESSAGE_NOT_UPDATABLE,
        "ready": ACCEPTED,
        "interrupted": ErrorCode.MESSAGE_NOT_UPDATABLE,
        "updating": ErrorCode.MESSAGE_BEING_UPDATED,
        "deleting": ErrorCode.MESSAGE_BEING_DELETED,
    },
    "delete_message": {
        NO_MESSAGE: ErrorCode.MESSAGE_NOT_FOUND,
        "sending": ErrorCode.MESSAGE_NOT_DELETABLE,
        "ready": ACCEPTED,
        "interrupted": ACCEPTED,  # never reached the server (or did: the delete says)
        "updating": ErrorCode.MESSAGE_BEING_UPDATED,
        "deleting": ErrorCode.MESSAGE_BEING_DELETED,
    },
}
"""For each action that names a message, and that message's status: accepted or refused."""

LIFECYCLE_CODES: frozenset[ErrorCode] = frozenset(
    code
    for rule in (CONNECTION_RULE, *CHAT_RULES.values(), *MESSAGE_RULES.values())
    for code in rule.values()
    if code is not None
)
"""Every code these rules refuse with (the reducer refuses with them too)."""


# 4. Message status edges ----------------------------------------------------------------

Edge = tuple[MessageStatus, MessageStatus]

MESSAGE_EDGES: Mapping[type, frozenset[Edge]] = {
    SendMessage: frozenset(),  # a new message appears "sending"
    MessageSent: frozenset({("sending", "ready")}),
    # The push of the client's own message: before its ack, or after the ack was lost
    # (a time-out although the server had it). An edit of such a message confirms it too.
    MessagePosted: frozenset({("sending", "ready"), ("interrupted", "ready")}),
    MessageEdited: frozenset({("sending", "ready"), ("interrupted", "ready")}),
    MessageSendFailed: frozenset({("sending", "interrupted")}),
    ResendMessage: frozenset({("interrupted", "sending")}),
    UpdateMessage: frozenset({("ready", "updating")}),
    MessageUpdated: frozenset({("updating", "ready")}),
    MessageUpdateFailed: frozenset({("updating", "ready")}),
    DeleteMessage: frozenset({("ready", "deleting"), ("interrupted", "deleting")}),
    MessageDeleteFailed: frozenset({("deleting", "ready"), ("deleting", "interrupted")}),
    # A lost connection: sends are interrupted, updates and deletes roll back. A
    # connection: the messages a chat restored from a state file recovered are sent.
    ConnectionStatusChanged: frozenset(
        {
            ("sending", "interrupted"),
            ("updating", "ready"),
            ("deleting", "ready"),
            ("deleting", "interrupted"),
            ("interrupted", "sending"),
        }
    ),
    # The missed events (or a snapshot: the server's copy of a pending message is
    # confirmed), then the recovered edits and deletes of a restored chat go out, and,
    # with auto_resend, the interrupted messages are queued again.
    ChatResumed: frozenset(
        {
            ("sending", "ready"),
            ("interrupted", "ready"),
            ("deleting", "ready"),
            ("interrupted", "sending"),
            ("ready", "updating"),
            ("ready", "deleting"),
            ("interrupted", "deleting"),
        }
    ),
    # A resume that timed out is asked again (with a restored chat's recovered sends).
    ChatResumeFailed: frozenset({("interrupted", "sending")}),
}
"""For each action class, the message status changes (old, new) it may cause; an action
not listed changes no message's status. (With ``max_messages_in_memory`` any change of a
chat may also drop its oldest confirmed messages.)"""

REMOVING_ACTIONS: frozenset[type] = frozenset({MessageDeleted, MessageRemoved, ChatResumed})
"""The actions after which a message may be gone while its chat stays."""


# The intents' actions -------------------------------------------------------------------

INTENT_ACTIONS: Mapping[type, str] = {
    JoinChat: "join_chat",
    LeaveChat: "leave_chat",
    SendMessage: "send_message",
    ResendMessage: "resend_message",
    UpdateMessage: "update_message",
    DeleteMessage: "delete_message",
    LoadOlderMessages: "load_older_messages",
}
"""The facade action of each intent class (moderation: see :func:`action_of`)."""


INTENTS: frozenset[type] = frozenset({*INTENT_ACTIONS, ModerateChatMember})
"""Every intent class: what the facade dispatches, each settling one call."""


def action_of(intent: Any) -> str:
    """The facade action that dispatches ``intent`` (``"mute_chat_member"``...)."""
    if isinstance(intent, ModerateChatMember):
        return f"{intent.measure}_chat_member"
    return INTENT_ACTIONS[type(intent)]


# Refusals ------------------------------------------------------------------------------

_CHAT_VERBS: Mapping[str, str] = {
    "leave_chat": "leave",
    "send_message": "send a message to",
    "resend_message": "send a message to",
    "update_message": "update a message from",
    "delete_message": "delete a message from",
    "load_older_messages": "load older messages of",
    **dict.fromkeys(MODERATION_ACTIONS, "moderate members of"),
}


def _rejected(code: ErrorCode, detail: str) -> Failure:
    return Failure("rejected", code, detail)


def connection_refusal(connection: ConnectionStatus, action: str) -> Failure | None:
    """Why :data:`CONNECTION_RULE` refuses ``action`` now, or None."""
    code = CONNECTION_RULE[connection]
    if code is None:
        return None
    return _rejected(
        code,
        f"cannot perform this action ({action}) while the module is not connected with the "
        "WebSocket - call websocket.connect() first and wait for it",
    )


def _chat_refusal(code: ErrorCode, action: str, chat_id: str) -> Failure:
    if code == ErrorCode.ALREADY_JOINED:
        detail = f"cannot join a chat that you have joined already ({chat_id!r})"
    elif code == ErrorCode.CHAT_NOT_JOINED:
        detail = (
            f"cannot {_CHAT_VERBS[action]} a chat you have not joined ({chat_id!r}) - "
            "use join_chat before"
        )
    else:
        detail = (
            f"cannot {_CHAT_VERBS[action]} a chat that is loading ({chat_id!r}) - wait for "
            "join_chat to finish"
        )
    return _rejected(code, detail)


def _message_refusal(
    code: ErrorCode, action: str, chat_id: str, message_id: str, status: MessageStatus | None
) -> Failure:
    verb = action.split("_")[0]
    details: Mapping[ErrorCode, str] = {
        ErrorCode.MESSAGE_NOT_FOUND: (
            f"cannot {verb} a message that does not exist - no message with id "
            f"{message_id!r} in chat {chat_id!r}"
        ),
        ErrorCode.MESSAGE_ID_TAKEN: (
            f"the new message's id {message_id!r} is already used by a message of chat "
            f"{chat_id!r} - message ids must be unique (see new_message_id of create_chats)"
        ),
        ErrorCode.MESSAGE_BEING_DELETED: (
            f"the message is being deleted - you cannot {verb} it at the moment"
        ),
        ErrorCode.MESSAGE_BEING_UPDATED: (
            f"the message is being updated - you cannot {verb} it at the moment"
        ),
        ErrorCode.MESSAGE_NOT_UPDATABLE: (
            f"you can only update a message with the status 'ready', and this one is {status!r}"
        ),
        ErrorCode.MESSAGE_NOT_DELETABLE: (
            "you can only delete a message with the status 'ready' or 'interrupted', and "
            f"this one is {status!r}"
        ),
        ErrorCode.MESSAGE_NOT_INTERRUPTED: (
            "you can only resend a message that failed to be sent - it needs the status "
            f"'interrupted', and this one is {status!r}"
        ),
    }
    return _rejected(code, details[code])


def refusal(
    state: ChatsState, action: str, chat_id: str, message_id: str | None = None
) -> Failure | None:
    """Why the rules refuse ``action`` on ``chat_id`` (and ``message_id``) in ``state``.

    None when every rule accepts it. ``message_id`` is the message the action names
    (for ``send_message``, the id of the message it creates); the message rule is not
    consulted without one.
    """
    refused = connection_refusal(state.connection, action)
    if refused is not None:
        return refused
    chat = state.chats.get(chat_id)
    code = CHAT_RULES[action][NOT_JOINED if chat is None else chat.status]
    if code is not None:
        return _chat_refusal(code, action, chat_id)
    rule = MESSAGE_RULES.get(action)
    if rule is None or message_id is None:
        return None
    assert chat is not None  # every action with a message rule needs a joined chat
    message = chat.messages.find(message_id)
    status = NO_MESSAGE if message is None else message.status
    code = rule[status]
    if code is None:
        return None
    return _message_refusal(code, action, chat_id, message_id, status)
