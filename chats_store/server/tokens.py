"""Minting and verifying the server's JWTs (PyJWT, HS256, one shared secret).

Three kinds of token, told apart by their audience (``chats_store.tokens``):

* a **session token** (``aud`` ``chats_store:session``) says who the client is:
  ``sub`` (user id), optional ``name``, ``iat``, ``exp``; it is checked in the
  WebSocket handshake;
* a **chat token** (``aud`` ``chats_store:chat``) lets ``sub`` join ``chat``
  with ``permissions`` (``send``, ``moderate``) and member ``metadata``; it is
  checked by the join request and is meant to be short-lived;
* a **membership credential** (``aud`` ``chats_store:membership``), issued by the
  server in every join and resume reply: ``sub`` is a member of ``chat`` (with the
  ``permissions`` and ``metadata`` it joined with); it is checked by the resume
  request. Signed and stateless, it survives a server restart (7 days by default).

Verification pins ``algorithms=["HS256"]`` and the audience, so a token of one
kind is never accepted as the other, and a token signed with ``none`` or another
algorithm is refused. Expiry is checked against the server's clock. A refused
token raises the server's one refusal, :class:`~chats_store.server.refusal.RefusedError`,
with ``invalid_token`` or ``expired_token``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import jwt

from chats_store.content import id_failure
from chats_store.errors import ErrorCode
from chats_store.server.refusal import RefusedError
from chats_store.tokens import CHAT_AUDIENCE, MEMBERSHIP_AUDIENCE, SESSION_AUDIENCE

__all__ = [
    "ALGORITHM",
    "MEMBERSHIP_TTL",
    "MIN_SECRET_BYTES",
    "ChatGrant",
    "TokenRefusedError",
    "check_secret",
    "mint_chat_token",
    "mint_membership_token",
    "mint_session_token",
    "verify_chat_token",
    "verify_membership_token",
    "verify_session_token",
]

ALGORITHM = "HS256"
MIN_SECRET_BYTES = 32
MEMBERSHIP_TTL = 7 * 24 * 3600
"""How long a membership credential is valid by default (seconds): 7 days."""


TokenRefusedError = RefusedError
"""The former name of :class:`~chats_store.server.refusal.RefusedError` (the same class).

A refused token raises it with ``code`` ``invalid_token`` or ``expired_token``.
"""


@attrs.frozen
class ChatGrant:
    """What a verified chat token allows: ``user_id`` may join ``chat_id``.

    Also what a verified membership credential says: ``user_id`` joined ``chat_id``.
    """

    user_id: str
    chat_id: str
    permissions: frozenset[str]
    metadata: Mapping[str, str]


def check_secret(secret: str | bytes) -> bytes:
    """The secret as bytes; ``ValueError`` if it is shorter than 32 bytes."""
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    if not isinstance(secret, bytes):
        raise TypeError(f"the secret must be str or bytes, not {type(secret).__name__}")
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(
            f"the secret is {len(secret)} bytes long; HS256 needs at least "
            f"{MIN_SECRET_BYTES} bytes - generate one with: "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return secret


def _positive_ttl(ttl: float) -> float:
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not ttl > 0:
        raise ValueError(f"ttl must be a positive number of seconds, not {ttl!r}")
    return ttl


def _id(value: object, what: str) -> str:
    """An id to mint: one the server accepts (:func:`~chats_store.content.id_failure`)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, not {value!r}")
    failure = id_failure(value, what)
    if failure is not None:
        raise ValueError(f"{failure.detail}: the server refuses longer ids")
    return value


def mint_session_token(
    secret: str | bytes,
    user_id: str,
    ttl: float = 3600,
    name: str | None = None,
    *,
    now: float | None = None,
) -> str:
    """A session token for ``user_id`` valid ``ttl`` seconds (``name``: display name)."""
    key = check_secret(secret)
    issued = time.time() if now is None else now
    claims: dict[str, Any] = {
        "sub": _id(user_id, "user_id"),
        "aud": SESSION_AUDIENCE,
        "iat": int(issued),
        "exp": int(issued + _positive_ttl(ttl)),
    }
    if name is not None:
        claims["name"] = name
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def mint_chat_token(
    secret: str | bytes,
    user_id: str,
    chat_id: str,
    permissions: Sequence[str] = ("send",),
    metadata: Mapping[str, str] | None = None,
    ttl: float = 300,
    *,
    now: float | None = None,
) -> str:
    """A chat token letting ``user_id`` join ``chat_id`` within ``ttl`` seconds.

    ``permissions``: ``"send"`` (post messages) and ``"moderate"`` (mute, block,
    kick, delete others' messages). ``metadata``: the member's string metadata,
    returned to it on join.
    """
    return _mint_grant(secret, CHAT_AUDIENCE, user_id, chat_id, permissions, metadata, ttl, now)


def mint_membership_token(
    secret: str | bytes,
    user_id: str,
    chat_id: str,
    permissions: Sequence[str] = ("send",),
    metadata: Mapping[str, str] | None = None,
    ttl: float = MEMBERSHIP_TTL,
    *,
    now: float | None = None,
) -> str:
    """A membership credential: ``user_id`` is a member of ``chat_id`` (for ``ttl`` s).

    The server issues one in every join and resume reply; a client gives it back
    in a resume request. Same claims as a chat token, audience
    ``chats_store:membership``.
    """
    return _mint_grant(
        secret, MEMBERSHIP_AUDIENCE, user_id, chat_id, permissions, metadata, ttl, now
    )


def _mint_grant(
    secret: str | bytes,
    audience: str,
    user_id: str,
    chat_id: str,
    permissions: Sequence[str],
    metadata: Mapping[str, str] | None,
    ttl: float,
    now: float | None,
) -> str:
    key = check_secret(secret)
    if isinstance(permissions, str) or not all(isinstance(p, str) for p in permissions):
        raise ValueError(f"permissions must be a list of strings, not {permissions!r}")
    metadata = dict(metadata or {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ValueError(f"metadata must map strings to strings, not {metadata!r}")
    issued = time.time() if now is None else now
    claims: dict[str, Any] = {
        "sub": _id(user_id, "user_id"),
        "chat": _id(chat_id, "chat_id"),
        "aud": audience,
        "iat": int(issued),
        "exp": int(issued + _positive_ttl(ttl)),
        "permissions": list(permissions),
        "metadata": metadata,
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def _algorithm_of(token: str) -> str:
    try:
        return str(jwt.get_unverified_header(token).get("alg"))[:20]
    except jwt.PyJWTError:
        return "unknown"


def _verify(
    secret: bytes, token: object, audience: str, kind: str, clock: Callable[[], float]
) -> dict[str, Any]:
    if not isinstance(token, str) or not token:
        raise RefusedError(ErrorCode.INVALID_TOKEN, f"the {kind} token is missing")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=audience,
            options={"require": ["sub", "exp", "aud"], "verify_exp": False, "verify_iat": False},
        )
    except jwt.InvalidAudienceError:
        raise RefusedError(
            ErrorCode.INVALID_TOKEN,
            f"this is not a {kind} token (its audience is wrong): session tokens, chat "
            "tokens and membership credentials are not interchangeable",
        ) from None
    except jwt.InvalidAlgorithmError:
        raise RefusedError(
            ErrorCode.INVALID_TOKEN,
            f"the {kind} token is signed with the algorithm {_algorithm_of(token)!r}; "
            f"this server accepts {ALGORITHM} only",
        ) from None
    except jwt.InvalidSignatureError:
        raise RefusedError(
            ErrorCode.INVALID_TOKEN,
            f"the {kind} token's signature does not match: it was not issued by this server",
        ) from None
    except jwt.PyJWTError as error:
        raise RefusedError(
            ErrorCode.INVALID_TOKEN, f"the {kind} token is not valid ({error})"
        ) from None
    exp = claims["exp"]
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise RefusedError(ErrorCode.INVALID_TOKEN, f"the {kind} token's exp is not a number")
    if exp <= clock():
        raise RefusedError(
            ErrorCode.EXPIRED_TOKEN, f"the {kind} token has expired - ask for a new one"
        )
    if not isinstance(claims["sub"], str) or not claims["sub"]:
        raise RefusedError(ErrorCode.INVALID_TOKEN, f"the {kind} token has no user (sub)")
    failure = id_failure(claims["sub"], f"the {kind} token's user id (sub)")
    if failure is not None:
        raise RefusedError(ErrorCode.INVALID_TOKEN, failure.detail)
    return claims


def verify_session_token(
    secret: bytes, token: object, clock: Callable[[], float] = time.time
) -> str:
    """The user id of a valid session token; :class:`RefusedError` otherwise."""
    return str(_verify(secret, token, SESSION_AUDIENCE, "session", clock)["sub"])


def verify_chat_token(
    secret: bytes, token: object, clock: Callable[[], float] = time.time
) -> ChatGrant:
    """What a valid chat token grants; :class:`RefusedError` otherwise."""
    return _grant(_verify(secret, token, CHAT_AUDIENCE, "chat", clock), "chat token")


def verify_membership_token(
    secret: bytes, token: object, clock: Callable[[], float] = time.time
) -> ChatGrant:
    """Who a valid membership credential says is a member of which chat.

    :class:`RefusedError` otherwise (``expired_token`` past ``exp``,
    ``invalid_token`` for anything else). Whether the membership still exists is
    the caller's to check.
    """
    claims = _verify(secret, token, MEMBERSHIP_AUDIENCE, "membership", clock)
    return _grant(claims, "membership credential")


def _grant(claims: Mapping[str, Any], what: str) -> ChatGrant:
    chat_id = claims.get("chat")
    if not isinstance(chat_id, str) or not chat_id:
        raise RefusedError(ErrorCode.INVALID_TOKEN, f"the {what} names no chat")
    permissions = claims.get("permissions", [])
    if not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions):
        raise RefusedError(
            ErrorCode.INVALID_TOKEN, f"the {what}'s permissions are not a list of strings"
        )
    metadata = claims.get("metadata", {})
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise RefusedError(
            ErrorCode.INVALID_TOKEN, f"the {what}'s metadata does not map strings to strings"
        )
    return ChatGrant(claims["sub"], chat_id, frozenset(permissions), dict(metadata))
