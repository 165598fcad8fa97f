"""chats_store.tokens: what the client reads from its tokens without verifying them."""

from __future__ import annotations

import jwt
import pytest

from chats_store.errors import TokenError
from chats_store.server import mint_chat_token, mint_session_token
from chats_store.tokens import chat_grant

SECRET = "tokens-test-secret-that-is-long-enough-for-hs256"


def test_chat_grant_reads_the_chat_and_its_permissions() -> None:
    moderator = mint_chat_token(SECRET, "ann", "lobby", permissions=("send", "moderate"))
    assert chat_grant(moderator) == ("lobby", ("send", "moderate"))
    assert chat_grant(mint_chat_token(SECRET, "bob", "dev")) == ("dev", ("send",))


def test_chat_grant_refuses_what_is_not_a_chat_token() -> None:
    with pytest.raises(TokenError, match="not interchangeable"):
        chat_grant(mint_session_token(SECRET, "ann"))
    claims = {"sub": "ann", "chat": "lobby", "aud": "chats_store:chat", "permissions": "moderate"}
    with pytest.raises(TokenError, match="'permissions' claim is not a list of strings"):
        chat_grant(jwt.encode(claims, SECRET, algorithm="HS256"))
