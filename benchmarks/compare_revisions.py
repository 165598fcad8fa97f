"""Workload figures of two revisions side by side, measured in one run.

Checks out ``--base`` (a git revision) in a temporary worktree and runs
``benchmarks/workloads.py`` of that revision and of the working tree alternately, in
fresh interpreters (``--rounds`` times each, who goes first rotating), then prints the
median of each figure over the rounds for both, with their ratio. Each side runs its
own copy of the benchmark, so the figures compare what a user of each revision gets.

    python benchmarks/compare_revisions.py --base v0.1.0 --only 1
    python benchmarks/compare_revisions.py --base HEAD~3 --only 1,3 --rounds 5 -- --quick

Arguments after ``--`` go to both runs of ``workloads.py``. It reads the markdown
tables that script prints: for workload 1, the column ``ours median`` per number of
getters ``S``; for the other workloads, every row's first numeric column. It asserts
nothing about time.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_NUMBER = re.compile(r"-?[\d,]+(?:\.\d+)?")


def _figures(output: str) -> dict[str, float]:
    """``{"workload / row": value}`` from the tables ``workloads.py`` printed."""
    figures: dict[str, float] = {}
    section = ""
    header: list[str] = []
    for line in output.splitlines():
        if line.startswith("## "):
            section = line[3:].split(":")[0]
            header = []
            continue
        if not line.startswith("|") or set(line) <= {"|", "-", ":", " "}:
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if not header:
            header = cells
            continue
        column = next((i for i, name in enumerate(header) if name.startswith("ours median")), None)
        if column is None:
            column = next((i for i, cell in enumerate(cells[1:], 1) if _NUMBER.match(cell)), None)
        if column is None:
            continue
        match = _NUMBER.match(cells[column])
        if match is not None:
            figures[f"{section} / {header[0]} {cells[0]}"] = float(match.group().replace(",", ""))
    return figures


def _run(tree: Path, only: str, extra: list[str]) -> dict[str, float]:
    command = [sys.executable, "benchmarks/workloads.py", "--only", only, "--plot", "", *extra]
    done = subprocess.run(
        command,
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{tree}: workloads.py failed:\n{done.stderr[-2000:]}")
    return _figures(done.stdout)


@contextlib.contextmanager
def worktree(revision: str) -> Iterator[Path]:
    """``revision`` checked out in a temporary git worktree, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="chats-store-base-") as temp:
        tree = Path(temp) / "base"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "--quiet", str(tree), revision],
            cwd=ROOT,
            check=True,
        )
        try:
            yield tree
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the git revision to compare against")
    parser.add_argument("--only", default="1", help="workloads to run (workloads.py --only)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("extra", nargs="*", help="arguments for workloads.py (after --)")
    args = parser.parse_args(argv)
    with worktree(args.base) as base_tree:
        base_runs, these = alternated(base_tree, args.only, args.extra, args.rounds)
    print(f"# {args.base} (base) against the working tree, median of {args.rounds} rounds\n")
    print("| figure | base | this | this / base |")
    print("|---|---:|---:|---:|")
    for key, values in these.items():
        if key not in base_runs:
            continue
        base, this = statistics.median(base_runs[key]), statistics.median(values)
        ratio = f"{this / base:.2f}" if base else "-"
        print(f"| {key} | {base:,.1f} | {this:,.1f} | {ratio} |")


def alternated(
    base_tree: Path, only: str, extra: list[str], rounds: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """The figures of ``workloads.py --only only *extra`` of ``base_tree`` and of this
    tree, run alternately ``rounds`` times each (who goes first rotating): each
    figure's values over the rounds, for each side."""
    results: dict[str, dict[str, list[float]]] = {
        "base": defaultdict(list),
        "this": defaultdict(list),
    }
    sides = [("base", base_tree), ("this", ROOT)]
    for round_ in range(rounds):
        for name, tree in sides if round_ % 2 == 0 else sides[::-1]:
            for key, value in _run(tree, only, extra).items():
                results[name][key].append(value)
            print(f"round {round_ + 1}/{rounds}: {name} done", file=sys.stderr)
    return results["base"], results["this"]


if __name__ == "__main__":
    main()
