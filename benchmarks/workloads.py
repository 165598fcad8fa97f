"""The workloads of issue 6 against their baselines, all in one run.

1. Incoming message dispatched to a store of 100 chats x 10,000 messages with
   S = 10 / 100 / 1,000 / 10,000 live getters: ours (the facade's getters),
   python-redux 0.25.4 (``store.autorun`` per getter), naive reactivex (one
   ``BehaviorSubject`` + ``map`` + ``distinct_until_changed`` per getter) and a
   hand-written floor (plain callbacks keyed by chat id). Median and p99 per
   dispatch; a store per S, every (S, contender) interleaved in blocks, who goes
   first rotating.
2. History growth: append, edit-in-the-middle and delete in one chat of 1,000 /
   10,000 / 100,000 messages: the chunked ``MessageLog`` against the tuple it
   replaced (``legacy_log.TupleLog``), every (size, log) interleaved in blocks.
3. Join of a chat with 10,000 history messages: decode the join reply frame with
   the protocol codec (``ClientProtocol``) and reduce it into a store.
4. Send -> another client's getter emits over loopback, 100 clients in the chat
   (the reference server in a subprocess, the clients in this process, or the
   receivers in ``--loopback-processes`` processes of their own,
   ``loopback_receivers.py``, and with them, as the floor, raw receivers in a chat
   of their own that parse frames by hand and ``json.loads`` them, each message sent
   to both chats in turn). The first ``--loopback-warmup``
   messages (20) are left out of the figures but the rows "warm-up included".
5. Server fan-out: messages delivered per second to 100 clients of one chat (the
   server in a subprocess, 100 raw WebSocket readers in ``--fanout-processes``
   processes that join then only count frames, one sender keeping
   ``--fanout-window`` posts in flight); then 5b, posts accepted from 100 senders.
   Each server ``--fanout-rounds`` times (3), alternated: the medians.
   ``--fanout-profile`` profiles the server.
6. Client memory: bytes per stored message beyond its content (tracemalloc), for
   messages decoded by the codec from pushed frames and for messages built in Python;
   a full collection's time with 1,000,000 messages held, against the attrs class
   ``Message`` was (``legacy_message.py``).
7. Bounded memory: 1,000,000 messages through one chat with
   ``ChatsConfig(max_messages_in_memory=1000)``: RSS and allocated blocks sampled.
8. Server memory per idle connection, by compression policy
   (``connection_memory.py``): no compression, ``websockets``' default, the
   server's policy.

Every baseline runs on the same immutable state and reducer as ours (only the
runtime differs), so they benefit from the chunked log too (see
``benchmarks/README.md``). The script asserts nothing about time.

    python benchmarks/workloads.py           # the full run (a few minutes on 2 cores)
    python benchmarks/workloads.py --quick   # a few seconds (CI)
    python benchmarks/workloads.py --only 4,5  # some workloads only

It writes the plot to ``benchmarks/dispatch_cost.png`` (``--plot PATH``, or
``--plot ''`` for none) when matplotlib is installed (``pip install -e .[bench]``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare_revisions import alternated, worktree
from connection_memory import workload_connections
from dispatch_getters import (
    Contender,
    actions_for,
    build_chats,
    chat_id_of,
    check_same_work,
    facade_contender,
    grow,
    join_snapshot,
    message,
    naive_contender,
    placement,
    reducer_contender,
    reference_ns,
    rotated,
    time_steps,
)
from legacy_log import TupleLog
from server_process import LOOPBACK_LIMITS, ROOT, stop_processes, tree_env

from chats_store.chats.actions import (
    ChatJoined,
    ChatSnapshot,
    JoinChat,
    MessagePosted,
)
from chats_store.chats.commands import JoinRequest
from chats_store.chats.model import ChatsState, MessageLog
from chats_store.chats.reducer import reduce_chats
from chats_store.protocol.client import ClientProtocol, EventReceived, ReplyReceived
from chats_store.protocol.server import encode_event, encode_reply

PLOT = Path(__file__).resolve().parent / "dispatch_cost.png"


def us(ns: float) -> float:
    return ns / 1000.0


def median(samples: Sequence[int]) -> float:
    return us(statistics.median(samples)) if samples else float("nan")


def p99(samples: Sequence[int]) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return us(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))])


# Workload 1 ---------------------------------------------------------------------------


def floor_contender(state: ChatsState, chat_ids: Sequence[str], live: int) -> Contender:
    """Hand-written: per chat, a list of [projection, last value, callback]; no framework."""
    contender = Contender("hand-written floor")
    by_chat: dict[str, list[list[Any]]] = {}
    for index in range(live):
        chat_id, kind = placement(index, chat_ids)
        value = kind.project(state.chats.get(chat_id))
        contender.sink(value)
        by_chat.setdefault(chat_id, []).append([kind.project, value, contender.sink])
    current = state

    def step(action: MessagePosted) -> None:
        nonlocal current
        before = current.chats.get(action.chat_id)
        current = reduce_chats(current, action).state
        chat = current.chats.get(action.chat_id)
        if chat is before:
            return
        for entry in by_chat.get(action.chat_id, ()):
            value = entry[0](chat)
            last = entry[1]
            if value is not last and value != last:
                entry[1] = value
                entry[2](value)

    contender.step = step
    contender.final_state = lambda: current
    return contender


def redux_contender(state: ChatsState, chat_ids: Sequence[str], live: int) -> Contender | None:
    """python-redux: the same reducer; each getter is a ``store.autorun`` of its selector."""
    try:
        from redux import BaseAction, InitAction, Store, StoreOptions
    except ImportError:
        return None

    class Post(BaseAction):
        action: MessagePosted

    def reducer(current: ChatsState | None, action: Any) -> ChatsState:
        if isinstance(action, InitAction):
            return state
        assert current is not None
        if isinstance(action, Post):
            return reduce_chats(current, action.action).state
        return current

    store: Any = Store(reducer, StoreOptions(auto_init=True, side_effect_threads=1))
    contender = Contender("python-redux")
    autoruns = []
    for index in range(live):
        chat_id, kind = placement(index, chat_ids)

        def select(current: ChatsState, chat_id: str = chat_id, kind: Any = kind) -> object:
            return kind.select(current, chat_id)

        autoruns.append(store.autorun(select)(contender.sink))
    contender.keep = autoruns

    def step(action: MessagePosted) -> None:
        store.dispatch(Post(action=action))

    contender.step = step
    contender.final_state = lambda: store._state
    contender.close = lambda: store.clean_up()  # type: ignore[method-assign]
    return contender


def workload_1(args: argparse.Namespace, results: dict[str, Any]) -> None:
    chat_ids = [chat_id_of(i) for i in range(args.chats)]
    began = time.perf_counter()
    built = build_chats(chat_ids, args.messages)
    # A store per S, all in the same state, so that every S is measured in the same
    # blocks: a slow spell of the machine then falls on every S alike.
    stores = {
        live: built if n == 0 else build_chats(chat_ids, 0, like=built)
        for n, live in enumerate(args.sizes)
    }
    gc.freeze()
    print(
        f"\n## Workload 1: incoming message, {args.chats} chats x {args.messages:,} messages"
        f" (built in {time.perf_counter() - began:.1f} s), {args.dispatches} dispatches per S\n"
    )
    contenders: list[tuple[int, Contender]] = []
    quotas: dict[int, int] = {}
    actions: dict[int, list[MessagePosted]] = {}
    for live, chats in stores.items():
        ours = facade_contender(chats)
        ours.name = "ours"
        grow(ours, chats, chat_ids, live)
        start = chats.store.state
        at_size: list[Contender] = [
            ours,
            floor_contender(start, chat_ids, live),
            reducer_contender(start),
        ]
        redux = redux_contender(start, chat_ids, live) if live <= args.baseline_max else None
        if redux is not None:
            at_size.append(redux)
        if live <= args.baseline_max:
            at_size.append(naive_contender(start, chat_ids, live))
        # Baselines cost ~7 µs per getter: fewer dispatches for them at large S.
        slow = max(args.block, min(args.dispatches, args.dispatches * 100 // live))
        for contender in at_size:
            contender.samples = []
            slow_one = contender.name in ("python-redux", "naive reactivex")
            quotas[id(contender)] = slow if slow_one else args.dispatches
            contenders.append((live, contender))
        actions[live] = actions_for(start, chat_ids, args.dispatches)
    # Blocks of ``args.block`` dispatches, every (S, contender) in turn and the first
    # one rotating; the contenders of one S are fed the same actions.
    for number, first in enumerate(range(0, args.dispatches, args.block)):
        for live, contender in rotated(contenders, number):
            if len(contender.samples) < quotas[id(contender)]:
                time_steps(contender, actions[live][first : first + args.block])
    rows = []
    for live in args.sizes:
        row: dict[str, Any] = {"S": live}
        for size, contender in contenders:
            if size == live:
                row[contender.name] = (
                    median(contender.samples),
                    p99(contender.samples),
                    len(contender.samples),
                )
        rows.append(row)
        # The contenders that took every action ended in the same state.
        check_same_work(
            [c for size, c in contenders if size == live and len(c.samples) == args.dispatches],
            chat_ids,
        )
    for _live, contender in contenders:
        contender.close()
    names = ["ours", "hand-written floor", "reducer alone", "python-redux", "naive reactivex"]
    header = "| S | " + " | ".join(f"{n} median / p99 (n)" for n in names)
    header += " | redux / ours | naive / ours | ours / floor |"
    print(header)
    print("|" + "---:|" * (len(names) + 4))
    for row in rows:
        cells = []
        for name in names:
            if name in row:
                m, p, n = row[name]
                cells.append(f"{m:,.1f} / {p:,.1f} ({n})")
            else:
                cells.append("not run")
        ours = row["ours"][0]

        def ratio(name: str, row: dict[str, Any] = row, ours: float = ours) -> str:
            return f"{row[name][0] / ours:,.1f}x" if name in row else "-"

        print(
            f"| {row['S']:,} | " + " | ".join(cells) + f" | {ratio('python-redux')} | "
            f"{ratio('naive reactivex')} | {ours / row['hand-written floor'][0]:.2f}x |"
        )
    flat = rows[-1]["ours"][0] / rows[0]["ours"][0]
    print(f"\nflatness ours: median(S={rows[-1]['S']:,}) / median(S={rows[0]['S']:,}) = {flat:.2f}")
    results["w1"] = rows
    gc.unfreeze()


# Workload 2 ---------------------------------------------------------------------------


def chat_log(kind: type, size: int) -> Any:
    return kind(tuple(message("c", seq) for seq in range(1, size + 1)))


def workload_2(args: argparse.Namespace, results: dict[str, Any]) -> None:
    print(f"\n## Workload 2: history growth, one chat, {args.repeats} operations each\n")
    print("| messages | op | chunked median / p99 | tuple median / p99 | tuple / chunked |")
    print("|---:|---|---:|---:|---:|")
    logs = {
        (size, kind): chat_log(log_class, size)
        for size in args.history
        for kind, log_class in (("chunked", MessageLog), ("tuple", TupleLog))
    }

    def operations(size: int) -> dict[str, Callable[[Any], Any]]:
        middle = f"c/m{size // 2}"
        edited = msgspec.structs.replace(message("c", size // 2), content="edited", edited_at=1.0)
        appended = message("c", size + 1)

        def edit(log: Any) -> Any:
            assert log.find(edited.id) is not None  # what the reducer's message_edited does
            return log.confirm(edited)

        return {
            "append": lambda log: log.confirm(appended),
            "edit middle": edit,
            "delete middle": lambda log: log.remove(middle),
        }

    by_size = {size: operations(size) for size in args.history}
    perf = time.perf_counter_ns
    samples: dict[tuple[int, str, str], list[int]] = {}
    for name in ("append", "edit middle", "delete middle"):
        contenders = list(logs)
        # Blocks of ``args.block`` operations, every (size, log) in turn and the first one
        # rotating, as in workload 1: a slow spell of the machine falls on every size
        # alike, so the growth from the smallest to the largest is the code's (alternating
        # every single operation measures the caches the 100,000-item tuple copy evicts
        # more than the log: see the README).
        for number, start in enumerate(range(0, args.repeats, args.block)):
            for size, kind in rotated(contenders, number):
                log, operation = logs[size, kind], by_size[size][name]
                kind_samples = samples.setdefault((size, name, kind), [])
                gc.disable()
                try:
                    for _ in range(min(args.block, args.repeats - start)):
                        began = perf()
                        operation(log)
                        kind_samples.append(perf() - began)
                finally:
                    gc.enable()
    rows = []
    for size in args.history:
        for name in ("append", "edit middle", "delete middle"):
            chunked_samples, tuple_samples = (
                samples[size, name, "chunked"],
                samples[size, name, "tuple"],
            )
            chunked, legacy = median(chunked_samples), median(tuple_samples)
            print(
                f"| {size:,} | {name} | {chunked:,.2f} / {p99(chunked_samples):,.2f} | "
                f"{legacy:,.2f} / {p99(tuple_samples):,.2f} | {legacy / chunked:,.1f}x |"
            )
            rows.append({"size": size, "op": name, "chunked": chunked, "tuple": legacy})
    for name in ("append", "edit middle", "delete middle"):
        cost = [r["chunked"] for r in rows if r["op"] == name]
        print(
            f"\n{name}: chunked cost at {args.history[-1]:,} / at {args.history[0]:,}"
            f" = {cost[-1] / cost[0]:.2f}",
            end="",
        )
    print()
    results["w2"] = rows


# Workload 3 ---------------------------------------------------------------------------


def workload_3(args: argparse.Namespace, results: dict[str, Any]) -> None:
    size = args.join_messages
    snapshot = join_snapshot(size)
    frame = encode_reply(1, snapshot)
    # The baseline: the same reply with one field this version does not know, which
    # the fast path leaves to the general one (json + the cattrs converter): how every
    # join was decoded before msgspec.
    general_frame = frame[:-1] + ',"newer":0}'
    decode, reduce, general = [], [], []
    reply: object = None
    for _ in range(args.join_repeats):
        protocol = ClientProtocol()
        protocol.send_request(JoinRequest("joined", "token"))
        gc.collect()
        began = time.perf_counter_ns()
        protocol.receive_data(general_frame)
        (slow,) = protocol.events_received()
        general.append(time.perf_counter_ns() - began)
        assert isinstance(slow, ReplyReceived) and isinstance(slow.result, ChatSnapshot)
        protocol = ClientProtocol()
        request_id = protocol.send_request(JoinRequest("joined", "token"))
        assert request_id == 1
        chats = build_chats([], 0)
        # The previous run's reply (and this run's general one) freed here: otherwise
        # rebinding ``reply`` below frees its 10,000 messages inside the decode's window.
        del slow, reply
        gc.collect()
        began = time.perf_counter_ns()
        protocol.receive_data(frame)
        (reply,) = protocol.events_received()
        assert isinstance(reply, ReplyReceived) and isinstance(reply.result, ChatSnapshot)
        decoded = time.perf_counter_ns()
        chats.store.dispatch(JoinChat(1, "joined", "token"))
        chats.store.dispatch(ChatJoined(1, "joined", reply.result))
        done = time.perf_counter_ns()
        assert len(chats.get_chat_messages("joined").value or ()) == size
        decode.append(decoded - began)
        reduce.append(done - decoded)
    total = [a + b for a, b in zip(decode, reduce, strict=True)]
    print(
        f"\n## Workload 3: join with {size:,} messages ({len(frame):,} bytes frame),"
        f" {args.join_repeats} runs\n"
    )
    print("| step | median ms |\n|---|---:|")
    print(f"| decode, general path (json + cattrs) | {median(general) / 1000:.1f} |")
    print(f"| decode (codec) | {median(decode) / 1000:.1f} |")
    print(f"| reduce (JoinChat + ChatJoined) | {median(reduce) / 1000:.1f} |")
    print(f"| total | {median(total) / 1000:.1f} |")
    results["w3"] = {
        "general": median(general) / 1000,
        "decode": median(decode) / 1000,
        "reduce": median(reduce) / 1000,
        "total": median(total) / 1000,
    }


# The issue's tree in the same run ---------------------------------------------------------

ISSUE_FIGURES = {
    "Workload 1 / S 1,000": ("dispatch at S = 1,000, median", "µs", 15.1, 8.0),
    "Workload 3 / step total": ("join of 10,000 messages, decode + reduce", "ms", 30.7, 8.0),
}
"""Issue 17's absolute figures, as its author measured them on the tree it was filed
against (``--issue-tree``) and on their machine: ``(what, unit, then, target)``."""


def workload_issue_tree(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """Workloads 1 (S = 1,000, no baselines) and 3 of the issue's tree and of this
    tree, alternated in fresh processes: the issue's absolute targets scaled by how
    much slower or faster this machine runs the issue's tree than its author's did."""
    extra = ["--sizes", "1000", "--baseline-max", "0"]
    if args.quick:
        extra += ["--chats", "10", "--messages", "1000", "--dispatches", "100"]
        extra += ["--join-messages", "1000", "--join-repeats", "2"]
    then: dict[str, float] = {}
    now: dict[str, float] = {}
    with worktree(args.issue_tree) as tree:
        # A process each: 3 after 1 would pay 1's heap in its GC passes. The join runs
        # are short: more of them.
        for only, rounds in (("1", args.issue_rounds), ("3", 2 * args.issue_rounds + 1)):
            base, this = alternated(tree, only, extra, rounds)
            # The fastest run of each side, as timeit reports: this machine's noise
            # (its speed drops by up to half for seconds at a time) only slows a run.
            then |= {key: min(values) for key, values in base.items()}
            now |= {key: min(values) for key, values in this.items()}
    print(
        f"\n## The issue's tree ({args.issue_tree}) in the same run: its targets scaled"
        f" to this machine (the fastest of {args.issue_rounds} alternated runs each of workload"
        f" 1, {2 * args.issue_rounds + 1} of workload 3)\n"
        + (
            "\n(quick: smaller workloads than the issue's, the scaling means nothing)\n"
            if args.quick
            else ""
        )
    )
    print(
        "| figure | the issue's (its machine) | issue's tree here | target | target scaled"
        " here | this tree here |\n|---|---:|---:|---:|---:|---:|"
    )
    for key, (what, unit, issue, target) in ISSUE_FIGURES.items():
        if key not in then or key not in now:
            print(f"| {what} | {issue} {unit} | not run | | | |")
            continue
        scaled = target * then[key] / issue
        print(
            f"| {what} | {issue} {unit} | {then[key]:,.1f} | {target} | {scaled:,.1f} |"
            f" {now[key]:,.1f} |"
        )
    results["issue tree"] = {"then": then, "now": now}


# Workload 6 ---------------------------------------------------------------------------


def _stored_bytes(size: int, codec: bool) -> tuple[float, float]:
    """(bytes the store holds per message, of which the content) for ``size`` messages
    received into one chat: decoded from pushed event frames by the codec (``codec``),
    or built in Python by ``message()``."""
    chats = build_chats([], 0)
    chats.store.dispatch(JoinChat(1, "mem", "token"))
    empty = ChatSnapshot(
        messages=(), members_amount=1, member_metadata={}, restrictions=(), last_seq=0
    )
    chats.store.dispatch(ChatJoined(1, "mem", empty))
    frames = (
        [encode_event(MessagePosted("mem", seq, message("mem", seq))) for seq in range(1, size + 1)]
        if codec
        else []
    )
    protocol = ClientProtocol()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    # Everything a received message brings (its Message, id, author, content, times) is
    # allocated under tracemalloc, as when the codec decodes it; what is left counts.
    content = 0
    for seq in range(1, size + 1):
        if codec:
            protocol.receive_data(frames[seq - 1])
            (received,) = protocol.events_received()
            assert isinstance(received, EventReceived)
            action = received.event
            del received
        else:
            action = MessagePosted("mem", seq, message("mem", seq))
        assert isinstance(action, MessagePosted)
        content += sys.getsizeof(action.message.content)
        chats.store.dispatch(action)
    del action
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    stored = after - before
    assert len(chats.store.state.chats["mem"].messages) == size
    return stored / size, content / size


def workload_6(args: argparse.Namespace, results: dict[str, Any]) -> None:
    size = args.memory_messages
    print(f"\n## Workload 6: client memory, one chat of {size:,} messages\n")
    print("| messages | held per message | of which content | beyond the content |")
    print("|---|---:|---:|---:|")
    for codec, label in (
        (True, "decoded from pushed frames by the codec (what a client receives)"),
        (False, "built in Python (one author string per message, chat id shared)"),
    ):
        per, content = _stored_bytes(size, codec)
        print(f"| {label} | {per:,.0f} | {content:,.0f} | {per - content:,.0f} |")
        results["w6" if codec else "w6 built"] = {
            "per": per,
            "beyond": per - content,
            "content": content,
        }
    _collections(args.collected_messages, results)


def _collection_ms(message_class: Callable[..., object], count: int) -> tuple[float, int]:
    """A full collection's median time (5 runs) while ``count`` messages of
    ``message_class`` are held in tuples of 32, and the objects the collector tracks."""
    from chats_store.chats.message_log import _CHUNK  # as the log's chunks hold them

    held = tuple(
        tuple(
            message_class(f"c/m{n}", "c", "user-1", "a message", "ready", n, 1.7e9)
            for n in range(start, min(start + _CHUNK, count))
        )
        for start in range(0, count, _CHUNK)
    )
    gc.collect()
    samples = []
    for _ in range(5):
        began = time.perf_counter_ns()
        gc.collect()
        samples.append(time.perf_counter_ns() - began)
    tracked = len(gc.get_objects())
    del held
    return statistics.median(samples) / 1e6, tracked


def _collections(count: int, results: dict[str, Any]) -> None:
    """What a full collection costs a client holding ``count`` messages: ``Message``
    (a msgspec Struct the collector does not track) against the attrs class it was."""
    from legacy_message import AttrsMessage

    from chats_store.chats.model import Message

    ours, ours_tracked = _collection_ms(Message, count)
    before, before_tracked = _collection_ms(AttrsMessage, count)
    print(
        f"\n| a full collection (`gc.collect()`), {count:,} messages held in tuples of 32"
        " | ms | objects tracked |\n|---|---:|---:|"
    )
    print(f"| `Message` (msgspec Struct, `gc=False`) | {ours:.1f} | {ours_tracked:,} |")
    print(f"| the attrs class it was (`legacy_message.py`) | {before:.1f} | {before_tracked:,} |")
    results["w6 collection"] = {"ours": ours, "before": before}


# Bounded memory (ChatsConfig.max_messages_in_memory) ---------------------------------------


def rss_bytes() -> int:
    """The process's resident set size (Linux ``/proc``; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def workload_bounded(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """``bounded_messages`` messages through one chat of a store keeping the newest N."""
    from dispatch_getters import IdleTransport, ignore_command

    from chats_store.chats.facade import Chats, ChatsConfig
    from chats_store.user.module import User

    total, limit = args.bounded_messages, args.bounded_limit
    print(
        f"\n## Bounded memory: {total:,} messages through one chat,"
        f" max_messages_in_memory={limit:,}\n"
    )
    user = User(user_id="bench-user", display_name="Bench", session_token="unused")
    config = ChatsConfig(host="bench.invalid:1", max_messages_in_memory=limit)
    chats = Chats(user, IdleTransport(), config)
    chats.store.set_interpreter(ignore_command)
    chats.store.dispatch(JoinChat(1, "long", "token"))
    empty = ChatSnapshot(
        messages=(), members_amount=1, member_metadata={}, restrictions=(), last_seq=0
    )
    chats.store.dispatch(ChatJoined(1, "long", empty))
    seen = [0]

    def sink(value: object) -> None:  # a live view of the chat, as a GUI has
        seen[0] += 1

    subscription = chats.get_chat_messages("long").subscribe(sink)
    every = max(total // 10, 1)
    samples: list[tuple[int, int, int, int]] = []  # (messages, rss, allocated blocks, held)
    dispatch = chats.store.dispatch
    gc.collect()
    # RSS and the interpreter's count of allocated memory blocks, sampled along the run
    # (tracemalloc would make the million dispatches take minutes; workload 6 uses it).
    began = time.perf_counter()
    for seq in range(1, total + 1):
        dispatch(MessagePosted("long", seq, message("long", seq)))
        if seq % every == 0:
            blocks = sys.getallocatedblocks()
            held = len(chats.store.state.chats["long"].messages)
            samples.append((seq, rss_bytes(), blocks, held))
    elapsed = time.perf_counter() - began
    subscription.dispose()
    assert seen[0] == total + 1
    first = samples[0]
    print("| messages through | held | RSS MiB | allocated blocks |")
    print("|---:|---:|---:|---:|")
    for count, rss, blocks, held in samples:
        print(f"| {count:,} | {held:,} | {rss / 2**20:,.1f} | {blocks:,} |")
    growth_rss = (samples[-1][1] - first[1]) / 2**20
    growth_blocks = samples[-1][2] - first[2]
    print(
        f"\nfrom {first[0]:,} to {samples[-1][0]:,} messages: RSS {growth_rss:+,.1f} MiB,"
        f" allocated blocks {growth_blocks:+,}; {elapsed:.1f} s"
        f" ({elapsed / total * 1e6:.1f} µs per message)"
    )
    results["bounded"] = {
        "samples": samples,
        "rss_growth_mib": growth_rss,
        "blocks_growth": growth_blocks,
        "seconds": elapsed,
    }


# Workload 4: send -> another client's getter emits, over loopback ------------------------

_SERVER = """
import asyncio, json, signal, sys
from chats_store.server import ServerLimits, run_server

options = json.loads(sys.argv[2])
options["limits"] = ServerLimits(**options.get("limits", {}))

async def main():
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with run_server(port=0, secret=sys.argv[1], rate_limit=None, **options) as server:
        print(server.address, flush=True)
        await stop.wait()

if len(sys.argv) > 3:  # profile the server: cProfile stats written to argv[3] on SIGTERM
    import cProfile
    from chats_store.server.worker import CoreWorker
    run_worker = CoreWorker._run

    def profiled_worker(worker):  # the core's thread, in argv[3] + ".worker"
        worker_profile = cProfile.Profile()
        try:
            worker_profile.runcall(run_worker, worker)
        finally:
            worker_profile.dump_stats(sys.argv[3] + ".worker")

    CoreWorker._run = profiled_worker
    profile = cProfile.Profile()
    profile.enable()
    asyncio.run(main())
    profile.disable()
    profile.dump_stats(sys.argv[3])
else:
    asyncio.run(main())
"""


def server_command(secret: str, profile: str = "", **options: Any) -> list[str]:
    """The command that runs the reference server for workloads 4 and 5: ``run_server``
    with no rate limit and the limits per address lifted (every client is on loopback),
    ``options`` passed on; ``profile``: a path for the server's cProfile stats."""
    options = {"limits": LOOPBACK_LIMITS, **options}
    return [
        sys.executable,
        "-c",
        _SERVER,
        secret,
        json.dumps(options),
        *([profile] if profile else []),
    ]


RECEIVERS = Path(__file__).resolve().parent / "loopback_receivers.py"


async def _numbers_read(lines: asyncio.StreamReader, count: int) -> set[int]:
    """The numbers of the next ``count`` lines of ``lines``, one after another."""
    return {int(await lines.readline()) for _ in range(count)}


class _ReceivingGroup:
    """Workload 4's receivers of one kind (``mode``: "store", full clients, or "raw",
    the floor) in ``chat``, in ``loopback_processes`` processes of their own
    (``loopback_receivers.py``), with the file where they count each message and the
    pipe where the last of them says it has one."""

    def __init__(self, mode: str, chat: str, sends: int) -> None:
        self.mode, self.chat = mode, chat
        self.counts = tempfile.NamedTemporaryFile()  # noqa: SIM115 (closed by close())
        self.counts.write(bytes(4 * sends))
        self.counts.flush()
        self.done = asyncio.StreamReader()
        self.processes: list[asyncio.subprocess.Process] = []
        self.sent_at: list[float] = []
        self._pipe: asyncio.ReadTransport | None = None

    async def start(self, args: argparse.Namespace, address: str, secret: str) -> None:
        """Start the processes and wait until every receiver has joined."""
        receivers = args.loopback_clients - 1
        per = -(-receivers // args.loopback_processes)
        groups = [
            (first, min(per, receivers + 1 - first)) for first in range(1, receivers + 1, per)
        ]
        done_read, done_write = os.pipe()
        self._pipe, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(self.done), os.fdopen(done_read, "rb")
        )
        for first, count in groups:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(RECEIVERS),
                self.mode,
                address,
                secret,
                str(first),
                str(count),
                self.chat,
                self.counts.name,
                str(len(groups)),
                str(done_write),
                *(["freeze"] if args.loopback_freeze else []),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                pass_fds=(done_write,),
                limit=2**26,  # the last line carries every emission time
            )
            self.processes.append(process)
        os.close(done_write)
        for process in self.processes:
            assert process.stdout is not None
            assert (await process.stdout.readline()).strip() == b"ready"

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(process.pid) for process in self.processes)

    async def emissions(self) -> dict[int, list[float]]:
        """The latencies of every receiver by message; the processes end."""
        emitted: list[tuple[int, float]] = []
        for process in self.processes:
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write(b"done\n")
            await process.stdin.drain()
            emitted.extend(json.loads(await process.stdout.readline()))
            await process.wait()
        by_message: dict[int, list[float]] = {}
        for number, at in emitted:
            by_message.setdefault(number, []).append(at - self.sent_at[number])
        return by_message

    async def close(self) -> None:
        self.counts.close()
        if self._pipe is not None:
            self._pipe.close()
        for process in self.processes:
            if process.returncode is None:
                process.kill()
                await process.wait()


async def _loopback_spread(
    args: argparse.Namespace, address: str, secret: str, kinds: Sequence[tuple[str, str, str]]
) -> tuple[dict[str, dict[int, list[float]]], dict[str, float]]:
    """Workload 4 with the receivers in processes of their own, a group per
    ``(what, mode, chat)`` of ``kinds`` (see :class:`_ReceivingGroup`), every group
    alive at once; a sender per group (a full client of ``u0`` in this process) posts
    each message number to its group's chat, the groups in turn (the first
    rotating), so that a slow spell of the machine falls on every group alike.
    Times: ``time.monotonic``, system-wide. Returns, by ``what``, the latencies by
    message and the receiving processes' CPU time per delivery (µs) from their last
    join to the last message."""
    from loopback_receivers import joined_client

    sends = args.loopback_warmup + args.loopback_messages
    groups = [_ReceivingGroup(mode, chat, sends) for _what, mode, chat in kinds]
    try:
        for group in groups:
            await group.start(args, address, secret)
        senders = [await joined_client(address, secret, "u0", group.chat) for group in groups]
        cpu_before = [group.cpu_seconds() for group in groups]
        # Closed loop (the default): the next message once every receiver has this one.
        # Open loop (``loopback_interval``): one message every interval whatever the
        # receivers do; their lines are read at the end.
        began = time.monotonic()
        for n in range(sends):
            for group, (sender, _websocket) in rotated(list(zip(groups, senders, strict=True)), n):
                group.sent_at.append(time.monotonic())
                await sender.send_message(group.chat, f"loopback {n}")
                if not args.loopback_interval:
                    line = await asyncio.wait_for(group.done.readline(), 30)
                    assert int(line) == n, line
            if args.loopback_interval:
                next_send = began + (n + 1) * args.loopback_interval
                await asyncio.sleep(max(0.0, next_send - time.monotonic()))
        if args.loopback_interval:
            for group in groups:
                numbers = await asyncio.wait_for(_numbers_read(group.done, sends), 30)
                assert numbers == set(range(sends)), numbers
        cpu = [
            group.cpu_seconds() - before for group, before in zip(groups, cpu_before, strict=True)
        ]
        for sender, websocket in senders:
            await websocket.disconnect()
            await sender.close()
        receivers = args.loopback_clients - 1
        latencies = {
            what: await group.emissions() for (what, _, _), group in zip(kinds, groups, strict=True)
        }
        per_delivery = {
            what: spent / (sends * receivers) * 1e6
            for (what, _, _), spent in zip(kinds, cpu, strict=True)
        }
        return latencies, per_delivery
    finally:
        for group in groups:
            await group.close()


def workload_4(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """One sender, ``loopback_clients - 1`` receivers (full clients, this process); the
    reference server in a subprocess (no rate limit), over loopback."""
    import secrets

    from loopback_receivers import joined_client

    secret = secrets.token_urlsafe(32)
    server = subprocess.Popen(server_command(secret), stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    address = server.stdout.readline().strip()

    async def drive() -> dict[int, list[float]]:
        clients = [
            await joined_client(address, secret, f"u{n}", "bench")
            for n in range(args.loopback_clients)
        ]
        sent_at: list[float] = [0.0]
        latencies: list[float] = []
        pending: list[int] = [0]
        done = asyncio.Event()
        perf = time.perf_counter

        def watcher(number: int) -> Any:
            last_len = [0]

            def on_messages(messages: Any) -> None:
                if messages is None or len(messages) == last_len[0]:
                    return
                last_len[0] = len(messages)
                latencies.append(perf() - sent_at[0])
                pending[0] -= 1
                if pending[0] == 0:
                    done.set()

            return on_messages

        sender = clients[0][0]
        for number, (chats, _) in enumerate(clients[1:], start=1):
            chats.get_chat_messages("bench").subscribe(watcher(number))
        by_message: dict[int, list[float]] = {}
        for n in range(args.loopback_warmup + args.loopback_messages):
            pending[0] = args.loopback_clients - 1
            latencies.clear()
            done.clear()
            sent_at[0] = perf()
            await sender.send_message("bench", f"loopback {n}")
            await asyncio.wait_for(done.wait(), 30)
            by_message[n] = list(latencies)
        for chats, websocket in clients:
            await websocket.disconnect()
            await chats.close()
        return by_message

    cpu: dict[str, float] = {}  # the receiving processes' CPU per delivery, µs
    try:
        if args.loopback_processes:
            kinds = (
                ("getter", "store", "bench"),
                ("frame, raw receivers (the floor)", "raw", "floor"),
            )
            runs, cpu = asyncio.run(_loopback_spread(args, address, secret, kinds))
        else:
            runs = {"getter": asyncio.run(drive())}
    finally:
        server.terminate()
        server.wait(timeout=10)
        server.stdout.close()

    def pct(values: list[float], q: float) -> float:
        return values[min(len(values) - 1, int(len(values) * q))]

    print(
        f"\n## Workload 4: send -> another client's getter emits, {args.loopback_clients}"
        f" clients in the chat, {args.loopback_messages} messages after"
        f" {args.loopback_warmup} of warm-up, "
        + (
            f"one every {args.loopback_interval * 1000:g} ms"
            if args.loopback_processes and args.loopback_interval
            else "one after the other"
        )
        + " (server in a subprocess, "
        + (
            f"receivers in {args.loopback_processes} processes of their own, each message"
            " sent to the full clients' chat and the raw receivers' in turn)\n"
            if args.loopback_processes
            else "clients in this process)\n"
        )
    )
    print("| figure | p50 ms | p99 ms |\n|---|---:|---:|")
    results["w4"] = {}
    for what, by_message in runs.items():
        # The first ``loopback_warmup`` messages are left out (first runs of the code
        # paths, the joins' garbage), and shown apart: the row "warm-up included".
        measured = [ms for n, ms in by_message.items() if n >= args.loopback_warmup]
        first = sorted(min(ms) * 1000 for ms in measured)
        everyone = sorted(x * 1000 for ms in measured for x in ms)
        with_warmup = sorted(x * 1000 for ms in by_message.values() for x in ms)
        print(f"| first other client's {what} | {pct(first, 0.5):.2f} | {pct(first, 0.99):.2f} |")
        print(
            f"| every other client's {what} ({len(everyone):,} emissions) |"
            f" {pct(everyone, 0.5):.2f} | {pct(everyone, 0.99):.2f} |"
        )
        print(
            f"| every other client's {what}, warm-up included ({len(with_warmup):,}) |"
            f" {pct(with_warmup, 0.5):.2f} | {pct(with_warmup, 0.99):.2f} |"
        )
        key = "" if what == "getter" else "floor "
        if what in cpu:
            results["w4"][f"{key}cpu per delivery"] = cpu[what]
        results["w4"] |= {
            f"{key}first p50": pct(first, 0.5),
            f"{key}first p99": pct(first, 0.99),
            f"{key}all p50": pct(everyone, 0.5),
            f"{key}all p99": pct(everyone, 0.99),
            f"{key}all p99 with warm-up": pct(with_warmup, 0.99),
        }
    if cpu:
        print(
            "\nthe receiving processes' CPU per delivery (from their last join to the last"
            " message): " + ", ".join(f"{what} {spent:.0f} µs" for what, spent in cpu.items())
        )


# Workload 5: server fan-out ---------------------------------------------------------------

CLIENTS = Path(__file__).resolve().parent / "fanout_clients.py"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux ``/proc``; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _clients(mode: str, address: str, secret: str, *arguments: object) -> subprocess.Popen[str]:
    """A process of :mod:`fanout_clients` (``readers`` or ``senders``), its stdin and
    stdout piped; it prints ``ready`` once every client has joined."""
    return subprocess.Popen(
        [sys.executable, str(CLIENTS), mode, address, secret, *map(str, arguments)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _spread(total: int, processes: int) -> list[tuple[int, int]]:
    """``(first, count)`` of each of ``processes`` groups of ``total`` clients."""
    per = -(-total // processes)
    return [(first, min(per, total - first)) for first in range(0, total, per)]


def workload_5(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """Workload 5 against the server of ``fanout_base`` (checked out in a temporary
    worktree) and of this tree, the same clients for both, ``fanout_rounds`` times
    each, alternated (who goes first rotating): each figure's median over the rounds."""
    runs: dict[str, list[dict[str, Any]]] = {"before": [], "ours": []}
    with worktree(args.fanout_base) as base:
        sides = [("before", base), ("ours", ROOT)]
        for round_ in range(args.fanout_rounds):
            for name, tree in sides if round_ % 2 == 0 else sides[::-1]:
                runs[name].append(_fanout(args, tree))
    before, ours = (
        {key: statistics.median(run[key] for run in runs[name]) for key in runs[name][0]}
        for name in ("before", "ours")
    )
    per_chat = -(-args.senders // args.sender_chats)
    print(
        f"\n## Workload 5 (median of {args.fanout_rounds} alternated rounds):"
        f" server fan-out, {args.fanout_readers} readers in"
        f" {ours['reader_processes']} processes, {args.fanout_messages:,} messages, 1 sender"
        f" ({args.fanout_window} requests in flight); 5b: posts accepted from {args.senders}"
        f" senders, {args.sender_window} posts in flight each, {args.sender_chats} chats of"
        f" {per_chat}; SQLite file with durable acks,"
        f" {'no compression' if args.fanout_no_deflate else 'permessage-deflate'}\n"
    )
    print(f"| figure | before ({args.fanout_base}) | this tree |\n|---|---:|---:|")
    rows = (
        ("**deliveries per second**", "rate", "{:,.0f}"),
        ("first send -> last delivery, s", "wall", "{:.2f}"),
        ("messages accepted per second, 1 sender (last reply)", "accepted", "{:,.0f}"),
        ("server CPU, share of one core", "server_cpu", "{:.0%}"),
        ("deliveries per second of server CPU", "per_cpu", "{:,.0f}"),
        ("readers' CPU (their processes, with the joins), s", "readers_cpu", "{:.2f}"),
        ("**5b: posts accepted per second**", "posts_rate", "{:,.0f}"),
        ("5b: server CPU, share of one core", "posts_cpu", "{:.0%}"),
    )
    for label, key, form in rows:
        print(f"| {label} | {form.format(before[key])} | {form.format(ours[key])} |")
    results["w5"] = ours
    results["w5 before"] = before


def _fanout(args: argparse.Namespace, tree: Path) -> dict[str, Any]:
    """Workload 5 on the server of ``tree``: its figures.

    The reference server in its own process, on an SQLite file with durable acks
    (the default of ``chats-store serve``). Fan-out: ``fanout_readers`` lean readers
    (:mod:`fanout_clients`) in ``fanout_processes`` processes, one sender posting
    ``fanout_messages`` with up to ``fanout_window`` requests in flight. Then posts
    accepted: ``senders`` lean senders in ``sender_processes`` processes, in
    ``sender_chats`` chats, each posting ``sender_posts`` with ``sender_window`` in
    flight, every acknowledgement counted."""
    import secrets

    from websockets.asyncio.client import connect
    from websockets.typing import Subprotocol

    from chats_store.chats.commands import JoinRequest, PostMessageRequest
    from chats_store.protocol.client import encode_request
    from chats_store.protocol.frames import PROTOCOL_VERSION
    from chats_store.server import mint_chat_token, mint_session_token

    secret = secrets.token_urlsafe(32)
    chat_id, total = "fanout", args.fanout_messages
    compression = "none" if args.fanout_no_deflate else "deflate"
    db = Path(tempfile.mkdtemp()) / "fanout.sqlite3"
    server = subprocess.Popen(
        server_command(secret, args.fanout_profile, db=str(db)),
        stdout=subprocess.PIPE,
        text=True,
        cwd=tree,
        env=tree_env(tree),
    )
    assert server.stdout is not None
    address = server.stdout.readline().strip()
    processes: list[subprocess.Popen[str]] = []

    def ready(group: list[subprocess.Popen[str]]) -> None:
        processes.extend(group)
        for process in group:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"

    def reports(group: list[subprocess.Popen[str]]) -> list[dict[str, Any]]:
        found = []
        for process in group:
            assert process.stdout is not None
            found.append(json.loads(process.stdout.readline()))
        return found

    try:
        readers = [
            _clients("readers", address, secret, first, count, chat_id, total, compression)
            for first, count in _spread(args.fanout_readers, args.fanout_processes)
        ]
        ready(readers)

        async def send() -> tuple[float, float, float]:
            async with connect(
                f"ws://{address}",
                additional_headers={
                    "Authorization": f"Bearer {mint_session_token(secret, 'sender')}"
                },
                subprotocols=[Subprotocol(PROTOCOL_VERSION)],
                max_size=None,
                ping_interval=None,
            ) as websocket:
                token = mint_chat_token(secret, "sender", chat_id)
                await websocket.send(encode_request(1, JoinRequest(chat_id, token)))
                while json.loads(await websocket.recv()).get("id") != 1:
                    pass
                window = asyncio.Semaphore(args.fanout_window)
                replies = asyncio.Event()
                answered = [0]

                async def read() -> None:  # replies free the window; own pushes are dropped
                    async for data in websocket:
                        text = data if isinstance(data, str) else data.decode()
                        if text.startswith('{"type":"ok"'):
                            answered[0] += 1
                            window.release()
                            if answered[0] == total:
                                replies.set()
                                return
                        elif text.startswith('{"type":"error"'):
                            raise RuntimeError(text)

                reading = asyncio.create_task(read())
                began, cpu = time.monotonic(), cpu_seconds(server.pid)
                for n in range(total):
                    await window.acquire()
                    request = PostMessageRequest(chat_id, f"m{n}", f"fan-out message {n}")
                    await websocket.send(encode_request(n + 2, request))
                await replies.wait()
                await reading
                return began, time.monotonic(), cpu

        began, replied, cpu_before = asyncio.run(send())
        fanned = reports(readers)
        cpu = cpu_seconds(server.pid) - cpu_before

        senders = [
            _clients(
                "senders",
                address,
                secret,
                first,
                count,
                args.sender_chats,
                args.sender_posts,
                args.sender_window,
                compression,
            )
            for first, count in _spread(args.senders, args.sender_processes)
        ]
        ready(senders)
        posts_cpu_before = cpu_seconds(server.pid)
        for process in senders:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        posted = reports(senders)
        posts_cpu = cpu_seconds(server.pid) - posts_cpu_before
    finally:
        stop_processes(processes, server)
    frames = sum(report["frames"] for report in fanned)
    assert frames == total * args.fanout_readers, (frames, total * args.fanout_readers)
    wall = max(report["last"] for report in fanned) - began
    rate = frames / wall
    acks = sum(report["acks"] for report in posted)
    assert acks == args.senders * args.sender_posts, (acks, args.senders * args.sender_posts)
    posts_wall = max(r["last"] for r in posted) - min(r["began"] for r in posted)
    posts_rate = acks / posts_wall
    return {
        "rate": rate,
        "wall": wall,
        "server_cpu": cpu / wall,
        "per_cpu": frames / max(cpu, 0.01),
        "readers_cpu": sum(report["cpu"] for report in fanned),
        "reader_processes": len(readers),
        "accepted": total / (replied - began),
        "posts_rate": posts_rate,
        "posts_cpu": posts_cpu / posts_wall,
    }


# Plot ---------------------------------------------------------------------------------


def plot(results: dict[str, Any], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\n(matplotlib not installed: no plot; pip install -e .[bench])")
        return
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    rows = results["w1"]
    for name, style in (
        ("ours", "o-"),
        ("hand-written floor", "s--"),
        ("python-redux", "^-"),
        ("naive reactivex", "v-"),
    ):
        points = [(r["S"], r[name][0]) for r in rows if name in r]
        if points:
            left.plot(*zip(*points, strict=True), style, label=name)
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("live getters (S)")
    left.set_ylabel("median µs per dispatch")
    left.set_title("Workload 1: one incoming message")
    left.legend()
    for op, style in (("append", "o"), ("edit middle", "s"), ("delete middle", "^")):
        for kind, line in (("chunked", "-"), ("tuple", "--")):
            points = [(r["size"], r[kind]) for r in results["w2"] if r["op"] == op]
            label = (
                f"{op}, {'chunked MessageLog (ours)' if kind == 'chunked' else 'tuple (before)'}"
            )
            right.plot(*zip(*points, strict=True), style + line, label=label)
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("messages in the chat")
    right.set_ylabel("median µs per operation")
    right.set_title("Workload 2: history growth")
    right.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    print(f"\nplot written to {path}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a few seconds (CI)")
    parser.add_argument("--chats", type=int, default=100)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--dispatches", type=int, default=1_000)
    parser.add_argument("--block", type=int, default=50)
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument("--baseline-max", type=int, default=10_000)
    parser.add_argument("--history", default="1000,10000,100000")
    parser.add_argument("--repeats", type=int, default=400)
    parser.add_argument("--join-messages", type=int, default=10_000)
    parser.add_argument("--join-repeats", type=int, default=7)
    parser.add_argument("--memory-messages", type=int, default=10_000)
    parser.add_argument("--bounded-messages", type=int, default=1_000_000)
    parser.add_argument("--bounded-limit", type=int, default=1_000)
    parser.add_argument("--loopback-clients", type=int, default=100)
    parser.add_argument("--loopback-messages", type=int, default=200)
    parser.add_argument(
        "--loopback-warmup",
        type=int,
        default=20,
        help="workload 4: messages sent first and left out of the figures but one",
    )
    parser.add_argument(
        "--loopback-interval",
        type=float,
        default=0.0,
        help="workload 4 with --loopback-processes: send a message every this many seconds"
        " (open loop) rather than once every receiver has the previous one",
    )
    parser.add_argument(
        "--loopback-freeze",
        action="store_true",
        help="workload 4's receiving processes call gc.freeze() once joined",
    )
    parser.add_argument(
        "--loopback-processes",
        type=int,
        default=0,
        help="workload 4's receivers in this many processes (0: in this one)",
    )
    parser.add_argument("--fanout-base", default="bc98088", help="workload 5's before")
    parser.add_argument("--fanout-readers", type=int, default=100)
    parser.add_argument("--fanout-processes", type=int, default=2)
    parser.add_argument("--fanout-messages", type=int, default=2_000)
    parser.add_argument("--fanout-window", type=int, default=32)
    parser.add_argument("--fanout-rounds", type=int, default=3, help="workload 5's rounds")
    parser.add_argument("--senders", type=int, default=100)
    parser.add_argument("--sender-processes", type=int, default=2)
    parser.add_argument("--sender-chats", type=int, default=10)
    parser.add_argument("--sender-posts", type=int, default=50)
    parser.add_argument("--sender-window", type=int, default=4)
    parser.add_argument(
        "--fanout-no-deflate",
        action="store_true",
        help="readers refuse permessage-deflate (the project's client accepts it)",
    )
    parser.add_argument(
        "--fanout-profile", default="", help="write the server's cProfile stats to this file"
    )
    parser.add_argument(
        "--collected-messages", type=int, default=1_000_000, help="workload 6's collections"
    )
    parser.add_argument("--connections", type=int, default=2_000, help="workload 8")
    parser.add_argument("--connection-processes", type=int, default=2, help="workload 8")
    parser.add_argument("--connections-base", default="bc98088", help="workload 8's before")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated workloads to run (1,2,3,4,5,6,bounded,8,issue)",
    )
    parser.add_argument(
        "--issue-tree", default="bc98088", help="the tree issue 17's figures were measured on"
    )
    parser.add_argument("--issue-rounds", type=int, default=3)
    parser.add_argument("--plot", default=str(PLOT))
    args = parser.parse_args(argv)
    if args.quick:
        args.chats, args.messages, args.dispatches, args.block = 10, 1_000, 100, 25
        args.sizes, args.baseline_max, args.history = "10,100", 100, "1000,10000"
        args.repeats, args.join_messages, args.join_repeats = 50, 1_000, 2
        args.memory_messages, args.bounded_messages, args.collected_messages = 1_000, 5_000, 10_000
        args.loopback_clients, args.loopback_messages, args.loopback_warmup = 5, 5, 1
        args.fanout_readers, args.fanout_processes, args.fanout_messages = 5, 1, 50
        args.fanout_rounds = 1
        args.connections, args.connection_processes = 50, 1
        args.senders, args.sender_processes, args.sender_chats, args.sender_posts = 5, 1, 2, 10
        args.issue_rounds = 1
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.history = [int(s) for s in args.history.split(",")]
    print(
        f"# chats_store workloads ({'quick' if args.quick else 'full'} run)\n\n"
        f"machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
        f"CPython {platform.python_version()}"
    )
    results: dict[str, Any] = {}
    workloads = {
        "1": workload_1,
        "2": workload_2,
        "3": workload_3,
        "4": workload_4,
        "5": workload_5,
        "6": workload_6,
        "bounded": workload_bounded,
        "8": workload_connections,
        "issue": workload_issue_tree,
    }
    chosen = args.only.split(",") if args.only else list(workloads)
    for name in chosen:
        workloads[name](args, results)
        print(f"\nmachine speed after it: sum((1, 2, 3)) in {reference_ns():.0f} ns")
    if args.plot and "w1" in results and "w2" in results:
        # The quick run's plot goes to a temporary directory: it must not replace the real one.
        target = Path(tempfile.mkdtemp()) / "dispatch_cost.png" if args.quick else args.plot
        plot(results, str(target))


if __name__ == "__main__":
    main()
