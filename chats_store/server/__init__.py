"""The reference chat server (runtime: asyncio, ``websockets``, ``sqlite3``, PyJWT).

``run_server`` starts it (an async context manager), ``mint_session_token`` and
``mint_chat_token`` make the JWTs it accepts. The wire protocol is
``docs/protocol.md``; the rules are in :mod:`chats_store.server.service`.
This package never imports reactivex or the client's facade.
"""

from chats_store.server.app import MAX_QUEUED_FRAMES, SECRET_ENV, ChatServer, run_server
from chats_store.server.tokens import (
    MIN_SECRET_BYTES,
    ChatGrant,
    TokenRefusedError,
    check_secret,
    mint_chat_token,
    mint_session_token,
    verify_chat_token,
    verify_session_token,
)

__all__ = [
    "MAX_QUEUED_FRAMES",
    "MIN_SECRET_BYTES",
    "SECRET_ENV",
    "ChatGrant",
    "ChatServer",
    "TokenRefusedError",
    "check_secret",
    "mint_chat_token",
    "mint_session_token",
    "run_server",
    "verify_chat_token",
    "verify_session_token",
]
