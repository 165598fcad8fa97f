"""The published JSON Schema of every frame of the protocol, in both directions.

``schema.json`` ships in the package next to this module (JSON Schema draft
2020-12): ``$defs`` holds one schema per request (by its ``type``), per ``ok``
reply (``ok_<type>``), per event body (by its ``kind``), and ``hello`` and
``error``; ``request`` and ``server_frame`` are the unions of each direction.
Any validator reads it; this package does not validate with it (its own codec is
stricter and faster), its tests check that the server's frames match it.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

__all__ = ["SCHEMA_RESOURCE", "frame_schema"]

SCHEMA_RESOURCE = "schema.json"
"""The schema's file name inside the package ``chats_store.protocol``."""


def frame_schema() -> dict[str, Any]:
    """The schema of every frame, freshly parsed (a new object at each call)."""
    text = files(__package__).joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
