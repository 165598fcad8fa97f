"""The frames the server sends, serialized once for all their recipients, and the
compression policy that makes that possible.

**Compression policy.** The server negotiates permessage-deflate (RFC 7692) when a
client offers it, always with ``server_no_context_takeover`` and
``client_no_context_takeover`` (:func:`deflate_extension`): each message is
compressed on its own. So the bytes of a frame on the wire depend on the frame and
on the negotiated window size only, never on what that connection was sent before:
a push is compressed and framed **once** and the same bytes are written to every
recipient (:class:`WireFrame`), and an idle connection keeps no compressor or
decompressor. A frame under :data:`COMPRESS_FROM` bytes (a chat message's push, an
acknowledgement) is sent uncompressed, as RFC 7692 lets a sender do with any
message: deflated alone it would shrink by a third at most, a hundred-odd bytes, and
every recipient would set up a decompressor for it.
"""

from __future__ import annotations

from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame, Opcode

__all__ = ["COMPRESS_FROM", "WireFrame", "deflate_extension"]

COMPRESS_FROM = 512
"""Frames of fewer bytes go uncompressed, even where permessage-deflate was negotiated."""


def deflate_extension() -> ServerPerMessageDeflateFactory:
    """The server's permessage-deflate: no context takeover either way (see the module)."""
    return ServerPerMessageDeflateFactory(
        server_no_context_takeover=True, client_no_context_takeover=True
    )


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

    def serialized(self, deflate: PerMessageDeflate | None) -> bytes:
        """The frame's bytes for a connection that negotiated ``deflate`` (None: no
        compression), unmasked as a server sends them."""
        if deflate is None or len(self.text) < COMPRESS_FROM:
            if self._plain is None:
                self._plain = Frame(Opcode.TEXT, self.text.encode()).serialize(mask=False)
            return self._plain
        # Without context takeover the encoder starts afresh for each message, so
        # any connection's extension with these window bits makes the same bytes.
        assert deflate.local_no_context_takeover, "negotiated by deflate_extension only"
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
