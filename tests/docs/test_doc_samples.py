"""The code samples of docs/embedding.md, docs/state.md and docs/testing.md run and
their asserts hold.

Every fenced ``python`` block of a page is executed in order in one namespace (a
page reads as one script). ``bash`` and ``text`` blocks are not run. The embedding
page drives a real Qt bridge: it runs with the session's QApplication (offscreen).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def python_blocks(page: str) -> list[str]:
    return BLOCK.findall((DOCS / page).read_text(encoding="utf-8"))


def run_page(page: str) -> None:
    blocks = python_blocks(page)
    assert len(blocks) >= 3
    namespace: dict[str, object] = {"__name__": f"docs_{page.replace('.', '_')}"}
    for number, block in enumerate(blocks, 1):
        code = compile(block, f"docs/{page} (python block {number})", "exec")
        exec(code, namespace)


@pytest.mark.parametrize("page", ["state.md", "testing.md"])
def test_the_code_samples_run(page: str) -> None:
    run_page(page)


def test_the_embedding_samples_run_with_a_real_qt_bridge(qt_app: object) -> None:
    run_page("embedding.md")
