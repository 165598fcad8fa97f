"""Frames serialized once for every recipient, under the compression policy."""

from __future__ import annotations

import json
from collections.abc import Generator

from websockets.asyncio.client import connect
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame, Opcode

from chats_store.protocol import PROTOCOL_VERSION
from chats_store.server import run_server
from chats_store.server.compression import Compression, NegotiatedDeflate
from chats_store.server.wire import WireFrame
from tests.server.conftest import SECRET

LARGE = json.dumps({"type": "event", "text": "a message pushed to a chat " * 20})


MIN_SIZE = Compression().min_size


def _negotiated(window_bits: int = 15) -> NegotiatedDeflate:
    """A connection's extension as the default policy negotiates it."""
    return NegotiatedDeflate(PerMessageDeflate(True, True, window_bits, window_bits), MIN_SIZE)


def _received(data: bytes, window_bits: int = 15) -> Frame:
    """What a client that negotiated deflate with ``window_bits`` reads from ``data``."""
    position = 0

    def read_exact(size: int) -> Generator[None, None, bytes]:
        nonlocal position
        chunk = data[position : position + size]
        position += size
        return chunk
        yield  # Frame.parse wants a generator function

    client = PerMessageDeflate(True, True, window_bits, window_bits)
    parser = Frame.parse(read_exact, mask=False, max_size=None, extensions=[client])
    try:
        next(parser)
    except StopIteration as done:
        assert position == len(data)  # one whole frame
        frame: Frame = done.value
        return frame
    raise AssertionError("the frame was incomplete")


def test_a_large_frame_is_compressed_once_and_the_bytes_shared() -> None:
    frame = WireFrame(LARGE)
    first = frame.serialized(_negotiated())
    second = frame.serialized(_negotiated())  # another connection, same window

    assert first is second
    assert first[0] & 0x40  # RSV1: a compressed message
    assert len(first) < len(LARGE)
    assert _received(first).data.decode() == LARGE


def test_each_window_size_gets_its_own_compression() -> None:
    frame = WireFrame(LARGE)
    small_window = frame.serialized(_negotiated(9))

    assert small_window is not frame.serialized(_negotiated(15))
    assert _received(small_window, 9).data.decode() == LARGE


def test_a_small_frame_goes_uncompressed_even_with_deflate() -> None:
    text = "x" * (MIN_SIZE - 1)
    frame = WireFrame(text)
    data = frame.serialized(_negotiated())

    assert not data[0] & 0x40
    assert data is frame.serialized(None)  # the same bytes as for a plain connection
    assert data == Frame(Opcode.TEXT, text.encode()).serialize(mask=False)


def test_a_plain_connection_gets_the_frame_uncompressed() -> None:
    data = WireFrame(LARGE).serialized(None)

    assert data == Frame(Opcode.TEXT, LARGE.encode()).serialize(mask=False)


async def test_a_client_offering_deflate_gets_it_without_context_takeover() -> None:
    async with (
        run_server(secret=SECRET, rate_limit=None) as server,
        connect(
            server.url,
            subprotocols=[PROTOCOL_VERSION],  # type: ignore[list-item]
            additional_headers={"Authorization": f"Bearer {server.session_token('ann')}"},
        ) as websocket,
    ):
        hello = json.loads(await websocket.recv())
        extensions = websocket.response.headers["Sec-WebSocket-Extensions"]

    assert hello["type"] == "hello"
    assert "permessage-deflate" in extensions
    assert "server_no_context_takeover" in extensions
    assert "client_no_context_takeover" in extensions
