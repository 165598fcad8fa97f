"""What the getters add to workload 1's dispatch: by getters tracked, not by subscriptions.

The state of workload 1 (100 chats x 10,000 messages, built through a real facade),
one incoming ``MessagePosted`` per dispatch, round-robin over the chats. Contenders,
the same actions from the same state: the reducer alone, and one real facade per
number of live subscriptions S, spread over the chats and their 7 getters as in
workload 1 (:func:`dispatch_getters.grow`): S = 0 (no getter tracked), 100 (one
getter per chat), 700 (all 7 per chat, one subscription each), 1,000 (workload 1's)
and 2,000 (20 subscriptions per chat over the 7); and S = 1,000 over getters made as the
facade makes them but without ``field=`` (:func:`unfielded_contender`: every getter of
the changed chat is projected, as the store did before ``Store.getter(field=)``).
Every block of dispatches follows
a pass over some 30 MB of objects, as in ``reducer_parts.py``: what a dispatch costs
when an app's other work has had the caches. It asserts nothing about time.

    python benchmarks/refresh_cost.py            # 3,000 dispatches each (~1 min)
    python benchmarks/refresh_cost.py --quick    # 300 dispatches, 10 chats (CI)
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dispatch_getters import (
    KINDS,
    Contender,
    actions_for,
    build_chats,
    chat_id_of,
    facade_contender,
    grow,
    median_us,
    placement,
    reducer_contender,
    reference_ns,
    rotated,
    time_steps,
)
from reducer_parts import other_work

from chats_store.chats.facade import Chats, _chat_input
from chats_store.core.store import Getter

WORKLOAD_1_PER_CHAT = 10
"""S / chats of workload 1's S = 1,000."""

SUBSCRIPTIONS_PER_CHAT = (0, 1, len(KINDS), WORKLOAD_1_PER_CHAT, 20)
"""S / chats of each facade: none, one getter, every getter once, workload 1's, 20."""


def unfielded_contender(chats: Chats, chat_ids: Sequence[str], live: int) -> Contender:
    """``live`` subscriptions placed as :func:`grow` places them, to getters made as the
    facade makes them (its projections, its input function per chat) but with no
    ``field``: the store looks at every tracked getter of the changed chat."""
    contender = facade_contender(chats)
    inputs = {chat_id: _chat_input(chat_id) for chat_id in chat_ids}
    getters: dict[tuple[str, str], Getter[object]] = {}  # held: getters are memoized weakly
    for index in range(live):
        chat_id, kind = placement(index, chat_ids)
        getter = getters.get((kind.name, chat_id))
        if getter is None:
            getter = getters[kind.name, chat_id] = chats.store.getter(
                ("without field", kind.name, chat_id), inputs[chat_id], kind.project, scope=chat_id
            )
        contender.subscriptions.append(getter.subscribe(contender.sink))
    contender.name = f"facade's getters without field=, S = {live:,}"
    contender.keep = (chats, getters)
    return contender


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="300 dispatches, 10 chats")
    parser.add_argument("--block", type=int, default=50)
    args = parser.parse_args(argv)
    chats_count, messages, dispatches = (10, 1_000, 300) if args.quick else (100, 10_000, 3_000)
    chat_ids = [chat_id_of(index) for index in range(chats_count)]
    held = build_chats(chat_ids, messages)
    actions = actions_for(held.store.state, chat_ids, dispatches)
    reducer = reducer_contender(held.store.state)
    contenders: list[Contender] = [reducer]
    for per_chat in SUBSCRIPTIONS_PER_CHAT:
        chats = build_chats(chat_ids, 0, like=held)
        contender = facade_contender(chats)
        grow(contender, chats, chat_ids, per_chat * chats_count)
        contender.name = f"facade, S = {per_chat * chats_count:,}"
        contender.keep = (chats,)
        contenders.append(contender)
    unfielded = unfielded_contender(
        build_chats(chat_ids, 0, like=held), chat_ids, WORKLOAD_1_PER_CHAT * chats_count
    )
    contenders.append(unfielded)
    # 2 M references (16 MiB) to 500,000 ints (14 MB).
    junk = list(range(500_000)) * 4
    gc.collect()
    gc.freeze()
    for number, first in enumerate(range(0, dispatches, args.block)):
        block = actions[first : first + args.block]
        for contender in rotated(contenders, number):
            other_work(junk)
            time_steps(contender, block)
    finals = [contender.final_state() for contender in contenders]
    for chat_id in chat_ids:
        if any(
            final.chats[chat_id].messages != finals[0].chats[chat_id].messages for final in finals
        ):
            raise AssertionError(f"the contenders ended with other messages in {chat_id}")
    alone = median_us(reducer.samples)
    print(
        f"## Dispatch by getters tracked: {chats_count} chats x {messages:,} messages, "
        f"{dispatches:,} dispatches each, blocks of {args.block}, each after a 30 MB pass\n"
    )
    print("| contender | getters tracked per chat | median µs | over the reducer alone |")
    print("|---|---:|---:|---:|")
    print(f"| {reducer.name} | - | {alone:.2f} | |")
    per_chat_counts = (*SUBSCRIPTIONS_PER_CHAT, WORKLOAD_1_PER_CHAT)
    for per_chat, contender in zip(per_chat_counts, contenders[1:], strict=True):
        median = median_us(contender.samples)
        tracked = min(per_chat, len(KINDS))
        print(f"| {contender.name} | {tracked} | {median:.2f} | +{median - alone:.2f} |")
    print(f"\nmachine speed after it: sum((1, 2, 3)) in {reference_ns():.0f} ns")


if __name__ == "__main__":
    main()
