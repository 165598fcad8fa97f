"""``create_user``: who the client is, read from its session token, and how to renew it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import attrs

from chats_store.errors import AuthenticationError, ErrorCode, TokenError
from chats_store.tokens import SESSION_AUDIENCE, read_unverified_claims

__all__ = ["TokenProvider", "User", "create_user"]

TokenProvider = Callable[[], str | Awaitable[str]]
"""A zero-argument callable returning a fresh session token, or an awaitable of one."""


@attrs.frozen
class User:
    """The client's identity.

    ``user_id`` is the session token's ``sub`` claim, ``display_name`` its
    optional ``name`` claim (the user id when absent), and ``session_token`` the
    token itself, which the WebSocket module sends in the handshake.
    ``token_provider``, when given, is how the WebSocket module gets a fresh token
    (:meth:`fresh_session_token`) when the server refuses an expired one.
    """

    user_id: str
    display_name: str
    session_token: str = attrs.field(repr=False)
    token_provider: TokenProvider | None = attrs.field(default=None, repr=False, eq=False)

    async def fresh_session_token(self) -> str:
        """A fresh session token of this user, from ``token_provider``.

        Raises :class:`~chats_store.AuthenticationError`: ``token_provider_failed``
        when there is no provider or it raised, ``invalid_token`` when what it
        returned is not a session token of this user (a string holding a JWT with
        the session audience and this ``sub``).
        """
        provider = self.token_provider
        if provider is None:
            raise AuthenticationError(
                "the user module has no token_provider to renew its session token - pass "
                "create_user(token, token_provider=...)",
                code=ErrorCode.TOKEN_PROVIDER_FAILED,
            )
        try:
            given = provider()
            token = await given if isinstance(given, Awaitable) else given
        except Exception as error:
            raise AuthenticationError(
                f"the token provider raised {type(error).__name__}: {error}",
                code=ErrorCode.TOKEN_PROVIDER_FAILED,
            ) from error
        try:
            claims = read_unverified_claims(token, SESSION_AUDIENCE, required=("sub",))
        except TokenError as error:
            raise AuthenticationError(
                f"the token provider returned no session token: {error}"
            ) from error
        if claims["sub"] != self.user_id:
            raise AuthenticationError(
                f"the token provider returned a session token of user {claims['sub']!r}; this "
                f"client is user {self.user_id!r}"
            )
        return token


def create_user(session_token: str, *, token_provider: TokenProvider | None = None) -> User:
    """The user module for ``session_token``, a JWT minted by the chat server.

    The signature is not verified here (the client does not hold the secret; the
    server verifies it at the handshake). Raises :class:`~chats_store.TokenError`
    when the token is not a JWT, is not a session token, or has no ``sub``.

    ``token_provider``: a zero-argument callable returning a fresh session token of
    the same user, as a ``str`` or an awaitable of one. The WebSocket module calls it
    when the server refuses the token at a (re)connection (it expired), and shortly
    before the token expires, then connects at once with the new one. If it raises,
    or returns a token the server refuses too, the connection ends ``disconnected``
    and ``websocket.last_error`` says why. Without it, an expired session token ends
    the connection at the next reconnection.
    """
    claims = read_unverified_claims(session_token, SESSION_AUDIENCE, required=("sub",))
    name = claims.get("name")
    if token_provider is not None and not callable(token_provider):
        raise TypeError(
            f"token_provider must be a callable returning a session token, not "
            f"{type(token_provider).__name__}"
        )
    return User(
        user_id=claims["sub"],
        display_name=name if isinstance(name, str) and name else claims["sub"],
        session_token=session_token,
        token_provider=token_provider,
    )
