"""The server's permessage-deflate policy, seen by a real client on the real server.

The client is a ``websockets`` connection whose permessage-deflate extension
records, for each message it receives, whether it came compressed (the RSV1 bit).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
)
from websockets.frames import Frame, Opcode
from websockets.typing import ExtensionParameter, Subprotocol

from chats_store.chats.commands import JoinRequest, PostMessageRequest
from chats_store.protocol import PROTOCOL_VERSION, encode_request
from chats_store.server import Compression, mint_chat_token, mint_session_token, run_server
from tests.server.conftest import SECRET, TIMEOUT, handshake_headers, read_hello


class _RecordingDeflate(PerMessageDeflate):
    """The client's permessage-deflate, noting of each message received
    whether it came compressed, and its size uncompressed."""

    def __init__(self, negotiated: PerMessageDeflate) -> None:
        super().__init__(
            negotiated.remote_no_context_takeover,
            negotiated.local_no_context_takeover,
            negotiated.remote_max_window_bits,
            negotiated.local_max_window_bits,
            negotiated.compress_settings,
        )
        self.received: list[tuple[bool, int]] = []

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        decoded = super().decode(frame, max_size=max_size)
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            self.received.append((frame.rsv1, len(decoded.data)))
        return decoded


class _RecordingFactory(ClientPerMessageDeflateFactory):
    def __init__(self) -> None:
        super().__init__(client_max_window_bits=True, compress_settings={"memLevel": 5})
        self.extension: _RecordingDeflate | None = None

    def process_response_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> PerMessageDeflate:
        self.extension = _RecordingDeflate(
            super().process_response_params(params, accepted_extensions)
        )
        return self.extension


@asynccontextmanager
async def _connection(
    compression: Compression | None, user_id: str = "ada"
) -> AsyncIterator[tuple[ClientConnection, _RecordingFactory]]:
    factory = _RecordingFactory()
    async with (
        run_server(secret=SECRET, compression=compression) as server,
        connect(
            f"ws://{server.address}",
            additional_headers=handshake_headers(mint_session_token(SECRET, user_id)),
            subprotocols=[Subprotocol(PROTOCOL_VERSION)],
            extensions=[factory],
            compression=None,
        ) as connection,
    ):
        await read_hello(connection)
        yield connection, factory


async def _join_with_history(connection: ClientConnection, messages: int) -> dict[str, Any]:
    """Post ``messages`` messages into chat ``c`` (joined), then join it again: its reply."""
    token = mint_chat_token(SECRET, "ada", "c")
    await connection.send(encode_request(1, JoinRequest("c", token)))
    for index in range(messages):
        text = f"message number {index} of the history"
        await connection.send(encode_request(2 + index, PostMessageRequest("c", f"m{index}", text)))
    await connection.send(encode_request(1000, JoinRequest("c", token)))
    while True:
        frame = json.loads(await _recv(connection))
        if frame.get("id") == 1000:
            assert frame["type"] == "ok", frame
            return dict(frame)


async def _recv(connection: ClientConnection) -> str | bytes:
    return await asyncio.wait_for(connection.recv(), TIMEOUT)


async def test_the_default_policy_leaves_small_messages_uncompressed_and_keeps_no_context() -> None:
    async with _connection(Compression()) as (connection, factory):
        extension = factory.extension
        assert extension is not None
        # Neither side keeps a compression context between messages, with 12-bit windows.
        assert extension.local_no_context_takeover and extension.remote_no_context_takeover
        assert extension.local_max_window_bits == extension.remote_max_window_bits == 12
        reply = await _join_with_history(connection, 30)
        assert len(reply["result"]["messages"]) == 30
    received = extension.received
    assert received[0][0] is False  # the hello
    # Replies and pushes under 512 bytes went as they are; the second join's reply
    # (the history) is the one over 512, compressed.
    assert [size >= 512 for _, size in received] == [compressed for compressed, _ in received]
    assert sum(compressed for compressed, _ in received) == 1


async def test_min_size_sets_the_threshold() -> None:
    async with _connection(Compression(min_size=300)) as (connection, factory):
        await _join_with_history(connection, 3)
    assert factory.extension is not None
    received = factory.extension.received
    assert [size >= 300 for _, size in received] == [compressed for compressed, _ in received]
    assert {compressed for compressed, _ in received} == {True, False}


async def test_no_compression_negotiates_nothing() -> None:
    async with _connection(None) as (connection, factory):
        assert factory.extension is None
        assert connection.protocol.extensions == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"min_size": -1}, "'min_size' must be >= 0: -1"),
        ({"window_bits": 8}, "'window_bits' must be >= 9: 8"),
        ({"window_bits": 16}, "'window_bits' must be <= 15: 16"),
        ({"memory_level": 0}, "'memory_level' must be >= 1: 0"),
        ({"memory_level": 10}, "'memory_level' must be <= 9: 10"),
    ],
)
def test_a_setting_out_of_range_is_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        Compression(**options)
