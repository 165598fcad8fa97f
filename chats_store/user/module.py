"""``create_user``: who the client is, read from its session token."""

from __future__ import annotations

import attrs

from chats_store.tokens import SESSION_AUDIENCE, read_unverified_claims

__all__ = ["User", "create_user"]


@attrs.frozen
class User:
    """The client's identity.

    ``user_id`` is the session token's ``sub`` claim, ``display_name`` its
    optional ``name`` claim (the user id when absent), and ``session_token`` the
    token itself, which the WebSocket module sends in the handshake.
    """

    user_id: str
    display_name: str
    session_token: str = attrs.field(repr=False)


def create_user(session_token: str) -> User:
    """The user module for ``session_token``, a JWT minted by the chat server.

    The signature is not verified here (the client does not hold the secret; the
    server verifies it at the handshake). Raises :class:`~chats_store.TokenError`
    when the token is not a JWT, is not a session token, or has no ``sub``.
    """
    claims = read_unverified_claims(session_token, SESSION_AUDIENCE, required=("sub",))
    name = claims.get("name")
    return User(
        user_id=claims["sub"],
        display_name=name if isinstance(name, str) and name else claims["sub"],
        session_token=session_token,
    )
