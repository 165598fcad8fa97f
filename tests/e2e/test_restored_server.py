"""A server restored from an older copy: the clients converge on its history, miss nothing after.

The scenario is :mod:`tests.e2e.restored_server` (it runs against any revision:
``benchmarks/restored_server.py`` prints today's figures beside these).
"""

from __future__ import annotations

from pathlib import Path

from tests.e2e.restored_server import scenario


async def test_clients_online_and_away_converge_on_the_restored_history(tmp_path: Path) -> None:
    figures = await scenario(tmp_path)

    assert set(figures) == {"writer", "online", "away"}
    for member, seen in figures.items():
        assert seen == {"missing": 0, "phantom": 0, "new_missing": 0}, member
