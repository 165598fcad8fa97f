"""The wire protocol of ``chats_store``, sans I/O (the project's protocol documentation).

Text in, typed values out, and back; no sockets, no asyncio. The client side is
:class:`ClientProtocol`; the server side is :func:`encode_hello`, :func:`decode_request`,
:func:`encode_reply`, :func:`encode_error` and :func:`encode_event`. Frames that
break the protocol raise :class:`~chats_store.errors.ProtocolError`.
:func:`chats_store.protocol.schema.frame_schema` is the published JSON Schema of
every frame (not imported here: it reads a file, and this package is pure).

Layering: this package imports only the standard library, attrs, cattrs, msgspec and the
pure modules ``errors``, ``tokens``, ``chats.model``, ``chats.actions`` and
``chats.commands``.
"""

from chats_store.errors import ProtocolError
from chats_store.protocol.client import (
    ClientProtocol,
    EventReceived,
    ReceivedItem,
    ReplyReceived,
    encode_request,
)
from chats_store.protocol.frames import (
    BEARER_SUBPROTOCOL_PREFIX,
    FEATURES,
    MAX_FRAME_SIZE,
    MAX_REQUEST_ID,
    MAX_SERVER_FRAME_SIZE,
    PROTOCOL_VERSION,
)
from chats_store.protocol.server import (
    decode_event,
    decode_request,
    encode_error,
    encode_event,
    encode_hello,
    encode_reply,
    peek_request_id,
)

__all__ = [
    "BEARER_SUBPROTOCOL_PREFIX",
    "FEATURES",
    "MAX_FRAME_SIZE",
    "MAX_REQUEST_ID",
    "MAX_SERVER_FRAME_SIZE",
    "PROTOCOL_VERSION",
    "ClientProtocol",
    "EventReceived",
    "ProtocolError",
    "ReceivedItem",
    "ReplyReceived",
    "decode_event",
    "decode_request",
    "encode_error",
    "encode_event",
    "encode_hello",
    "encode_reply",
    "encode_request",
    "peek_request_id",
]
