"""create_user: identity from a session token, clear errors for anything else."""

from __future__ import annotations

import jwt
import pytest

from chats_store import TokenError, create_user
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
