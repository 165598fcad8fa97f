"""Reading the claims of the JWTs the client is given, without verifying them.

The client cannot check a token's signature (only the server holds the secret),
but it reads the claims to know who it is (``sub``), which chat a chat token is
for (``chat``) and when it expires (``exp``), so that obvious mistakes are
refused locally with a clear message before anything is sent. The server checks
everything again, signature included.

Audiences tell the kinds of token apart: a session token is never accepted where
a chat token is expected, and the other way round; a membership credential (issued
by the server on join, given back on resume) is neither.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jwt

from chats_store.errors import TokenError

__all__ = [
    "CHAT_AUDIENCE",
    "MEMBERSHIP_AUDIENCE",
    "SESSION_AUDIENCE",
    "chat_grant",
    "read_unverified_claims",
    "renewal_delay",
]

SESSION_AUDIENCE = "chats_store:session"
CHAT_AUDIENCE = "chats_store:chat"
MEMBERSHIP_AUDIENCE = "chats_store:membership"
"""The audience of the resumable membership credential a join (or resume) returns."""


def read_unverified_claims(
    token: object, audience: str, required: tuple[str, ...]
) -> Mapping[str, Any]:
    """The claims of ``token``, checked for shape but not for signature or expiry.

    Raises :class:`TokenError` when ``token`` is not a string holding a JWT, when
    its audience is not ``audience``, or when a ``required`` claim is missing or
    not a non-empty string (``exp`` must be a number).
    """
    if not isinstance(token, str):
        raise TokenError(f"a token must be a string, not {type(token).__name__}")
    try:
        claims: dict[str, Any] = jwt.decode(
            token, options={"verify_signature": False, "verify_exp": False}
        )
    except jwt.PyJWTError as error:
        raise TokenError(f"the token is not a well-formed JWT ({error})") from None
    token_audience = claims.get("aud")
    audiences = token_audience if isinstance(token_audience, list) else [token_audience]
    if audience not in audiences:
        raise TokenError(
            f"the token's audience is {token_audience!r}, expected {audience!r}: "
            "a session token and a chat token are not interchangeable"
        )
    for name in required:
        value = claims.get(name)
        if name == "exp":
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise TokenError("the token has no numeric 'exp' (expiry) claim")
        elif not isinstance(value, str) or not value:
            raise TokenError(f"the token has no {name!r} claim")
    return claims


def chat_grant(token: object) -> tuple[str, tuple[str, ...]]:
    """The chat a chat token is for and the permissions it grants (``send``, ``moderate``).

    Read from the claims without verifying them, as the client reads its user id from
    its session token: to show what the client may do (a moderator's commands). The
    server checks the grant on every request. Raises :class:`TokenError` for a token
    that is not a chat token, or whose ``permissions`` claim is not a list of strings.
    """
    claims = read_unverified_claims(token, CHAT_AUDIENCE, ("sub", "chat"))
    permissions = claims.get("permissions", [])
    if not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions):
        raise TokenError("the token's 'permissions' claim is not a list of strings")
    return claims["chat"], tuple(permissions)


def renewal_delay(credential: str) -> float | None:
    """Seconds after its arrival to renew a membership credential: half its lifetime.

    The lifetime is ``exp - iat``, both the server's times, so the delay does not
    depend on the client's clock (the credential arrives as it is issued). None for a
    credential whose lifetime cannot be read (not a JWT, no numeric ``iat``).
    """
    try:
        claims = read_unverified_claims(credential, MEMBERSHIP_AUDIENCE, ("exp",))
    except TokenError:
        return None
    issued = claims.get("iat")
    if not isinstance(issued, int | float) or isinstance(issued, bool):
        return None
    expires: float = claims["exp"]
    return max(0.0, (expires - issued) / 2)
