"""The derived getters of chats_store.chats.derived and applications' own, through the
facade against the real reference server: last message, unread count from a read
marker, chat summary; recompute counts; a raising projection; collision-free keys."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from chats_store import ActionCallError, ErrorCode, Message
from chats_store.chats.selectors import ChatSummary
from tests.e2e.conftest import Net, eventually, network


@pytest.fixture
async def net() -> AsyncIterator[Net]:
    async with network() as net:
        yield net


def contents(messages: Sequence[Message] | None) -> list[str]:
    return [message.content for message in messages or ()]


async def test_last_message_unread_count_and_summary_follow_the_chat(net: Net) -> None:
    ann = await net.joined("ann")
    bob = await net.joined("bob")
    chats = ann.chats
    unread, last = chats.get_chat_unread_count("c1"), chats.get_chat_last_message("c1")
    summaries: list[ChatSummary] = []
    chats.get_chat_summary("c1").subscribe(summaries.append)
    assert (unread.value, last.value) == (0, None)

    for text in ("one", "two", "three"):
        await bob.chats.send_message("c1", text)
    await eventually(lambda: unread.value == 3)
    assert last.value is not None and last.value.content == "three"
    assert summaries[-1] == ChatSummary("c1", "ready", 2, last.value, 3)

    seq = chats.mark_chat_read("c1")
    assert unread.value == 0 and chats.read_markers.get("c1").value == seq
    await chats.send_message("c1", "mine")  # own messages are never unread
    await bob.chats.send_message("c1", "four")
    await eventually(lambda: unread.value == 1)
    assert summaries[-1].unread_count == 1 and summaries[-1].last_message is not None
    assert summaries[-1].last_message.content == "four"

    chats.mark_chat_read("c1", chats.get_chat_messages("c1").value[1].id)  # type: ignore[index]
    assert unread.value == 2  # "three" and "four" after "two", not "mine"
    chats.read_markers.set("c1", None)
    assert unread.value == 4
    assert chats.get_chat_summary("c1") is chats.get_chat_summary("c1")


async def test_a_change_in_another_chat_recomputes_nothing(net: Net) -> None:
    ann = await net.joined("ann")
    await ann.chats.join_chat(net.server.chat_token("ann", "c2"))
    bob = await net.joined("bob", "c2")
    calls: list[int] = []

    def last_length(messages: Sequence[Message] | None) -> int:
        calls.append(1)
        return len(messages or ())

    mine = ann.chats.store.derive(ann.chats.get_chat_messages("c1"), project=last_length)
    mine.subscribe(lambda value: None)
    summaries: list[ChatSummary] = []
    ann.chats.get_chat_summary("c1").subscribe(summaries.append)
    before = (len(calls), len(summaries))

    for text in ("a", "b", "c"):
        await bob.chats.send_message("c2", text)
    await eventually(lambda: contents(ann.chats.get_chat_messages("c2").value) == ["a", "b", "c"])

    assert (len(calls), len(summaries)) == before
    await bob.chats.join_chat(net.server.chat_token("bob", "c1"))
    await bob.chats.send_message("c1", "here")
    await eventually(lambda: mine.value == 1)
    assert len(calls) == before[0] + 1


async def test_a_raising_projection_never_escapes_an_action_nor_leaves_views_stale(
    net: Net, caplog: pytest.LogCaptureFixture
) -> None:
    ann = await net.joined("ann")
    chats = ann.chats

    def ratio(messages: Sequence[Message] | None) -> float:
        return 1 / (len(messages or ()) - 1)  # ZeroDivisionError at one message

    chats.store.derive(chats.get_chat_messages("c1"), project=ratio).subscribe(lambda v: None)
    shown: list[list[str]] = []
    chats.get_chat_messages("c1").subscribe(lambda messages: shown.append(contents(messages)))

    with caplog.at_level(logging.ERROR, logger="chats_store.core"):
        message = await chats.send_message("c1", "hi")

    assert message.content == "hi" and message.status == "ready"
    assert shown[-1] == ["hi"]
    assert chats.get_chat_last_message("c1").value == message
    assert any(
        r.exc_info is not None and isinstance(r.exc_info[1], ZeroDivisionError)
        for r in caplog.records
    )


async def test_application_keys_cannot_replace_the_facades_getters(net: Net) -> None:
    ann = await net.joined("ann")
    chats = ann.chats
    mine = chats.store.select(
        lambda state: len(state.chat_ids), lambda n: f"{n} chats", key="chats_ids"
    )
    facade: Any = chats.chats_ids

    assert mine.value == "1 chats" and facade.value == ("c1",)
    assert chats.chats_ids is facade
    assert chats.store.select(lambda s: 0, lambda n: n, key="chats_ids") is mine
    status = chats.store.derive(chats.get_chat_status("c1"), project=str, key=("status", "c1"))
    assert chats.get_chat_status("c1").value == "ready" and status.value == "ready"


async def test_mark_chat_read_refuses_what_it_cannot_mark(net: Net) -> None:
    ann = await net.joined("ann")

    with pytest.raises(ActionCallError) as not_joined:
        ann.chats.mark_chat_read("elsewhere")
    assert not_joined.value.code is ErrorCode.CHAT_NOT_JOINED
    assert "read_markers.set" in str(not_joined.value)
    with pytest.raises(ActionCallError) as missing:
        ann.chats.mark_chat_read("c1", "no-such-message")
    assert missing.value.code is ErrorCode.MESSAGE_NOT_FOUND
    assert ann.chats.mark_chat_read("c1") == 0  # nothing yet: everything after 0 is unread
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="a read marker is a message seq"):
            ann.chats.read_markers.set("c1", bad)  # type: ignore[arg-type]
    ann.chats.read_markers.set("saved", 7)  # markers may be restored before joining
    assert ann.chats.read_markers.all == {"c1": 0, "saved": 7}
