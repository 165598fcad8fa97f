"""How a request frame reaches the core's worker, and its answer comes back as frames.

:class:`Dispatcher` is the event loop's side of
:class:`~chats_store.server.worker.CoreWorker`: it decodes a connection's frame,
submits the request to the worker, and when the worker hands the answer back
(after its commit) it encodes the reply (a resumption's stored event frames put in
as they are, never decoded) and each push once, and queues the texts with
``send(session, text)``, in the outbox of each connection they are for.

**Order.** The worker answers in submission order, so a connection's replies come
in the order of its requests; a reply the gateway makes itself (a refusal for the
rate limit, an unreadable frame: :meth:`Dispatcher.reply`) waits behind the
replies still owed to that connection. A reply is queued before the pushes its
request caused, and the pushes of an answer before those of the next one.

**Bounds**, so that no burst can freeze the loop or fill memory:

* a connection has at most ``max_pending`` requests in the worker; its next frame
  waits (its socket is not read meanwhile, so TCP pushes back);
* a request whose reply may be large (a join, a resume, a history page) is answered,
  and its reply's size charged to the user's rate limit, before the connection's
  next frame is read: a client cannot have hundreds of big replies made for it
  before their cost stops it;
* at most ``max_resumes`` resume requests are in the worker at once (their
  catch-ups are the big replies); the next resume waits, and so do the frames after
  it on its connection, so the other connections' requests are not queued behind
  hundreds of resumes;
* answers go to the outboxes in slices of at most :data:`SLICE_SECONDS` of work or
  :data:`SLICE_BYTES` of text per turn of the event loop, the rest on the next
  turns: the writers' compression of a herd of big replies is spread over many
  turns, and the loop keeps serving every connection (and its keepalive).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

import attrs

from chats_store.chats.actions import Failure
from chats_store.chats.commands import ChatRequest, HistoryRequest, JoinRequest, ResumeRequest
from chats_store.errors import ErrorCode, ProtocolError
from chats_store.protocol import (
    MAX_SERVER_FRAME_SIZE,
    decode_request,
    encode_error,
    encode_event,
    encode_reply,
)
from chats_store.server.flag import Flag
from chats_store.server.limits import RateLimiter, reply_cost
from chats_store.server.outbox import fits_in_a_frame
from chats_store.server.service import Answer, ChatService, Push, Session
from chats_store.server.wire import WireFrame
from chats_store.server.worker import CoreWorker

__all__ = [
    "FRAME_COST",
    "LARGE_REPLIES",
    "MAX_PENDING_PER_CONNECTION",
    "MAX_RESUMES_IN_FLIGHT",
    "SLICE_BYTES",
    "SLICE_SECONDS",
    "Dispatcher",
]

logger = logging.getLogger("chats_store.server")

MAX_PENDING_PER_CONNECTION = 256
"""Requests of one connection in the worker at once (default); the rate burst fits."""
MAX_RESUMES_IN_FLIGHT = 32
"""Resume requests in the worker at once, over all connections (default)."""
SLICE_SECONDS = 0.005
"""Work the loop does on answers before it lets other callbacks run."""
SLICE_BYTES = 128 * 1024
"""Text the loop hands to the outboxes before it lets other callbacks run: each text
counts once (it is serialized, and compressed, once for all its recipients), and each
frame queued :data:`FRAME_COST` bytes more (the work of queuing and writing it)."""
FRAME_COST = 64

LARGE_REPLIES = (JoinRequest, ResumeRequest, HistoryRequest)
"""Requests whose reply may be large: see the module's docstring."""

Send = Callable[[Session, WireFrame], None]
"""Queue a frame in the outbox of a session's connection (nothing if it is gone)."""


@attrs.define
class _Reply:
    """A reply owed to a connection, in request order; ``text`` None until it is known.

    ``charged``: set once the reply's cost is charged (for :data:`LARGE_REPLIES`)."""

    text: str | None = None
    charged: Flag | None = None


@attrs.define
class _Answered:
    session: Session
    request_id: int
    request: ChatRequest
    reply: _Reply
    answer: Answer


class _Connection:
    """What the dispatcher keeps for one session: its replies owed, in order, and the
    rate limiter its replies are charged to."""

    __slots__ = ("in_worker", "limiter", "owed", "room", "settled")

    def __init__(self, limiter: RateLimiter | None) -> None:
        self.limiter = limiter
        self.owed: deque[_Reply] = deque()
        self.in_worker = 0
        self.room = Flag(True)
        self.settled = Flag(True)
        """Set while no reply is owed."""


class Dispatcher:
    """Frames in, the core's answers out (see the module's docstring).

    Made on the event loop's thread, used only there; ``service`` runs on ``worker``.
    """

    def __init__(
        self,
        worker: CoreWorker,
        service: ChatService,
        send: Send,
        *,
        max_pending: int = MAX_PENDING_PER_CONNECTION,
        max_resumes: int = MAX_RESUMES_IN_FLIGHT,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._worker = worker
        self._service = service
        self._send = send
        self._max_pending = max_pending
        self._resumes = asyncio.Semaphore(max_resumes)
        self._connections: dict[Session, _Connection] = {}
        self._inbox: deque[_Answered | tuple[Push, ...]] = deque()
        self._draining = False

    # Connections ------------------------------------------------------------------

    def connect(self, session: Session, limiter: RateLimiter | None = None) -> None:
        """A connection opened for ``session``: its requests may come. Each reply costs
        ``limiter`` in proportion to its size (:func:`~chats_store.server.limits.reply_cost`)."""
        self._connections[session] = _Connection(limiter)

    def disconnect(self, session: Session) -> None:
        """Forget the session's connection; the core stops pushing to it (after the
        requests it submitted)."""
        self._connections.pop(session, None)
        self._worker.call(lambda: self._service.disconnect(session))

    async def receive(self, session: Session, data: str | bytes) -> tuple[int, str] | None:
        """Take one frame of ``session``: submit its request, or answer it with an error.

        Returns ``(close code, reason)`` when the frame cannot be answered and the
        connection must be closed (binary 1003, not JSON 1007, too large 1009);
        every other frame gets exactly one reply, in order. Waits while the
        connection has too many requests in the worker, or while too many resumes
        are, and until the reply of a request of :data:`LARGE_REPLIES` is charged.
        """
        try:
            request_id, request = decode_request(data)
        except ProtocolError as error:
            if error.close_code is not None:
                reason = str(error).encode("utf-8")[:120].decode("utf-8", "ignore")
                return error.close_code, reason
            self.reply(session, encode_error(error.request_id, error.code, str(error)))
            return None
        connection = self._connections.get(session)
        if connection is None:
            return None  # the connection is closing
        while connection.in_worker >= self._max_pending:
            connection.room.clear()
            await connection.room.wait()
        if isinstance(request, ResumeRequest):
            await self._resumes.acquire()
        reply = _Reply(charged=Flag() if isinstance(request, LARGE_REPLIES) else None)
        connection.owed.append(reply)
        connection.settled.clear()
        connection.in_worker += 1

        def done(answer: Answer) -> None:
            self._inbox.append(_Answered(session, request_id, request, reply, answer))
            self._start_draining()

        self._worker.submit(session, request, done)
        if reply.charged is not None:
            await reply.charged.wait()
        return None

    def reply(self, session: Session, text: str) -> None:
        """Queue a reply the gateway made itself, after the replies owed before it."""
        connection = self._connections.get(session)
        if connection is None or not connection.owed:
            self._send(session, WireFrame(text))
            return
        connection.owed.append(_Reply(text))

    async def settled(self, session: Session) -> None:
        """Wait until every reply owed to ``session`` is queued in its outbox (before a
        close, so that the close does not overtake them)."""
        connection = self._connections.get(session)
        if connection is not None:
            await connection.settled.wait()

    def publish(self, pushes: tuple[Push, ...]) -> None:
        """Queue the pushes the core made on its own (thread-safe: the worker calls it)."""
        self._loop.call_soon_threadsafe(self._published, pushes)

    # Answers, on the loop's thread --------------------------------------------------

    def _published(self, pushes: tuple[Push, ...]) -> None:
        self._inbox.append(pushes)
        self._start_draining()

    def _start_draining(self) -> None:
        if not self._draining:
            self._draining = True
            self._loop.call_soon(self._drain)

    def _drain(self) -> None:
        """Hand answers to the outboxes for one slice, then let the loop run."""
        deadline = time.perf_counter() + SLICE_SECONDS
        budget = SLICE_BYTES
        inbox = self._inbox
        while inbox and budget > 0 and time.perf_counter() < deadline:
            item = inbox.popleft()
            if isinstance(item, _Answered):
                budget -= self._answered(item)
            else:
                budget -= self._push(item)
        if inbox:
            self._loop.call_soon(self._drain)
        else:
            self._draining = False

    def _answered(self, item: _Answered) -> int:
        """Queue the reply (and the replies it held back), then the pushes; bytes queued."""
        if isinstance(item.request, ResumeRequest):
            self._resumes.release()
        text = _reply_text(item.request_id, item.answer, item.session)
        queued = len(text) + FRAME_COST
        item.reply.text = text
        connection = self._connections.get(item.session)
        if connection is not None:
            if connection.limiter is not None:
                connection.limiter.charge(reply_cost(len(text)))
            connection.in_worker -= 1
            connection.room.set()
            owed = connection.owed
            while owed and (ready := owed[0].text) is not None:
                owed.popleft()
                self._send(item.session, WireFrame(ready))
            if not owed:
                connection.settled.set()
        if item.reply.charged is not None:
            item.reply.charged.set()
        return queued + self._push(item.answer.pushes)

    def _push(self, pushes: tuple[Push, ...]) -> int:
        """Encode each push once and queue the frame for each recipient; bytes queued."""
        queued = 0
        send = self._send
        for push in pushes:
            text = push.frame if push.frame is not None else encode_event(push.event, seq=push.seq)
            frame = WireFrame(text)
            for recipient in push.recipients:
                send(recipient, frame)
            queued += len(text) + FRAME_COST * len(push.recipients)
        return queued


def _reply_text(request_id: int, answer: Answer, session: Session) -> str:
    result = answer.result
    if isinstance(result, Failure):
        return encode_error(request_id, result.code, result.detail)
    try:
        text = encode_reply(request_id, result, event_frames=answer.event_frames)
    except Exception:
        logger.exception("the reply to request %d of %r failed", request_id, session.user_id)
        return encode_error(
            request_id, ErrorCode.INTERNAL_ERROR, "the server failed to encode the reply"
        )
    if not fits_in_a_frame(text):  # the core keeps every reply under the maximum
        logger.error(
            "the reply to request %d of %r is %d bytes, over the frame maximum",
            request_id,
            session.user_id,
            len(text),
        )
        return encode_error(
            request_id,
            ErrorCode.INTERNAL_ERROR,
            f"the reply would be larger than the frame maximum of {MAX_SERVER_FRAME_SIZE} bytes",
        )
    return text
