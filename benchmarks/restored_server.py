"""The restored-server scenario against today's code and this tree, side by side, in one run.

Runs ``tests/e2e/restored_server.py`` (a server put back to an older copy of its
database while clients are online and away; see its docstring) with the
``chats_store`` of ``--base`` (a git revision, default ``a2e30a3``, before issue 13,
checked out in a temporary worktree), then with this tree's, and prints, for each
member, the messages missing from its view and the phantom ones (compared with a
member who joins afresh), and how many of the 25 messages posted after the
restore it never got.

    python benchmarks/restored_server.py    # ~30 s
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare_revisions import worktree
from server_process import ROOT, tree_env

SCENARIO = ROOT / "tests" / "e2e" / "restored_server.py"


def figures(tree: Path) -> dict[str, dict[str, int]]:
    done = subprocess.run(
        [sys.executable, str(SCENARIO)],
        env=tree_env(tree),
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    result: dict[str, dict[str, int]] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="a2e30a3", help="the revision of today's figure")
    args = parser.parse_args()
    with worktree(args.base) as base:
        results = {f"base ({args.base})": figures(base), "this tree": figures(ROOT)}
    print("## Restored server: each member's view against a fresh join's\n")
    print("| server | member | missing | phantom | new messages never received (of 25) |")
    print("|---|---|---:|---:|---:|")
    for side, members in results.items():
        for member, seen in members.items():
            missing, phantom, never = seen["missing"], seen["phantom"], seen["new_missing"]
            print(f"| {side} | {member} | {missing} | {phantom} | {never} |")


if __name__ == "__main__":
    main()
