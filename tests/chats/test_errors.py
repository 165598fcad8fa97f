"""One test per error: every error the spec lists, and every error we added.

Each local error must be raised before anything is dispatched or sent: the test
asserts the code, that the store's state is the *same object* as before the
call, and that the server received no request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest

from chats_store import ActionCallError, CallCancelledError, ErrorCode, ServerRefusedError
from tests.chats.conftest import Client, World, settle

Call = Callable[[], Awaitable[Any]]
Setup = Callable[[World], Awaitable[tuple[Client, Call]]]


@attrs.frozen
class Case:
    action: str
    code: ErrorCode
    setup: Setup

    def __str__(self) -> str:
        return f"{self.action}-{self.code.value}"


MODERATION_CALLS: dict[str, Callable[[Client, str, str], Awaitable[None]]] = {
    "block_chat_member": lambda c, chat, member: c.chats.block_chat_member(chat, member, 10),
    "unblock_chat_member": lambda c, chat, member: c.chats.unblock_chat_member(chat, member),
    "mute_chat_member": lambda c, chat, member: c.chats.mute_chat_member(chat, member, 10),
    "unmute_chat_member": lambda c, chat, member: c.chats.unmute_chat_member(chat, member),
    "kick_chat_member": lambda c, chat, member: c.chats.kick_chat_member(chat, member),
}


def any_call(client: Client, action: str, chat_id: str = "c1", message_id: str = "m") -> Call:
    """A call of ``action`` with plausible arguments."""
    chats = client.chats
    if action in MODERATION_CALLS:
        return lambda: MODERATION_CALLS[action](client, chat_id, "bob")
    calls: dict[str, Call] = {
        "join_chat": lambda: chats.join_chat("not-a-token"),
        "leave_chat": lambda: chats.leave_chat(chat_id),
        "send_message": lambda: chats.send_message(chat_id, "hello"),
        "resend_message": lambda: chats.resend_message(chat_id, message_id),
        "update_message": lambda: chats.update_message(chat_id, message_id, "new"),
        "delete_message": lambda: chats.delete_message(chat_id, message_id),
        "load_older_messages": lambda: chats.load_older_messages(chat_id),
    }
    return calls[action]


# Setups -----------------------------------------------------------------------------


def not_connected(action: str) -> Setup:
    async def setup(world: World) -> tuple[Client, Call]:
        client = await world.client("ann", connect=False)
        if action == "join_chat":
            token = world.server.chat_token("ann", "c1")
            return client, lambda: client.chats.join_chat(token)
        return client, any_call(client, action)

    return setup


def chat_not_joined(action: str) -> Setup:
    async def setup(world: World) -> tuple[Client, Call]:
        client = await world.joined("ann", "other")
        return client, any_call(client, action, chat_id="c1")

    return setup


def chat_loading(action: str) -> Setup:
    async def setup(world: World) -> tuple[Client, Call]:
        client = await world.client("ann")
        world.server.hold()
        world.start(client.chats.join_chat(world.server.chat_token("ann", "c1")))
        await settle()
        assert client.chats.get_chat_status("c1").value == "loading"
        return client, any_call(client, action)

    return setup


def message_not_found(action: str) -> Setup:
    async def setup(world: World) -> tuple[Client, Call]:
        client = await world.joined("ann")
        return client, any_call(client, action, message_id="no-such-message")

    return setup


async def own_ready_message(world: World) -> tuple[Client, str]:
    client = await world.joined("ann")
    message = await client.chats.send_message("c1", "first")
    return client, message.id


def message_in_status(action: str, status: str) -> Setup:
    """A message of the client in ``status`` (sending/updating/deleting/ready/interrupted)."""

    async def setup(world: World) -> tuple[Client, Call]:
        client, message_id = await own_ready_message(world)
        chats = client.chats
        if status == "interrupted":
            world.server.refuse_next("server_error")
            with pytest.raises(ServerRefusedError):
                await chats.send_message("c1", "will fail")
            messages = chats.get_chat_messages("c1").value
            assert messages is not None
            message_id = messages[-1].id
        elif status != "ready":
            world.server.hold()
            if status == "sending":
                world.start(chats.send_message("c1", "in flight"))
            elif status == "updating":
                world.start(chats.update_message("c1", message_id, "changing"))
            else:
                world.start(chats.delete_message("c1", message_id))
            await settle()
            messages = chats.get_chat_messages("c1").value
            assert messages is not None
            message_id = messages[-1].id
        assert chats.store.state.chats["c1"].messages.find(message_id).status == status  # type: ignore[union-attr]
        return client, any_call(client, action, message_id=message_id)

    return setup


def already_joined() -> Setup:
    async def setup(world: World) -> tuple[Client, Call]:
        client = await world.joined("ann")
        token = world.server.chat_token("ann", "c1")
        return client, lambda: client.chats.join_chat(token)

    return setup


def bad_token(kind: str) -> Setup:
    async def setup(world: World) -> tuple[Client, Call]:
        client = await world.client("ann")
        tokens = {
            "garbage": "not-a-token",
            "session": world.server.session_token("ann"),
            "other-user": world.server.chat_token("bob", "c1"),
            "expired": world.server.chat_token("ann", "c1", ttl=-1),
        }
        token = tokens[kind]
        return client, lambda: client.chats.join_chat(token)

    return setup


def content(action: str, text: str) -> Setup:
    async def setup(world: World) -> tuple[Client, Call]:
        client, message_id = await own_ready_message(world)
        if action == "send_message":
            return client, lambda: client.chats.send_message("c1", text)
        return client, lambda: client.chats.update_message("c1", message_id, text)

    return setup


def others_message() -> Setup:
    async def setup(world: World) -> tuple[Client, Call]:
        client = await world.joined("ann")
        world.server.post("c1", "bob", "bob's words", "bob-1")
        await settle()
        return client, lambda: client.chats.update_message("c1", "bob-1", "ann's words")

    return setup


def muted(action: str) -> Setup:
    async def setup(world: World) -> tuple[Client, Call]:
        moderator = await world.joined("mod", permissions=("send", "moderate"))
        client, _ = await own_ready_message(world)
        if action == "resend_message":
            world.server.refuse_next("server_error")
            with pytest.raises(ServerRefusedError):
                await client.chats.send_message("c1", "will fail")
        await moderator.chats.mute_chat_member("c1", "ann", 5, reason="spam")
        await settle()
        restrictions = client.chats.get_client_chat_member_restrictions("c1").value
        assert restrictions is not None and restrictions[0].kind == "mute"
        messages = client.chats.get_chat_messages("c1").value
        assert messages is not None
        return client, any_call(client, action, message_id=messages[-1].id)

    return setup


def moderation(action: str, target: str = "ann", duration: object = 10) -> Setup:
    async def setup(world: World) -> tuple[Client, Call]:
        client = await world.joined("ann", permissions=("send", "moderate"))
        chats: Any = client.chats
        method = getattr(chats, action)
        if action in ("block_chat_member", "mute_chat_member"):
            return client, lambda: method("c1", target, duration)
        return client, lambda: method("c1", target)

    return setup


def bad_limit(limit: object) -> Setup:
    async def setup(world: World) -> tuple[Client, Call]:
        client = await world.joined("ann")
        return client, lambda: client.chats.load_older_messages("c1", limit)  # type: ignore[arg-type]

    return setup


E = ErrorCode
MESSAGE_ACTIONS = ("update_message", "delete_message", "resend_message")

SPEC_CASES = [
    *(Case(a, E.NOT_CONNECTED, not_connected(a)) for a in ("join_chat", "leave_chat")),
    Case("join_chat", E.INVALID_TOKEN, bad_token("garbage")),
    Case("join_chat", E.EXPIRED_TOKEN, bad_token("expired")),
    Case("join_chat", E.ALREADY_JOINED, already_joined()),
    Case("leave_chat", E.CHAT_NOT_JOINED, chat_not_joined("leave_chat")),
    *(
        Case(a, code, make(a))
        for a in ("delete_message", "update_message", "resend_message", "send_message")
        for code, make in (
            (E.NOT_CONNECTED, not_connected),
            (E.CHAT_NOT_JOINED, chat_not_joined),
            (E.CHAT_LOADING, chat_loading),
        )
    ),
    *(Case(a, E.MESSAGE_NOT_FOUND, message_not_found(a)) for a in MESSAGE_ACTIONS),
    Case("delete_message", E.MESSAGE_NOT_DELETABLE, message_in_status("delete_message", "sending")),
    Case(
        "delete_message", E.MESSAGE_BEING_DELETED, message_in_status("delete_message", "deleting")
    ),
    Case(
        "delete_message", E.MESSAGE_BEING_UPDATED, message_in_status("delete_message", "updating")
    ),
    Case("update_message", E.MESSAGE_NOT_UPDATABLE, message_in_status("update_message", "sending")),
    Case(
        "update_message", E.MESSAGE_BEING_DELETED, message_in_status("update_message", "deleting")
    ),
    Case(
        "update_message", E.MESSAGE_BEING_UPDATED, message_in_status("update_message", "updating")
    ),
    Case("resend_message", E.MESSAGE_NOT_INTERRUPTED, message_in_status("resend_message", "ready")),
    *(Case(a, E.NOT_CONNECTED, not_connected(a)) for a in MODERATION_CALLS),
]

ADDED_CASES = [
    Case("join_chat", E.INVALID_TOKEN, bad_token("session")),
    Case("join_chat", E.INVALID_TOKEN, bad_token("other-user")),
    Case(
        "update_message",
        E.MESSAGE_NOT_UPDATABLE,
        message_in_status("update_message", "interrupted"),
    ),
    *(Case(a, E.CONTENT_EMPTY, content(a, "   ")) for a in ("send_message", "update_message")),
    *(
        Case(a, E.CONTENT_TOO_LONG, content(a, "x" * 257))
        for a in ("send_message", "update_message")
    ),
    Case("update_message", E.NOT_MESSAGE_AUTHOR, others_message()),
    *(Case(a, E.MEMBER_MUTED, muted(a)) for a in ("send_message", "resend_message")),
    *(Case(a, E.MODERATION_TARGET_IS_SELF, moderation(a)) for a in MODERATION_CALLS),
    *(Case(a, E.CHAT_NOT_JOINED, chat_not_joined(a)) for a in MODERATION_CALLS),
    *(Case(a, E.CHAT_LOADING, chat_loading(a)) for a in MODERATION_CALLS),
    *(
        Case(a, E.INVALID_DURATION, moderation(a, "bob", duration))
        for a in ("block_chat_member", "mute_chat_member")
        for duration in (-1, 1.5, "10", True)
    ),
    *(Case("load_older_messages", E.INVALID_LIMIT, bad_limit(limit)) for limit in (0, 201, 2.0)),
    Case("load_older_messages", E.NOT_CONNECTED, not_connected("load_older_messages")),
    Case("load_older_messages", E.CHAT_NOT_JOINED, chat_not_joined("load_older_messages")),
    Case("load_older_messages", E.CHAT_LOADING, chat_loading("load_older_messages")),
]


async def assert_refused_locally(world: World, case: Case) -> ActionCallError:
    client, call = await case.setup(world)
    await settle()
    state_before = client.chats.store.state
    requests_before = len(world.server.requests)
    with pytest.raises(ActionCallError) as raised:
        await call()
    error = raised.value
    assert type(error) is ActionCallError, "a local refusal is not a server refusal"
    assert error.code == case.code
    assert error.action == case.action
    assert str(error).startswith(f"{case.action}: ")
    assert client.chats.store.state is state_before, "a refused call changed the state"
    assert len(world.server.requests) == requests_before, "a refused call sent a request"
    return error


@pytest.mark.parametrize("case", SPEC_CASES, ids=str)
async def test_spec_error(world: World, case: Case) -> None:
    await assert_refused_locally(world, case)


@pytest.mark.parametrize("case", ADDED_CASES, ids=str)
async def test_added_error(world: World, case: Case) -> None:
    await assert_refused_locally(world, case)


def test_every_spec_error_is_covered() -> None:
    """34 (action, error) pairs once leave_chat's copied list is fixed.

    33 are refused locally (below); chat_left_during_join has its own flow.
    """
    pairs = {(case.action, case.code) for case in SPEC_CASES}
    assert len(pairs) == len(SPEC_CASES) == 33


async def test_join_raises_chat_left_during_join(world: World) -> None:
    client = await world.client("ann")
    world.server.hold()
    join = world.start(client.chats.join_chat(world.server.chat_token("ann", "c1")))
    await settle()
    leave = world.start(client.chats.leave_chat("c1"))
    await settle()
    assert join.done(), "the pending join must fail as soon as the chat is left"
    with pytest.raises(CallCancelledError) as raised:
        join.result()
    assert raised.value.code == ErrorCode.CHAT_LEFT_DURING_JOIN
    assert not isinstance(raised.value, ActionCallError)
    assert client.chats.chats_ids.value == ()
    world.server.release()
    left = await leave
    assert left.status == "loading"


# Server refusals ----------------------------------------------------------------------


async def test_server_refuses_moderation_without_permission(world: World) -> None:
    await world.joined("bob")
    client = await world.joined("ann")
    with pytest.raises(ServerRefusedError) as raised:
        await client.chats.kick_chat_member("c1", "bob")
    assert raised.value.code == ErrorCode.PERMISSION_DENIED
    assert raised.value.action == "kick_chat_member"


async def test_server_refuses_moderation_of_unknown_member(world: World) -> None:
    client = await world.joined("ann", permissions=("send", "moderate"))
    with pytest.raises(ServerRefusedError) as raised:
        await client.chats.mute_chat_member("c1", "nobody", 5)
    assert raised.value.code == ErrorCode.MEMBER_NOT_FOUND


@pytest.mark.parametrize("code", [ErrorCode.INVALID_TOKEN, ErrorCode.EXPIRED_TOKEN])
async def test_server_refuses_join_token(world: World, code: ErrorCode) -> None:
    """The server has the last word on tokens; its refusal keeps the spec's code."""
    client = await world.client("ann")
    world.server.refuse_next(code, "the server says no")
    with pytest.raises(ServerRefusedError) as raised:
        await client.chats.join_chat(world.server.chat_token("ann", "c1"))
    assert raised.value.code == code
    assert not isinstance(raised.value, ActionCallError)  # siblings: sent, then refused
    assert client.chats.chats_ids.value == ()
    assert client.chats.get_chat_status("c1").value is None


async def test_server_refuses_join_of_blocked_member(world: World) -> None:
    moderator = await world.joined("mod", permissions=("send", "moderate"))
    client = await world.joined("ann")
    await moderator.chats.block_chat_member("c1", "ann", 0)
    await settle()
    assert client.chats.chats_ids.value == ()
    with pytest.raises(ServerRefusedError) as raised:
        await client.chats.join_chat(world.server.chat_token("ann", "c1"))
    assert raised.value.code == ErrorCode.MEMBER_BLOCKED
