"""The client connection's own frame splitting against ``websockets``' parser.

A connection that splits the usual frames itself (see ``_ClientConnection``) must read
any stream of server bytes as a connection that leaves every frame to ``websockets``:
the same messages in the same order, the same pongs and closes written back, the
same state, whatever frames come and however the stream is cut into reads. Both
connections here are fed the same bytes from a fake transport (this layer alone); the
server's side is written with ``websockets``' own frame serializer. The last test runs
on the reference server over loopback: there, the usual pushes are split.
"""

from __future__ import annotations

import asyncio
import itertools
import struct
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
)
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import Protocol, Side, State
from websockets.uri import parse_uri
from websockets.utils import accept_key

from chats_store.errors import ProtocolError
from chats_store.websocket.connection import _ClientConnection
from tests.e2e.conftest import WAIT, network

MAX_SIZE = 4096
"""The client's message size limit here: small, so that frames over it are cheap."""


class Owner:
    """What the connection hands its messages and its refusals to."""

    def __init__(self) -> None:
        self.messages: list[tuple[bytes, bool]] = []
        self.refused: list[str] = []

    def message_received(self, connection: Any, data: bytes, text: bool) -> None:
        self.messages.append((bytes(data), text))
        if data == b"refuse":  # as the manager does with a message that breaks the protocol
            connection.violation = ProtocolError("refused")
            self.refused.append("refused")

    def refuse(self, connection: Any, error: ProtocolError) -> None:
        connection.violation = error
        self.refused.append(str(error))


class Transport(asyncio.Transport):
    """Records what the connection writes."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.eof_written = False
        self.closed = False

    def write(self, data: Any) -> None:
        self.written += data

    def write_eof(self) -> None:
        self.eof_written = True

    def can_write_eof(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def connection(
    *, splitting: bool, deflate: bool, max_size: int = MAX_SIZE
) -> tuple[_ClientConnection, Owner, Transport]:
    """A client connection whose handshake request is sent; ``splitting`` False: it
    never splits frames itself (the reference)."""
    owner = Owner()
    extensions = [ClientPerMessageDeflateFactory()] if deflate else None
    protocol = ClientProtocol(parse_uri("ws://test/"), extensions=extensions, max_size=max_size)
    made = _ClientConnection.for_owner(owner)(protocol, ping_interval=None)  # type: ignore[arg-type]
    if not splitting:
        made._at_frame_start = lambda: False  # type: ignore[method-assign]
    transport = Transport()
    made.connection_made(transport)
    made.request = protocol.connect()
    protocol.send_request(made.request)
    transport.written.clear()
    return made, owner, transport


def response(key: str, *, deflate: bool) -> bytes:
    """The server's handshake response to the request of ``key``."""
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept_key(key)}",
    ]
    if deflate:
        lines.append(
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover;"
            " client_no_context_takeover"
        )
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def server_deflate() -> PerMessageDeflate:
    return PerMessageDeflate(True, True, 15, 15)


def frame(opcode: Opcode, data: bytes, *, fin: bool = True, compress: bool = False) -> bytes:
    """A frame as a server writes it (compressed with ``compress``)."""
    extensions = [server_deflate()] if compress else []
    return Frame(opcode, data, fin).serialize(mask=False, extensions=extensions)


def raw_frame(head: int, data: bytes, *, masked: bool = False) -> bytes:
    """A frame with the first byte ``head``, reserved bits and opcode as given."""
    length = len(data)
    mask = 0x80 if masked else 0
    if length < 126:
        header = struct.pack("!BB", head, mask | length)
    elif length < 65536:
        header = struct.pack("!BBH", head, mask | 126, length)
    else:
        header = struct.pack("!BBQ", head, mask | 127, length)
    return header + (b"\0\0\0\0" if masked else b"") + data


def fragmented(parts: Sequence[bytes], compress: bool) -> bytes:
    """One text message in ``parts`` (compressed as one message with ``compress``)."""
    extension = [server_deflate()] if compress else []
    frames = [
        Frame(Opcode.TEXT if n == 0 else Opcode.CONT, part, n == len(parts) - 1)
        for n, part in enumerate(parts)
    ]
    return b"".join(f.serialize(mask=False, extensions=extension) for f in frames)


texts = st.text(max_size=300).map(str.encode)
pieces = st.one_of(
    texts.map(lambda data: frame(Opcode.TEXT, data)),
    st.binary(max_size=300).map(lambda data: frame(Opcode.BINARY, data)),
    st.binary(max_size=125).map(lambda data: frame(Opcode.PING, data)),
    st.binary(max_size=125).map(lambda data: frame(Opcode.PONG, data)),
    texts.map(lambda data: frame(Opcode.TEXT, data, compress=True)),
    st.builds(fragmented, st.lists(st.binary(max_size=40), min_size=2, max_size=4), st.booleans()),
    st.just(frame(Opcode.TEXT, b"\xff\xfe")),  # not UTF-8: the owner's to refuse, not here
    st.just(frame(Opcode.TEXT, b"refuse")),  # the owner refuses it: the rest is not read
)
endings = st.sampled_from(
    [
        b"",
        frame(Opcode.CLOSE, Close(1000, "bye").serialize()),
        raw_frame(0x81, b"masked", masked=True),
        raw_frame(0x81, bytes(4), masked=True),  # 8 zero bytes after the header
        raw_frame(0xA1, b"a reserved bit"),
        raw_frame(0x83, b"no such opcode"),
        raw_frame(0x81, b"x" * (MAX_SIZE + 1)),
        raw_frame(0x82, b"y" * 70_000),  # over the limit, a 64-bit length
        raw_frame(0x80, b"a continuation of nothing"),
        raw_frame(0x01, b"unfinished") + raw_frame(0x81, b"a new message meanwhile"),
        raw_frame(0x81, b"cut short")[:6],
    ]
)


def read(
    stream: bytes,
    cuts: Sequence[int],
    *,
    splitting: bool,
    deflate: bool,
    eof: bool,
    max_size: int = MAX_SIZE,
) -> tuple[Any, ...]:
    """What a connection makes of ``stream`` (after the handshake response) arriving in
    reads cut at ``cuts``: messages, refusals, the frames it wrote, its state."""
    made, owner, transport = connection(splitting=splitting, deflate=deflate, max_size=max_size)
    whole = response(made.protocol.key, deflate=deflate) + stream
    bounds = [0, *sorted(cuts), len(whole)]
    for start, end in itertools.pairwise(bounds):
        if end > start:
            made.data_received(whole[start:end])
    if eof:
        made.eof_received()
    server = Protocol(Side.SERVER, max_size=None)
    server.receive_data(bytes(transport.written))
    written = [
        (event.opcode, event.data) for event in server.events_received() if isinstance(event, Frame)
    ]
    protocol = made.protocol
    return (
        owner.messages,
        owner.refused,
        written,
        transport.eof_written,
        protocol.state,
        protocol.close_rcvd,
        protocol.close_sent,
        type(protocol.parser_exc),
    )


@settings(max_examples=300, deadline=None)
@given(
    frames=st.lists(pieces, max_size=10),
    ending=endings,
    after=st.lists(pieces, max_size=2),
    deflate=st.booleans(),
    eof=st.booleans(),
    data=st.data(),
)
async def test_a_splitting_connection_reads_any_stream_as_websockets_does(
    frames: list[bytes], ending: bytes, after: list[bytes], deflate: bool, eof: bool, data: Any
) -> None:
    compressed = any(piece[0] & 0x40 for piece in frames + after)
    deflate = deflate or compressed  # a compressed frame needs the extension negotiated
    parts = [response("x" * 24, deflate=deflate), *frames, ending, *after]
    stream = b"".join(parts[1:])
    # Reads end between frames most of the time (a server writes whole frames), and
    # the splitting starts at such an end: cuts there, and anywhere.
    boundaries = list(itertools.accumulate(map(len, parts)))
    anywhere = st.integers(0, boundaries[-1])
    cuts = data.draw(
        st.lists(st.one_of(st.sampled_from(boundaries), anywhere), max_size=12), label="cuts"
    )
    ours = read(stream, cuts, splitting=True, deflate=deflate, eof=eof)
    reference = read(stream, cuts, splitting=False, deflate=deflate, eof=eof)
    assert ours == reference


async def test_frames_with_16_and_64_bit_lengths_cut_anywhere_are_read_whole() -> None:
    limit = 70_000  # the largest frame is at the limit: still read
    frames = [b"a" * 300, b"b" * 65_535, b"c" * limit]
    stream = b"".join(frame(Opcode.BINARY, data) for data in frames)
    start = len(response("x" * 24, deflate=False))
    for cut in range(start, start + len(stream), 997):
        cuts = [start, cut, cut + 1]  # split from the start: after the response
        ours = read(stream, cuts, splitting=True, deflate=False, eof=False, max_size=limit)
        assert ours[0] == [(data, False) for data in frames]
        reference = read(stream, cuts, splitting=False, deflate=False, eof=False, max_size=limit)
        assert ours == reference


async def test_the_connection_splits_frames_once_open_and_again_after_a_control_frame() -> None:
    made, owner, _ = connection(splitting=True, deflate=False)
    made.data_received(response(made.protocol.key, deflate=False))
    assert made.protocol.state is State.OPEN
    assert made._splitting  # websockets' parser waits where this version expects it
    made.data_received(frame(Opcode.PING, b"p") + frame(Opcode.TEXT, b"after"))
    assert made._splitting
    made.data_received(raw_frame(0x01, b"start"))  # a fragmented message: websockets' own
    assert not made._splitting
    made.data_received(raw_frame(0x80, b" end"))
    assert made._splitting
    assert owner.messages == [(b"after", True), (b"start end", True)]


async def test_bytes_held_for_a_frame_go_to_websockets_once_the_connection_closes() -> None:
    made, owner, _ = connection(splitting=True, deflate=False)
    made.data_received(response(made.protocol.key, deflate=False))
    close = frame(Opcode.CLOSE, Close(1001, "going away").serialize())
    made.data_received(frame(Opcode.TEXT, b"held")[:3])
    made.protocol.send_close(1000)  # the client closes meanwhile: CLOSING
    made.data_received(frame(Opcode.TEXT, b"held")[3:] + close)
    assert owner.messages == [(b"held", True)]
    assert made.protocol.close_rcvd == Close(1001, "going away")


async def test_on_a_real_server_the_pushes_are_split_by_the_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Against the reference server over loopback (``websockets`` as installed), the
    usual pushes never reach ``websockets``' parser: were the parser to change so that
    :meth:`_ClientConnection._at_frame_start` no longer recognizes it, every frame
    would still be read, but by ``websockets``, and this test says so."""
    handed: list[bytes] = []
    to_websockets = _ClientConnection._to_websockets

    def recorded(self: _ClientConnection, data: bytes) -> None:
        handed.append(bytes(data))
        to_websockets(self, data)

    monkeypatch.setattr(_ClientConnection, "_to_websockets", recorded)
    async with network(rate_limit=None) as net:
        ann = await net.joined("ann")
        bob = await net.joined("bob")
        handed.clear()
        contents = [f"split {n}" for n in range(20)]
        for content in contents:
            await ann.chats.send_message("c1", content)
        deadline = asyncio.get_running_loop().time() + WAIT
        while [m.content for m in bob.messages()] != contents:
            assert asyncio.get_running_loop().time() < deadline, bob.messages()
            await asyncio.sleep(0.01)
    pushes = [data for data in handed if b"message_posted" in data]
    assert pushes == []
