"""create_user: identity from a session token, clear errors for anything else."""

from __future__ import annotations

import jwt
import pytest

from chats_store import AuthenticationError, ErrorCode, TokenError, create_user
from chats_store.tokens import CHAT_AUDIENCE, SESSION_AUDIENCE

SECRET = "a-test-secret-that-is-at-least-32-bytes-long"


def token(**claims: object) -> str:
    return jwt.encode({"aud": SESSION_AUDIENCE, "exp": 2_000_000_000, **claims}, SECRET)


def test_user_id_and_name_come_from_the_claims() -> None:
    session = token(sub="ann", name="Ann Smith")
    user = create_user(session)
    assert (user.user_id, user.display_name, user.session_token) == ("ann", "Ann Smith", session)
    assert session not in repr(user), "the credential must not leak into logs"


def test_display_name_defaults_to_the_user_id() -> None:
    assert create_user(token(sub="bob")).display_name == "bob"


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ("not a jwt", "not a well-formed JWT"),
        ("a.b.c", "not a well-formed JWT"),
        (jwt.encode({"sub": "ann", "aud": CHAT_AUDIENCE, "chat": "c"}, SECRET), "audience"),
        (jwt.encode({"sub": "ann"}, SECRET), "audience"),
        (token(), "'sub'"),
        (token(sub=""), "'sub'"),
        (token(sub=42), "'sub'"),
    ],
)
def test_unusable_tokens_are_refused_clearly(bad: str, fragment: str) -> None:
    with pytest.raises(TokenError, match=fragment) as raised:
        create_user(bad)
    assert isinstance(raised.value, ValueError)


def test_a_token_must_be_a_string() -> None:
    with pytest.raises(TokenError, match="must be a string"):
        create_user(b"bytes")  # type: ignore[arg-type]


# The token provider ------------------------------------------------------------------


async def test_a_token_provider_gives_fresh_tokens_as_str_or_awaitable() -> None:
    fresh = token(sub="ann", iat=5)

    async def later() -> str:
        return fresh

    for provider in (lambda: fresh, later):
        user = create_user(token(sub="ann"), token_provider=provider)
        assert await user.fresh_session_token() == fresh
    assert "token_provider" not in repr(user)


@pytest.mark.parametrize(
    ("provided", "code", "fragment"),
    [
        (token(sub="bob"), ErrorCode.INVALID_TOKEN, "of user 'bob'; this client is user 'ann'"),
        (jwt.encode({"sub": "ann", "aud": CHAT_AUDIENCE}, SECRET), "invalid_token", "audience"),
        (None, ErrorCode.INVALID_TOKEN, "must be a string"),
    ],
)
async def test_a_provider_that_returns_no_session_token_of_the_user_is_refused(
    provided: object, code: ErrorCode, fragment: str
) -> None:
    user = create_user(token(sub="ann"), token_provider=lambda: provided)  # type: ignore[arg-type, return-value]
    with pytest.raises(AuthenticationError, match=fragment) as raised:
        await user.fresh_session_token()
    assert raised.value.code == code


async def test_a_provider_that_raises_or_is_missing_says_so() -> None:
    def broken() -> str:
        raise RuntimeError("the auth server is down")

    user = create_user(token(sub="ann"), token_provider=broken)
    with pytest.raises(
        AuthenticationError, match="RuntimeError: the auth server is down"
    ) as raised:
        await user.fresh_session_token()
    assert raised.value.code == ErrorCode.TOKEN_PROVIDER_FAILED
    assert isinstance(raised.value.__cause__, RuntimeError)
    with pytest.raises(AuthenticationError, match="no token_provider") as missing:
        await create_user(token(sub="ann")).fresh_session_token()
    assert missing.value.code == ErrorCode.TOKEN_PROVIDER_FAILED


def test_a_token_provider_must_be_callable() -> None:
    with pytest.raises(TypeError, match="token_provider must be a callable"):
        create_user(token(sub="ann"), token_provider="a token")  # type: ignore[arg-type]
