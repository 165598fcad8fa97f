"""Lean WebSocket clients for workload 5, run in processes of their own.

``websockets``' sans-I/O protocol does each handshake (and negotiates
permessage-deflate); after it every frame is parsed here, in bulk: header and length,
decompressed when compressed (with the context the handshake negotiated), pings
answered. A frame costs the clients' process a few microseconds, so that they keep
up with the server they measure.

    python fanout_clients.py readers ADDRESS SECRET FIRST COUNT CHAT EXPECTED deflate|none
    python fanout_clients.py senders ADDRESS SECRET FIRST COUNT CHATS POSTS WINDOW deflate|none

``readers``: COUNT readers join CHAT, print ``ready``, count the pushed messages until
EXPECTED each, then print ``{"frames", "last", "cpu"}`` (the last one's monotonic time,
the process's CPU seconds).
``senders``: COUNT senders, sender ``n`` in chat ``senders<n % CHATS>``, join, print
``ready``, wait for a line on stdin, then each posts POSTS messages keeping WINDOW in
flight (a post is acknowledged by its ``ok`` reply, sent once it is durable); then
prints ``{"acks", "began", "last"}``. Both use the ``chats_store`` found first on the
path (the server's protocol) to encode requests and mint tokens.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import zlib
from pathlib import Path
from typing import Any

from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
)
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chats_store.chats.commands import JoinRequest, PostMessageRequest
from chats_store.protocol.client import encode_request
from chats_store.protocol.frames import PROTOCOL_VERSION
from chats_store.server import mint_chat_token, mint_session_token

_TAIL = b"\x00\x00\xff\xff"  # what RFC 7692 strips from each compressed message


class LeanClient(asyncio.Protocol):
    """One connection: the handshake, the join of ``chat_id``, then :meth:`text` for
    every text frame after it."""

    def __init__(self, address: str, secret: str, user_id: str, chat_id: str, deflate: bool):
        self.ws = ClientProtocol(
            parse_uri(f"ws://{address}"),
            subprotocols=[PROTOCOL_VERSION],  # type: ignore[list-item]
            extensions=[ClientPerMessageDeflateFactory()] if deflate else None,
            max_size=None,
        )
        self.secret, self.user_id, self.chat_id = secret, user_id, chat_id
        self.buffer = bytearray()
        self.open = False
        self.extension: PerMessageDeflate | None = None
        self.decoder: Any = None
        self.joined: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        request = self.ws.connect()
        request.headers["Authorization"] = f"Bearer {mint_session_token(self.secret, self.user_id)}"
        self.ws.send_request(request)
        for data in self.ws.data_to_send():
            transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.open:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self.ws.receive_data(bytes(self.buffer[: end + 4]))
            del self.buffer[: end + 4]
            assert self.ws.handshake_exc is None, self.ws.handshake_exc
            self.open = True
            self.extension = next(
                (e for e in self.ws.extensions if isinstance(e, PerMessageDeflate)), None
            )
            token = mint_chat_token(self.secret, self.user_id, self.chat_id)
            self.request(1, JoinRequest(self.chat_id, token))
        buffer, position, size = self.buffer, 0, len(self.buffer)
        while size - position >= 2:
            length, head = buffer[position + 1] & 0x7F, 2
            if length == 126:
                length, head = int.from_bytes(buffer[position + 2 : position + 4], "big"), 4
            elif length == 127:
                length, head = int.from_bytes(buffer[position + 2 : position + 10], "big"), 10
            if size - position < head + length:
                break
            flags = buffer[position]
            payload = bytes(buffer[position + head : position + head + length])
            position += head + length
            self.frame(flags & 0x0F, bool(flags & 0x40), payload)
        del buffer[:position]

    def frame(self, opcode: int, compressed: bool, payload: bytes) -> None:
        if opcode == Opcode.PING:
            self.write(Opcode.PONG, payload)
            return
        assert opcode == Opcode.TEXT, opcode  # the server sends no fragments
        if compressed:
            extension = self.extension
            assert extension is not None
            if extension.remote_no_context_takeover or self.decoder is None:
                self.decoder = zlib.decompressobj(wbits=-extension.remote_max_window_bits)
            payload = self.decoder.decompress(payload + _TAIL)
        if not self.joined.done() and payload.startswith(b'{"type":"ok","id":1,'):
            self.joined.set_result(None)
            return
        if payload.startswith(b'{"type":"error"'):
            raise RuntimeError(payload.decode())
        self.text(payload)

    def text(self, payload: bytes) -> None:
        """A text frame after the join's reply."""

    def request(self, request_id: int, request: Any) -> None:
        self.write(Opcode.TEXT, encode_request(request_id, request).encode())

    def write(self, opcode: Opcode, data: bytes) -> None:
        self.transport.write(Frame(opcode, data).serialize(mask=True))


class Reader(LeanClient):
    def __init__(self, expected: int, *args: Any) -> None:
        super().__init__(*args)
        self.expected, self.received = expected, 0
        self.done: asyncio.Future[tuple[int, float]] = asyncio.get_running_loop().create_future()

    def text(self, payload: bytes) -> None:
        if b'"message_posted"' in payload:
            self.received += 1
            if self.received == self.expected:
                self.done.set_result((self.received, time.monotonic()))
                self.transport.close()


class Sender(LeanClient):
    def __init__(self, posts: int, window: int, *args: Any) -> None:
        super().__init__(*args)
        self.posts, self.window = posts, window
        self.sent = self.acks = 0
        self.done: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def start(self) -> None:
        for _ in range(min(self.window, self.posts)):
            self.post()

    def post(self) -> None:
        self.sent += 1
        message_id = f"{self.user_id}-{self.sent}"
        self.request(
            self.sent + 1, PostMessageRequest(self.chat_id, message_id, f"post {message_id}")
        )

    def text(self, payload: bytes) -> None:
        if payload.startswith(b'{"type":"ok"'):
            self.acks += 1
            if self.sent < self.posts:
                self.post()
            elif self.acks == self.posts:
                self.done.set_result(time.monotonic())


async def open_client(client: LeanClient, address: str) -> None:
    """Connect ``client`` to ``address``; return once it has joined its chat."""
    host, port = address.rsplit(":", 1)
    await asyncio.get_running_loop().create_connection(lambda: client, host, int(port))
    await client.joined


async def readers(
    address: str, secret: str, first: int, count: int, chat: str, expected: int, deflate: bool
) -> None:
    clients = [
        Reader(expected, address, secret, f"r{n}", chat, deflate)
        for n in range(first, first + count)
    ]
    await asyncio.gather(*(open_client(client, address) for client in clients))
    print("ready", flush=True)
    finished = await asyncio.gather(*(client.done for client in clients))
    frames = sum(received for received, _ in finished)
    last = max(t for _, t in finished)
    print(json.dumps({"frames": frames, "last": last, "cpu": time.process_time()}), flush=True)


async def senders(
    address: str,
    secret: str,
    first: int,
    count: int,
    chats: int,
    posts: int,
    window: int,
    deflate: bool,
) -> None:
    clients = [
        Sender(posts, window, address, secret, f"s{n}", f"senders{n % chats}", deflate)
        for n in range(first, first + count)
    ]
    await asyncio.gather(*(open_client(client, address) for client in clients))
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    began = time.monotonic()
    for client in clients:
        client.start()
    last = max(await asyncio.gather(*(client.done for client in clients)))
    acks = sum(client.acks for client in clients)
    print(json.dumps({"acks": acks, "began": began, "last": last}), flush=True)


def main(argv: list[str]) -> None:
    mode, address, secret, *numbers = argv
    deflate = numbers.pop() == "deflate"
    if mode == "readers":
        first, count, chat, expected = int(numbers[0]), int(numbers[1]), numbers[2], int(numbers[3])
        asyncio.run(readers(address, secret, first, count, chat, expected, deflate))
    else:
        first, count, chats, posts, window = (int(n) for n in numbers)
        asyncio.run(senders(address, secret, first, count, chats, posts, window, deflate))


if __name__ == "__main__":
    main(sys.argv[1:])
