"""A real client process killed with SIGKILL, then restarted on its state file.

At each of the three points of a request's life (``tests.soak.kill_client``): before
it leaves, after the server applied it but before its reply arrived, after the
module applied the reply but before the state file recorded it; for a send, an edit
and a delete. Then the short version of the randomized kill soak
(``python -m tests.soak.kill_soak`` runs the full one). Every time: 0 lost, 0
duplicated, each chat's order kept, and the last process shows what the server has.
"""

from __future__ import annotations

import asyncio
import signal
import tempfile

import pytest

from tests.soak.kill_client import POINTS
from tests.soak.kill_soak import run_kill_soak, world


@pytest.mark.parametrize("point", POINTS)
async def test_a_client_killed_at_each_point_loses_and_duplicates_nothing(point: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        async with world(directory) as state:
            client = await state.start()
            assert await client.ready() is not None
            for chat in ("c1", "c2", "c1"):
                assert await state.operate(client, "send", chat)
            assert await client.ask(op="idle") is not None
            await client.ask(op="quit")
            await client.ended()
            first, second = state.ledger.sends["c1"]
            for kind in ("post", "edit", "delete"):
                client = await state.start(kill_at=f"{point}:{kind}:1")
                assert await client.ready() is not None
                alive = await state.operate(client, "send", "c2")
                if alive and kind != "post":
                    alive = await state.operate(client, "edit", "c1", id=first)
                if alive and kind == "delete":
                    alive = await state.operate(client, "delete", "c1", id=second)
                ended = await asyncio.wait_for(client.ended(), 20)
                assert ended == -signal.SIGKILL, f"it did not die {point} a {kind}"
                state.kills += 1
            final = await state.finish()
            report = state.report(final, 0.0)
            last_edit = [content for m, content in state.ledger.edits if m == first][-1]

    assert report.kills == 3 and report.issued >= 6, report
    assert report.lost == 0, report
    assert report.duplicated == 0, report
    assert report.reordered == 0, report
    assert report.mismatched == 0, report
    assert final["c1"] == [[first, last_edit, "ready"]], "edited, the other one deleted"


async def test_short_kill_soak() -> None:
    report = await run_kill_soak(kills=6, seed=12)
    assert report.kills == 6, report
    assert report.issued > 6, report
    assert report.lost == 0, report
    assert report.duplicated == 0, report
    assert report.reordered == 0, report
    assert report.mismatched == 0, report
