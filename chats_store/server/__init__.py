"""The reference chat server (runtime: asyncio, ``websockets``, ``sqlite3``, PyJWT).

``run_server`` starts it (an async context manager), ``mint_session_token`` and
``mint_chat_token`` make the JWTs it accepts (``mint_membership_token`` the
membership credentials it issues on join); a refused token raises
:class:`RefusedError` (``TokenRefusedError`` is its former name). The wire protocol
is in the project's protocol documentation; the rules are in
:mod:`chats_store.server.service`, the storage interface in
:mod:`chats_store.server.storage`; the bounds a hostile peer meets are
:class:`ServerLimits` (see the security documentation); how frames are
compressed is :class:`Compression`.
This package never imports reactivex or the client's facade.
"""

from chats_store.server.app import (
    HANDSHAKE_TIMEOUT,
    MAX_CONNECTIONS_PER_USER,
    MAX_QUEUED_FRAMES,
    SECRET_ENV,
    ChatServer,
    ServerLimits,
    run_server,
)
from chats_store.server.compression import Compression
from chats_store.server.refusal import RefusedError
from chats_store.server.tokens import (
    MEMBERSHIP_TTL,
    MIN_SECRET_BYTES,
    ChatGrant,
    TokenRefusedError,
    check_secret,
    mint_chat_token,
    mint_membership_token,
    mint_session_token,
    verify_chat_token,
    verify_membership_token,
    verify_session_token,
)

__all__ = [
    "HANDSHAKE_TIMEOUT",
    "MAX_CONNECTIONS_PER_USER",
    "MAX_QUEUED_FRAMES",
    "MEMBERSHIP_TTL",
    "MIN_SECRET_BYTES",
    "SECRET_ENV",
    "ChatGrant",
    "ChatServer",
    "Compression",
    "RefusedError",
    "ServerLimits",
    "TokenRefusedError",
    "check_secret",
    "mint_chat_token",
    "mint_membership_token",
    "mint_session_token",
    "run_server",
    "verify_chat_token",
    "verify_membership_token",
    "verify_session_token",
]
