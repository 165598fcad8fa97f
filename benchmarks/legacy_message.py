"""``chats_store.chats.model.Message`` as it was before it became a msgspec Struct: a
frozen attrs class of the same fields (the baseline of workload 6's collections)."""

from __future__ import annotations

import attrs

from chats_store.chats.model import MessageStatus


@attrs.frozen
class AttrsMessage:
    id: str
    chat_id: str
    author_id: str
    content: str
    status: MessageStatus
    seq: int | None = None
    created_at: float = 0.0
    edited_at: float | None = None
