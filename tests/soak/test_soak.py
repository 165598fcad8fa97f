"""The short soak, run by CI: faults and restarts lose nothing and duplicate nothing.

The full soak (10,000 messages, 20 cuts, 2 restarts) is ``python -m tests.soak.runner``;
its figures are in benchmarks/README.md.
"""

from __future__ import annotations

from tests.soak.runner import run_soak


async def test_short_soak_loses_and_duplicates_nothing() -> None:
    report = await run_soak(messages=800, clients=4, chats=3, cuts=8, restarts=1, chaos_period=0.2)
    assert report.cuts >= 4 and report.restarts == 1, report
    assert report.messages_created == 800
    assert report.lost == 0, report
    assert report.duplicated == 0, report
    assert report.left_sending == 0, report
    assert report.mismatched_views == 0, report
    assert report.messages_on_server == report.messages_created, report
