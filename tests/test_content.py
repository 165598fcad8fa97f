"""The content rule shared by the client and the server: blank characters, lengths, ids."""

from __future__ import annotations

import itertools
import sys
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chats_store.content import (
    DEFAULT_IGNORABLE,
    MAX_CONTENT_LENGTH,
    MAX_ID_LENGTH,
    content_failure,
    id_failure,
    is_blank,
)
from chats_store.errors import ErrorCode

INVISIBLE = {
    "zero-width space": "\u200b",
    "BOM": "\ufeff",
    "Hangul filler": "\u3164",
    "halfwidth Hangul filler": "\uffa0",
    "Braille blank": "\u2800",
    "soft hyphen": "\u00ad",
    "word joiner": "\u2060",
    "right-to-left override": "\u202e",
    "variation selector": "\ufe0f",
    "tag": "\U000e0041",
    "ideographic space": "\u3000",
    "escape": "\x1b",
    "mixed": " \u200b\u00ad\ufeff\u3164\u2800\t\n",
}
VISIBLE = {
    "letter": "a",
    "letter between zero-width spaces": "\u200ba\u200b",
    "emoji ZWJ sequence": "\U0001f469\u200d\U0001f4bb",
    "CJK": "\u4e2d",
    "combining accent on a letter": "e\u0301",
    "punctuation": ".",
}


@pytest.mark.parametrize("text", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_invisible_content_is_blank_and_refused(text: str) -> None:
    assert is_blank(text)
    failure = content_failure(text)
    assert failure is not None and failure.code == ErrorCode.CONTENT_EMPTY


@pytest.mark.parametrize("text", VISIBLE.values(), ids=VISIBLE.keys())
def test_visible_content_is_accepted(text: str) -> None:
    assert not is_blank(text)
    assert content_failure(text) is None


def test_the_empty_text_is_blank() -> None:
    assert is_blank("")


def test_content_past_the_maximum_is_too_long() -> None:
    assert content_failure("x" * MAX_CONTENT_LENGTH) is None
    failure = content_failure("x" * (MAX_CONTENT_LENGTH + 1))
    assert failure is not None and failure.code == ErrorCode.CONTENT_TOO_LONG
    assert f"the maximum is {MAX_CONTENT_LENGTH}" in failure.detail


def test_the_default_ignorable_ranges_are_sorted_and_disjoint() -> None:
    for (start, end), (next_start, _) in itertools.pairwise(DEFAULT_IGNORABLE):
        assert start <= end < next_start


def test_every_default_ignorable_and_format_character_is_blank() -> None:
    for start, end in DEFAULT_IGNORABLE:
        for code_point in range(start, end + 1):
            assert is_blank(chr(code_point)), hex(code_point)
    for code_point in range(sys.maxunicode + 1):
        character = chr(code_point)
        if unicodedata.category(character) in ("Cf", "Cc", "Zs", "Zl", "Zp"):
            assert is_blank(character), hex(code_point)


@given(st.text(alphabet=st.characters(codec="ascii")))
def test_ascii_text_is_blank_exactly_when_it_has_no_printable_character(text: str) -> None:
    assert is_blank(text) == (
        not any(character.isprintable() and not character.isspace() for character in text)
    )


@pytest.mark.parametrize(
    ("value", "ok"),
    [("", False), ("a", True), ("é" * MAX_ID_LENGTH, True), ("x" * (MAX_ID_LENGTH + 1), False)],
)
def test_ids_are_1_to_128_characters(value: str, ok: bool) -> None:
    failure = id_failure(value, "the user id")
    assert (failure is None) == ok
    if failure is not None:
        assert failure.code == ErrorCode.INVALID_REQUEST
        assert failure.detail.startswith(f"the user id must be 1 to {MAX_ID_LENGTH} characters")
