"""Where workload 3's join spends its time: its steps, each timed alone in one process.

The reply frame of a join with 10,000 messages (workload 3's), then each step of
``ClientProtocol.receive_data`` and of the reducer's ``ChatJoined`` on it, timed
alone (a full collection before each run, the result freed after it):

1. msgspec reads the frame into the wire structs (``read_ok_result``);
2. the one pass that interns the ids and makes the ``Message``s (``_domain_messages``);
3. the snapshot's reader as a whole (``read_snapshot``: 1, 2 and freeing the structs);
4. the page check the protocol makes of the reply (``_page_mismatch``), and of it the
   set of the ids;
5. the reducer's ordering of the messages (``_ready_in_order``);
6. the chat's new log (``MessageLog``), and of it the id index (``_index_of``);
7. ``receive_data`` as a whole (3 and 4, the frame's routing), in a protocol that has
   just sent the join.

It asserts nothing about time.

    python benchmarks/join_parts.py            # 21 runs of each step (~10 s)
    python benchmarks/join_parts.py --quick    # 3 runs, 1,000 messages (CI)
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dispatch_getters import join_snapshot, reference_ns

from chats_store.chats.commands import JoinRequest, _page_mismatch
from chats_store.chats.message_log import MessageLog, _index_of
from chats_store.chats.reducer import _ready_in_order
from chats_store.protocol.client import ClientProtocol
from chats_store.protocol.frames import read_ok_result
from chats_store.protocol.mapping import _SNAPSHOT_FRAME, _domain_messages, read_snapshot
from chats_store.protocol.server import encode_reply


def median_ms(step: Callable[[], object], runs: int) -> float:
    """The median time of ``step`` over ``runs`` runs, in ms, each after a full
    collection, its result freed outside the timed window."""
    samples = []
    for _ in range(runs):
        gc.collect()
        began = time.perf_counter_ns()
        result = step()
        samples.append(time.perf_counter_ns() - began)
        del result
    return statistics.median(samples) / 1e6


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="3 runs, 1,000 messages")
    args = parser.parse_args(argv)
    size, runs = (1_000, 3) if args.quick else (10_000, 21)
    snapshot = join_snapshot(size)
    frame = encode_reply(1, snapshot)
    wire = read_ok_result(_SNAPSHOT_FRAME, frame, 1)
    assert wire is not None
    read = read_snapshot(frame, 1)
    assert read is not None and read.messages == snapshot.messages
    messages = read.messages

    def joining() -> ClientProtocol:
        protocol = ClientProtocol()
        protocol.send_request(JoinRequest("joined", "token"))
        return protocol

    # Each run of step 7 reads the frame into a protocol of its own, made beforehand.
    protocols = iter([joining() for _ in range(runs)])

    def received() -> object:
        protocol = next(protocols)
        protocol.receive_data(frame)
        return protocol.events_received()

    steps: tuple[tuple[str, Callable[[], object]], ...] = (
        (
            "1. msgspec: the frame into the wire structs",
            lambda: read_ok_result(_SNAPSHOT_FRAME, frame, 1),
        ),
        (
            "2. the one pass: ids interned, the Messages made",
            lambda: _domain_messages(wire.messages),
        ),
        ("3. read_snapshot (1, 2, the structs freed)", lambda: read_snapshot(frame, 1)),
        ("4. the page check", lambda: _page_mismatch(messages, "joined", size + 1)),
        ("4'. of it, the set of the ids", lambda: len({m.id for m in messages})),
        ("5. the reducer's ordering", lambda: _ready_in_order(messages)),
        ("6. the chat's new log", lambda: MessageLog(messages)),
        ("6'. of it, the id index", lambda: _index_of(messages)),
        ("7. receive_data (3, 4, the routing)", received),
    )
    if _page_mismatch(messages, "joined", size + 1) is not None:
        raise AssertionError("the page check refused the frame's messages")
    print(
        f"## The join's steps: {size:,} messages ({len(frame):,} bytes frame), {runs} runs each\n"
    )
    print("| step | median ms |\n|---|---:|")
    for name, step in steps:
        print(f"| {name} | {median_ms(step, runs):.2f} |")
    print(f"\nmachine speed after it: sum((1, 2, 3)) in {reference_ns():.0f} ns")


if __name__ == "__main__":
    main()
