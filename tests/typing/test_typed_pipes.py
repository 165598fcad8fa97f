"""``mypy --strict`` on an application's typed code (tests/typing/typed_pipes.py):
covariant getters, typed ``pipe`` chains, ``derive`` and ``select``, and mistakes it
must catch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy", reason="mypy is not installed (the dev extra has it)")

ROOT = Path(__file__).resolve().parents[2]


def test_the_typed_user_script_passes_mypy_strict(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--cache-dir",
            str(tmp_path / "mypy-cache"),
            "tests/typing/typed_pipes.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("Success: no issues found")
