"""How much the asyncio transports under our WebSocket connections read per ``recv``.

asyncio's selector transports read with ``sock.recv(256 KiB)``. glibc serves an
allocation that large with ``mmap``; Python then shrinks the bytes object to what
arrived (a chat frame is a few hundred bytes) and frees it, and since the freed
mapping is small glibc's threshold for ``mmap`` does not adapt: each read costs an
``mmap``, an ``mremap`` and a ``munmap`` (reported upstream as python/cpython#85451).
Under 128 KiB the allocation comes from the heap. Both the client and the server set
their connections' transports with :func:`read_in_heap_sized_chunks`.
"""

from __future__ import annotations

import asyncio

__all__ = ["READ_SIZE", "read_in_heap_sized_chunks"]

READ_SIZE = 64 * 1024
"""The most a connection reads per ``recv``: under glibc's default ``mmap`` threshold."""


def read_in_heap_sized_chunks(transport: asyncio.BaseTransport) -> None:
    """Make ``transport`` read at most :data:`READ_SIZE` bytes per ``recv``.

    Only transports that read with a size of their own (``max_size``: asyncio's
    selector transports) are changed; others (uvloop's, a proactor's) are left as
    they are. A frame larger than a read arrives in several reads, as it does anyway
    past 256 KiB.
    """
    if isinstance(getattr(transport, "max_size", None), int):
        transport.max_size = READ_SIZE  # type: ignore[attr-defined]
