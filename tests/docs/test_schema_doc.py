"""docs/schema.md is the rendering of the shipped schema (tests/docs/schema_doc.py)."""

from __future__ import annotations

from pathlib import Path

from tests.docs.schema_doc import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "schema.md"


def test_docs_schema_md_is_the_schema_rendered() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/schema.md is out of date: run python -m tests.docs.schema_doc > docs/schema.md"
    )
