"""Fuzzing the reference server with client frames, over real WebSocket connections.

ONE live ``run_server`` for the whole run. Hypothesis draws batches of client
frames: valid requests made the codec's way (joins with valid and hostile
tokens, posts, edits, deletes, moderation, history, resumes with real and stolen
membership credentials) and mutations of them (``tests/fuzz/support.py``). They
go out pipelined on raw connections authenticated with valid session tokens;
the connection is reopened whenever the server closes it.

Oracle, per frame (docs/protocol.md): a binary frame closes with 1003, invalid
UTF-8 or text that is not JSON with 1007, a frame over 64 KiB with 1009; every
other frame gets exactly one reply, in order, carrying the frame's id when it is
readable (else null), never ``internal_error``; events arrive in increasing
``seq`` per chat. Every few hundred frames a well-behaved public-API client
(``create_user`` / ``create_websocket`` / ``create_chats``) joins, sends, and a
watcher that joined at the start receives. At the end a fresh client joins every
chat and pages through the whole history: unique ids, strictly increasing seqs,
and the watcher's live view equals the stored history.

Normal suite: >= 2,000 frames. Long run: ``CHATS_STORE_LONG=1 pytest tests/fuzz -k long``
(>= 10,000 frames); the figures are printed (``-s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import attrs
import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.strategies import DrawFn, SearchStrategy
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from chats_store import (
    Chats,
    ChatsConfig,
    ErrorCode,
    Message,
    WebSocket,
    create_chats,
    create_user,
    create_websocket,
)
from chats_store.chats.selectors import select_chat_messages
from chats_store.content import content_failure
from chats_store.protocol import MAX_FRAME_SIZE, MAX_SERVER_FRAME_SIZE, PROTOCOL_VERSION
from chats_store.server import ChatServer, ServerLimits, mint_chat_token, run_server
from tests.fuzz.support import (
    LONG,
    Frame,
    check_messages,
    mutated_frames,
    parse_json,
    readable_id,
    strings,
)
from tests.server.conftest import read_hello

SECRET = "server-fuzz-secret-that-is-long-enough-for-hs256"
WAIT = 5.0
PROBE_CHAT = "probe"
FUZZ_CHATS = ("f1", "f2")
KNOWN_CHATS = (PROBE_CHAT, *FUZZ_CHATS)
FUZZ_USERS = ("fuzz0", "fuzz1", "fuzz2")
MEMBERS = ("watcher", *FUZZ_USERS, "nobody", "probe-1")
MESSAGE_IDS = tuple(f"m{n}" for n in range(8))
REQUEST_KINDS: tuple[str, ...] = ("join", "join", "leave", "post", "post", "post", "edit")
REQUEST_KINDS += ("delete", "moderate", "history", "resume")
TOKEN_KINDS = (
    *["valid"] * 6,
    "other_user",
    "other_chat",
    "expired",
    "session",
    "forged",
    "alg_none",
    "garbage",
)
AUTO_JOIN = "auto_join"
"""The label of the joins a new fuzz connection sends first (not counted as fuzz frames)."""
KNOWN_CODES = frozenset(code.value for code in ErrorCode)
BAD_CLOSES = frozenset({1003, 1007, 1009})
"""Close codes the protocol announces for frames that cannot be answered."""

logger = logging.getLogger(__name__)


# Frames ----------------------------------------------------------------------------------


def request_ids() -> SearchStrategy[int]:
    return st.integers(0, 1000) | st.sampled_from((0, 2**53 - 1))


def chat_ids() -> SearchStrategy[str]:
    return st.sampled_from(KNOWN_CHATS) | st.sampled_from(KNOWN_CHATS) | strings(12)


def message_ids() -> SearchStrategy[str]:
    fresh = st.integers(0, 2**40).map(lambda n: f"p{n}")  # posts that can succeed
    return st.sampled_from(MESSAGE_IDS) | fresh | fresh | strings(12)


def contents() -> SearchStrategy[str]:
    return st.text(min_size=1, max_size=40) | strings(300) | st.sampled_from((" ", "x" * 257))


@st.composite
def valid_requests(draw: DrawFn) -> dict[str, Any]:
    """A request frame as ``encode_request`` writes it (token and credential placeholders)."""
    kind = draw(st.sampled_from(REQUEST_KINDS))
    frame: dict[str, Any] = {"type": kind, "id": draw(request_ids())}
    chat_id = draw(chat_ids())
    frame["chat_id"] = chat_id
    token_chat = chat_id if chat_id in KNOWN_CHATS else draw(st.sampled_from(KNOWN_CHATS))
    if kind == "join":
        frame["token"] = f"@@tok:{draw(st.sampled_from(TOKEN_KINDS))}:{token_chat}@@"
    elif kind in ("post", "edit"):
        frame["message_id"] = draw(message_ids())
        frame["content"] = draw(contents())
    elif kind == "delete":
        frame["message_id"] = draw(message_ids())
    elif kind == "moderate":
        frame["member_id"] = draw(st.sampled_from(MEMBERS) | strings(8))
        frame["measure"] = draw(st.sampled_from(("block", "unblock", "mute", "unmute", "kick")))
        frame["duration"] = draw(st.none() | st.integers(-2, 3) | st.integers(0, 10**9))
        frame["reason"] = draw(st.none() | strings(30) | st.just("r" * 257))
    elif kind == "history":
        frame["before_seq"] = draw(st.integers(-1, 500) | st.just(2**53 - 1))
        frame["limit"] = draw(st.integers(-1, 201))
    elif kind == "resume":
        whose = draw(st.sampled_from(("mem", "mem", "mem_other", "mem_garbage")))
        frame["membership"] = f"@@{whose}:{token_chat}@@"
        frame["since_seq"] = draw(st.integers(-1, 500))
    return frame


def client_frames(*, closing: bool = True) -> SearchStrategy[Frame]:
    """Client frames; without ``closing``, only frames the server must answer."""
    frames = mutated_frames(valid_requests(), limit=MAX_FRAME_SIZE)
    return frames if closing else frames.filter(lambda frame: expect(frame).close is None)


# The oracle ---------------------------------------------------------------------------------


@attrs.frozen
class Expect:
    """What the server must do with one frame: close with ``code``, or reply with ``id``."""

    close: int | None = None
    reply_id: int | None = None
    transport_level: bool = False
    """The close comes from ``websockets`` itself (size limit, invalid UTF-8)."""


def expect(frame: Frame) -> Expect:
    if isinstance(frame.data, bytes) and not frame.as_text:
        return Expect(close=1003)
    if frame.size > MAX_FRAME_SIZE:
        return Expect(close=1009, transport_level=True)
    if isinstance(frame.data, bytes):
        try:
            text = frame.data.decode("utf-8")
        except UnicodeDecodeError:
            return Expect(close=1007, transport_level=True)
    else:
        text = frame.data
    try:
        value = parse_json(text)
    except (ValueError, RecursionError):
        return Expect(close=1007)
    return Expect(reply_id=readable_id(value.get("id")) if isinstance(value, dict) else None)


# The run --------------------------------------------------------------------------------------


class ServerBrokeProtocolError(AssertionError):
    """The server broke the protocol's promises (see the module docstring)."""


@attrs.define
class Client:
    user_id: str
    chats: Chats
    websocket: WebSocket

    def messages(self, chat_id: str) -> tuple[Message, ...]:
        return self.chats.get_chat_messages(chat_id).value or ()

    async def close(self) -> None:
        await self.websocket.disconnect()
        await self.chats.close()


async def eventually(check: Any, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise ServerBrokeProtocolError(f"still false after {timeout} s: {check}")
        await asyncio.sleep(0.005)


class _ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def server_options(*, protected: bool) -> dict[str, Any]:
    """run_server options for a fuzz run: no keep-alive pings; unless ``protected``,
    no request rate limit and no other limit (the fuzzer sends thousands of frames a
    second and reconnects after every close)."""
    options: dict[str, Any] = {"ping_interval": None}
    if not protected:
        options.update(rate_limit=None, max_connections_per_user=None, limits=ServerLimits.off())
    return options


@attrs.define
class Stats:
    frames: int = 0
    """Generated frames sent (the figure the targets are about)."""
    sent: int = 0
    """Every frame sent, the valid joins that open each connection included."""
    labels: Counter[str] = attrs.Factory(Counter)
    replies: Counter[str] = attrs.Factory(Counter)
    closes: Counter[int] = attrs.Factory(Counter)
    unexpected_closes: Counter[int] = attrs.Factory(Counter)
    events: int = 0
    hostile_refused: Counter[str] = attrs.Factory(Counter)
    connections: int = 0
    probes: int = 0
    started: float = attrs.Factory(time.monotonic)

    def report(self) -> str:
        elapsed = time.monotonic() - self.started
        return (
            f"{self.frames} generated client frames ({self.sent} with the joins opening "
            f"each connection) in {elapsed:.1f} s over {self.connections} "
            f"connections; {self.probes} well-behaved probes; close codes {dict(self.closes)}; "
            f"unexpected closes {dict(self.unexpected_closes)}; {self.events} events; "
            f"hostile credentials refused {dict(self.hostile_refused)}; "
            f"replies {dict(self.replies.most_common())}; "
            f"mutations {dict(self.labels.most_common())}"
        )


class ServerFuzzer:
    """Sends frame batches to one live server and checks every answer."""

    def __init__(self, server: ChatServer, probe_every: int) -> None:
        self.server = server
        self.probe_every = probe_every
        self.stats = Stats()
        self.connection: ClientConnection | None = None
        self.user = FUZZ_USERS[0]
        self.rate_limited = False
        self.last_seq: dict[str, int] = {}
        self.memberships: dict[tuple[str, str], str] = {}
        self.owners: dict[str, tuple[str, str]] = {}
        """Who each membership credential the server issued belongs to: (user, chat)."""
        self.hostile: dict[str, tuple[str, str]] = {}
        """Credentials the server must refuse: what is wrong with each, for which chat."""
        self.watcher: Client | None = None
        self.probe_ids: list[str] = []
        self._next_probe = probe_every

    # Public-API clients ------------------------------------------------------------------

    async def client(self, user_id: str) -> Client:
        websocket = create_websocket(open_timeout=WAIT, ping_interval=None)
        chats = create_chats(
            user_module=create_user(self.server.session_token(user_id)),
            websocket_module=websocket,
            config=ChatsConfig(host=self.server.address, request_timeout=WAIT),
        )
        await websocket.connect()
        return Client(user_id, chats, websocket)

    async def start(self) -> None:
        self.watcher = await self.client("watcher")
        await self.watcher.chats.join_chat(self.server.chat_token("watcher", PROBE_CHAT))

    def check_watcher(self) -> None:
        assert self.watcher is not None
        messages = self.watcher.messages(PROBE_CHAT)
        check_messages(messages, PROBE_CHAT)
        state = self.watcher.chats.store.state
        assert messages == select_chat_messages(state, PROBE_CHAT)

    async def probe(self) -> None:
        """A well-behaved client still joins, sends, and the watcher receives."""
        assert self.watcher is not None
        self.stats.probes += 1
        user_id = f"probe-{self.stats.probes}"
        probe = await self.client(user_id)
        try:
            context = await probe.chats.join_chat(self.server.chat_token(user_id, PROBE_CHAT))
            assert context.status == "ready"
            check_messages(context.messages, PROBE_CHAT)
            sent = await probe.chats.send_message(PROBE_CHAT, f"probe {self.stats.probes}")
            assert sent.status == "ready" and sent.seq is not None
            self.probe_ids.append(sent.id)
            watcher = self.watcher
            await eventually(lambda: any(m.id == sent.id for m in watcher.messages(PROBE_CHAT)))
            check_messages(probe.messages(PROBE_CHAT), PROBE_CHAT)
            self.check_watcher()
            await probe.chats.leave_chat(PROBE_CHAT)
        finally:
            await probe.close()

    # Raw fuzz connections ---------------------------------------------------------------

    async def connect(self) -> ClientConnection:
        """The fuzz connection; a new one joins the known chats first (valid frames)."""
        if self.connection is None:
            self.stats.connections += 1
            self.user = FUZZ_USERS[self.stats.connections % len(FUZZ_USERS)]
            self.rate_limited = False
            self.last_seq = {}
            self.connection = await connect(
                self.server.url,
                subprotocols=[Subprotocol(PROTOCOL_VERSION)],
                additional_headers={
                    "Authorization": f"Bearer {self.server.session_token(self.user)}"
                },
                open_timeout=WAIT,
                close_timeout=1,
                ping_interval=None,
                max_size=MAX_SERVER_FRAME_SIZE,
                max_queue=None,
            )
            await read_hello(self.connection)
            joins = [
                Frame(json.dumps({"type": "join", "id": n, "chat_id": c, "token": t}), AUTO_JOIN)
                for n, c in enumerate(KNOWN_CHATS)
                for t in [f"@@tok:valid:{c}@@"]
            ]
            await self._send_frames(self.connection, joins)
        return self.connection

    async def drop_connection(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            await connection.close()

    def token(self, kind: str, chat_id: str) -> str:
        if kind not in TOKEN_KINDS:  # a mutation reached into the placeholder
            kind = "garbage"
        token = self._token(kind, chat_id)
        if kind != "valid":
            self.hostile[token] = (kind, chat_id + "x" if kind == "other_chat" else chat_id)
        return token

    def _token(self, kind: str, chat_id: str) -> str:
        user, server = self.user, self.server
        permissions = ("send",) if chat_id == PROBE_CHAT else ("send", "moderate")
        claims = {"sub": user, "chat": chat_id, "aud": "chats_store:chat", "exp": 4e9}
        match kind:
            case "valid":
                return server.chat_token(user, chat_id, permissions)
            case "other_user":
                return server.chat_token("someone-else", chat_id, permissions)
            case "other_chat":
                return server.chat_token(user, chat_id + "x", permissions)
            case "expired":
                return mint_chat_token(SECRET, user, chat_id, now=time.time() - 10_000)
            case "session":
                return server.session_token(user)
            case "forged":
                return jwt.encode(claims, "another-secret-of-at-least-32-bytes!!", "HS256")
            case "alg_none":
                return jwt.encode(claims, None, algorithm="none")
        return "not.a.token"

    def membership(self, whose: str, chat_id: str) -> str:
        if whose == "mem":
            return self.memberships.get((self.user, chat_id), "no.membership.yet")
        if whose == "mem_other":
            others = [
                m for (u, c), m in self.memberships.items() if c == chat_id and u != self.user
            ]
            if others:
                return others[0]  # hostile unless it is the current user's: see remember()
            return "no.other.membership"
        self.hostile["garbage.membership.credential"] = ("garbage", chat_id)
        return "garbage.membership.credential"

    def render(self, frame: Frame) -> Frame:
        """Replace the token and credential placeholders with real (or hostile) ones."""

        def substitute(text: str) -> str:
            text = re.sub(r"@@tok:(\w+):(\w+)@@", lambda m: self.token(m[1], m[2]), text)
            return re.sub(r"@@(mem\w*):(\w+)@@", lambda m: self.membership(m[1], m[2]), text)

        if isinstance(frame.data, bytes):
            data: str | bytes = substitute(frame.data.decode("utf-8", "surrogateescape")).encode(
                "utf-8", "surrogateescape"
            )
            return attrs.evolve(frame, data=data)
        text = substitute(frame.data)
        pieces: tuple[str, ...] = ()
        if frame.fragments:  # as many fragments, cut at the same proportions
            count = len(frame.fragments)
            cuts = [len(text) * n // count for n in range(count + 1)]
            pieces = tuple(text[a:b] for a, b in itertools.pairwise(cuts) if b > a)
        return attrs.evolve(frame, data=text, fragments=pieces)

    def hostile_credential(self, frame: Frame) -> str | None:
        """What is wrong with the credential of a join or resume frame (None: nothing)."""
        try:
            request = parse_json(frame.data if isinstance(frame.data, str) else "")
        except ValueError:
            return None
        if not isinstance(request, dict) or request.get("type") not in ("join", "resume"):
            return None
        field = "token" if request["type"] == "join" else "membership"
        credential = request.get(field)
        if not isinstance(credential, str):
            return None
        owner = self.owners.get(credential)
        if owner is not None and owner != (self.user, request.get("chat_id")):
            return f"{request['type']} with the membership of {owner[0]} in {owner[1]}"
        hostile = self.hostile.get(credential)
        if hostile is None:
            return None
        kind, chat_id = hostile
        if kind == "other_chat" and request.get("chat_id") == chat_id:
            return None  # a token for chat 'f1x' joining 'f1x' is fine
        return f"{request['type']} with a {field}: {kind}"

    def check_credentials(self, frame: Frame, answer: dict[str, Any]) -> None:
        """A join or resume with a hostile credential must be refused."""
        hostile = self.hostile_credential(frame)
        if hostile is None:
            return
        if answer["type"] == "ok":
            raise ServerBrokeProtocolError(
                f"the server accepted a {hostile}: {frame!r} -> {answer}"
            )
        self.stats.hostile_refused[hostile.split(" in ")[0]] += 1

    async def send(self, connection: ClientConnection, frame: Frame) -> None:
        if frame.fragments:
            await connection.send(frame.fragments)
        elif isinstance(frame.data, bytes):
            await connection.send(frame.data, text=frame.as_text)
        else:
            await connection.send(frame.data)

    async def next_answer(self, connection: ClientConnection, what: str) -> dict[str, Any]:
        """The next reply (events are checked and counted on the way)."""
        while True:
            try:
                data = await asyncio.wait_for(connection.recv(), WAIT)
            except TimeoutError:
                raise ServerBrokeProtocolError(f"no answer within {WAIT} s to {what}") from None
            if not isinstance(data, str):
                raise ServerBrokeProtocolError(f"the server sent a binary frame: {data[:80]!r}")
            if len(data.encode()) > MAX_SERVER_FRAME_SIZE:
                raise ServerBrokeProtocolError("the server sent a frame over MAX_SERVER_FRAME_SIZE")
            answer = parse_json(data)
            if not isinstance(answer, dict) or answer.get("type") not in ("ok", "error", "event"):
                raise ServerBrokeProtocolError(f"not a server frame: {data[:200]}")
            if answer["type"] != "event":
                return answer
            self.stats.events += 1
            chat_id, seq = answer.get("chat_id"), answer.get("seq")
            assert isinstance(chat_id, str) and isinstance(seq, int), data[:200]
            if seq <= self.last_seq.get(chat_id, 0):
                raise ServerBrokeProtocolError(
                    f"event seq {seq} of chat {chat_id!r} after seq {self.last_seq[chat_id]}"
                )
            self.last_seq[chat_id] = seq

    async def settle(self, connection: ClientConnection, sent: list[tuple[Frame, Expect]]) -> None:
        """Read the answer to every frame of ``sent``, in order, and check it."""
        for index, (frame, expected) in enumerate(sent):
            what = f"frame {index} of the batch ({frame.label}): {str(frame.data)[:300]!r}"
            try:
                answer = await self.next_answer(connection, what)
            except ConnectionClosed as closed:
                close_code = closed.rcvd.code if closed.rcvd is not None else 1006
                self.connection = None
                if expected.close is not None and close_code == expected.close:
                    self.stats.closes[close_code] += 1
                    assert index == len(sent) - 1
                    return
                self.stats.unexpected_closes[close_code] += 1
                if self.rate_limited and close_code == 1008:  # the flood detector: allowed
                    return
                raise ServerBrokeProtocolError(
                    f"the server closed with {close_code} instead of answering {what}"
                ) from None
            request_id = answer.get("id")
            code = answer.get("code")
            self.stats.replies[f"{answer['type']}:{code}" if code else answer["type"]] += 1
            if code == ErrorCode.RATE_LIMITED:
                self.rate_limited = True
            elif expected.close is not None:
                raise ServerBrokeProtocolError(
                    f"expected a close {expected.close}, got {answer} for {what}"
                )
            if request_id != expected.reply_id and code != ErrorCode.RATE_LIMITED:
                raise ServerBrokeProtocolError(
                    f"the reply {answer} carries id {request_id!r}, expected "
                    f"{expected.reply_id!r}, for {what}"
                )
            self.check_credentials(frame, answer)
            if answer["type"] == "error":
                if code not in KNOWN_CODES or not isinstance(answer.get("message"), str):
                    raise ServerBrokeProtocolError(f"a malformed error reply {answer} to {what}")
                if code == ErrorCode.INTERNAL_ERROR:
                    raise ServerBrokeProtocolError(f"internal_error in reply to {what}: {answer}")
            else:
                self.remember(frame, answer)

    def remember(self, frame: Frame, answer: dict[str, Any]) -> None:
        """Keep the membership credentials of successful joins and resumes."""
        try:
            request = parse_json(frame.data if isinstance(frame.data, str) else "")
        except ValueError:
            return
        result = answer.get("result")
        if (
            isinstance(request, dict)
            and request.get("type") in ("join", "resume")
            and isinstance(request.get("chat_id"), str)
            and isinstance(result, dict)
            and isinstance(result.get("membership"), str)
        ):
            self.memberships[(self.user, request["chat_id"])] = result["membership"]
            self.owners[result["membership"]] = (self.user, request["chat_id"])

    async def send_batch(self, frames: list[Frame]) -> None:
        try:
            await self._send_batch(frames)
        except BaseException:
            await self.drop_connection()
            raise
        if self.stats.frames >= self._next_probe:
            self._next_probe += self.probe_every
            await self.probe()

    async def _send_batch(self, frames: list[Frame]) -> None:
        await self._send_frames(await self.connect(), frames)

    async def _send_frames(self, connection: ClientConnection, frames: list[Frame]) -> None:
        sent: list[tuple[Frame, Expect]] = []
        for original in frames:
            frame = self.render(original)
            expected = expect(frame)
            if expected.close is not None and expected.transport_level:
                # websockets closes at once on reading such a frame, before the server
                # has answered the frames queued before it: settle those first.
                await self.settle(connection, sent)
                sent = []
                connection = await self.connect()
            try:
                await self.send(connection, frame)
            except ConnectionClosed:
                break  # settle() reads the close
            self.stats.sent += 1
            self.stats.frames += frame.label != AUTO_JOIN
            self.stats.labels[frame.label] += 1
            sent.append((frame, expected))
            if expected.close is not None:
                await self.settle(connection, sent)
                sent = []
                if self.connection is not None:  # rate limited instead of closed
                    continue
                connection = await self.connect()
        await self.settle(connection, sent)

    # The end ------------------------------------------------------------------------------

    async def finish(self) -> None:
        """A fresh client joins every chat, pages through all of it, and it is consistent."""
        await self.drop_connection()
        await self.probe()
        final = await self.client("final-checker")
        try:
            for chat_id in KNOWN_CHATS:
                context = await final.chats.join_chat(
                    self.server.chat_token("final-checker", chat_id)
                )
                while await final.chats.load_older_messages(chat_id, limit=200):
                    pass
                history = final.messages(chat_id)
                check_messages(history, chat_id)
                assert all(m.status == "ready" and m.seq is not None for m in history)
                assert context.status == "ready"
                for message in history:
                    assert content_failure(message.content) is None
            probe_history = final.messages(PROBE_CHAT)
            assert self.watcher is not None
            self.check_watcher()
            watched = self.watcher.messages(PROBE_CHAT)
            view = [(m.id, m.content, m.seq, m.edited_at) for m in watched]
            stored = [(m.id, m.content, m.seq, m.edited_at) for m in probe_history]
            assert view == stored, "the watcher's live view differs from the stored history"
            stored_ids = {m.id for m in probe_history}
            assert all(i in stored_ids for i in self.probe_ids), "a probe message was lost"
        finally:
            await final.close()

    async def close(self) -> None:
        await self.drop_connection()
        if self.watcher is not None:
            await self.watcher.close()


@contextlib.contextmanager
def error_log() -> Iterator[_ErrorLog]:
    handler = _ErrorLog()
    loggers = [logging.getLogger(name) for name in ("chats_store", "websockets")]
    for each in loggers:
        each.addHandler(handler)
    try:
        yield handler
    finally:
        for each in loggers:
            each.removeHandler(handler)


def fuzz_the_server(target: int, probe_every: int, *, protected: bool = False) -> Stats:
    """Send at least ``target`` fuzzed frames to one live server; returns the figures.

    ``protected``: the server keeps its default rate limit and connection cap.
    """
    loop = asyncio.new_event_loop()
    stack = contextlib.AsyncExitStack()
    fuzzer: ServerFuzzer | None = None
    try:
        with error_log() as errors:
            server = loop.run_until_complete(
                stack.enter_async_context(
                    run_server(secret=SECRET, **server_options(protected=protected))
                )
            )
            fuzzer = ServerFuzzer(server, probe_every)
            loop.run_until_complete(fuzzer.start())

            @settings(
                max_examples=40,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                print_blob=True,
            )
            @given(st.lists(client_frames(closing=not protected), min_size=10, max_size=40))
            def batch(frames: list[Frame]) -> None:
                assert fuzzer is not None
                loop.run_until_complete(fuzzer.send_batch(frames))

            while fuzzer.stats.frames < target:
                batch()
            loop.run_until_complete(fuzzer.finish())
            assert not errors.records, [r.getMessage() for r in errors.records]
        return fuzzer.stats
    finally:
        if fuzzer is not None:
            loop.run_until_complete(fuzzer.close())
        loop.run_until_complete(stack.aclose())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def check_figures(stats: Stats, target: int) -> None:
    print("\nserver fuzz:", stats.report())
    assert stats.frames >= target
    assert stats.probes >= 2
    assert set(stats.closes) <= BAD_CLOSES
    assert stats.closes, "some frames must have been bad enough to close the connection"
    assert stats.replies["ok"] > 0, "some frames must have been valid requests"


def test_fuzz_client_frames_against_a_live_server() -> None:
    stats = fuzz_the_server(target=2_000, probe_every=400)
    check_figures(stats, 2_000)


@pytest.mark.skipif(not LONG, reason="long fuzz run: set CHATS_STORE_LONG=1")
def test_fuzz_client_frames_against_a_live_server_long() -> None:
    stats = fuzz_the_server(target=10_000, probe_every=500)
    check_figures(stats, 10_000)


def test_fuzz_a_server_with_its_default_protection() -> None:
    """Default rate limit and connection cap, frames that must all be answered: the
    fuzzer floods one connection; the server answers ``rate_limited``, then closes
    with 1008; well-behaved clients are unaffected."""
    stats = fuzz_the_server(target=1_000, probe_every=500, protected=True)
    print("\nprotected server fuzz:", stats.report())
    assert stats.frames >= 1_000 and stats.probes >= 2
    assert stats.replies["error:rate_limited"] > 0
    assert set(stats.unexpected_closes) <= {1008}
