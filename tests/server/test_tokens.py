"""Minting and verifying the server's JWTs."""

from __future__ import annotations

import time
import warnings

import jwt
import pytest

from chats_store.errors import ErrorCode
from chats_store.server import (
    MEMBERSHIP_TTL,
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
from chats_store.tokens import (
    CHAT_AUDIENCE,
    MEMBERSHIP_AUDIENCE,
    SESSION_AUDIENCE,
    read_unverified_claims,
)
from chats_store.user import module as user_module
from tests.server.conftest import (
    SECRET,
    alg_none_token,
    claims_for,
    hs512_token,
    rs256_header_token,
)

KEY = SECRET.encode()


def test_a_session_token_carries_the_documented_claims() -> None:
    token = mint_session_token(SECRET, "alice", ttl=60, name="Alice", now=1_000)

    claims = jwt.decode(
        token, KEY, algorithms=["HS256"], audience=SESSION_AUDIENCE, options={"verify_exp": False}
    )

    assert claims == {
        "sub": "alice",
        "aud": SESSION_AUDIENCE,
        "iat": 1_000,
        "exp": 1_060,
        "name": "Alice",
    }
    assert user_module.create_user(token).display_name == "Alice"


def test_a_chat_token_carries_the_documented_claims() -> None:
    token = mint_chat_token(
        SECRET, "bob", "c1", ["send", "moderate"], {"role": "moderator"}, ttl=30, now=1_000
    )

    claims = read_unverified_claims(token, CHAT_AUDIENCE, ("sub", "chat", "exp"))

    assert dict(claims) == {
        "sub": "bob",
        "chat": "c1",
        "aud": CHAT_AUDIENCE,
        "iat": 1_000,
        "exp": 1_030,
        "permissions": ["send", "moderate"],
        "metadata": {"role": "moderator"},
    }
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_the_defaults_are_send_and_no_metadata() -> None:
    grant = verify_chat_token(KEY, mint_chat_token(SECRET, "bob", "c1"))

    assert grant == ChatGrant("bob", "c1", frozenset({"send"}), {})


def test_verification_round_trips() -> None:
    assert verify_session_token(KEY, mint_session_token(SECRET, "alice")) == "alice"


@pytest.mark.parametrize("secret", ["", "x" * 31, b"y" * 31])
def test_a_short_secret_is_refused_with_a_clear_message(secret: str | bytes) -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        check_secret(secret)
    with pytest.raises(ValueError, match="at least 32 bytes"):
        mint_session_token(secret, "alice")


def test_the_secret_is_counted_in_bytes() -> None:
    assert check_secret("é" * 16) == ("é" * 16).encode()


def _hs512_token() -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        claims = {"sub": "alice", "aud": SESSION_AUDIENCE, "exp": time.time() + 3600}
        return jwt.encode(claims, KEY, algorithm="HS512")


@pytest.mark.parametrize(
    ("token", "code"),
    [
        (mint_chat_token(SECRET, "alice", "c1"), ErrorCode.INVALID_TOKEN),  # wrong audience
        (mint_session_token(SECRET, "alice", now=time.time() - 7200), ErrorCode.EXPIRED_TOKEN),
        (mint_session_token("z" * 40, "alice"), ErrorCode.INVALID_TOKEN),
        (_hs512_token(), ErrorCode.INVALID_TOKEN),  # right key, algorithm not allowed
        (
            jwt.encode(
                {"aud": SESSION_AUDIENCE, "exp": time.time() + 3600}, KEY, algorithm="HS256"
            ),
            ErrorCode.INVALID_TOKEN,
        ),
        ("", ErrorCode.INVALID_TOKEN),
        ("a.b.c", ErrorCode.INVALID_TOKEN),
        (  # a user id longer than moderation accepts
            jwt.encode(
                {"sub": "u" * 129, "aud": SESSION_AUDIENCE, "exp": time.time() + 3600},
                KEY,
                algorithm="HS256",
            ),
            ErrorCode.INVALID_TOKEN,
        ),
    ],
)
def test_a_bad_session_token_is_refused(token: str, code: str) -> None:
    with pytest.raises(TokenRefusedError) as caught:
        verify_session_token(KEY, token)

    assert caught.value.code == code


@pytest.mark.parametrize(
    "claims",
    [
        {"permissions": "send"},
        {"permissions": [1]},
        {"metadata": ["role"]},
        {"metadata": {"role": 1}},
        {"chat": ""},
    ],
)
def test_a_chat_token_with_malformed_claims_is_refused(claims: dict[str, object]) -> None:
    payload = {"sub": "a", "chat": "c", "aud": CHAT_AUDIENCE, "exp": time.time() + 60, **claims}
    token = jwt.encode(payload, KEY, algorithm="HS256")

    with pytest.raises(TokenRefusedError) as caught:
        verify_chat_token(KEY, token)

    assert caught.value.code == ErrorCode.INVALID_TOKEN


def test_expiry_uses_the_given_clock() -> None:
    token = mint_session_token(SECRET, "alice", ttl=60, now=1_000)

    assert verify_session_token(KEY, token, clock=lambda: 1_059) == "alice"
    with pytest.raises(TokenRefusedError):
        verify_session_token(KEY, token, clock=lambda: 1_060)


@pytest.mark.parametrize(
    "call",
    [
        lambda: mint_session_token(SECRET, ""),
        lambda: mint_session_token(SECRET, "u" * 129),
        lambda: mint_chat_token(SECRET, "u" * 129, "c"),
        lambda: mint_chat_token(SECRET, "a", "c" * 129),
        lambda: mint_membership_token(SECRET, "u" * 129, "c"),
        lambda: mint_session_token(SECRET, "a", ttl=0),
        lambda: mint_chat_token(SECRET, "a", "c", permissions="send"),
        lambda: mint_chat_token(SECRET, "a", "c", metadata={"k": 1}),  # type: ignore[dict-item]
    ],
)
def test_minting_refuses_bad_arguments(call: object) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        call()  # type: ignore[operator]


def test_a_membership_credential_carries_the_documented_claims() -> None:
    token = mint_membership_token(
        SECRET, "bob", "c1", ["send"], {"role": "guest"}, ttl=60, now=1_000
    )

    claims = read_unverified_claims(token, MEMBERSHIP_AUDIENCE, ("sub", "chat", "exp"))

    assert dict(claims) == {
        "sub": "bob",
        "chat": "c1",
        "aud": MEMBERSHIP_AUDIENCE,
        "iat": 1_000,
        "exp": 1_060,
        "permissions": ["send"],
        "metadata": {"role": "guest"},
    }
    assert verify_membership_token(KEY, token, clock=lambda: 1_059) == ChatGrant(
        "bob", "c1", frozenset({"send"}), {"role": "guest"}
    )
    assert mint_membership_token(SECRET, "bob", "c1", now=0).count(".") == 2
    assert MEMBERSHIP_TTL == 7 * 24 * 3600


@pytest.mark.parametrize(
    ("token", "code"),
    [
        (mint_membership_token(SECRET, "bob", "c1", now=time.time() - 8 * 86400), "expired_token"),
        (mint_membership_token("z" * 40, "bob", "c1"), "invalid_token"),
        (mint_chat_token(SECRET, "bob", "c1"), "invalid_token"),
        (mint_session_token(SECRET, "bob"), "invalid_token"),
        (alg_none_token(claims_for(MEMBERSHIP_AUDIENCE, "bob", "c1")), "invalid_token"),
        (hs512_token(claims_for(MEMBERSHIP_AUDIENCE, "bob", "c1")), "invalid_token"),
        (rs256_header_token(claims_for(MEMBERSHIP_AUDIENCE, "bob", "c1")), "invalid_token"),
        (jwt.encode(claims_for(MEMBERSHIP_AUDIENCE, "bob"), KEY, "HS256"), "invalid_token"),
    ],
    ids=["expired", "forged", "chat", "session", "alg none", "HS512", "RS256", "no chat"],
)
def test_a_bad_membership_credential_is_refused(token: str, code: str) -> None:
    with pytest.raises(TokenRefusedError) as caught:
        verify_membership_token(KEY, token)

    assert caught.value.code == code
