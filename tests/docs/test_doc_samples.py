"""The code samples of docs/embedding.md and docs/testing.md run and their asserts hold.

Every fenced ``python`` block of a page is executed in order in one namespace (a
page reads as one script). ``bash`` and ``text`` blocks are not run.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def python_blocks(page: str) -> list[str]:
    return BLOCK.findall((DOCS / page).read_text(encoding="utf-8"))


@pytest.mark.parametrize("page", ["embedding.md", "state.md", "testing.md"])
def test_the_code_samples_run(page: str) -> None:
    blocks = python_blocks(page)
    assert len(blocks) >= 3
    namespace: dict[str, object] = {"__name__": f"docs_{page.replace('.', '_')}"}
    for number, block in enumerate(blocks, 1):
        code = compile(block, f"docs/{page} (python block {number})", "exec")
        exec(code, namespace)
