"""The Markdown pages a user gets (README, CHANGELOG, docs/, benchmarks/README.md)
hold no leftover of how they were written: no placeholder line for text to come, and
every relative link leads to a file of the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted(
    [
        ROOT / "README.md",
        ROOT / "CHANGELOG.md",
        ROOT / "benchmarks" / "README.md",
        *(ROOT / "docs").glob("*.md"),
    ]
)
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")
"""A line that is one UPPER_SNAKE_CASE word: a marker left where text was to go."""
LINK = re.compile(r"\]\(([^)\s]+)\)")
"""A Markdown link's target."""


def _lines(page: Path) -> list[tuple[int, str]]:
    """The page's lines outside fenced code blocks, numbered from 1."""
    lines, fenced = [], False
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append((number, line))
    return lines


def test_the_pages_are_found() -> None:
    assert len(PAGES) >= 8 and all(page.is_file() for page in PAGES)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_no_placeholder_is_left(page: Path) -> None:
    left = [f"line {n}: {line}" for n, line in _lines(page) if PLACEHOLDER.match(line.strip())]
    assert not left, f"{page.relative_to(ROOT)} holds placeholders: {left}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_leads_into_the_repository(page: Path) -> None:
    targets = [
        (n, target.split("#")[0])
        for n, line in _lines(page)
        for target in LINK.findall(line)
        if "://" not in target and not target.startswith(("#", "mailto:"))
    ]
    broken = [
        f"line {n}: {target}"
        for n, target in targets
        if not (page.parent / target).resolve().is_relative_to(ROOT)
        or not (page.parent / target).exists()
    ]
    assert not broken, f"{page.relative_to(ROOT)} links outside the repository: {broken}"
