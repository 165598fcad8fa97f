"""The wire model: the frames' own classes, and the private cattrs converter (pure).

A value whose JSON shape is the domain's own travels as the domain class: a
request is ``{"type": tag, "id": n, **fields}`` of its class in
:data:`~chats_store.chats.commands.REQUEST_KINDS`, a restriction is a
:class:`~chats_store.chats.model.Restriction`. The classes here exist where the
shapes differ: a message on the wire has no client ``status`` (and must have a
``seq``), so snapshots, history pages and resumptions hold :class:`WireMessage`;
event bodies are tagged by ``kind`` apart from their frame; the server's frames
wrap a result or an error. ``chats_store.protocol.mapping`` converts between
these and the domain.

Every frame is a JSON object tagged with ``type``; event bodies are tagged with
``kind``. The converter is strict: a string is never taken for a number or the
other way round, ``true`` is not an integer, a list is required where a list is
expected, and every failure becomes a :class:`~chats_store.errors.ProtocolError`.
Unknown extra fields are ignored, so a newer peer may add fields.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Collection, Mapping
from types import NoneType, UnionType
from typing import Any, Generic, Literal, NoReturn, TypeVar, Union, get_args, get_origin

import attrs
import cattrs
import msgspec
from cattrs.strategies import configure_tagged_union
from cattrs.v import format_exception

from chats_store.chats.actions import ModerationMeasure
from chats_store.chats.commands import REQUEST_KINDS, ChatRequest, PostMessageRequest, kind_of
from chats_store.chats.model import Restriction
from chats_store.errors import ErrorCode, ProtocolError

__all__ = [
    "BEARER_SUBPROTOCOL_PREFIX",
    "FEATURES",
    "MAX_FRAME_SIZE",
    "MAX_REQUEST_ID",
    "MAX_SERVER_FRAME_SIZE",
    "PROTOCOL_VERSION",
    "ErrorFrame",
    "EventFrame",
    "HelloFrame",
    "MembersAmountChangedBody",
    "MessageEditedBody",
    "MessagePostedBody",
    "MessageRemovedBody",
    "OkFrame",
    "OkJson",
    "OwnMetadataChangedBody",
    "OwnRestrictionsChangedBody",
    "RemovedFromChatBody",
    "ServerFrame",
    "WireEvent",
    "WireHistory",
    "WireMessage",
    "WireResumption",
    "WireSnapshot",
    "dumps",
    "ok_frame_id",
    "parse_request_frame",
    "parse_server_frame",
    "read_frame",
    "read_ok_result",
    "request_data",
    "structure",
    "unstructure",
]

PROTOCOL_VERSION = "chats_store.v1"
"""The WebSocket subprotocol a client must offer (``Sec-WebSocket-Protocol``)."""

BEARER_SUBPROTOCOL_PREFIX = "chats_store.bearer."
"""A browser offers its session token as the subprotocol ``chats_store.bearer.<token>``
next to :data:`PROTOCOL_VERSION` (its WebSocket API cannot set ``Authorization``)."""

MAX_FRAME_SIZE = 64 * 1024
"""Largest frame a client may send, in bytes of UTF-8 (the server closes with 1009)."""

MAX_SERVER_FRAME_SIZE = 4 * 1024 * 1024
"""Largest frame the server sends: the largest join snapshot or history page fits in it
(200 messages with 128-character ids and 256-character content, all escaped, < 2 MiB)."""

MAX_REQUEST_ID = 2**53 - 1
"""Request ids are integers from 0 to this (exact in every JSON implementation)."""


# Values inside frames ------------------------------------------------------------


@attrs.frozen
class WireMessage:
    """A confirmed message: a :class:`~chats_store.chats.model.Message` without the
    client's ``status``, its ``seq`` required."""

    id: str
    chat_id: str
    author_id: str
    content: str
    seq: int
    created_at: float
    edited_at: float | None = None


@attrs.frozen
class WireSnapshot:
    """A :class:`~chats_store.chats.actions.ChatSnapshot` whose messages are wire messages."""

    messages: tuple[WireMessage, ...]
    members_amount: int
    member_metadata: dict[str, str]
    restrictions: tuple[Restriction, ...]
    last_seq: int
    membership: str | None = attrs.field(default=None, repr=False)
    epoch: str | None = None
    server_time: float | None = None


@attrs.frozen
class WireHistory:
    """A history page: ``{"messages": [...]}`` on the wire, a tuple of messages in the domain."""

    messages: tuple[WireMessage, ...]


# Event bodies, tagged by "kind" -------------------------------------------------------
# The frame around a body holds the chat id and the seq; the domain's events hold them.


@attrs.frozen
class MessagePostedBody:
    message: WireMessage


@attrs.frozen
class MessageEditedBody:
    message: WireMessage


@attrs.frozen
class MessageRemovedBody:
    message_id: str


@attrs.frozen
class MembersAmountChangedBody:
    members_amount: int


@attrs.frozen
class OwnRestrictionsChangedBody:
    restrictions: tuple[Restriction, ...]


@attrs.frozen
class OwnMetadataChangedBody:
    member_metadata: dict[str, str]


@attrs.frozen
class RemovedFromChatBody:
    reason: Literal["kicked", "blocked"]
    detail: str | None = None


WireEvent = (
    MessagePostedBody
    | MessageEditedBody
    | MessageRemovedBody
    | MembersAmountChangedBody
    | OwnRestrictionsChangedBody
    | OwnMetadataChangedBody
    | RemovedFromChatBody
)

EVENT_TAGS: Mapping[type, str] = {
    MessagePostedBody: "message_posted",
    MessageEditedBody: "message_edited",
    MessageRemovedBody: "message_removed",
    MembersAmountChangedBody: "members_amount_changed",
    OwnRestrictionsChangedBody: "own_restrictions_changed",
    OwnMetadataChangedBody: "own_metadata_changed",
    RemovedFromChatBody: "removed_from_chat",
}


# Server frames (server -> client), tagged by "type" -----------------------------------


@attrs.frozen
class OkFrame:
    """A successful reply; ``result`` is plain JSON, read by the request's expected type."""

    id: int
    result: Any


@attrs.frozen
class ErrorFrame:
    """A refused request; ``id`` is None when the request's id could not be read."""

    id: int | None
    code: str
    message: str


@attrs.frozen
class EventFrame:
    chat_id: str
    seq: int
    event: WireEvent


@attrs.frozen
class HelloFrame:
    """The server's first frame on every connection: who it is and what it speaks.

    ``server``: the software and its version (``chats_store/0.1.0``), for logs and bug
    reports, not for deciding anything; ``protocol``: :data:`PROTOCOL_VERSION`;
    ``features``: the optional features of the protocol the server supports
    (:data:`FEATURES` for this one; a client ignores names it does not know).
    """

    server: str
    protocol: str
    features: tuple[str, ...]


ServerFrame = OkFrame | ErrorFrame | EventFrame | HelloFrame

SERVER_TAGS: Mapping[type, str] = {
    OkFrame: "ok",
    ErrorFrame: "error",
    EventFrame: "event",
    HelloFrame: "hello",
}

FEATURES = ("resume", "renew", "epoch")
"""The optional features of ``chats_store.v1`` this package speaks, as a ``hello``
names them: the requests ``resume`` and ``renew``, and the ``epoch`` fields."""


@attrs.frozen
class WireResumption:
    """The result of a ``resume``: each of ``events`` is an event frame, as pushed.

    Written with its ``"type": "event"`` tag (so each is byte for byte the frame a
    push would have been); read as an :class:`EventFrame` (the tag is ignored).
    """

    events: tuple[EventFrame, ...]
    snapshot: WireSnapshot | None
    members_amount: int
    member_metadata: dict[str, str]
    restrictions: tuple[Restriction, ...]
    last_seq: int
    membership: str = attrs.field(repr=False)
    epoch: str | None = None
    server_time: float | None = None


# The converter ----------------------------------------------------------------------


class _MistypedError(ValueError):
    """Raised by the strict hooks; turned into a ProtocolError with the field's path."""


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _structure_str(value: object, _: type) -> str:
    if not isinstance(value, str):
        raise _MistypedError(f"expected a string, got {_kind(value)}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _MistypedError("the string holds an unpaired surrogate") from None
    return value


def _structure_int(value: object, _: type) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _MistypedError(f"expected an integer, got {_kind(value)}")
    return value


def _structure_float(value: object, _: type) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _MistypedError(f"expected a number, got {_kind(value)}")
    return float(value)


def _structure_any(value: object, _: type) -> object:
    return value


def _structure_null(value: object, _: type) -> None:
    if value is not None:
        raise _MistypedError(f"expected null, got {_kind(value)}")


def _is_variadic_tuple(kind: Any) -> bool:
    args = get_args(kind)
    return getattr(kind, "__origin__", None) is tuple and len(args) == 2 and args[1] is Ellipsis


def _tuple_hook(kind: Any) -> Callable[[object, type], tuple[Any, ...]]:
    item = get_args(kind)[0]

    def structure_tuple(value: object, _: type) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise _MistypedError(f"expected a list, got {_kind(value)}")
        if item is WireMessage:
            fast = _wire_messages(value)
            if fast is not None:
                return fast
        if item is EventFrame:  # a resumption's: skip the kinds of a newer server
            value = [element for element in value if not _of_unknown_kind(element)]
        return tuple(_converter.structure(element, item) for element in value)

    return structure_tuple


def _valid_text(value: object) -> bool:
    """What :func:`_structure_str` accepts (without building its error)."""
    if type(value) is not str:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _wire_messages(value: list[Any]) -> tuple[WireMessage, ...] | None:
    """The fast path of a list of messages (a snapshot, a history page): 10,000 at a join.

    It accepts exactly what the converter accepts for well-formed input (the same
    checks: exact JSON types, strings encodable as UTF-8, numbers not booleans,
    extra keys ignored) and builds the :class:`WireMessage`s without cattrs' generic
    machinery. Anything else (a missing key, a wrong type) gives None, and the
    caller runs the converter, which then reports the error with its path.
    """
    messages: list[WireMessage] = []
    append = messages.append
    new = WireMessage
    for entry in value:
        if type(entry) is not dict:
            return None
        try:
            message_id = entry["id"]
            chat_id = entry["chat_id"]
            author_id = entry["author_id"]
            content = entry["content"]
            seq = entry["seq"]
            created_at = entry["created_at"]
        except KeyError:
            return None
        edited_at = entry.get("edited_at")
        if (
            type(message_id) is not str
            or type(chat_id) is not str
            or type(author_id) is not str
            or type(content) is not str
            or type(seq) is not int
        ):
            return None
        ascii_only = (
            message_id.isascii() and chat_id.isascii() and author_id.isascii()
        ) and content.isascii()
        if not ascii_only and not (
            _valid_text(message_id)
            and _valid_text(chat_id)
            and _valid_text(author_id)
            and _valid_text(content)
        ):
            return None
        kind = type(created_at)
        if kind is not float and kind is not int:
            return None
        if edited_at is not None:
            kind = type(edited_at)
            if kind is not float and kind is not int:
                return None
            edited_at = float(edited_at)
        append(new(message_id, chat_id, author_id, content, seq, float(created_at), edited_at))
    return tuple(messages)


def _structure_str_dict(value: object, _: type) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _MistypedError(f"expected an object, got {_kind(value)}")
    for key, item in value.items():
        _structure_str(key, str)
        if not isinstance(item, str):
            raise _MistypedError(f"expected string values, got {_kind(item)} at key {key!r}")
        _structure_str(item, str)
    return dict(value)


def _build_converter() -> cattrs.Converter:
    converter = cattrs.Converter(detailed_validation=True)
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook(Any, _structure_any)
    converter.register_structure_hook(NoneType, _structure_null)
    converter.register_structure_hook_func(lambda kind: kind == dict[str, str], _structure_str_dict)
    converter.register_structure_hook_factory(_is_variadic_tuple, _tuple_hook)
    # Inner unions first: the hooks of the outer ones are built from them.
    configure_tagged_union(
        WireEvent, converter, tag_generator=EVENT_TAGS.__getitem__, tag_name="kind"
    )
    configure_tagged_union(
        ServerFrame, converter, tag_generator=SERVER_TAGS.__getitem__, tag_name="type"
    )
    converter.register_unstructure_hook(WireResumption, _resumption_unstructure(converter))
    return converter


def _resumption_unstructure(converter: cattrs.Converter) -> Callable[[WireResumption], Any]:
    default = converter.gen_unstructure_attrs_fromdict(WireResumption)

    def unstructure_resumption(value: WireResumption) -> Any:
        data = default(value)
        events = []
        for frame in value.events:
            event = _tag_first(converter.unstructure(frame, ServerFrame), "type")
            event["event"] = _tag_first(event["event"], "kind")
            events.append(event)
        data["events"] = events
        return data

    return unstructure_resumption


_converter = _build_converter()

T = TypeVar("T")


def _format_exception(error: BaseException, kind: type | None) -> str:
    if isinstance(error, _MistypedError):
        return str(error)
    union = kind is not None and get_origin(kind) in (Union, UnionType)
    if isinstance(error, KeyError):
        if union:
            return f"missing, or not an object with a known 'kind' ({error.args[0]!r})"
        return "required field missing"
    if get_origin(kind) is Literal:
        return f"expected one of {', '.join(repr(a) for a in get_args(kind))}"
    if union:
        return "expected an object with a known 'kind'"
    return format_exception(error, kind)


def _describe(error: Exception) -> str:
    if isinstance(error, cattrs.BaseValidationError):
        messages = cattrs.transform_error(error, path="frame", format_exception=_format_exception)
        return "; ".join(messages)
    return _format_exception(error, None)


def structure(value: object, kind: type[T] | Any, request_id: int | None = None) -> T:
    """``value`` (parsed JSON) as an instance of ``kind``, or a :class:`ProtocolError`."""
    try:
        result: T = _converter.structure(value, kind)
    except Exception as error:  # cattrs reports through several exception types
        raise ProtocolError(
            f"malformed frame: {_describe(error)}",
            code=ErrorCode.INVALID_FRAME,
            request_id=request_id,
        ) from None
    return result


def unstructure(value: object, kind: Any = None) -> Any:
    """``value`` (a wire class or a union of them) as plain JSON data, tags included."""
    return _converter.unstructure(value, unstructure_as=kind)


def _tag_first(data: Any, tag: str) -> Any:
    if isinstance(data, dict) and tag in data:
        return {tag: data[tag], **{k: v for k, v in data.items() if k != tag}}
    return data


def dumps(data: object) -> str:
    """Compact JSON text; ASCII only, so any string the server holds can be sent.

    The ``type`` tag (and an event's ``kind``) is written first, for people
    reading frames in logs.
    """
    data = _tag_first(data, "type")
    if isinstance(data, dict) and "event" in data:
        data["event"] = _tag_first(data["event"], "kind")
    return json.dumps(data, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


_SERVER_TYPES = tuple(SERVER_TAGS.values())


# The fast path of the large frames ---------------------------------------------------


R = TypeVar("R")
F = TypeVar("F")

_OK_FRAME_START = re.compile(r'\{"type":"ok","id":(0|[1-9][0-9]{0,15}),"result":')


def ok_frame_id(data: str | bytes) -> int | None:
    """The id of an ``ok`` frame that starts as :func:`dumps` writes one
    (``{"type":"ok","id":7,"result":``), read from that start alone; else None.

    For choosing the reader of the request's reply before reading the frame:
    the reader must then read it all, and check the id it reads.
    """
    if not isinstance(data, str):
        return None
    start = _OK_FRAME_START.match(data)
    return None if start is None else int(start.group(1))


class OkJson(msgspec.Struct, Generic[R], forbid_unknown_fields=True, frozen=True):
    """An ``ok`` frame as msgspec reads it: the fields a reply's reader knows, only."""

    type: Literal["ok"]
    id: int
    result: R


def read_ok_result(
    decoder: msgspec.json.Decoder[OkJson[R]], data: str | bytes, request_id: int
) -> R | None:
    """The result of the ``ok`` frame ``data`` to request ``request_id``, read by
    ``decoder`` (msgspec, strict, its structs forbidding unknown fields); None when
    it does not read, or answers another request.

    The fast path of the large frames. Where it reads, it reads what the converter
    reads from the same text: msgspec takes the same JSON types (no number from a
    string, no integer from ``true``, a list where a list is expected), refuses lone
    surrogates and numbers beyond a 64-bit float, and, with no field unknown to its
    structs, checks every value of the frame. Where it does not (an unknown field, a
    missing or mistyped one, text that is not JSON), the caller takes the general
    path, which reports the error with its path or ignores what it may.
    """
    frame = read_frame(decoder, data)
    return None if frame is None or frame.id != request_id else frame.result


def read_frame(decoder: msgspec.json.Decoder[F], data: str | bytes) -> F | None:
    """The server's frame ``data`` as ``decoder`` reads it (strict, its structs
    forbidding unknown fields: see :func:`read_ok_result`); None where it does not
    read. Raises :class:`ProtocolError` for a frame over the size limit, as the
    general path does."""
    text = _check_size(data, MAX_SERVER_FRAME_SIZE)
    try:
        return decoder.decode(text)
    except (msgspec.DecodeError, UnicodeEncodeError, RecursionError):
        # DecodeError: ValidationError too; UnicodeEncodeError: a lone surrogate in the text
        return None


# Parsing text -----------------------------------------------------------------------


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not allowed in a frame")


def _finite_float(text: str) -> float:
    """A JSON number with a fraction or an exponent, refused beyond a 64-bit float's range.

    Python reads ``1e400`` as infinity, which JSON has no value for (and which breaks
    arithmetic later, far from the frame): such a number does not fit the protocol.
    """
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:32]} is beyond the range of a 64-bit float")
    return value


def _check_size(data: str | bytes, limit: int) -> str:
    if isinstance(data, bytes | bytearray | memoryview):
        raise ProtocolError(
            "binary frames are not part of the protocol; send JSON in text frames",
            code=ErrorCode.INVALID_FRAME,
            close_code=1003,
        )
    if not isinstance(data, str):
        raise ProtocolError(
            f"a frame must be text, not {type(data).__name__}", code=ErrorCode.INVALID_FRAME
        )
    size = len(data)
    if size > limit or (
        size * 4 > limit
        and not data.isascii()  # an ASCII character is a byte
        and len(data.encode("utf-8", "surrogatepass")) > limit
    ):
        raise ProtocolError(
            f"the frame is larger than the limit of {limit} bytes",
            code=ErrorCode.FRAME_TOO_LARGE,
            close_code=1009,
        )
    return data


def _load_object(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as error:
        raise ProtocolError(
            f"the frame is not valid JSON ({error})", code=ErrorCode.INVALID_JSON, close_code=1007
        ) from None
    if not isinstance(data, dict):
        raise ProtocolError(
            f"a frame must be a JSON object, not {_kind(data)}", code=ErrorCode.INVALID_FRAME
        )
    return data


def _tag_of(data: dict[str, Any], known: Collection[str], request_id: int | None) -> str:
    tag = data.get("type")
    if not isinstance(tag, str):
        raise ProtocolError(
            "a frame needs a string field 'type'",
            code=ErrorCode.INVALID_FRAME,
            request_id=request_id,
        )
    if tag not in known:
        raise ProtocolError(
            f"unknown frame type {tag!r}; expected one of {', '.join(known)}",
            code=ErrorCode.UNKNOWN_REQUEST,
            request_id=request_id,
        )
    return tag


def is_request_id(value: object) -> bool:
    """Whether ``value`` may be a request's id: an integer (not a bool) from 0 to
    :data:`MAX_REQUEST_ID`."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_REQUEST_ID


def _readable_id(data: dict[str, Any]) -> int | None:
    value = data.get("id")
    return value if is_request_id(value) else None


def request_data(request_id: int, request: ChatRequest) -> dict[str, Any]:
    """The JSON object of the frame that carries ``request`` with id ``request_id``."""
    return {"type": kind_of(request).tag, "id": request_id, **_converter.unstructure(request)}


def parse_request_frame(data: str | bytes) -> tuple[int, ChatRequest]:
    """A client's frame as its id and request; :class:`ProtocolError` when it is not one."""
    text = _check_size(data, MAX_FRAME_SIZE)
    post = _read_post(text)
    if post is not None:
        return post
    obj = _load_object(text)
    request_id = _readable_id(obj)
    tag = _tag_of(obj, REQUEST_KINDS, request_id)
    if request_id is None:
        raise ProtocolError(
            f"a request needs an integer 'id' from 0 to {MAX_REQUEST_ID}",
            code=ErrorCode.INVALID_FRAME,
        )
    if tag == "moderate":
        _check_measure(obj.get("measure"), request_id)
    request: ChatRequest = structure(obj, REQUEST_KINDS[tag].request, request_id)
    return request_id, request


class _PostJson(msgspec.Struct, forbid_unknown_fields=True, frozen=True, gc=False):
    """A ``post`` request, the most frequent frame a server reads, as msgspec reads it."""

    type: Literal["post"]
    id: int
    chat_id: str
    message_id: str
    content: str


_POST_FRAME = msgspec.json.Decoder(_PostJson)
_POST_FRAME_START = '{"type":"post",'


def _read_post(text: str) -> tuple[int, PostMessageRequest] | None:
    """The id and request of a ``post`` frame that starts as clients write one, read
    as the general path reads it (see :func:`read_ok_result` for why msgspec reads
    what the converter reads); None where this does not read it, and the general
    path reads it or says what is wrong."""
    if not text.startswith(_POST_FRAME_START):
        return None
    try:
        post = _POST_FRAME.decode(text)
    except (msgspec.DecodeError, UnicodeEncodeError):  # UnicodeEncodeError: a lone surrogate
        return None
    if not is_request_id(post.id):
        return None
    return post.id, PostMessageRequest(post.chat_id, post.message_id, post.content)


_MEASURES = get_args(ModerationMeasure)


def _check_measure(measure: object, request_id: int) -> None:
    """A ``measure`` string this version does not know is its own error (measures may
    grow within the protocol's version: a client can tell an older server by it)."""
    if isinstance(measure, str) and measure not in _MEASURES:
        raise ProtocolError(
            f"unknown moderation measure {measure[:40]!r}; this server knows "
            f"{', '.join(_MEASURES)}",
            code=ErrorCode.UNKNOWN_MEASURE,
            request_id=request_id,
        )


_EVENT_KINDS = frozenset(EVENT_TAGS.values())


def _of_unknown_kind(obj: object) -> bool:
    """Whether ``obj`` is an event frame of a kind this version does not know."""
    if not isinstance(obj, dict):
        return False
    event = obj.get("event")
    kind = event.get("kind") if isinstance(event, dict) else None
    return isinstance(kind, str) and kind not in _EVENT_KINDS


def parse_server_frame(data: str | bytes) -> ServerFrame | None:
    """A server's frame as a DTO; :class:`ProtocolError` when it is not one.

    None for a frame a newer server may send and this version ignores: a ``type``
    it does not know, or an ``event`` of a ``kind`` it does not know (the
    protocol's rule of forward compatibility).
    """
    text = _check_size(data, MAX_SERVER_FRAME_SIZE)
    obj = _load_object(text)
    tag = obj.get("type")
    if isinstance(tag, str) and tag not in _SERVER_TYPES:
        return None
    if tag == "event" and _of_unknown_kind(obj):
        return None
    _tag_of(obj, _SERVER_TYPES, None)
    if "result" not in obj and obj.get("type") == "ok":
        raise ProtocolError("an 'ok' frame needs a 'result' field (null when empty)")
    frame: ServerFrame = structure(obj, ServerFrame)
    request_id = frame.id if isinstance(frame, OkFrame | ErrorFrame) else None
    if request_id is not None and not is_request_id(request_id):
        raise ProtocolError(f"request id {request_id} is out of range")
    return frame
