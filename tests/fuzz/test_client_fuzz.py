"""Fuzzing the client with server frames: codec, effects and store, as the connection runs them.

Each Hypothesis example builds a real ``Chats`` facade (real ``Store(reduce_chats)``,
real effects) on a :class:`DrivenTransport`: a transport that works like
``ManagedConnection`` (one ``ClientProtocol``; replies settle the requests in
flight, events go to the ``events`` subject the facade listens to; a frame that
raises ``ProtocolError`` closes the connection: requests in flight fail
``connection_lost``, status ``connecting``, then ``connected`` again), except that
the test plays the server. Steps, drawn one at a time:

* the app calls the facade (join, leave, send, resend, update, delete, load
  older, moderate), as a task, as an app would;
* the server (``ChatServerModel``: the reference server's core, events queued per
  chat in ``seq`` order) answers a request in flight, a resume included (``ok`` or
  an ``error`` reply, via the codec), pushes its next event, or another member (or
  a moderator: kick, restrictions) changes the chat;
* adversarial frames: a valid frame mutated (``tests/fuzz/support.py``), a reply
  to a request not in flight, an old event replayed, garbage;
* the connection drops and comes back.

Checked after every frame: ``ClientProtocol.receive_data`` raises nothing but
``ProtocolError``; no task of the client (effects, facade calls) fails with
anything but a ``ChatsStoreError``; the store never raises; in every chat, no
two messages share an id, confirmed messages are strictly ordered by ``seq`` with
pending ones after them; every subscribed getter's last emission and ``.value``
equal its ``select_*`` selector on the state.

Normal suite: >= 2,000 frames. Long run: ``CHATS_STORE_LONG=1 pytest tests/fuzz -k long``
(>= 10,000 frames); the figures are printed (``-s``).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Hashable, Sequence
from typing import Any, TypeVar

import attrs
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reactivex import Observable
from reactivex.subject import BehaviorSubject, Subject

from chats_store import Chats, ChatsConfig, ChatsStoreError, create_user
from chats_store.chats.actions import (
    ChatSnapshot,
    Failure,
    MembersAmountChanged,
    MessageEdited,
    MessagePosted,
    RemovedFromChat,
    Resumption,
    ServerEvent,
)
from chats_store.chats.commands import (
    ChatReply,
    ChatRequest,
    HistoryRequest,
    JoinRequest,
)
from chats_store.chats.model import ConnectionStatus, Message, Restriction
from chats_store.chats.selectors import select_chats_ids
from chats_store.core.store import Getter
from chats_store.errors import ErrorCode, ProtocolError
from chats_store.protocol import (
    MAX_SERVER_FRAME_SIZE,
    ClientProtocol,
    EventReceived,
    ReplyReceived,
    encode_error,
    encode_event,
    encode_reply,
)
from chats_store.server import mint_chat_token, mint_session_token
from chats_store.testing.state_machine import CHAT_GETTERS
from chats_store.testing.strategies import (
    CLIENT_ID,
    ChatServerModel,
    contents,
    member_metadata,
    restrictions,
)
from tests.fuzz.support import LONG, Frame, check_messages, mutated_frames

T = TypeVar("T")
SECRET = "client-fuzz-secret-that-is-long-enough-for-hs256"
CHAT_POOL = ("c1", "c2", "c3")
OTHERS = ("alice", "bob")
FACADE_GETTERS: dict[str, Callable[[Chats, str], Getter[Any]]] = {
    "status": Chats.get_chat_status,
    "messages": Chats.get_chat_messages,
    "members_amount": Chats.get_chat_members_amount,
    "sync_statuses": Chats.get_chat_sync_statuses,
    "is_syncing": Chats.is_chat_syncing,
    "metadata": Chats.get_client_chat_member_metadata,
    "restrictions": Chats.get_client_chat_member_restrictions,
}
STRICT = os.environ.get("CHATS_STORE_FUZZ_STRICT", "1") == "1"
"""Also send the frames that break message identity (on by default since bug 1 is fixed)."""
SESSION_TOKEN = mint_session_token(SECRET, CLIENT_ID, ttl=10**8)


class DrivenTransport:
    """A ``ChatsTransport`` like ``ManagedConnection``, whose server is the test."""

    def __init__(self) -> None:
        self._status: BehaviorSubject[ConnectionStatus] = BehaviorSubject("connected")
        self._events: Subject[ServerEvent] = Subject()
        self.protocol = ClientProtocol()
        self.requests: dict[int, ChatRequest] = {}
        self._replies: dict[int, asyncio.Future[ChatReply | Failure]] = {}

    @property
    def status(self) -> Observable[ConnectionStatus]:
        return self._status

    @property
    def events(self) -> Observable[ServerEvent]:
        return self._events

    async def request(self, request: ChatRequest, timeout: float) -> ChatReply | Failure:
        if self._status.value != "connected":
            return Failure("connection_lost", "not_connected", "the WebSocket is not connected")
        try:
            request_id = self.protocol.send_request(request)
        except ProtocolError as error:
            return Failure("refused", error.code, str(error))
        self.protocol.data_to_send()  # "sent": the test plays the server
        self.requests[request_id] = request
        reply: asyncio.Future[ChatReply | Failure] = asyncio.get_running_loop().create_future()
        self._replies[request_id] = reply
        try:
            return await reply
        finally:
            self._replies.pop(request_id, None)

    def pending(self) -> list[tuple[int, ChatRequest]]:
        return [(request_id, self.requests[request_id]) for request_id in self.protocol.pending_ids]

    def receive(self, data: str | bytes) -> None:
        """One frame from the server (raises ``ProtocolError`` as the codec does)."""
        try:
            self.protocol.receive_data(data)
        finally:
            self._deliver(self.protocol.events_received())

    def _deliver(self, received: list[ReplyReceived | EventReceived] | list[ReplyReceived]) -> None:
        for item in received:
            if isinstance(item, ReplyReceived):
                reply = self._replies.get(item.request_id)
                if reply is not None and not reply.done():
                    reply.set_result(item.result)
            else:
                self._events.on_next(item.event)  # the store's exceptions propagate here

    def drop(self) -> None:
        """The connection closed: requests in flight fail, status ``connecting``."""
        self._deliver(self.protocol.fail_pending("connection_lost"))
        self._status.on_next("connecting")

    def reconnect(self) -> None:
        self._status.on_next("connected")


@attrs.define
class Figures:
    frames: int = 0
    accepted: int = 0
    examples: int = 0
    drops: int = 0
    calls: int = 0
    labels: Counter[str] = attrs.Factory(Counter)
    skipped: Counter[str] = attrs.Factory(Counter)
    refusals: Counter[str] = attrs.Factory(Counter)
    call_errors: Counter[str] = attrs.Factory(Counter)
    started: float = attrs.Factory(time.monotonic)

    def report(self) -> str:
        return (
            f"{self.frames} server frames ({self.accepted} accepted, "
            f"{self.frames - self.accepted} refused by the codec) in {self.examples} "
            f"examples, {time.monotonic() - self.started:.1f} s; {self.calls} facade calls; "
            f"{self.drops} connection drops; codec refusals {dict(self.refusals.most_common())}; "
            f"call errors {dict(self.call_errors.most_common())}; "
            f"identity-breaking frames not sent (known bugs) {dict(self.skipped)}; "
            f"frames {dict(self.labels.most_common())}"
        )


class ClientFuzz:
    """One example: a facade, its driven transport, a server model, the checks."""

    def __init__(self, data: st.DataObject, figures: Figures) -> None:
        self.data = data
        self.figures = figures
        self.transport = DrivenTransport()
        ids = itertools.count(1)
        self.chats = Chats(
            create_user(SESSION_TOKEN),
            self.transport,
            ChatsConfig(host="server.invalid"),
            new_message_id=lambda: f"local-{next(ids)}",
        )
        self.server = ChatServerModel(
            CLIENT_ID,
            snapshot_size=data.draw(st.integers(0, 6)),
            max_resume_events=data.draw(st.integers(0, 5)),
        )
        self.sent_events: dict[str, list[tuple[int, Any]]] = {}
        self.calls: list[asyncio.Task[Any]] = []
        self.crashes: list[BaseException] = []
        self.next_id = itertools.count(1)
        self.identity: dict[str, tuple[str, int | None]] = {}
        self.last: dict[Hashable, Any] = {}
        self.getters: dict[Hashable, tuple[Getter[Any], Callable[[], Any]]] = {}
        for chat_id in CHAT_POOL:
            for name, (_, selector) in CHAT_GETTERS.items():
                getter = FACADE_GETTERS[name](self.chats, chat_id)
                self.getters[(name, chat_id)] = (getter, self._bound(selector, chat_id))
        self.getters["chats_ids"] = (
            self.chats.chats_ids,
            lambda: select_chats_ids(self.chats.store.state),
        )
        for key, (getter, _) in self.getters.items():
            getter.subscribe(self._recorder(key))

    def _recorder(self, key: Hashable) -> Callable[[Any], None]:
        def record(value: Any) -> None:
            self.last[key] = value

        return record

    def pick(self, items: Sequence[T]) -> T:
        """One of ``items`` (drawn as an index: cheaper than a new ``sampled_from``)."""
        return items[self.data.draw(st.integers(0, len(items) - 1))]

    def _bound(self, selector: Callable[[Any, str], Any], chat_id: str) -> Callable[[], Any]:
        return lambda: selector(self.chats.store.state, chat_id)

    # Plumbing -------------------------------------------------------------------------------

    def task_factory(
        self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any
    ) -> asyncio.Task[Any]:
        """Every task of the loop reports an exception that is not a ChatsStoreError."""
        task: asyncio.Task[Any] = asyncio.Task(coro, loop=loop, **kwargs)
        task.add_done_callback(self._check_task)
        return task

    def _check_task(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            return
        if isinstance(error, ChatsStoreError):
            self.figures.call_errors[f"{type(error).__name__}:{getattr(error, 'code', '')}"] += 1
        else:
            self.crashes.append(error)

    async def settle(self) -> None:
        for _ in range(6):
            await asyncio.sleep(0)
        if self.crashes:
            raise self.crashes[0]

    def check(self) -> None:
        state = self.chats.store.state
        for chat_id, chat in state.chats.items():
            check_messages(chat.messages.items)
            assert chat.chat_id == chat_id
        for key, (getter, select) in self.getters.items():
            expected = select()
            assert self.last[key] == expected, f"getter {key}: emitted {self.last[key]!r}"
            assert getter.value == expected, f"getter {key}: value {getter.value!r}"

    # The server's frames --------------------------------------------------------------------

    def reply_text(self, request_id: int, request: ChatRequest) -> tuple[str, str]:
        draw = self.data.draw
        if draw(st.integers(0, 9)) == 0:
            code = self.pick([code.value for code in ErrorCode])
            return encode_error(request_id, code, "refused by the fuzzer"), "error"
        result = self.server.reply(request)
        if isinstance(result, Failure):
            return encode_error(request_id, result.code, result.detail), "error"
        label = f"ok:{type(request).__name__}"
        if isinstance(result, Resumption):
            label += ":snapshot" if result.snapshot is not None else ":events"
        return encode_reply(request_id, result), label

    def push_text(self) -> tuple[str, str] | None:
        queued = [chat for chat in self.server.chats.values() if chat.outbox]
        if not queued:
            return None
        chat = self.pick(queued)
        (event,) = self.server.take_events(chat.chat_id, 1)
        seq = getattr(event, "seq", chat.seq)  # a removal's seq is the wire's alone
        self.sent_events.setdefault(chat.chat_id, []).append((seq, event))
        return encode_event(event, seq=seq), f"event:{type(event).__name__}"

    def change(self) -> tuple[str, str] | None:
        """Another member or a moderator changes a chat (the events are queued)."""
        draw, server = self.data.draw, self.server
        chat_id = draw(st.sampled_from(CHAT_POOL))
        chat = server.chat(chat_id)
        what = draw(
            st.sampled_from(
                ("post",) * 4 + ("edit", "edit", "remove", "amount", "restrict", "meta", "kick")
            )
        )
        if what == "post":
            server.post(
                chat_id,
                f"other-{next(self.next_id)}",
                draw(st.sampled_from(OTHERS)),
                draw(contents()),
            )
        elif what in ("edit", "remove") and chat.messages:
            message_id = self.pick(sorted(chat.messages))
            if what == "edit":
                server.edit(chat_id, message_id, draw(contents()))
            else:
                server.remove(chat_id, message_id)
        elif what == "amount":
            server.set_members_amount(chat_id, draw(st.integers(0, 20)))
        elif what == "restrict":
            drawn = draw(st.lists(restrictions(), max_size=2))
            server.set_restrictions(
                chat_id, tuple(Restriction(r.kind, r.until, r.reason) for r in drawn)
            )
        elif what == "meta":
            server.set_metadata(chat_id, draw(member_metadata()))
        elif what == "kick":
            server.kick(chat_id)
        return None

    def identity_text(self) -> tuple[str, str] | None:
        """A well-formed frame that gives a known message id another seq or chat (or a
        list with an id or seq twice): the known bugs. Only in strict mode."""
        draw = self.data.draw
        known = [
            (chat, message)
            for chat in self.server.chats.values()
            for message in chat.messages.values()
        ]
        pending = self.transport.pending()
        joins = [(i, r) for i, r in pending if isinstance(r, JoinRequest)]
        histories = [(i, r) for i, r in pending if isinstance(r, HistoryRequest)]
        how = self.pick(("reseq", "reseq", "snapshot", "history"))
        if how == "snapshot" and joins and known:
            request_id, request = self.pick(joins)
            _, message = self.pick(known)
            copy_ = msgspec.structs.replace(message, chat_id=request.chat_id)
            twice = (copy_, msgspec.structs.replace(copy_, seq=(copy_.seq or 0) + 1))
            snapshot = ChatSnapshot(twice, 2, {}, (), (copy_.seq or 0) + 1)
            return encode_reply(request_id, snapshot), "identity:snapshot"
        if how == "history" and histories and known:
            history_id, history = self.pick(histories)
            _, message = self.pick(known)
            other = msgspec.structs.replace(message, chat_id=history.chat_id + "-other", seq=1)
            return encode_reply(history_id, (other,)), "identity:history"
        if not known:
            return None
        chat, message = self.pick(known)
        seq = chat.next_seq()
        moved = msgspec.structs.replace(message, seq=seq)
        event: ServerEvent = (
            MessagePosted(chat.chat_id, seq, moved)
            if draw(st.booleans())
            else MessageEdited(chat.chat_id, seq, moved)
        )
        return encode_event(event), "identity:reseq"

    def adversarial_text(self) -> tuple[str, str]:
        draw = self.data.draw
        if STRICT and draw(st.integers(0, 3)) == 0:
            made = self.identity_text()
            if made is not None:
                return made
        how = self.pick(("stray_reply", "replay", "replay", "other_chat", "unknown_chat"))
        if how == "stray_reply":
            request_id = draw(st.integers(0, 2**53 - 1))
            return encode_reply(request_id, None), how
        if how == "replay":
            sent = [event for events in self.sent_events.values() for event in events]
            if sent:
                seq, event = self.pick(sent)
                return encode_event(
                    event, seq=seq if isinstance(event, RemovedFromChat) else None
                ), how
        chat_id = draw(st.sampled_from(CHAT_POOL)) if how == "other_chat" else "never-joined"
        chat = self.server.chat(chat_id)
        pushed: ServerEvent = MembersAmountChanged(chat_id, chat.seq + 1, 7)
        if draw(st.booleans()):
            message = self.server.post(chat_id, f"other-{next(self.next_id)}", "alice", "hi")
            pushed = MessagePosted(chat_id, message.seq or 0, message)
            if pushed in chat.outbox:  # sent now, ahead of the events queued before it
                chat.outbox.remove(pushed)
        return encode_event(pushed), how

    async def frame(self) -> None:
        """The server sends one frame (valid, or mutated, or adversarial)."""
        draw = self.data.draw
        options = ["change", "change", "adversarial"]
        pending = self.transport.pending()
        if pending:
            options += ["reply"] * 6
        if any(chat.outbox for chat in self.server.chats.values()):
            options += ["push"] * 5
        kind = self.pick(options)
        made: tuple[str, str] | None
        if kind == "reply":
            request_id, request = self.pick(pending)
            made = self.reply_text(request_id, request)
        elif kind == "push":
            made = self.push_text()
        elif kind == "change":
            made = self.change()
            if made is None:
                return
        else:
            made = self.adversarial_text()
        assert made is not None
        text, label = made
        frame = Frame(text, label)
        if draw(st.integers(0, 9)) < 2:
            frame = draw(
                mutated_frames(
                    st.just(json.loads(text)), limit=MAX_SERVER_FRAME_SIZE, fragments=False
                )
            )
            frame = attrs.evolve(frame, label=f"mutated:{frame.label}")
        await self.feed(frame)

    def messages_of(self, item: ReplyReceived | EventReceived) -> list[tuple[str, list[Message]]]:
        """The messages a decoded frame carries, each list with the chat it is about."""
        if isinstance(item, EventReceived):
            event = item.event
            if isinstance(event, MessagePosted | MessageEdited):
                return [(event.chat_id, [event.message])]
            return []
        request, result = item.request, item.result
        chat_id = getattr(request, "chat_id", "")
        if isinstance(result, ChatSnapshot):
            return [(chat_id, list(result.messages))]
        if isinstance(result, Message):
            return [(chat_id, [result])]
        if isinstance(result, tuple):
            return [(chat_id, list(result))]
        if isinstance(result, Resumption):
            lists = [(chat_id, list(result.snapshot.messages))] if result.snapshot else []
            for event in result.events:
                if isinstance(event, MessagePosted | MessageEdited):
                    lists.append((chat_id, [event.message]))
            return lists
        return []

    def inconsistent(self, data: str | bytes) -> str | None:
        """Why the frame, once decoded, would break message identity; None if it does not.

        The server gives each message one id, one chat and one seq for ever. A frame
        that pairs a known id with another seq or chat, repeats an id or a seq in one
        list, or puts a message in another chat's list, is the known-bug class of
        tests/fuzz/test_known_bugs.py: the client does not defend against it.
        """
        for chat in self.server.chats.values():
            for message in chat.messages.values():
                self.identity[message.id] = (chat.chat_id, message.seq)
        probe = copy.deepcopy(self.transport.protocol)
        try:
            probe.receive_data(data)
        except ProtocolError:
            return None
        for item in probe.events_received():
            for chat_id, messages in self.messages_of(item):
                if len({m.id for m in messages}) < len(messages):
                    return "an id twice in one list"
                if len({m.seq for m in messages}) < len(messages):
                    return "a seq twice in one list"
                for message in messages:
                    if message.chat_id != chat_id:
                        return "a message of another chat"
                    known = self.identity.get(message.id)
                    if known is not None and known != (message.chat_id, message.seq):
                        return "a known id with another seq or chat"
        return None

    async def feed(self, frame: Frame) -> None:
        if not STRICT:
            why = self.inconsistent(frame.data)
            if why is not None:
                self.figures.skipped[why] += 1
                return
        self.figures.frames += 1
        self.figures.labels[
            frame.label.split(":")[0] if frame.label.startswith("mutated") else frame.label
        ] += 1
        try:
            self.transport.receive(frame.data)
        except ProtocolError as error:
            self.figures.refusals[str(error.code)] += 1
            await self.drop()
        else:
            self.figures.accepted += 1
        await self.settle()
        self.check()

    async def drop(self) -> None:
        self.figures.drops += 1
        self.transport.drop()
        self.server.drop_events()
        await self.settle()
        self.check()
        self.transport.reconnect()
        await self.settle()
        self.check()

    # The app's calls -------------------------------------------------------------------------

    async def act(self) -> None:
        draw, chats = self.data.draw, self.chats
        chat_id = self.pick(CHAT_POOL)
        chat = chats.store.state.chats.get(chat_id)
        messages = chat.messages.items if chat is not None else ()
        message_id = self.pick([m.id for m in messages]) if messages else "none"
        own = [m.id for m in messages if m.author_id == CLIENT_ID]
        own_id = self.pick(own) if own else message_id
        if chat is None:
            kind = draw(st.sampled_from(("join",) * 8 + ("leave", "send", "older")))
        elif chat.status == "loading":
            kind = draw(st.sampled_from(("leave", "send", "send", "send", "older", "older")))
        else:
            kind = draw(
                st.sampled_from(
                    ("send",) * 6
                    + ("join", "leave", "resend", "resend", "update", "update", "delete")
                    + ("delete", "older", "moderate")
                )
            )
        call: Coroutine[Any, Any, Any]
        if kind == "join":
            call = chats.join_chat(mint_chat_token(SECRET, CLIENT_ID, chat_id, ttl=10**6))
        elif kind == "leave":
            call = chats.leave_chat(chat_id)
        elif kind == "send":
            call = chats.send_message(chat_id, draw(contents()))
        elif kind == "resend":
            call = chats.resend_message(chat_id, own_id)
        elif kind == "update":
            call = chats.update_message(chat_id, own_id, draw(contents()))
        elif kind == "delete":
            call = chats.delete_message(chat_id, draw(st.sampled_from((message_id, own_id))))
        elif kind == "older":
            call = chats.load_older_messages(chat_id, draw(st.integers(1, 60)))
        else:
            measure = draw(st.sampled_from(("mute", "unmute", "block", "unblock", "kick")))
            member = draw(st.sampled_from(OTHERS))
            call = {
                "mute": lambda: chats.mute_chat_member(chat_id, member, 5, "spam"),
                "unmute": lambda: chats.unmute_chat_member(chat_id, member),
                "block": lambda: chats.block_chat_member(chat_id, member, 0),
                "unblock": lambda: chats.unblock_chat_member(chat_id, member),
                "kick": lambda: chats.kick_chat_member(chat_id, member, "out"),
            }[measure]()
        self.figures.calls += 1
        self.calls.append(asyncio.ensure_future(call))
        await self.settle()
        self.check()

    # One example ------------------------------------------------------------------------------

    async def run(self, steps: int) -> None:
        asyncio.get_running_loop().set_task_factory(self.task_factory)  # type: ignore[arg-type]
        self.check()
        try:
            for _ in range(steps):
                step = self.data.draw(st.sampled_from(("act",) * 3 + ("frame",) * 5 + ("drop",)))
                if step == "act":
                    await self.act()
                elif step == "frame":
                    await self.frame()
                elif self.data.draw(st.integers(0, 4)) == 0:
                    await self.drop()
        finally:
            await self.chats.close()
            for call in self.calls:
                call.cancel()
            await asyncio.gather(*self.calls, return_exceptions=True)
        if self.crashes:
            raise self.crashes[0]
        self.figures.examples += 1


def fuzz_the_client(target: int, steps: int) -> Figures:
    figures = Figures()

    @settings(
        max_examples=50,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    @given(st.data())
    def example(data: st.DataObject) -> None:
        asyncio.run(ClientFuzz(data, figures).run(steps))

    while figures.frames < target:
        example()
    return figures


def check_figures(figures: Figures, target: int) -> None:
    print("\nclient fuzz:", figures.report())
    assert figures.frames >= target
    assert figures.accepted > figures.frames // 2, "most frames should be valid"
    assert figures.refusals, "some frames must have been refused by the codec"
    assert figures.labels["ok:JoinRequest"] and figures.labels["ok:PostMessageRequest"]


def test_fuzz_server_frames_into_the_client() -> None:
    figures = fuzz_the_client(target=2_000, steps=60)
    check_figures(figures, 2_000)


@pytest.mark.skipif(not LONG, reason="long fuzz run: set CHATS_STORE_LONG=1")
def test_fuzz_server_frames_into_the_client_long() -> None:
    figures = fuzz_the_client(target=10_000, steps=80)
    check_figures(figures, 10_000)
