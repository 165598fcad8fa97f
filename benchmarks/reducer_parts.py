"""Where workload 1's reducer spends its time: its parts, back to back and after other work.

The state of workload 1 (100 chats x 10,000 messages, built through a real facade),
one incoming ``MessagePosted`` per dispatch, round-robin over the chats. Five
contenders, each doing one more step of ``reduce_chats`` than the one before:

1. find the chat (``state.chats.get``);
2. then look the message up in the chat's log (``find``: its id index);
3. then make the chat's new log (``confirm``: the last chunk, group and sequence);
4. then copy the chat, the chats map and the state (``replaced``, ``Map.set``);
5. the reducer itself (``reduce_chats``: besides, its routing, checks and ``Step``).

Contenders 1-3 keep their state (they only read it); 4 and 5 end in the same messages
(checked). Each is timed twice over the same blocks of dispatches: *back to back*, every
contender's block right after the others' (which read the same chats), and *after
other work*: a pass over some 30 MB of objects before the block, several times the CPU's
L2 cache, as an app's rendering or parsing passes between two messages. It asserts
nothing about time.

    python benchmarks/reducer_parts.py            # 10,000 dispatches each (~1 min)
    python benchmarks/reducer_parts.py --quick    # 1,000 dispatches, 10 chats (CI)
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dispatch_getters import (
    actions_for,
    build_chats,
    chat_id_of,
    median_us,
    reduced,
    reference_ns,
    rotated,
    state_contender,
    time_steps,
)

from chats_store.chats.actions import MessagePosted
from chats_store.chats.model import ChatsState, replaced

Step = Callable[[ChatsState, MessagePosted], ChatsState]


def find_chat(state: ChatsState, action: MessagePosted) -> ChatsState:
    state.chats.get(action.chat_id)
    return state


def find_message(state: ChatsState, action: MessagePosted) -> ChatsState:
    chat = state.chats[action.chat_id]
    chat.messages.find(action.message.id)
    return state


def new_log(state: ChatsState, action: MessagePosted) -> ChatsState:
    chat = state.chats[action.chat_id]
    chat.messages.find(action.message.id)
    chat.messages.confirm(action.message)
    return state


def copies(state: ChatsState, action: MessagePosted) -> ChatsState:
    chat = state.chats[action.chat_id]
    chat.messages.find(action.message.id)
    messages = chat.messages.confirm(action.message)
    copy = replaced(chat, {"messages": messages, "last_seq": action.seq})
    return replaced(state, {"chats": state.chats.set(action.chat_id, copy)})


PARTS: tuple[tuple[str, Step], ...] = (
    ("1. find the chat", find_chat),
    ("2. + look the message up", find_message),
    ("3. + the chat's new log", new_log),
    ("4. + copy the chat, the map, the state", copies),
    ("5. the reducer", reduced),
)


def other_work(junk: Sequence[int]) -> None:
    """What an app does between two messages, as far as the caches go: a pass over
    ``junk`` (every object of it read)."""
    sum(junk)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="1,000 dispatches, 10 chats")
    parser.add_argument("--block", type=int, default=50)
    args = parser.parse_args(argv)
    chats_count, messages, dispatches = (10, 1_000, 1_000) if args.quick else (100, 10_000, 10_000)
    chat_ids = [chat_id_of(index) for index in range(chats_count)]
    start = build_chats(chat_ids, messages).store.state
    actions = actions_for(start, chat_ids, dispatches)
    # 2 M references (16 MiB) to 500,000 ints (14 MB).
    junk = list(range(500_000)) * 4
    pairs = [
        (state_contender(name, step, start), state_contender(name, step, start))
        for name, step in PARTS
    ]
    gc.collect()
    gc.freeze()
    for number, first in enumerate(range(0, dispatches, args.block)):
        block = actions[first : first + args.block]
        in_turn = rotated(pairs, number)
        for back_to_back, _ in in_turn:
            time_steps(back_to_back, block)
        for _, after_work in in_turn:
            other_work(junk)
            time_steps(after_work, block)
    for kept in pairs[:3]:
        if any(timed.final_state() is not start for timed in kept):
            raise AssertionError("contenders 1-3 must not change the state")
    for chat_id in chat_ids:
        finals = [
            timed.final_state().chats[chat_id].messages for kept in pairs[3:] for timed in kept
        ]
        if any(final != finals[0] for final in finals):
            raise AssertionError(f"contenders 4 and 5 ended with other messages in {chat_id}")
    print(
        f"## The reducer's parts: {chats_count} chats x {messages:,} messages, "
        f"{dispatches:,} dispatches each, blocks of {args.block}\n"
    )
    print("| contender | back to back, median µs | after other work, median µs |")
    print("|---|---:|---:|")
    for back_to_back, after_work in pairs:
        print(
            f"| {back_to_back.name} | {median_us(back_to_back.samples):.2f} "
            f"| {median_us(after_work.samples):.2f} |"
        )
    print(f"\nmachine speed after it: sum((1, 2, 3)) in {reference_ns():.0f} ns")


if __name__ == "__main__":
    main()
