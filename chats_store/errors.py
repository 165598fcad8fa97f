"""Every error ``chats_store`` raises, and the stable codes that identify them.

The hierarchy separates the kinds of failure, so that a caller can handle each in one
``except`` clause. Like h11's ``LocalProtocolError`` and ``RemoteProtocolError``, the
local and the remote refusal of a call are siblings, never parent and child::

    ChatsStoreError                    base of everything this package raises
    ├── ActionError                    a call of an action did not succeed:
    │   │                              .action, .code (an ErrorCode), .detail
    │   ├── ActionCallError            local: refused before anything was sent;
    │   │                              the state is exactly as it was
    │   ├── ServerRefusedError         remote: sent, and the server refused it; what the
    │   │                              call changed optimistically was rolled back
    │   ├── CallCancelledError         the client gave the call up (the chat was left
    │   │                              or lost, the module closed): its request may have
    │   │                              been sent; the state says what became of it
    │   └── TransportError             the outcome is unknown: the server may or may
    │       │                          not have applied the request
    │       ├── ConnectionLostError    the connection closed before the reply arrived
    │       └── RequestTimeoutError    no reply arrived within the time-out
    ├── ProtocolError                  a frame broke the wire protocol (chats_store.protocol):
    │                                  not JSON, too large, unknown type, bad field;
    │                                  (.code, .request_id, .close_code)
    ├── ConnectFailedError             websocket.connect() could not open a connection
    │   └── AuthenticationError        no session token the server accepts: refused, or
    │                                  the token provider failed (no retry; .code)
    ├── TokenError (also ValueError)   a token given to a constructor is not a usable JWT
    ├── StateFileError                 create_chats cannot use its state file: another
    │                                  user's, damaged, newer, in use (.reason, .path)
    └── WrongThreadError               a call from a thread or asyncio loop that does not
        (also RuntimeError)            own the object (a GUI thread calling the store)

``ActionCallError`` is local misuse: the facade checks every call against the current
state *before* anything is dispatched or sent, so when it is raised the store is exactly
as it was. ``ServerRefusedError`` is the remote counterpart: the request went out and the
server said no; the store rolls back what the call had changed optimistically (an
update's previous content comes back, a send becomes ``interrupted`` so its content is
never lost). ``TransportError`` means the outcome is unknown to the client; message
actions leave the message in a state the user can act on (``interrupted`` for a send,
the previous content for an update). ``CallCancelledError`` ends a call the client
stopped waiting for: ``leave_chat`` during a ``join_chat``, a send queued behind others
when its chat goes away, every call in flight when the module is closed.

Codes are members of :class:`ErrorCode`, a ``StrEnum``: they compare equal to their
string values, which are part of the public contract and never change meaning. A code
this version does not know (from a newer server) is still an ``ErrorCode``, made on the
fly with its string value, so ``.code`` is always one.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

__all__ = [
    "ActionCallError",
    "ActionError",
    "AuthenticationError",
    "CallCancelledError",
    "ChatsStoreError",
    "ConnectFailedError",
    "ConnectionLostError",
    "ErrorCode",
    "ProtocolError",
    "RequestTimeoutError",
    "ServerRefusedError",
    "StateFileError",
    "TokenError",
    "TransportError",
    "WrongThreadError",
]


class ErrorCode(StrEnum):
    """Stable, machine-readable reasons carried by :class:`ActionCallError`."""

    # Errors listed by the spec.
    NOT_CONNECTED = "not_connected"
    INVALID_TOKEN = "invalid_token"
    EXPIRED_TOKEN = "expired_token"
    ALREADY_JOINED = "already_joined"
    CHAT_LEFT_DURING_JOIN = "chat_left_during_join"
    CHAT_NOT_JOINED = "chat_not_joined"
    CHAT_LOADING = "chat_loading"
    MESSAGE_NOT_FOUND = "message_not_found"
    MESSAGE_NOT_DELETABLE = "message_not_deletable"
    MESSAGE_NOT_UPDATABLE = "message_not_updatable"
    MESSAGE_NOT_INTERRUPTED = "message_not_interrupted"
    MESSAGE_BEING_DELETED = "message_being_deleted"
    MESSAGE_BEING_UPDATED = "message_being_updated"
    # Errors the spec forgot, that a user of a chat SDK expects.
    CONTENT_EMPTY = "content_empty"
    CONTENT_TOO_LONG = "content_too_long"
    NOT_MESSAGE_AUTHOR = "not_message_author"
    MEMBER_MUTED = "member_muted"
    MODERATION_TARGET_IS_SELF = "moderation_target_is_self"
    INVALID_DURATION = "invalid_duration"
    INVALID_LIMIT = "invalid_limit"
    # Refusals that only the server can decide.
    PERMISSION_DENIED = "permission_denied"
    MEMBER_NOT_FOUND = "member_not_found"
    MEMBER_BLOCKED = "member_blocked"
    INVALID_REQUEST = "invalid_request"
    # Wire protocol violations; see ProtocolError.
    INVALID_JSON = "invalid_json"
    INVALID_FRAME = "invalid_frame"
    UNKNOWN_REQUEST = "unknown_request"
    FRAME_TOO_LARGE = "frame_too_large"
    UNEXPECTED_REPLY = "unexpected_reply"
    INTERNAL_ERROR = "internal_error"
    # Resumable membership and server protection (added later; codes are append-only).
    NOT_A_MEMBER = "not_a_member"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    # Calls that end without a server's answer.
    CONNECTION_LOST = "connection_lost"
    TIMEOUT = "timeout"
    MODULE_CLOSED = "module_closed"
    MESSAGE_ID_TAKEN = "message_id_taken"
    # The client giving up on a hostile or broken peer; the session token (issues 11, 12).
    TOO_MANY_EVENTS = "too_many_events"
    CONNECT_FAILED = "connect_failed"
    TOKEN_PROVIDER_FAILED = "token_provider_failed"
    # The server's storage stayed locked by another process past its bound (issue 13).
    SERVER_BUSY = "server_busy"
    # Server protection against hostile peers (issue 11).
    TOO_MANY_RESTRICTIONS = "too_many_restrictions"
    TOO_MANY_HANDSHAKES = "too_many_handshakes"
    HEADERS_TOO_LARGE = "headers_too_large"
    # Durable client state (ChatsConfig.state_file).
    STATE_FILE_FAILED = "state_file_failed"
    # A protocol for every client: browsers, one code per cause (issue 15).
    ORIGIN_NOT_ALLOWED = "origin_not_allowed"
    UNSUPPORTED_PROTOCOL = "unsupported_protocol"
    UNKNOWN_MEASURE = "unknown_measure"
    INVALID_HANDSHAKE = "invalid_handshake"

    @classmethod
    def _missing_(cls, value: object) -> ErrorCode | None:
        """A code this version does not know (a newer server's) as a pseudo-member."""
        if not isinstance(value, str):
            return None
        member = str.__new__(cls, value)
        member._name_ = value.upper()
        member._value_ = value
        return member


class ChatsStoreError(Exception):
    """Base class of every error raised by ``chats_store``."""


class ActionError(ChatsStoreError):
    """A call of a module's action did not succeed.

    ``action`` is the spec's action name in Python spelling (``"send_message"``),
    ``code`` the :class:`ErrorCode` of the rule or refusal, ``detail`` the sentence that
    says what happened and how to go on (the exception's message is
    ``"<action>: <detail>"``). Catch this to handle every failed call at once; its
    subclasses say whether anything was sent and what became of the state.
    """

    def __init__(self, action: str, code: str, detail: str) -> None:
        super().__init__(f"{action}: {detail}")
        self.action = action
        self.code = ErrorCode(code)
        self.detail = detail


class ActionCallError(ActionError):
    """The spec's ``ActionCallError``: the call was refused before anything was sent.

    Nothing was dispatched or sent: the state is exactly as it was before the call.
    """


class ServerRefusedError(ActionError):
    """The server received the request and refused it (``code`` is the server's).

    What the call had changed optimistically was rolled back.
    """


class CallCancelledError(ActionError):
    """The client gave the call up before its outcome was known.

    ``code`` says why: ``chat_left_during_join`` (``leave_chat`` while joining),
    ``chat_not_joined`` (a queued send whose chat was left or lost),
    ``message_not_found`` (a queued send whose message went away), ``module_closed``
    (``Chats.close()`` with the call in flight), ``too_many_events`` (a join given up
    because more events arrived while the chat loaded than the client keeps). Its
    request may have been sent; the state shows what became of it (a send stays
    ``interrupted``).
    """


class TransportError(ActionError):
    """The request's outcome is unknown: the server may or may not have applied it."""


class ConnectionLostError(TransportError):
    """The connection closed while the request was in flight."""


class RequestTimeoutError(TransportError):
    """No reply arrived within the configured request time-out."""


class ConnectFailedError(ChatsStoreError):
    """The WebSocket module could not connect to the server within its time-out."""


class AuthenticationError(ConnectFailedError):
    """The client has no session token the server accepts.

    The server refused the handshake's token (``code`` ``invalid_token`` or
    ``expired_token``), or the user module's token provider could not give a fresh
    one (``token_provider_failed``, or ``invalid_token`` for a token that is not a
    session token of this user). Reconnecting cannot succeed, so the module stops
    and stays ``disconnected``: give ``create_user`` a ``token_provider``, or create
    the user module again with a fresh token.
    """

    def __init__(self, message: str, *, code: str = ErrorCode.INVALID_TOKEN) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)


class TokenError(ChatsStoreError, ValueError):
    """A token is not a well-formed JWT carrying the claims this package needs."""


StateFileProblem = Literal["other_user", "not_a_state_file", "damaged", "newer_version", "in_use"]


class StateFileError(ChatsStoreError):
    """``create_chats`` cannot use the state file at ``path`` (``ChatsConfig.state_file``).

    ``reason`` says why: ``other_user`` (it keeps another user's chats),
    ``not_a_state_file`` (another program's file), ``damaged`` (unreadable: the
    message says what is wrong), ``newer_version`` (written by a newer chats_store),
    ``in_use`` (another Chats module, maybe another process, has it open). The file
    is left as it was: nothing is ever reset silently.
    """

    def __init__(self, path: str, reason: StateFileProblem, message: str) -> None:
        super().__init__(f"state file {path!r}: {message}")
        self.path = path
        self.reason: StateFileProblem = reason


class WrongThreadError(ChatsStoreError, RuntimeError):
    """A call came from a thread or asyncio loop that does not own the object called.

    A ``Chats`` module, its store and its getters belong to the asyncio loop that runs
    them; a GUI bridge belongs to the GUI thread that created it. The message names
    the owner, the caller and the way to make the call from where it was made.
    """


class ProtocolError(ChatsStoreError):
    """A frame broke the wire protocol; raised by :mod:`chats_store.protocol`.

    ``code`` says what was wrong (an :class:`ErrorCode`: ``invalid_json``,
    ``invalid_frame``, ``unknown_request``, ``frame_too_large``,
    ``unexpected_reply``). ``request_id`` is the id of the offending request when
    it could be read, so a server can still answer it with an ``error`` reply.
    ``close_code`` is the WebSocket close code to end the connection with when the
    frame cannot be answered at all (1003 binary, 1007 not JSON, 1009 too large),
    None when an ``error`` reply is enough.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = ErrorCode.INVALID_FRAME,
        request_id: int | None = None,
        close_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)
        self.request_id = request_id
        self.close_code = close_code
