"""Shared machinery of the fuzz tests: frame mutations, the opt-in long run, invariants.

:func:`mutated_frames` turns a strategy of valid frames (plain JSON objects, as the
codec writes them) into frames a hostile or broken peer could send: the valid
frame itself, or one mutation of it at any depth (a field dropped, retyped,
renamed, nested thousands deep, filled with lone surrogates...), or text and
bytes that are not a frame at all (random JSON, random text, truncated JSON,
``NaN``, a BOM, binary frames, invalid UTF-8, frames over the size limit).

The long runs are opt-in: ``CHATS_STORE_LONG=1 pytest tests/fuzz -k long``.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import attrs
from hypothesis import strategies as st
from hypothesis.strategies import DrawFn, SearchStrategy

from chats_store.chats.model import Message
from chats_store.protocol.frames import _finite_float

LONG = os.environ.get("CHATS_STORE_LONG") == "1"
"""True when the opt-in long fuzz runs were asked for."""

_NEST = "\x00nest\x00"


@attrs.frozen(repr=False)
class Frame:
    """One WebSocket message to deliver: text (``str``), binary (``bytes``), or
    ``bytes`` sent as a text frame (``as_text``: invalid UTF-8), possibly split
    into ``fragments``. ``label`` names the mutation (for the statistics)."""

    data: str | bytes
    label: str
    as_text: bool = False
    fragments: tuple[str, ...] = ()

    def __repr__(self) -> str:
        data = self.data[:300]
        more = f"... ({len(self.data)} in all)" if len(self.data) > 300 else ""
        pieces = f", {len(self.fragments)} fragments" if self.fragments else ""
        text = ", as text" if self.as_text else ""
        return f"Frame({self.label}: {data!r}{more}{text}{pieces})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # Hypothesis' printer
        printer.text(repr(self))

    @property
    def size(self) -> int:
        return len(self.data) if isinstance(self.data, bytes) else len(self.data.encode("utf-8"))


# Values ------------------------------------------------------------------------------------

any_characters = st.characters(exclude_categories=())  # lone surrogates included
"""Every code point, lone surrogates included (JSON escapes them as ``\\udXXX``)."""

WEIRD_VALUES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    1,
    2**31,
    2**53 - 1,
    2**53,
    2**63,
    2**64 + 1,
    -(2**63),
    10**40,
    0.5,
    -0.0,
    1e308,
    5e-324,
    "",
    " ",
    "\t\n",
    "0",
    "1",
    "true",
    "null",
    "\u0000",
    "\ud800",
    "\udfff",
    "a\ud83d",
    "\U0001f600",
    "\u202e",
    "\ufeff",
    "é" * 100,
    "a" * 128,
    "a" * 129,
    "x" * 256,
    "x" * 257,
    [],
    {},
    [1, "a"],
    {"a": 1},
    {"kind": "mute"},
)


@functools.cache
def strings(max_size: int = 20) -> SearchStrategy[str]:
    return st.text(any_characters, max_size=max_size)


@functools.cache
def json_values(max_leaves: int = 8) -> SearchStrategy[Any]:
    """Any JSON value (strings may hold lone surrogates)."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | strings()
    )
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=3) | st.dictionaries(strings(6), children, max_size=3)
        ),
        max_leaves=max_leaves,
    )


@functools.cache
def weird_values() -> SearchStrategy[Any]:
    return st.sampled_from(WEIRD_VALUES) | json_values(4)


# Mutations ---------------------------------------------------------------------------------

Path = tuple[Any, ...]


def _paths(value: Any, prefix: Path = ()) -> Iterator[Path]:
    """Every path to a value inside ``value`` (dict keys and list indexes)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*prefix, index)
            yield from _paths(item, (*prefix, index))


def _get(value: Any, path: Path) -> Any:
    for step in path:
        value = value[step]
    return value


def _dumps(value: Any, *, ascii_only: bool = True, indent: int | None = None) -> str:
    text = json.dumps(value, ensure_ascii=ascii_only, indent=indent, allow_nan=False)
    return text


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@functools.cache
def _depths() -> SearchStrategy[int]:
    # Never near Python's recursion limit (~1000): whether json.loads fails there
    # depends on the stack depth of the caller, so the oracle could not tell.
    return st.integers(1, 200) | st.integers(3000, 20000)


def _padded(obj: dict[str, Any], size: int) -> str:
    """``obj`` as JSON text of exactly ``size`` bytes (ASCII), with a padding field."""
    padded = {**obj, "pad": ""}
    text = _dumps(padded)
    missing = size - len(text)
    if missing < 0:
        return text
    return _dumps({**obj, "pad": "p" * missing})


MUTATIONS: tuple[str, ...] = (
    *["valid"] * 16,
    *["valid_raw_unicode"] * 3,
    "whitespace",
    *["drop"] * 4,
    *["retype"] * 5,
    *["number"] * 3,
    *["string"] * 3,
    "extra",
    "rename",
    "nest",
    *["tag"] * 2,
    *["id"] * 2,
    "duplicate_key",
    "nan",
    "truncate",
    "insert_char",
    *["random_json"] * 2,
    "random_text",
    "empty",
    "bom",
    "deep_frame",
    "binary",
    "invalid_utf8",
    "oversize",
    "at_limit",
    "fragmented",
)


@st.composite
def mutated_frames(
    draw: DrawFn,
    valid: SearchStrategy[dict[str, Any]],
    *,
    limit: int,
    fragments: bool = True,
) -> Frame:
    """A valid frame drawn from ``valid``, or a mutation of it (see the module doc).

    ``limit`` is the receiver's frame size limit in bytes (``oversize`` frames
    exceed it by a little, ``at_limit`` frames are valid and exactly that big).
    ``fragments``: whether a valid frame may be sent as several WebSocket fragments.
    """
    base = draw(valid)
    how = draw(st.sampled_from(MUTATIONS if fragments else MUTATIONS[:-1]))
    obj = copy.deepcopy(base)
    text = _dumps(obj)
    paths = list(_paths(obj))

    def pick(test: Any = None) -> Path | None:
        candidates = [p for p in paths if test is None or test(_get(obj, p))]
        return draw(st.sampled_from(candidates)) if candidates else None

    def put(path: Path, value: Any) -> None:
        _get(obj, path[:-1])[path[-1]] = value

    if how == "valid":
        return Frame(text, how)
    if how == "valid_raw_unicode":
        raw = _dumps(obj, ascii_only=False)
        return Frame(raw if _encodable(raw) else text, how)
    if how == "whitespace":
        return Frame(" \n" + _dumps(obj, indent=draw(st.integers(0, 3))) + "\t ", how)
    if how == "fragmented":
        cuts = sorted(draw(st.lists(st.integers(1, max(1, len(text) - 1)), max_size=4)))
        pieces, start = [], 0
        for cut in [*cuts, len(text)]:
            if cut > start:
                pieces.append(text[start:cut])
                start = cut
        return Frame(text, how, fragments=tuple(pieces))
    if how in ("drop", "retype", "nest", "rename", "extra") and not paths:
        how = "random_json"
    if how == "drop":
        path = pick()
        assert path is not None
        del _get(obj, path[:-1])[path[-1]]
    elif how == "retype":
        path = pick()
        assert path is not None
        put(path, draw(weird_values()))
    elif how == "number":
        path = pick(lambda v: isinstance(v, int | float) and not isinstance(v, bool))
        if path is not None:
            value = _get(obj, path)
            put(
                path,
                draw(
                    st.sampled_from(
                        (-1, 0, 2**53, 2**63, 10**30, -(10**30), float(value), str(value), True)
                    )
                    | st.integers()
                    | st.floats(allow_nan=False, allow_infinity=False)
                ),
            )
    elif how == "string":
        path = pick(lambda v: isinstance(v, str))
        if path is not None:
            put(
                path,
                draw(
                    strings(40)
                    | st.sampled_from([v for v in WEIRD_VALUES if isinstance(v, str)])
                    | st.integers(0, 3000).map(lambda n: "y" * n)
                ),
            )
    elif how == "extra":
        containers = [()] + [p for p in paths if isinstance(_get(obj, p), dict)]
        where = draw(st.sampled_from(containers))
        target = _get(obj, where)
        target.update(draw(st.dictionaries(strings(10), json_values(4), min_size=1, max_size=3)))
    elif how == "rename":
        path = pick()
        assert path is not None
        parent = _get(obj, path[:-1])
        if isinstance(parent, dict):
            parent[draw(strings(10))] = parent.pop(path[-1])
        else:
            parent.reverse()
    elif how == "nest":
        path = pick()
        assert path is not None
        depth = draw(_depths())
        put(path, _NEST)
        text = _dumps(obj).replace(json.dumps(_NEST), _nested(depth), 1)
        return Frame(text, how)
    elif how == "tag":
        tagged = [p for p in paths if p and p[-1] in ("type", "kind")] or [("type",)]
        put(
            draw(st.sampled_from(tagged)),
            draw(
                st.sampled_from(("", "OK", "Event", "post ", "unknown", "ok", "event", "error"))
                | weird_values()
            ),
        )
    elif how == "id":
        obj["id"] = draw(weird_values())
    elif how == "duplicate_key":
        key = draw(st.sampled_from([*obj, "type", "id"]))
        value = draw(weird_values() | st.sampled_from(("post", "join", "ok", "event", "error")))
        extra = f",{json.dumps(key)}:{json.dumps(value)}"
        at_start = draw(st.booleans())
        if at_start and text.startswith("{") and len(text) > 2:
            return Frame("{" + extra[1:] + "," + text[1:], how)
        return Frame(text[:-1] + extra + "}", how)
    elif how == "nan":
        literal = draw(st.sampled_from(("NaN", "Infinity", "-Infinity")))
        number = pick(lambda v: isinstance(v, int | float) and not isinstance(v, bool))
        if number is None:
            return Frame(text[:-1] + f',"n":{literal}}}', how)
        put(number, _NEST)
        return Frame(_dumps(obj).replace(json.dumps(_NEST), literal, 1), how)
    elif how == "truncate":
        return Frame(text[: draw(st.integers(0, max(0, len(text) - 1)))], how)
    elif how == "insert_char":
        at = draw(st.integers(0, len(text)))
        char = draw(st.sampled_from('{}[],:"\\ \x00x1-e.'))
        return Frame(text[:at] + char + text[at:], how)
    elif how == "random_json":
        value = draw(json_values() | st.dictionaries(strings(8), json_values(), max_size=6))
        if isinstance(value, dict) and draw(st.booleans()):
            value["type"] = base.get("type")
        return Frame(_dumps(value), how)
    elif how == "random_text":
        return Frame(draw(st.text(max_size=60)), how)  # no lone surrogates: sendable
    elif how == "empty":
        return Frame("", how)
    elif how == "bom":
        return Frame("\ufeff" + text, how)
    elif how == "deep_frame":
        return Frame(_nested(draw(_depths())), how)
    elif how == "binary":
        return Frame(draw(st.binary(max_size=64) | st.just(text.encode())), how)
    elif how == "invalid_utf8":
        bad = draw(
            st.sampled_from((b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"))
        )
        at = draw(st.integers(0, len(text)))
        encoded = text.encode()
        return Frame(encoded[:at] + bad + encoded[at:], how, as_text=True)
    elif how == "oversize":
        return Frame(_padded(obj, limit + draw(st.integers(1, 100))), how)
    elif how == "at_limit":
        return Frame(_padded(obj, limit), how)
    return Frame(_dumps(obj), how)


# Oracles and invariants ----------------------------------------------------------------------


def readable_id(value: Any) -> int | None:
    """The request id the server can read (docs/protocol.md): an int in 0..2^53-1."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 2**53 - 1:
        return value
    return None


def _reject(name: str) -> Any:
    raise ValueError(name)


def parse_json(text: str) -> Any:
    """``json.loads`` as the codec calls it (``NaN``, ``Infinity`` and numbers that
    overflow to infinity refused)."""
    return json.loads(text, parse_constant=_reject, parse_float=_finite_float)


def check_messages(messages: Sequence[Message], chat_id: str | None = None) -> None:
    """No duplicate ids; confirmed messages strictly ordered by seq; pending ones after."""
    ids = [message.id for message in messages]
    duplicates = [i for i, n in Counter(ids).items() if n > 1]
    assert not duplicates, f"duplicate message ids {duplicates} in {messages}"
    last: int | None = None
    pending = False
    for message in messages:
        if chat_id is not None:
            assert message.chat_id == chat_id, f"message of chat {message.chat_id} in {chat_id}"
        if message.seq is None:
            pending = True
            continue
        assert not pending, f"confirmed message {message.id} after a pending one: {messages}"
        assert last is None or message.seq > last, f"seq {message.seq} after {last}: {messages}"
        last = message.seq


def frame_target(normal: int, long: int) -> int:
    return long if LONG else normal
