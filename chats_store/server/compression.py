"""How the reference server compresses its frames: permessage-deflate, with a policy.

A client that offers permessage-deflate (RFC 7692; browsers and ``websockets``
do) gets it, on the server's terms (:class:`Compression`):

* **small messages go uncompressed**: a frame shorter than ``min_size`` bytes is
  sent as it is (RFC 7692 lets a sender leave any message uncompressed; the peer
  sees the RSV1 bit unset). Most of a chat's traffic is small pushes and replies:
  compressing each for each recipient costs CPU per delivery and saves a few
  dozen bytes;
* **no context outlives a message** (unless ``context_takeover``): the server
  negotiates ``server_no_context_takeover`` and ``client_no_context_takeover``,
  so neither side keeps a deflate window and its tables between messages. An idle
  connection holds no zlib state; a large reply (a join's history, a resume's
  catch-up) is compressed on its own, where deflate finds what repeats anyway.

``Compression(min_size=0, context_takeover=True)`` is what ``websockets`` does by
default (every message compressed, a window kept per direction per connection).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from websockets.extensions.base import Extension, ServerExtensionFactory
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame, Opcode
from websockets.typing import ExtensionParameter

__all__ = ["Compression"]


@attrs.frozen
class Compression:
    """The server's permessage-deflate policy (see the module's docstring).

    ``min_size``: messages shorter than this many bytes are sent uncompressed (0:
    every message compressed). ``window_bits`` (9 to 15) and ``memory_level`` (1 to
    9): zlib's window and memory settings for what is compressed, both directions.
    ``context_takeover``: keep each direction's compression context from one
    message to the next (better ratios for a stream of similar messages; about
    30 KiB of zlib state per connection at the default settings, for as long as it
    is open). Raises ``ValueError`` for a value out of range.
    """

    min_size: int = attrs.field(default=1024, validator=attrs.validators.ge(0))
    window_bits: int = attrs.field(
        default=12, validator=[attrs.validators.ge(9), attrs.validators.le(15)]
    )
    memory_level: int = attrs.field(
        default=5, validator=[attrs.validators.ge(1), attrs.validators.le(9)]
    )
    context_takeover: bool = False

    def extensions(self) -> list[ServerExtensionFactory]:
        """The extension factories to give ``websockets.serve``."""
        return [_PolicyFactory(self)]


class _PolicyFactory(ServerPerMessageDeflateFactory):
    """``websockets``' negotiation of permessage-deflate, making :class:`_PolicyDeflate`."""

    def __init__(self, policy: Compression) -> None:
        super().__init__(
            server_no_context_takeover=not policy.context_takeover,
            client_no_context_takeover=not policy.context_takeover,
            server_max_window_bits=policy.window_bits,
            client_max_window_bits=policy.window_bits,
            compress_settings={"memLevel": policy.memory_level},
        )
        self.min_size = policy.min_size

    def process_request_params(
        self,
        params: Sequence[ExtensionParameter],
        accepted_extensions: Sequence[Extension],
    ) -> tuple[list[ExtensionParameter], PerMessageDeflate]:
        # websockets' negotiation, then the same settings with the size policy (with
        # context takeover, the first object's zlib state is dropped at once).
        response, negotiated = super().process_request_params(params, accepted_extensions)
        return response, _PolicyDeflate(negotiated, self.min_size)


class _PolicyDeflate(PerMessageDeflate):
    """The negotiated permessage-deflate, leaving whole messages under ``min_size`` as
    they are (a fragmented message is compressed: its size is not known up front)."""

    def __init__(self, negotiated: PerMessageDeflate, min_size: int) -> None:
        super().__init__(
            negotiated.remote_no_context_takeover,
            negotiated.local_no_context_takeover,
            negotiated.remote_max_window_bits,
            negotiated.local_max_window_bits,
            negotiated.compress_settings,
        )
        self.min_size = min_size

    def encode(self, frame: Frame) -> Frame:
        if frame.fin and frame.opcode is not Opcode.CONT and len(frame.data) < self.min_size:
            return frame  # control frames too: they are never compressed, nor longer than 125
        return super().encode(frame)
