"""Every frame the reference server sends, checked against the published schema.

:func:`strict_validator` is the schema of ``chats_store.protocol`` with one rule
more: no field the schema does not list (a client must ignore unknown fields, but
the server must not send undocumented ones). :class:`ServerFrameCheck` wraps
``Outbox.send`` (where every frame of every connection passes once) and keeps
each distinct text; the ``server_frames_checked`` fixture (tests/conftest.py)
checks them when the test ends and fails it if one does not match. An event sent
to many members costs one check.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable
from typing import Any

import jsonschema

from chats_store.protocol.schema import frame_schema
from chats_store.server.outbox import Outbox
from chats_store.server.wire import WireFrame


def _closed(schema: Any) -> Any:
    """``schema`` with ``additionalProperties: false`` on every object that lists its fields."""
    if isinstance(schema, dict):
        closed = {key: _closed(value) for key, value in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            closed["additionalProperties"] = False
        return closed
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    return schema


@functools.cache
def _schema(strict: bool) -> dict[str, Any]:
    schema = frame_schema()
    return _closed(schema) if strict else schema


@functools.cache
def validator(definition: str | None = None, *, strict: bool = True) -> jsonschema.Validator:
    """A validator of one ``$defs`` entry (``server_frame``, ``ok_join``...) or of any frame."""
    schema = copy.copy(_schema(strict))
    if definition is not None:
        assert definition in schema["$defs"], definition
        schema = {**schema, "oneOf": [{"$ref": f"#/$defs/{definition}"}]}
    return jsonschema.Draft202012Validator(schema)


def violations(checker: jsonschema.Validator, text: str) -> list[str]:
    """What is wrong with frame ``text`` for ``checker`` (empty when nothing)."""
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(frame)'}: {error.message[:300]}"
        for error in checker.iter_errors(json.loads(text))
    ]


class ServerFrameCheck:
    """Collects each frame handed to an :class:`Outbox` (install with ``monkeypatch``)
    and checks them in :meth:`verify`, after the test: the check costs the server no
    time while it runs (its timing-sensitive tests see the server as it is)."""

    def __init__(self) -> None:
        self.frames: dict[int, str] = {}
        """The distinct texts sent, by hash."""

    def wrap(
        self, send: Callable[[Outbox, WireFrame], None]
    ) -> Callable[[Outbox, WireFrame], None]:
        frames = self.frames

        def collecting_send(outbox: Outbox, frame: WireFrame) -> None:
            frames.setdefault(hash(frame.text), frame.text)
            send(outbox, frame)

        return collecting_send

    def verify(self) -> list[str]:
        """What is wrong with the frames sent so far (each checked once)."""
        checker = validator("server_frame")
        failures = []
        for text in self.frames.values():
            failures.extend(f"{problem} in {text[:300]}" for problem in violations(checker, text))
        return failures
