"""Fault injection for integration tests: a TCP proxy that cuts, delays and holds
connections, and a reference server that restarts on the same file and port (runtime).

:class:`FaultProxy` sits on loopback between clients and a server and forwards
bytes both ways, untouched, until a test breaks something::

    async with RestartableServer(tmp_path / "chats.sqlite3", secret) as server, \\
            FaultProxy(server.host, server.port) as proxy:
        config = ChatsConfig(host=proxy.address)     # clients connect through the proxy
        ...
        proxy.cut_all()              # every connection dies at once (RST, no close frame)
        proxy.cut_random(rng)        # one of them dies
        proxy.delay = 0.05           # each chunk waits 50 ms, both ways, order kept
        proxy.pause()                # nothing moves; what arrives is buffered...
        await chats_call_started()   # ...e.g. a request the server will never see
        proxy.cut_all()              # cut "between a request and its reply"
        proxy.resume()
        proxy.pause("down")          # requests pass, replies wait: a cut now loses
                                     # the reply of a request the server applied
        proxy.refuse = True          # an outage: new connections are reset at once
        await server.restart()       # same SQLite file, same port

The proxy knows nothing about WebSocket: it cuts TCP connections, which is what a
network does. A cut resets both sides (``SO_LINGER`` 0, then abort: the peers see
a connection reset, never a close frame), and drops whatever was still buffered.

Everything here runs on the asyncio loop of the test; nothing is thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import random
import socket
import struct
from types import TracebackType
from typing import Any, Literal

from chats_store.server import ChatServer, run_server

__all__ = ["Direction", "FaultProxy", "ProxiedConnection", "RestartableServer"]

Direction = Literal["up", "down", "both"]
"""``up``: client to server; ``down``: server to client; ``both``."""

CHUNK_SIZE = 64 * 1024
"""Largest chunk read from a socket at once; delays and pauses apply per chunk."""


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close ``writer``'s socket abruptly: RST where the OS allows, buffered data dropped."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class ProxiedConnection:
    """One client connection through a :class:`FaultProxy`, and its upstream twin.

    ``number`` counts from 1 in accept order; ``bytes_up`` (client to server) and
    ``bytes_down`` (server to client) count what was forwarded. :meth:`cut`
    resets both sides; ``closed`` is then true (also after a normal close).
    """

    def __init__(
        self,
        proxy: FaultProxy,
        number: int,
        peer: tuple[str, int],
        client: asyncio.StreamWriter,
        upstream: asyncio.StreamWriter,
    ) -> None:
        self.number = number
        self.peer = peer
        self.bytes_up = 0
        self.bytes_down = 0
        self.closed = False
        self.was_cut = False
        self._proxy = proxy
        self._client = client
        self._upstream = upstream
        self._tasks: list[asyncio.Task[None]] = []

    def cut(self) -> bool:
        """Reset both sides now (no close frame, buffered data dropped).

        Returns False if the connection was already closed. Counted in the
        proxy's ``cuts``.
        """
        if self.closed:
            return False
        self._abort()
        self.was_cut = True
        self._proxy.cuts += 1
        return True

    def _abort(self) -> None:
        self.closed = True
        _reset(self._client)
        _reset(self._upstream)
        for task in self._tasks:
            task.cancel()

    def __repr__(self) -> str:
        state = "cut" if self.was_cut else "closed" if self.closed else "open"
        return (
            f"<ProxiedConnection #{self.number} from {self.peer[0]}:{self.peer[1]} {state}, "
            f"{self.bytes_up} bytes up, {self.bytes_down} bytes down>"
        )


class FaultProxy:
    """A TCP proxy on loopback that cuts, delays, holds and refuses connections.

    ``FaultProxy(upstream_host, upstream_port)``, then ``async with proxy:`` (or
    ``await proxy.start()`` ... ``await proxy.close()``); clients connect to
    ``proxy.address`` (``"host:port"``, what ``ChatsConfig(host=...)`` wants) or
    ``proxy.url`` (``ws://host:port``). ``port`` 0 (the default) binds a free port.

    Knobs, all usable at any time:

    * :meth:`cut_all` / :meth:`cut_random` / :meth:`ProxiedConnection.cut`:
      reset connections abruptly (both sides; no WebSocket close frame);
    * ``delay`` (seconds, default 0): every chunk read from then on, in either
      direction, is forwarded that much later; order is always kept;
    * :meth:`pause` / :meth:`resume`: stop and restart forwarding, in both
      directions or one; the proxy keeps reading, so what arrives meanwhile (a
      request the client has sent, a reply the server has sent) waits in the
      proxy, and a cut drops it;
    * ``refuse`` (default False): new connections are reset as soon as they are
      accepted (an outage); existing ones are untouched;
    * ``upstream``: ``(host, port)`` of the server for new connections.

    Counters: ``connections_accepted`` (every TCP connection accepted, refused
    ones included), ``connections_refused``, ``upstream_failures`` (the server
    could not be reached: the client was reset), ``cuts`` (connections reset by
    the knobs above); ``connections`` are the ones open now.
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        connect_timeout: float = 5.0,
    ) -> None:
        self.upstream: tuple[str, int] = (upstream_host, upstream_port)
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self.delay = 0.0
        self.refuse = False
        self.connections_accepted = 0
        self.connections_refused = 0
        self.upstream_failures = 0
        self.cuts = 0
        self._connections: dict[ProxiedConnection, None] = {}
        self._handlers: set[asyncio.Task[None]] = set()
        self._flowing: dict[str, asyncio.Event] = {"up": asyncio.Event(), "down": asyncio.Event()}
        for flowing in self._flowing.values():
            flowing.set()
        self._server: asyncio.Server | None = None
        self._changed = asyncio.Condition()

    # Lifecycle ------------------------------------------------------------------------

    async def start(self) -> FaultProxy:
        """Start listening (binds ``port``; 0 picks a free one, read ``.port`` after)."""
        if self._server is not None:
            raise RuntimeError("the proxy is already started")
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def close(self) -> None:
        """Stop listening and reset every connection (not counted as cuts)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for connection in tuple(self._connections):
            connection._abort()
        await asyncio.sleep(0)  # handlers of aborted connections end by themselves
        for task in tuple(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def address(self) -> str:
        """``host:port`` where clients connect (as ``ChatsConfig(host=...)`` wants it)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """``ws://host:port``, the proxy as a WebSocket URL."""
        return f"ws://{self.address}"

    @property
    def connections(self) -> tuple[ProxiedConnection, ...]:
        """The connections open now, oldest first."""
        return tuple(self._connections)

    # Knobs ------------------------------------------------------------------------------

    def cut_all(self) -> int:
        """Reset every open connection, both sides; returns how many were cut."""
        return sum(connection.cut() for connection in tuple(self._connections))

    def cut_random(self, rng: random.Random | None = None) -> ProxiedConnection | None:
        """Reset one open connection chosen with ``rng``; None if there is none."""
        open_ = [c for c in self._connections if not c.closed]
        if not open_:
            return None
        victim = (rng or random).choice(open_)
        victim.cut()
        return victim

    def pause(self, direction: Direction = "both") -> None:
        """Stop forwarding (``"up"``: client to server, ``"down"``: server to client, or
        ``"both"``); what arrives meanwhile is buffered in the proxy.

        ``pause("down")`` then a cut loses a reply after the server acted on the
        request; ``pause()`` (or ``"up"``) then a cut loses the request itself.
        """
        for name in self._directions(direction):
            self._flowing[name].clear()

    def resume(self, direction: Direction = "both") -> None:
        """Forward again, buffered data first, in order."""
        for name in self._directions(direction):
            self._flowing[name].set()

    @property
    def paused(self) -> bool:
        """Whether forwarding is paused in either direction."""
        return not all(flowing.is_set() for flowing in self._flowing.values())

    def is_paused(self, direction: Literal["up", "down"]) -> bool:
        return not self._flowing[direction].is_set()

    @staticmethod
    def _directions(direction: Direction) -> tuple[Literal["up", "down"], ...]:
        if direction == "both":
            return ("up", "down")
        if direction not in ("up", "down"):
            raise ValueError(f"direction must be 'up', 'down' or 'both', not {direction!r}")
        return (direction,)

    async def wait_for_connections(self, count: int = 1, timeout: float = 5.0) -> None:
        """Wait until at least ``count`` connections are open (a client came back).

        Raises ``TimeoutError`` after ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self._connections) >= count)

    # Forwarding -------------------------------------------------------------------------

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            # Only close() cancels a handler (one still connecting upstream): end
            # quietly, as asyncio's stream callback reports a cancelled handler.
            _reset(writer)
            if self._server is not None:
                raise
        finally:
            self._handlers.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_accepted += 1
        number = self.connections_accepted
        if self.refuse:
            self.connections_refused += 1
            _reset(writer)
            return
        try:
            async with asyncio.timeout(self.connect_timeout):
                upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
        except (OSError, TimeoutError):
            self.upstream_failures += 1
            _reset(writer)
            return
        if self.refuse or self._server is None:  # refused or closed while connecting
            self.connections_refused += self._server is not None
            _reset(upstream_writer)
            _reset(writer)
            return
        peer = writer.get_extra_info("peername") or ("?", 0)
        connection = ProxiedConnection(
            self, number, (str(peer[0]), int(peer[1])), writer, upstream_writer
        )
        up: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        down: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        connection._tasks = [
            asyncio.create_task(self._read(connection, reader, up)),
            asyncio.create_task(self._forward(connection, up, upstream_writer, "up")),
            asyncio.create_task(self._read(connection, upstream_reader, down)),
            asyncio.create_task(self._forward(connection, down, writer, "down")),
        ]
        self._connections[connection] = None
        await self._notify()
        try:
            await asyncio.gather(*connection._tasks, return_exceptions=True)
        finally:
            if not connection.closed:  # both directions ended normally
                connection.closed = True
                for side in (writer, upstream_writer):
                    side.close()
            self._connections.pop(connection, None)
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            with contextlib.suppress(OSError):
                await upstream_writer.wait_closed()

    async def _read(
        self,
        connection: ProxiedConnection,
        reader: asyncio.StreamReader,
        queue: asyncio.Queue[tuple[float, bytes]],
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await reader.read(CHUNK_SIZE)
                queue.put_nowait((loop.time() + self.delay, data))
                if not data:
                    return
        except OSError:  # the peer reset its side: reset the other one too
            connection._abort()

    async def _forward(
        self,
        connection: ProxiedConnection,
        queue: asyncio.Queue[tuple[float, bytes]],
        writer: asyncio.StreamWriter,
        direction: str,
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                await self._flowing[direction].wait()
                if connection.closed:
                    return
                if not data:  # end of stream: pass the half-close on
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
                if direction == "up":
                    connection.bytes_up += len(data)
                else:
                    connection.bytes_down += len(data)
        except OSError:
            connection._abort()


class RestartableServer:
    """The reference server (:func:`~chats_store.server.run_server`) that can restart
    on the same SQLite file and the same port.

    ``RestartableServer(db, secret, port=0, **options)``: ``options`` go to
    ``run_server`` unchanged on every start. The first start binds ``port`` (0: a
    free one); every later start binds the same port, so clients (and a
    :class:`FaultProxy`) reconnect to the same address. ``db`` should be a file:
    with ``":memory:"`` every restart begins with an empty server.

    ``async with RestartableServer(...) as server:`` starts it and stops it at the
    end. :meth:`restart` stops it (every connection closes as at a shutdown) and
    starts it again; ``restarts`` counts them. ``server.server`` is the running
    :class:`~chats_store.server.ChatServer` (also for minting tokens).
    """

    def __init__(
        self,
        db: str | os.PathLike[str],
        secret: str | bytes,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bind_retry_for: float = 5.0,
        **options: Any,
    ) -> None:
        self.db = db
        self.host = host
        self.port = port
        self.restarts = 0
        self._secret = secret
        self._options = options
        self._bind_retry_for = bind_retry_for
        self._stack: contextlib.AsyncExitStack | None = None
        self._server: ChatServer | None = None

    @property
    def running(self) -> bool:
        return self._stack is not None

    @property
    def server(self) -> ChatServer:
        """The running server (the last one while stopped); RuntimeError before any start."""
        if self._server is None:
            raise RuntimeError("the server was never started: await start() first")
        return self._server

    @property
    def address(self) -> str:
        """``host:port`` of the server."""
        return self.server.address

    @property
    def url(self) -> str:
        """``ws://host:port`` of the server."""
        return self.server.url

    async def start(self) -> ChatServer:
        """Start the server (on the port of the first start, once there was one).

        Retries for up to ``bind_retry_for`` seconds while the port is still taken.
        """
        if self._stack is not None:
            raise RuntimeError("the server is already running")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._bind_retry_for
        while True:
            stack = contextlib.AsyncExitStack()
            try:
                server = await stack.enter_async_context(
                    run_server(self.host, self.port, self.db, self._secret, **self._options)
                )
            except OSError as error:
                await stack.aclose()
                if error.errno != errno.EADDRINUSE or loop.time() > deadline:
                    raise
                await asyncio.sleep(0.05)
                continue
            break
        self._stack = stack
        self._server = server
        self.port = server.port
        return server

    async def stop(self) -> None:
        """Stop the server: every connection is closed, the database file stays."""
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    async def restart(self, downtime: float = 0.0) -> ChatServer:
        """Stop, wait ``downtime`` seconds, start again on the same file and port."""
        await self.stop()
        if downtime > 0:
            await asyncio.sleep(downtime)
        server = await self.start()
        self.restarts += 1
        return server

    async def __aenter__(self) -> RestartableServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RestartableServer {self.host}:{self.port} {state}, {self.restarts} restarts>"
