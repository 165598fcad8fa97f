"""What the getters add to workload 1's dispatch: by getters tracked, not by subscriptions.

The state of workload 1 (100 chats x 10,000 messages, built through a real facade),
one incoming ``MessagePosted`` per dispatch, round-robin over the chats. Contenders,
the same actions from the same state: the reducer alone, and one real facade per
number of live subscriptions S, spread over the chats and their 7 getters as in
workload 1 (:func:`dispatch_getters.grow`): S = 0 (no getter tracked), 100 (one
getter per chat), 700 (all 7 per chat, one subscription each), 1,000 (workload 1's)
and 2,000 (20 subscriptions per chat over the 7). Every block of dispatches follows
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
    reducer_contender,
    reference_ns,
    rotated,
    time_steps,
)
from reducer_parts import other_work

SUBSCRIPTIONS_PER_CHAT = (0, 1, len(KINDS), 10, 20)
"""S / chats of each facade: none, one getter, every getter once, workload 1's, 20."""


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
    for per_chat, contender in zip(SUBSCRIPTIONS_PER_CHAT, contenders[1:], strict=True):
        median = median_us(contender.samples)
        tracked = min(per_chat, len(KINDS))
        print(f"| {contender.name} | {tracked} | {median:.2f} | +{median - alone:.2f} |")
    print(f"\nmachine speed after it: sum((1, 2, 3)) in {reference_ns():.0f} ns")


if __name__ == "__main__":
    main()
