"""The wheel and the sdist stand alone: metadata, extras, and no reference to files a
user of the package does not have."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]

# What a user never has: the design notes and spec next to this repository, the
# machine it was written on.
FOREIGN = re.compile(r"\.\./shared|DESIGN\.md|/work/")
# Package code may not send readers to a documentation file by a path relative to a
# source tree (a wheel has none); docs and README may (docs/ ships in the sdist).
DOC_PATH = re.compile(r"docs/\w+\.md")


def names(requirements: list[str]) -> set[str]:
    return {
        re.split(r"[<>=\[ ;]", requirement, maxsplit=1)[0].lower() for requirement in requirements
    }


def test_the_testing_extra_is_the_test_kit_and_nothing_else() -> None:
    extras = PROJECT["optional-dependencies"]
    assert names(extras["testing"]) == {"pytest", "pytest-asyncio", "hypothesis"}
    assert names(extras["qt"]) == {"pyside6-essentials"}
    assert names(extras["postgresql"]) == {"psycopg"}
    # CI runs every test for real: the GUI bridges, the terminal client, PostgreSQL.
    assert "chats_store[testing,qt,tui,postgresql]" in extras["dev"]


def test_license_urls_and_documentation_are_in_the_metadata() -> None:
    assert PROJECT["license"] == "MIT" and PROJECT["license-files"] == ["LICENSE"]
    assert "MIT License" in (ROOT / "LICENSE").read_text(encoding="utf-8")
    urls = PROJECT["urls"]
    assert {"Homepage", "Documentation", "Changelog"} <= set(urls)
    assert all(url.startswith("https://") for url in urls.values())


def test_the_sdist_carries_the_docs_and_the_tests() -> None:
    include = PYPROJECT["tool"]["hatch"]["build"]["targets"]["sdist"]["include"]
    assert {"chats_store", "docs", "tests", "README.md", "CHANGELOG.md", "LICENSE"} <= set(include)


SHIPPED = sorted(
    [
        *(ROOT / "chats_store").rglob("*.py"),
        *(ROOT / "docs").glob("*.md"),
        *(ROOT / "benchmarks").glob("*.md"),
        ROOT / "README.md",
        ROOT / "CHANGELOG.md",
    ]
)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: str(path.relative_to(ROOT)))
def test_no_reference_to_a_file_users_do_not_have(path: Path) -> None:
    relative = str(path.relative_to(ROOT))
    text = path.read_text(encoding="utf-8")
    assert not FOREIGN.findall(text), f"{relative} refers to {FOREIGN.findall(text)}"
    if path.suffix == ".py":
        assert not DOC_PATH.findall(text), (
            f"{relative} sends readers to {DOC_PATH.findall(text)}, which a wheel does not "
            "carry: name the module, or the project's documentation"
        )


def test_the_frame_schema_ships_in_the_package() -> None:
    """schema.json sits in the package directory, which the wheel takes whole (hatch
    includes every file of ``packages``), and the package reads it as a resource."""
    from chats_store.protocol.schema import SCHEMA_RESOURCE, frame_schema

    wheel = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert wheel["packages"] == ["chats_store"] and "exclude" not in wheel
    assert (ROOT / "chats_store" / "protocol" / SCHEMA_RESOURCE).is_file()
    assert frame_schema()["title"] == "chats_store.v1"
