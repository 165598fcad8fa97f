"""Actions to JSON-ready data and back, for action logs (pure: attrs + cattrs, msgspec for
messages).

:data:`converter` is a ``cattrs.Converter`` that handles every action class of
:mod:`chats_store.chats.actions` (nested ``Message``, ``Restriction``,
``ChatSnapshot``, ``Resumption``, ``Failure`` included) as a tagged union: each
action becomes a dict with a ``"type"`` key, the class name.

Credentials never reach a log: :func:`action_to_data` replaces the chat token of
:class:`JoinChat` and the membership credentials of :class:`ChatSnapshot`,
:class:`Resumption`, :class:`MembershipRenewal` and :class:`RestoredChat` with
:data:`REDACTED` (:func:`redact` does the same on the action itself), so
``action_from_data(action_to_data(a)) == redact(a)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, Union

import attrs
import cattrs
import msgspec
from cattrs.strategies import configure_tagged_union

from chats_store.chats import actions as _actions
from chats_store.chats.actions import (
    ChatJoined,
    ChatResumed,
    ChatSnapshot,
    ChatsRestored,
    JoinChat,
    MembershipRenewal,
    MembershipRenewed,
    ServerEvent,
)
from chats_store.chats.model import Message, read_only

__all__ = [
    "ACTION_TYPES",
    "REDACTED",
    "action_from_data",
    "action_to_data",
    "converter",
    "redact",
]

REDACTED = "<redacted>"
"""What a token or membership credential becomes in a log."""

A = TypeVar("A")

ACTION_TYPES: tuple[type, ...] = tuple(
    value
    for name in _actions.__all__
    if isinstance(value := getattr(_actions, name), type)
    and attrs.has(value)
    and name not in ("Failure", "ChatSnapshot", "Resumption", "MembershipRenewal", "RestoredChat")
)
"""Every action class (the nested value classes ``Failure``, ``ChatSnapshot``,
``Resumption``, ``MembershipRenewal`` and ``RestoredChat`` are not actions)."""

_Action = Union[ACTION_TYPES]  # type: ignore[valid-type]  # noqa: UP007 - built at run time


def _redact_snapshot(snapshot: ChatSnapshot) -> ChatSnapshot:
    if snapshot.membership is None:
        return snapshot
    return attrs.evolve(snapshot, membership=REDACTED)


def redact(action: A) -> A:
    """``action`` with every token and membership credential replaced by :data:`REDACTED`."""
    redacted: Any = action
    if isinstance(action, JoinChat):
        redacted = attrs.evolve(action, token=REDACTED)
    elif isinstance(action, ChatJoined):
        redacted = attrs.evolve(action, snapshot=_redact_snapshot(action.snapshot))
    elif isinstance(action, ChatResumed):
        resumption = action.resumption
        snapshot = resumption.snapshot
        resumption = attrs.evolve(
            resumption,
            membership=REDACTED,
            snapshot=None if snapshot is None else _redact_snapshot(snapshot),
        )
        redacted = attrs.evolve(action, resumption=resumption)
    elif isinstance(action, MembershipRenewed):
        redacted = attrs.evolve(action, renewal=MembershipRenewal(REDACTED))
    elif isinstance(action, ChatsRestored):
        chats = tuple(attrs.evolve(chat, membership=REDACTED) for chat in action.chats)
        redacted = attrs.evolve(action, chats=chats)
    result: A = redacted
    return result


def _build_converter() -> cattrs.Converter:
    converter = cattrs.Converter()

    def is_metadata(type_: Any) -> bool:
        return bool(type_ == Mapping[str, str])

    converter.register_structure_hook_func(
        is_metadata, lambda data, _type: read_only({str(k): str(v) for k, v in data.items()})
    )
    converter.register_unstructure_hook_func(is_metadata, lambda value: dict(value))
    # Message is a msgspec Struct (see its class): msgspec reads and writes it.
    converter.register_unstructure_hook(Message, msgspec.structs.asdict)
    converter.register_structure_hook(Message, lambda data, _type: msgspec.convert(data, Message))
    configure_tagged_union(ServerEvent, converter, tag_name="type")
    configure_tagged_union(_Action, converter, tag_name="type")
    return converter


converter: cattrs.Converter = _build_converter()
"""The cattrs converter of actions (use :func:`action_to_data` to write one)."""


def action_to_data(action: Any) -> dict[str, Any]:
    """``action`` as JSON-ready data, tagged with its class name, credentials redacted.

    Raises ``TypeError`` for an object that is not an action.
    """
    if type(action) not in ACTION_TYPES:
        raise TypeError(f"not a chats_store action: {action!r}")
    data: dict[str, Any] = converter.unstructure(redact(action), unstructure_as=_Action)
    return data


def action_from_data(data: Mapping[str, Any]) -> Any:
    """The action ``data`` describes (as written by :func:`action_to_data`).

    Raises ``cattrs`` validation errors (``ValueError`` subclasses or
    ``ClassValidationError``) when ``data`` is not an action.
    """
    action_union: Any = _Action
    return converter.structure(dict(data), action_union)
