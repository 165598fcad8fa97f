"""Every error ``chats_store`` raises, and the stable codes that identify them.

The hierarchy separates three kinds of failure, so that a caller can handle each
in one ``except`` clause::

    ChatsStoreError                    base of everything this package raises
    ├── ActionCallError                the spec's ActionCallError: the call was refused
    │   │                              (.code, .action); nothing was sent, nothing changed
    │   └── ServerRefusedError         the server refused the request (bad token, no
    │                                  permission, unknown member...); same .code scheme
    ├── ProtocolError                  a frame broke the wire protocol (docs/protocol.md):
    │                                  not JSON, too large, unknown type, bad field;
    │                                  (.code, .request_id, .close_code)
    ├── TransportError                 the request may not have reached the server
    │   ├── ConnectionLostError        the connection closed before the reply arrived
    │   └── RequestTimeoutError        no reply arrived within the time-out
    ├── ConnectFailedError             websocket.connect() could not open a connection
    │   └── AuthenticationError        the server refused the session token (no retry)
    └── TokenError (also ValueError)   a token given to a constructor is not a usable JWT

``ActionCallError`` is local misuse: the facade checks every call against the
current state *before* anything is dispatched or sent, so when it is raised the
store is exactly as it was. ``ServerRefusedError`` is the remote counterpart: the
request went out and the server said no; the store rolls back what the call had
changed optimistically (an update's previous content comes back, a send becomes
``interrupted`` so its content is never lost). ``TransportError`` means the outcome
is unknown to the client; message actions leave the message in a state the user can
act on (``interrupted`` for a send, the previous content for an update).

Codes are members of :class:`ErrorCode`, a ``StrEnum``: they compare equal to their
string values, which are part of the public contract and never change meaning.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ActionCallError",
    "AuthenticationError",
    "ChatsStoreError",
    "ConnectFailedError",
    "ConnectionLostError",
    "ErrorCode",
    "ProtocolError",
    "RequestTimeoutError",
    "ServerRefusedError",
    "TokenError",
    "TransportError",
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
    # Wire protocol violations (docs/protocol.md); see ProtocolError.
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


class ChatsStoreError(Exception):
    """Base class of every error raised by ``chats_store``."""


class ActionCallError(ChatsStoreError):
    """An action of a module was called when it cannot be performed.

    ``code`` says which rule was broken (an :class:`ErrorCode`, or for a server
    refusal the server's code string), ``action`` is the spec's action name in
    Python spelling (``"send_message"``), and the message says how to fix it.
    """

    def __init__(self, action: str, code: str, message: str) -> None:
        super().__init__(f"{action}: {message}")
        self.action = action
        self.code = code
        self.reason = message


class ServerRefusedError(ActionCallError):
    """The server received the request and refused it (``code`` is the server's)."""


class TransportError(ChatsStoreError):
    """The request's outcome is unknown: the server may or may not have applied it."""

    def __init__(self, action: str, message: str) -> None:
        super().__init__(f"{action}: {message}")
        self.action = action


class ConnectionLostError(TransportError):
    """The connection closed while the request was in flight."""


class RequestTimeoutError(TransportError):
    """No reply arrived within the configured request time-out."""


class ConnectFailedError(ChatsStoreError):
    """The WebSocket module could not connect to the server within its time-out."""


class AuthenticationError(ConnectFailedError):
    """The server refused the handshake's session token (invalid or expired).

    Reconnecting with the same token cannot succeed, so the module stops and
    stays ``disconnected``: create the user module again with a fresh token.
    """


class TokenError(ChatsStoreError, ValueError):
    """A token is not a well-formed JWT carrying the claims this package needs."""


class ProtocolError(ChatsStoreError):
    """A frame broke the wire protocol (``docs/protocol.md``); raised by ``chats_store.protocol``.

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
        self.code = code
        self.request_id = request_id
        self.close_code = close_code
