"""The code samples of docs/embedding.md, docs/state.md and docs/testing.md run and
their asserts hold.

Every fenced ``python`` block of a page is executed in order in one namespace (a
page reads as one script). ``bash`` and ``text`` blocks are not run. The embedding
page drives a real Qt bridge: it runs with the session's QApplication (offscreen).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
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


def test_the_hypothesis_sample_passes_on_a_cold_database(tmp_path: Path) -> None:
    """Run alone, in a fresh directory: an empty ``.hypothesis`` (a fresh clone, CI)."""
    [sample] = [block for block in python_blocks("testing.md") if "@given" in block]
    (tmp_path / "sample.py").write_text(sample, encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "sample.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / ".hypothesis").is_dir()  # it built its database there, from nothing
