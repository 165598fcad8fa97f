"""The frames the server sends, serialized once for all their recipients.

The server's compression policy (:mod:`chats_store.server.compression`) keeps no
compression context between messages, so the bytes of a frame on the wire depend
on the frame and on the negotiated settings only, never on what that connection was
sent before: a push is compressed and framed **once** and the same bytes are
written to every recipient (:class:`WireFrame`).
"""

from __future__ import annotations

from websockets.frames import Frame, Opcode

from chats_store.server.compression import NegotiatedDeflate

__all__ = ["WireFrame"]


class WireFrame:
    """A text frame to send: its ``text`` (ASCII, as every frame the server encodes),
    and its serialized bytes, made on first use for each encoding and shared by every
    connection that uses it."""

    __slots__ = ("_deflated", "_plain", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._plain: bytes | None = None
        self._deflated: dict[int, bytes] | None = None
        """Compressed frames by the negotiated window bits (one in practice)."""

    def serialized(self, deflate: NegotiatedDeflate | None) -> bytes:
        """The frame's bytes for a connection that negotiated ``deflate`` (None: no
        compression), unmasked as a server sends them: uncompressed under the
        policy's ``min_size``."""
        if deflate is None or len(self.text) < deflate.min_size:
            if self._plain is None:
                self._plain = Frame(Opcode.TEXT, self.text.encode()).serialize(mask=False)
            return self._plain
        # Without context takeover the encoder starts afresh for each message, so
        # any connection's extension with these window bits makes the same bytes.
        assert deflate.local_no_context_takeover, "the policy negotiates no context takeover"
        if self._deflated is None:
            self._deflated = {}
        bits = deflate.local_max_window_bits
        data = self._deflated.get(bits)
        if data is None:
            frame = Frame(Opcode.TEXT, self.text.encode())
            data = self._deflated[bits] = frame.serialize(mask=False, extensions=[deflate])
        return data

    def __repr__(self) -> str:
        return f"WireFrame({self.text[:40]!r}, {len(self.text)} bytes)"
