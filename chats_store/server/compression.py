"""How the reference server compresses its frames: permessage-deflate, with a policy.

A client that offers permessage-deflate (RFC 7692; browsers and ``websockets``
do) gets it, on the server's terms (:class:`Compression`):

* **no context outlives a message**: the server negotiates
  ``server_no_context_takeover`` and ``client_no_context_takeover``, so neither side
  keeps a deflate window and its tables between messages. An idle connection holds
  no zlib state, and the bytes of a compressed frame depend only on the frame and
  the negotiated window: the server compresses a push once for all its recipients
  (:class:`~chats_store.server.wire.WireFrame`);
* **small messages go uncompressed**: a frame shorter than ``min_size`` bytes is
  sent as it is (RFC 7692 lets a sender leave any message uncompressed: the RSV1 bit
  is unset). Deflated alone, a chat message's push or an acknowledgement would
  shrink by a third at most, and every recipient would set up a decompressor for it.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from websockets.extensions.base import Extension, ServerExtensionFactory
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.typing import ExtensionParameter

__all__ = ["Compression", "NegotiatedDeflate"]


@attrs.frozen
class Compression:
    """The server's permessage-deflate policy (see the module's docstring).

    ``min_size``: frames shorter than this many bytes are sent uncompressed (0:
    every frame compressed). ``window_bits`` (9 to 15) and ``memory_level`` (1 to
    9): zlib's window and memory settings, both directions. Raises ``ValueError``
    for a value out of range.
    """

    min_size: int = attrs.field(default=512, validator=attrs.validators.ge(0))
    window_bits: int = attrs.field(
        default=12, validator=[attrs.validators.ge(9), attrs.validators.le(15)]
    )
    memory_level: int = attrs.field(
        default=5, validator=[attrs.validators.ge(1), attrs.validators.le(9)]
    )

    def extensions(self) -> list[ServerExtensionFactory]:
        """The extension factories to give ``websockets.serve``."""
        return [_PolicyFactory(self)]


class NegotiatedDeflate(PerMessageDeflate):
    """permessage-deflate as the server negotiated it with one client: no context
    takeover either way, and the policy's ``min_size``."""

    def __init__(self, negotiated: PerMessageDeflate, min_size: int) -> None:
        super().__init__(
            negotiated.remote_no_context_takeover,
            negotiated.local_no_context_takeover,
            negotiated.remote_max_window_bits,
            negotiated.local_max_window_bits,
            negotiated.compress_settings,
        )
        self.min_size = min_size


class _PolicyFactory(ServerPerMessageDeflateFactory):
    """``websockets``' negotiation of permessage-deflate, on the policy's terms."""

    def __init__(self, policy: Compression) -> None:
        super().__init__(
            server_no_context_takeover=True,
            client_no_context_takeover=True,
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
        response, negotiated = super().process_request_params(params, accepted_extensions)
        return response, NegotiatedDeflate(negotiated, self.min_size)
