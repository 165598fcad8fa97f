"""The server side of the wire protocol: client frames in, reply and event frames out (pure).

A server opens every connection with one :func:`encode_hello` frame. It reads each
text frame with :func:`decode_request`, and answers it with exactly one
:func:`encode_reply` or :func:`encode_error` frame. It encodes each chat event once
with :func:`encode_event` and sends the same text to every member that should
receive it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from chats_store.chats.actions import MessagePosted, Resumption, ServerEvent
from chats_store.chats.commands import ChatReply, ChatRequest
from chats_store.chats.model import Message
from chats_store.errors import ProtocolError
from chats_store.protocol.frames import (
    FEATURES,
    MAX_FRAME_SIZE,
    PROTOCOL_VERSION,
    ErrorFrame,
    EventFrame,
    HelloFrame,
    OkFrame,
    ServerFrame,
    dumps,
    is_request_id,
    parse_request_frame,
    parse_server_frame,
    unstructure,
)
from chats_store.protocol.mapping import (
    event_from_wire,
    event_to_wire,
    reply_codec_of,
    write_message,
    write_posted,
)

__all__ = [
    "MESSAGE_OVERHEAD",
    "decode_event",
    "decode_request",
    "encode_error",
    "encode_event",
    "encode_hello",
    "encode_reply",
    "message_size_bound",
    "peek_request_id",
]

MESSAGE_OVERHEAD = 200
"""Bytes a message's JSON object takes besides its strings, at most: the keys, the
quotes, the punctuation, ``seq`` (up to 19 digits) and two timestamps (the longest
``repr`` of a float is 24 characters)."""


def decode_request(data: str | bytes) -> tuple[int, ChatRequest]:
    """The request id and domain request of a client frame.

    Raises :class:`~chats_store.errors.ProtocolError` for anything else: its
    ``request_id`` is set when the id could be read (answer with
    :func:`encode_error` then), and its ``close_code`` when the connection should
    be closed instead (binary 1003, not JSON 1007, too large 1009).
    Only the frame's shape is checked here; the server checks the values
    (content length, limits...) and refuses them with an ``error`` reply.
    """
    return parse_request_frame(data)


def encode_reply(request_id: int, result: ChatReply, *, event_frames: Sequence[str] = ()) -> str:
    """The ``ok`` frame answering request ``request_id`` with ``result``.

    ``result`` is of the reply type the request's kind declares
    (:data:`~chats_store.chats.commands.REQUEST_KINDS`; ``TypeError`` otherwise).
    ``event_frames``: the events of a :class:`~chats_store.chats.actions.Resumption`
    whose own ``events`` are empty, as :func:`encode_event` wrote them (a server's
    event log): they are put in the frame as they are, so that the text is the one
    the events would have given, without decoding them.
    """
    if type(result) is Message and not event_frames:
        written = write_message(request_id, result)
        if written is not None:
            return written
    frame: ServerFrame = OkFrame(request_id, unstructure(reply_codec_of(result).to_wire(result)))
    text = dumps(unstructure(frame, ServerFrame))
    if not event_frames:
        return text
    if not isinstance(result, Resumption) or result.events:
        raise TypeError("event_frames go with a resumption whose events are empty")
    empty = f'{{"type":"ok","id":{request_id},"result":{{"events":[]'
    if not text.startswith(empty):  # the resumption's events are written first
        raise AssertionError(f"unexpected resumption frame: {text[:80]!r}")
    return f"{empty[:-1]}{','.join(event_frames)}]{text[len(empty) :]}"


def encode_error(request_id: int | None, code: str, message: str) -> str:
    """The ``error`` frame refusing request ``request_id`` (None: its id was unreadable)."""
    frame: ServerFrame = ErrorFrame(request_id, str(code), message)
    return dumps(unstructure(frame, ServerFrame))


def encode_hello(server: str, features: Sequence[str] = FEATURES) -> str:
    """The ``hello`` frame a server sends first on every connection.

    ``server``: its software and version (``chats_store/0.1.0``); ``features``: the
    optional features it supports (default: every one this package speaks).
    """
    frame: ServerFrame = HelloFrame(server, PROTOCOL_VERSION, tuple(features))
    return dumps(unstructure(frame, ServerFrame))


def encode_event(event: ServerEvent, *, seq: int | None = None) -> str:
    """The ``event`` frame for ``event``; encode once, send the text to every recipient.

    ``seq`` overrides the event's own and is required for a
    :class:`~chats_store.chats.actions.RemovedFromChat` (which has none in the
    domain): give the seq of the membership change that removed the member.
    """
    if type(event) is MessagePosted:
        written = write_posted(event, event.seq if seq is None else seq)
        if written is not None:
            return written
    frame: ServerFrame = event_to_wire(event, seq)
    return dumps(unstructure(frame, ServerFrame))


def decode_event(text: str) -> ServerEvent:
    """The event of an ``event`` frame made by :func:`encode_event` (a server's event log).

    Raises :class:`~chats_store.errors.ProtocolError` for any other text.
    """
    frame = parse_server_frame(text)
    if not isinstance(frame, EventFrame):
        raise ProtocolError(f"not an event frame: {text[:80]!r}")
    return event_from_wire(frame)


def peek_request_id(data: str | bytes) -> int | None:
    """The ``id`` of a request frame, read without checking anything else (None if none).

    For answering a request the server will not process (rate limiting): only the
    JSON is parsed, nothing is validated or acted upon.
    """
    if not isinstance(data, str) or len(data) > MAX_FRAME_SIZE:
        return None
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return None
    value = obj.get("id") if isinstance(obj, dict) else None
    return value if is_request_id(value) else None


def message_size_bound(message: Message) -> int:
    """At most the bytes ``message`` takes in a frame, computed without encoding it.

    Frames are ASCII (:func:`~chats_store.protocol.frames.dumps` escapes every other
    character): a character of a string takes at most 12 bytes (one outside the
    Basic Multilingual Plane is two ``\\uXXXX`` escapes), and the rest of the object
    at most :data:`MESSAGE_OVERHEAD`. A server adds the bounds of the messages of a
    page to keep the page under its frame budget.
    """
    characters = (
        len(message.id) + len(message.chat_id) + len(message.author_id) + len(message.content)
    )
    return 12 * characters + MESSAGE_OVERHEAD
