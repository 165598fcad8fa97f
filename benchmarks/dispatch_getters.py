"""Dispatch cost with many live getters: chats_store against naive reactivex.

Workload: a Chats state of 100 chats x M messages (default 1,000), built by
dispatching ``JoinChat`` then ``ChatJoined`` (with a ``ChatSnapshot``) through a
real :class:`chats_store.chats.facade.Chats` whose transport is an idle fake and
whose command interpreter is replaced by a no-op (nothing is ever sent). Then S
live subscriptions (10, 1,000, 10,000) are spread over the 100 chats and the 7
per-chat getter kinds, and each dispatch posts one incoming ``MessagePosted``
(a new ``seq`` each time) into one chat, chosen round-robin.

Contenders, all fed the same actions from the same starting state (the state is
immutable, so each contender keeps its own copy for free):

* ``ours (facade)``: the facade's memoized getters (``chats.get_chat_messages(c)``
  ...), S subscriptions over at most 700 distinct getters, as an app uses them;
* ``ours (distinct)``: S *distinct* getters made with ``store.getter`` under unique
  keys, with the facade's input (``state.chats.get(chat_id)``), projections and
  scopes, one subscription each: the worst case for the store;
* ``reducer alone``: ``reduce_chats`` only, no store, no getters (the floor);
* ``naive reactivex``: one ``BehaviorSubject`` of the whole state; each of the S
  getters is ``subject.pipe(ops.map(selector), ops.distinct_until_changed())``,
  subscribed. Only up to S = 1,000 by default: at 10,000 one dispatch costs about
  19 ms on the machine of ``benchmarks/README.md`` (200 dispatches measured), so
  2,000 of them would add some 40 s to the run (``--naive-max 10000`` to insist).

Every dispatch is timed alone with ``time.perf_counter_ns``; contenders are
interleaved in blocks of ``--block`` dispatches (their order rotates every block)
with the garbage collector disabled inside each block. The script checks that
every contender did the same work (same final messages, same number of values
delivered to subscribers); it asserts nothing about time.

Run from the project root::

    python benchmarks/dispatch_getters.py            # the full run (under 10 s on 2 cores)
    python benchmarks/dispatch_getters.py --quick    # 200 dispatches, S = 10 and 10,000 (~3 s)
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import platform
import sys
import time
import timeit
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from reactivex import Observable
from reactivex import operators as ops
from reactivex.abc import DisposableBase
from reactivex.subject import BehaviorSubject, Subject

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chats_store.chats import selectors
from chats_store.chats.actions import (
    ChatJoined,
    ChatSnapshot,
    Failure,
    JoinChat,
    MessagePosted,
    ServerEvent,
)
from chats_store.chats.commands import ChatReply, ChatRequest
from chats_store.chats.facade import Chats, ChatsConfig
from chats_store.chats.model import (
    ChatsState,
    ChatState,
    ConnectionStatus,
    Message,
    Restriction,
)
from chats_store.chats.reducer import reduce_chats
from chats_store.core.reducer import Command
from chats_store.core.store import Getter, Store
from chats_store.user.module import User

Projection = Callable[[ChatState | None], object]
Selector = Callable[[ChatsState, str], object]
FacadeGetter = Callable[[Chats, str], Getter[Any]]


class Kind:
    """One per-chat getter kind: the facade method, its projection, its selector."""

    def __init__(
        self, name: str, facade: FacadeGetter, project: Projection, select: Selector
    ) -> None:
        self.name = name
        self.facade = facade
        self.project = project
        self.select = select


KINDS: tuple[Kind, ...] = (
    Kind("status", Chats.get_chat_status, selectors.status_of, selectors.select_chat_status),
    Kind(
        "messages", Chats.get_chat_messages, selectors.messages_of, selectors.select_chat_messages
    ),
    Kind(
        "members_amount",
        Chats.get_chat_members_amount,
        selectors.members_amount_of,
        selectors.select_chat_members_amount,
    ),
    Kind(
        "sync_statuses",
        Chats.get_chat_sync_statuses,
        selectors.sync_statuses_of,
        selectors.select_chat_sync_statuses,
    ),
    Kind(
        "is_syncing",
        Chats.is_chat_syncing,
        selectors.is_syncing_of,
        selectors.select_is_chat_syncing,
    ),
    Kind(
        "metadata",
        Chats.get_client_chat_member_metadata,
        selectors.metadata_of,
        selectors.select_client_chat_member_metadata,
    ),
    Kind(
        "restrictions",
        Chats.get_client_chat_member_restrictions,
        selectors.restrictions_of,
        selectors.select_client_chat_member_restrictions,
    ),
)


class IdleTransport:
    """A ChatsTransport that is connected, pushes nothing and is never asked anything."""

    def __init__(self) -> None:
        self._status: BehaviorSubject[ConnectionStatus] = BehaviorSubject("connected")
        self._events: Subject[ServerEvent] = Subject()

    @property
    def status(self) -> Observable[ConnectionStatus]:
        return self._status

    @property
    def events(self) -> Observable[ServerEvent]:
        return self._events

    async def request(self, request: ChatRequest, timeout: float) -> ChatReply | Failure:
        raise AssertionError(f"the benchmark never sends a request, got {request!r}")


def ignore_command(command: Command) -> None:
    """The benchmark's interpreter: commands are dropped (nothing is sent)."""


T = TypeVar("T")


def chat_id_of(index: int) -> str:
    return f"chat-{index:03d}"


def message(chat_id: str, seq: int) -> Message:
    return Message(
        id=f"{chat_id}/m{seq}",
        chat_id=chat_id,
        author_id=f"user-{seq % 7}",
        content=f"message number {seq} of {chat_id}",
        status="ready",
        seq=seq,
        created_at=1_700_000_000.0 + seq,
    )


def join_snapshot(size: int) -> ChatSnapshot:
    """What the join of chat ``joined`` with ``size`` messages brings (workload 3's)."""
    return ChatSnapshot(
        messages=tuple(message("joined", seq) for seq in range(1, size + 1)),
        members_amount=100,
        member_metadata={"role": "member"},
        restrictions=(),
        last_seq=size,
    )


def build_chats(chat_ids: Sequence[str], messages: int, *, like: Chats | None = None) -> Chats:
    """A real facade whose store holds ``chat_ids`` joined, ``messages`` each; with
    ``like``, joined to those chats as ``like`` holds them, the same message objects
    (a history held once for several facades)."""
    user = User(user_id="bench-user", display_name="Bench", session_token="unused")
    chats = Chats(user, IdleTransport(), ChatsConfig(host="bench.invalid:1"))
    chats.store.set_interpreter(ignore_command)
    restrictions = (Restriction("mute", until=None, reason="benchmark"),)
    for call_id, chat_id in enumerate(chat_ids, start=1):
        if like is None:
            history, last_seq = (
                tuple(message(chat_id, seq) for seq in range(1, messages + 1)),
                messages,
            )
        else:
            held = like.store.state.chats[chat_id]
            history, last_seq = tuple(held.messages.items), held.last_seq
        snapshot = ChatSnapshot(
            messages=history,
            members_amount=42,
            member_metadata={"role": "member"},
            restrictions=restrictions,
            last_seq=last_seq,
        )
        chats.store.dispatch(JoinChat(call_id, chat_id, "unused-token"))
        chats.store.dispatch(ChatJoined(call_id, chat_id, snapshot))
    return chats


def rotated(items: Sequence[T], turn: int) -> tuple[T, ...]:
    """``items`` starting at ``turn`` (modulo their number): who goes first in a block
    of interleaved contenders rotates from block to block."""
    shift = turn % len(items)
    return (*items[shift:], *items[:shift])


def placement(index: int, chat_ids: Sequence[str]) -> tuple[str, Kind]:
    """Where live getter ``index`` goes: every (chat, kind) pair once per 7 x chats."""
    chats = len(chat_ids)
    return chat_ids[index % chats], KINDS[(index + index // chats) % len(KINDS)]


def actions_for(state: ChatsState, chat_ids: Sequence[str], count: int) -> list[MessagePosted]:
    """``count`` incoming messages, round-robin over the chats, each with a new seq."""
    next_seq = {chat_id: state.chats[chat_id].last_seq + 1 for chat_id in chat_ids}
    actions = []
    for index in range(count):
        chat_id = chat_ids[index % len(chat_ids)]
        seq = next_seq[chat_id]
        next_seq[chat_id] = seq + 1
        actions.append(MessagePosted(chat_id, seq, message(chat_id, seq)))
    return actions


class Contender:
    """A way to process one action, with its samples and a delivery counter."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.samples: list[int] = []
        self._delivered = itertools.count()
        self._baseline = 0
        self.step: Callable[[MessagePosted], None] = lambda action: None
        self.final_state: Callable[[], ChatsState] = ChatsState
        self.subscriptions: list[DisposableBase] = []
        self.keep: Sequence[object] = ()  # objects to hold while the contender runs

    def sink(self, value: object) -> None:
        next(self._delivered)

    def delivered(self) -> int:
        """Values delivered to subscribers since :meth:`reset_delivered`."""
        return next(self._delivered) - self._baseline - 1

    def reset_delivered(self) -> None:
        self._baseline = next(self._delivered) + 1

    def close(self) -> None:
        for subscription in self.subscriptions:
            subscription.dispose()
        self.subscriptions.clear()


def facade_contender(chats: Chats) -> Contender:
    """Subscribes through the facade; :func:`grow` adds subscriptions as S grows."""
    contender = Contender("ours (facade)")
    contender.step = chats.store.dispatch
    contender.final_state = lambda: chats.store.state
    return contender


def grow(contender: Contender, chats: Chats, chat_ids: Sequence[str], live: int) -> None:
    """Subscribe to the facade's getters until ``contender`` holds ``live`` subscriptions."""
    for index in range(len(contender.subscriptions), live):
        chat_id, kind = placement(index, chat_ids)
        contender.subscriptions.append(kind.facade(chats, chat_id).subscribe(contender.sink))


def distinct_contender(state: ChatsState, chat_ids: Sequence[str], live: int) -> Contender:
    contender = Contender("ours (distinct)")
    store: Store[ChatsState] = Store(
        reduce_chats,
        state,
        scope_of=lambda action: getattr(action, "chat_id", None),
        interpreter=ignore_command,
    )
    getters: list[Getter[object]] = []  # held: getters are memoized weakly
    for index in range(live):
        chat_id, kind = placement(index, chat_ids)

        def input_of(state: ChatsState, chat_id: str = chat_id) -> ChatState | None:
            return state.chats.get(chat_id)

        getter = store.getter((kind.name, chat_id, index), input_of, kind.project, scope=chat_id)
        getters.append(getter)
        contender.subscriptions.append(getter.subscribe(contender.sink))
    contender.step = store.dispatch
    contender.final_state = lambda: store.state
    contender.keep = getters
    return contender


def state_contender(
    name: str, step: Callable[[ChatsState, MessagePosted], ChatsState], start: ChatsState
) -> Contender:
    """A contender that keeps a state, from ``start``: each action gives the next by ``step``."""
    contender = Contender(name)
    current = start

    def run(action: MessagePosted) -> None:
        nonlocal current
        current = step(current, action)

    contender.step = run
    contender.final_state = lambda: current
    return contender


def reduced(state: ChatsState, action: MessagePosted) -> ChatsState:
    """The state after ``action``, by ``reduce_chats``."""
    return reduce_chats(state, action).state


def reducer_contender(state: ChatsState) -> Contender:
    return state_contender("reducer alone", reduced, state)


def selector_for(kind: Kind, chat_id: str) -> Callable[[ChatsState], object]:
    def select(state: ChatsState) -> object:
        return kind.select(state, chat_id)

    return select


def naive_contender(state: ChatsState, chat_ids: Sequence[str], live: int) -> Contender:
    contender = Contender("naive reactivex")
    subject: BehaviorSubject[ChatsState] = BehaviorSubject(state)
    for index in range(live):
        chat_id, kind = placement(index, chat_ids)

        getter: Observable[object] = subject.pipe(
            ops.map(selector_for(kind, chat_id)), ops.distinct_until_changed()
        )
        contender.subscriptions.append(getter.subscribe(contender.sink))
    current = state

    def step(action: MessagePosted) -> None:
        nonlocal current
        current = reduce_chats(current, action).state
        subject.on_next(current)

    contender.step = step
    contender.final_state = lambda: current
    return contender


def run_interleaved(
    contenders: Sequence[Contender], actions: Sequence[MessagePosted], block: int
) -> None:
    """Feed ``actions`` to every contender, in blocks, rotating who goes first."""
    for contender in contenders:
        contender.reset_delivered()
    for number, start in enumerate(range(0, len(actions), block)):
        chunk = actions[start : start + block]
        for contender in rotated(contenders, number):
            time_steps(contender, chunk)


def time_steps(contender: Contender, actions: Sequence[MessagePosted]) -> None:
    """Run ``actions`` through ``contender.step``, timing each alone, GC off."""
    perf = time.perf_counter_ns
    step = contender.step
    samples = contender.samples
    gc.disable()
    try:
        for action in actions:
            began = perf()
            step(action)
            samples.append(perf() - began)
    finally:
        gc.enable()


def reference_ns() -> float:
    """How long this machine takes for ``sum((1, 2, 3))`` now (the fastest of 5), in ns.

    A shared machine's speed swings over a day; this figure, printed after a
    measurement, tells how fast it ran then.
    """
    timer = timeit.Timer("sum((1, 2, 3))")
    return min(timer.repeat(5, 200_000)) / 200_000 * 1e9


def median_us(samples: Sequence[int]) -> float:
    ordered = sorted(samples)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle] / 1000
    return (ordered[middle - 1] + ordered[middle]) / 2000


def p99_us(samples: Sequence[int]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))] / 1000


def check_same_work(contenders: Sequence[Contender], chat_ids: Sequence[str]) -> None:
    """Every contender ends in the same state and delivered as many values."""
    reference = contenders[0].final_state()
    for contender in contenders[1:]:
        state = contender.final_state()
        for chat_id in chat_ids:
            ours = reference.chats[chat_id].messages.items
            theirs = state.chats[chat_id].messages.items
            if ours != theirs:
                raise AssertionError(f"{contender.name} diverged in {chat_id}")
    counts = {c.name: c.delivered() for c in contenders if c.name != "reducer alone"}
    if len(set(counts.values())) > 1:
        raise AssertionError(f"contenders delivered different numbers of values: {counts}")


def check_getters(chats: Chats, chat_ids: Sequence[str]) -> None:
    """The facade's getters hold what the selectors compute from the state."""
    state = chats.store.state
    for chat_id in chat_ids:
        for kind in KINDS:
            value = kind.facade(chats, chat_id).value
            if value != kind.select(state, chat_id):
                raise AssertionError(f"{kind.name} getter of {chat_id} is stale")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="200 dispatches, S = 10 and 10,000")
    parser.add_argument("--messages", type=int, default=1_000, help="messages per chat (M)")
    parser.add_argument("--chats", type=int, default=100, help="number of chats")
    parser.add_argument("--dispatches", type=int, help="dispatches per S (default 2,000)")
    parser.add_argument("--sizes", help="comma-separated S values (default 10,1000,10000)")
    parser.add_argument(
        "--naive-max", type=int, default=1_000, help="largest S for naive reactivex"
    )
    parser.add_argument("--block", type=int, default=50, help="dispatches per interleaved block")
    parser.add_argument(
        "--facade-only",
        action="store_true",
        help="interleave ours facade with the reducer alone only (no distinct, no naive): "
        "the other contenders' memory traffic evicts the caches ours would have in an app",
    )
    args = parser.parse_args(argv)
    if args.dispatches is None:
        args.dispatches = 200 if args.quick else 2_000
    if args.sizes is None:
        args.sizes = "10,10000" if args.quick else "10,1000,10000"
    args.sizes = sorted({int(size) for size in args.sizes.split(",")})
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    chat_ids = [chat_id_of(index) for index in range(args.chats)]
    print(
        f"python {platform.python_version()} ({platform.python_implementation()}), "
        f"{os.cpu_count()} CPUs, {cpu_model()}"
    )
    print(
        f"{args.chats} chats x {args.messages:,} messages; {args.dispatches:,} dispatches "
        f"per S of one MessagePosted (new seq) into one chat, round-robin; "
        f"blocks of {args.block}"
    )

    began = time.perf_counter()
    chats = build_chats(chat_ids, args.messages)
    gc.collect()
    gc.freeze()  # the built state is permanent: collections between blocks stay cheap
    print(f"state built through the reducer in {time.perf_counter() - began:.1f} s\n")

    rows: list[dict[str, Any]] = []
    facade = facade_contender(chats)
    for live in args.sizes:
        state = chats.store.state
        actions = actions_for(state, chat_ids, args.dispatches)
        facade.samples = []
        grow(facade, chats, chat_ids, live)
        distinct = None if args.facade_only else distinct_contender(state, chat_ids, live)
        reducer = reducer_contender(state)
        naive = (
            naive_contender(state, chat_ids, live)
            if live <= args.naive_max and not args.facade_only
            else None
        )
        contenders = [
            facade,
            *([distinct] if distinct else []),
            reducer,
            *([naive] if naive else []),
        ]
        started = time.perf_counter()
        run_interleaved(contenders, actions, args.block)
        elapsed = time.perf_counter() - started
        check_same_work(contenders, chat_ids)
        check_getters(chats, chat_ids)
        delivered = facade.delivered() / len(actions)
        rows.append(
            {
                "S": live,
                "facade": facade.samples,
                "distinct": distinct.samples if distinct else None,
                "reducer": reducer.samples,
                "naive": naive.samples if naive else None,
            }
        )
        print(
            f"S={live:,}: {elapsed:.1f} s for all contenders; "
            f"{delivered:.2f} values delivered to subscribers per dispatch"
        )
        if distinct is not None:
            distinct.close()
        if naive is not None:
            naive.close()
        gc.collect()

    print_table(rows, args.naive_max)


def print_table(rows: Sequence[dict[str, Any]], naive_max: int) -> None:
    """A Markdown table of medians and p99s in µs, then the flatness ratios."""
    header = [
        "S",
        "ours facade median",
        "ours facade p99",
        "ours distinct median",
        "ours distinct p99",
        "reducer alone median",
        "naive reactivex median",
        "naive / ours facade",
        "naive / ours distinct",
    ]
    table = [header]
    for row in rows:
        facade = median_us(row["facade"])
        distinct = median_us(row["distinct"]) if row["distinct"] else None
        naive = median_us(row["naive"]) if row["naive"] else None
        table.append(
            [
                f"{row['S']:,}",
                f"{facade:.1f}",
                f"{p99_us(row['facade']):.1f}",
                f"{distinct:.1f}" if distinct else "not run",
                f"{p99_us(row['distinct']):.1f}" if distinct else "-",
                f"{median_us(row['reducer']):.1f}",
                f"{naive:,.1f}" if naive else f"not run (S > {naive_max:,})",
                f"{naive / facade:.1f}x" if naive else "-",
                f"{naive / distinct:.1f}x" if naive and distinct else "-",
            ]
        )
    widths = [max(len(line[column]) for line in table) for column in range(len(header))]
    print("\nmicroseconds per dispatch:\n")
    for number, line in enumerate(table):
        cells = [cell.rjust(width) for cell, width in zip(line, widths, strict=True)]
        print("| " + " | ".join(cells) + " |")
        if number == 0:
            print("|" + "|".join("-" * (width + 1) + ":" for width in widths) + "|")
    first, last = rows[0], rows[-1]
    if first is last:
        return
    print()
    for key, label in (("facade", "ours facade"), ("distinct", "ours distinct")):
        if not first[key]:
            continue
        ratio = median_us(last[key]) / median_us(first[key])
        overheads = ", ".join(
            f"{median_us(row[key]) - median_us(row['reducer']):.1f} µs at S={row['S']:,}"
            for row in rows
        )
        print(
            f"flatness {label}: median(S={last['S']:,}) / median(S={first['S']:,}) = "
            f"{ratio:.2f}; above the reducer alone: {overheads}"
        )


if __name__ == "__main__":
    main()
