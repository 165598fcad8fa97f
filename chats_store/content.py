"""What a message may hold and what an id may be: one rule for client and server (pure).

The client's checks (:func:`chats_store.chats.validation.check_content`) and the
server's core (:mod:`chats_store.server.service`) both ask :func:`content_failure`,
so a content the client lets through is one the server accepts, and the other way
round. Ids (of chats, messages and users) are checked by :func:`id_failure`, which
the core applies to every id of a request and the server to the user id of a token.

**Blank** content is refused: content whose every character is invisible on its own.
A character is blank when it is white space (``str.isspace``), a control (``Cc``),
a format character (``Cf``: zero-width space, joiners, bidirectional marks, the BOM,
the soft hyphen...), a separator (``Zs``, ``Zl``, ``Zp``), a Unicode
*Default_Ignorable_Code_Point* (variation selectors, Hangul fillers, tags...; the
ranges of ``DerivedCoreProperties.txt`` are :data:`DEFAULT_IGNORABLE`), or the
Braille pattern blank U+2800, which renders as nothing in every font. Such
characters are allowed next to visible ones (a joiner in an emoji sequence).
"""

from __future__ import annotations

import unicodedata
from bisect import bisect_right

from chats_store.chats.actions import Failure
from chats_store.errors import ErrorCode

__all__ = [
    "DEFAULT_IGNORABLE",
    "MAX_CONTENT_LENGTH",
    "MAX_ID_LENGTH",
    "content_failure",
    "id_failure",
    "is_blank",
]

MAX_CONTENT_LENGTH = 256
"""Most characters a message's content may have."""

MAX_ID_LENGTH = 128
"""Most characters an id (chat, message, user) may have; at least one."""

DEFAULT_IGNORABLE: tuple[tuple[int, int], ...] = (
    (0x00AD, 0x00AD),  # soft hyphen
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x061C, 0x061C),  # Arabic letter mark
    (0x115F, 0x1160),  # Hangul choseong and jungseong fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180F),  # Mongolian free variation selectors, vowel separator
    (0x200B, 0x200F),  # zero-width space, joiners, LRM, RLM
    (0x202A, 0x202E),  # bidirectional embeddings and overrides
    (0x2060, 0x206F),  # word joiner, invisible operators, bidirectional isolates
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFEFF, 0xFEFF),  # zero-width no-break space (the BOM)
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
    (0xFFF0, 0xFFF8),  # reserved
    (0x1BCA0, 0x1BCA3),  # shorthand format controls
    (0x1D173, 0x1D17A),  # musical symbol format controls
    (0xE0000, 0xE0FFF),  # tags, variation selectors supplement, reserved
)
"""Unicode's Default_Ignorable_Code_Point ranges (inclusive), in code point order."""

_STARTS = tuple(start for start, _ in DEFAULT_IGNORABLE)
_BLANK_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})
_BRAILLE_BLANK = "\u2800"


def _is_default_ignorable(code_point: int) -> bool:
    index = bisect_right(_STARTS, code_point) - 1
    return index >= 0 and code_point <= DEFAULT_IGNORABLE[index][1]


def _is_blank_character(character: str) -> bool:
    return (
        character.isspace()
        or character == _BRAILLE_BLANK
        or unicodedata.category(character) in _BLANK_CATEGORIES
        or _is_default_ignorable(ord(character))
    )


def is_blank(text: str) -> bool:
    """True when no character of ``text`` is visible on its own (the empty text too)."""
    if text.isascii():
        return not any(" " < character < "\x7f" for character in text)
    return all(_is_blank_character(character) for character in text)


def content_failure(content: str) -> Failure | None:
    """Why ``content`` cannot be a message's content (``content_empty``,
    ``content_too_long``), or None when it can."""
    if is_blank(content):
        return Failure(
            "refused",
            ErrorCode.CONTENT_EMPTY,
            "the message content is empty or invisible (only spaces, controls or "
            "format characters) - write something",
        )
    if len(content) > MAX_CONTENT_LENGTH:
        return Failure(
            "refused",
            ErrorCode.CONTENT_TOO_LONG,
            f"the message content is {len(content)} characters long; the maximum is "
            f"{MAX_CONTENT_LENGTH} - shorten it or split it into several messages",
        )
    return None


def id_failure(value: str, what: str) -> Failure | None:
    """Why ``value`` cannot be an id (``invalid_request``), or None when it can.

    ``what`` names the id in the message (``"chat_id"``, ``"the user id"``...).
    """
    if not value or len(value) > MAX_ID_LENGTH:
        return Failure(
            "refused",
            ErrorCode.INVALID_REQUEST,
            f"{what} must be 1 to {MAX_ID_LENGTH} characters long, not {len(value)}",
        )
    return None
