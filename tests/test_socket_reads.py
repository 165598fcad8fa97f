"""Both ends of a connection read in heap-sized chunks, and large frames still arrive whole."""

from __future__ import annotations

import asyncio
import gc

from chats_store.chats.validation import MAX_HISTORY_PAGE
from chats_store.protocol import encode_reply
from chats_store.socket_reads import READ_SIZE, read_in_heap_sized_chunks
from tests.e2e.conftest import network


def _transports_of(port: int) -> tuple[list[asyncio.Transport], list[asyncio.Transport]]:
    """The open socket transports of this process whose peer, and whose own address,
    is ``port``: the clients' ends and the server's ends of its connections."""
    # type(), not isinstance(): isinstance() asks a weak proxy among the objects for its
    # class, which raises once its referent is gone.
    transports = [
        t
        for t in gc.get_objects()
        if issubclass(type(t), asyncio.Transport)
        and not t.is_closing()
        and t.get_extra_info("socket")
    ]
    clients = [t for t in transports if (t.get_extra_info("peername") or ("", 0))[1] == port]
    servers = [t for t in transports if (t.get_extra_info("sockname") or ("", 0))[1] == port]
    return clients, servers


async def test_the_client_and_the_server_read_at_most_read_size_per_recv() -> None:
    async with network() as net:
        await net.joined("ann")
        clients, servers = _transports_of(net.server.port)
        assert clients and servers
        assert {getattr(t, "max_size", None) for t in clients + servers} == {READ_SIZE}


async def test_a_history_page_larger_than_one_read_arrives_whole() -> None:
    async with network(rate_limit=None) as net:
        ann = await net.joined("ann")
        contents = [f"{n:03d} " + "x" * 252 for n in range(300)]
        for content in contents:
            await ann.chats.send_message("c1", content)
        bob = await net.joined("bob")
        shown = len(bob.messages())
        older = await bob.chats.load_older_messages("c1", limit=MAX_HISTORY_PAGE)
        assert len(encode_reply(1, older)) > READ_SIZE  # the reply took more than one read
        assert [m.content for m in bob.messages()] == contents[-shown - len(older) :]


def test_a_transport_without_a_read_size_is_left_as_it_is() -> None:
    class Transport(asyncio.BaseTransport):
        pass

    transport = Transport()
    read_in_heap_sized_chunks(transport)
    assert not hasattr(transport, "max_size")
