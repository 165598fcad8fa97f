"""The error tree: local and remote refusals are siblings; codes are always ErrorCodes."""

from __future__ import annotations

import pytest

from chats_store import (
    ActionCallError,
    ActionError,
    CallCancelledError,
    ChatsStoreError,
    ConnectionLostError,
    ErrorCode,
    ProtocolError,
    RequestTimeoutError,
    ServerRefusedError,
    TransportError,
)

CALL_ERRORS = (
    ActionCallError,
    ServerRefusedError,
    CallCancelledError,
    ConnectionLostError,
    RequestTimeoutError,
)


@pytest.mark.parametrize("kind", CALL_ERRORS)
def test_every_call_error_carries_action_code_and_detail(kind: type[ActionError]) -> None:
    error = kind("send_message", "member_muted", "you are muted")

    assert isinstance(error, ActionError) and isinstance(error, ChatsStoreError)
    assert (error.action, error.code, error.detail) == (
        "send_message",
        "member_muted",
        "you are muted",
    )
    assert type(error.code) is ErrorCode and error.code is ErrorCode.MEMBER_MUTED
    assert str(error) == "send_message: you are muted"


def test_local_and_remote_refusals_are_siblings() -> None:
    local = ActionCallError("send_message", "content_empty", "empty")
    remote = ServerRefusedError("send_message", "permission_denied", "no")
    cancelled = CallCancelledError("join_chat", "chat_left_during_join", "left")

    assert not isinstance(remote, ActionCallError)
    assert not isinstance(local, ServerRefusedError)
    assert not isinstance(cancelled, ActionCallError | ServerRefusedError | TransportError)
    assert issubclass(ConnectionLostError, TransportError)
    assert issubclass(RequestTimeoutError, TransportError)


def test_a_code_from_a_newer_server_is_still_an_error_code() -> None:
    error = ServerRefusedError("post", "slow_mode", "wait 10 s between messages")

    assert isinstance(error.code, ErrorCode)
    assert error.code == "slow_mode" and error.code.value == "slow_mode"
    assert ErrorCode("not_connected") is ErrorCode.NOT_CONNECTED


def test_an_error_code_is_a_string() -> None:
    with pytest.raises(ValueError, match="is not a valid ErrorCode"):
        ErrorCode(42)  # type: ignore[arg-type]


def test_protocol_error_code_is_an_error_code() -> None:
    error = ProtocolError("bad frame", code="invalid_frame", request_id=3)

    assert error.code is ErrorCode.INVALID_FRAME
    assert not isinstance(error, ActionError)
