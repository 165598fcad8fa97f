"""The state file (``ChatsConfig(state_file=...)``): what it keeps, restores, refuses.

Against the in-memory server (the reference server's core). The real server and a
real process killed with SIGKILL are ``tests/soak/test_kill.py``'s.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings

from chats_store import CallCancelledError, Chats, ChatsConfig, StateFileError, create_chats
from chats_store.chats.action_log import read_action_log
from chats_store.chats.actions import (
    ChatJoined,
    ChatSnapshot,
    ChatsRestored,
    DeleteMessage,
    Failure,
    JoinChat,
    MessagePosted,
    MessageSendFailed,
    ResendMessage,
    RestoredChat,
    SendMessage,
)
from chats_store.chats.actions import ChatsRestored as Restore
from chats_store.chats.commands import (
    DeleteMessageRequest,
    EditMessageRequest,
    PostMessageRequest,
    ResumeRequest,
)
from chats_store.chats.model import ChatsState, ChatState, Message, PendingOperation, QueuedSend
from chats_store.chats.persistence import (
    APPLICATION_ID,
    MIGRATIONS,
    RESTORED_AT_ONCE,
    SCHEMA_VERSION,
    StateFile,
    operations_of,
)
from chats_store.chats.reducer import reduce_chats
from chats_store.chats.serialization import REDACTED
from chats_store.chats.server_clock import ServerClock
from chats_store.errors import ErrorCode
from chats_store.testing import strategies as cs
from tests.chats.conftest import Client, World, settle


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "ann.state")


def contents(client: Client, chat_id: str = "c1") -> list[tuple[str, str]]:
    messages = client.chats.get_chat_messages(chat_id).value
    assert messages is not None
    return [(m.content, m.status) for m in messages]


def requests_of(world: World, kind: type, user_id: str = "ann") -> list[Any]:
    return [r for user, r in world.server.requests if user == user_id and isinstance(r, kind)]


async def restart(world: World, client: Client, path: str, **config: Any) -> Client:
    """End ``client`` (its state file keeps what was in flight) and start a new one on
    ``path``, not connected."""
    await client.chats.close()
    await client.websocket.disconnect()
    return await world.client(client.user_id, connect=False, state_file=path, **config)


async def until_ready(client: Client, chat_id: str = "c1") -> None:
    for _ in range(100):
        if client.chats.get_chat_status(chat_id).value == "ready":
            await settle()
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{chat_id} never became ready")


async def test_the_file_is_private_to_its_user(world: World, path: str) -> None:
    ann = await world.client("ann", state_file=path)
    await ann.chats.join_chat(world.server.chat_token("ann", "c1"))

    for name in os.listdir(os.path.dirname(path)):
        mode = stat.S_IMODE(os.stat(os.path.join(os.path.dirname(path), name)).st_mode)
        assert mode == 0o600, (name, oct(mode))


async def test_a_new_module_restores_the_chats_before_any_connection(
    world: World, path: str
) -> None:
    moderator = await world.joined("mod", permissions=("send", "moderate"))
    ann = await world.client("ann", state_file=path)
    await ann.chats.join_chat(world.server.chat_token("ann", "c1", metadata={"role": "guest"}))
    await ann.chats.join_chat(world.server.chat_token("ann", "c2"))
    await ann.chats.send_message("c1", "one")
    world.server.post("c1", "bob", "two", "bob-2")
    await moderator.chats.mute_chat_member("c1", "ann", 5, reason="spam")
    await settle()
    shown = {
        "messages": ann.chats.get_chat_messages("c1").value,
        "members": ann.chats.get_chat_members_amount("c1").value,
        "metadata": dict(ann.chats.get_client_chat_member_metadata("c1").value or {}),
        "restrictions": ann.chats.get_client_chat_member_restrictions("c1").value,
    }

    again = await restart(world, ann, path)

    chats = again.chats
    assert chats.chats_ids.value == ("c1", "c2")
    assert chats.get_chat_status("c1").value == chats.get_chat_status("c2").value == "reloading"
    assert chats.is_chat_syncing("c1").value
    assert chats.get_chat_messages("c1").value == shown["messages"]
    assert chats.get_chat_members_amount("c1").value == shown["members"] == 3
    assert dict(chats.get_client_chat_member_metadata("c1").value or {}) == shown["metadata"]
    assert chats.get_client_chat_member_restrictions("c1").value == shown["restrictions"]
    last_seq = chats.store.state.chats["c1"].last_seq

    await again.websocket.connect()
    await until_ready(again)
    assert [(r.chat_id, r.since_seq) for r in requests_of(world, ResumeRequest)] == [
        ("c1", last_seq),
        ("c2", chats.store.state.chats["c2"].last_seq),
    ]
    assert chats.get_chat_status("c2").value == "ready"


async def test_requests_in_flight_at_the_end_go_out_again_once(world: World, path: str) -> None:
    """The previous module ended with a send, an edit and a delete in flight; the
    server applied them after it was gone (their acks were lost)."""
    ann = await world.client("ann", state_file=path)
    await ann.chats.join_chat(world.server.chat_token("ann", "c1"))
    first = await ann.chats.send_message("c1", "first")
    second = await ann.chats.send_message("c1", "second")
    world.server.hold()
    world.start(ann.chats.send_message("c1", "third"))
    world.start(ann.chats.update_message("c1", first.id, "first, edited"))
    world.start(ann.chats.delete_message("c1", second.id))
    await settle()

    again = await restart(world, ann, path)
    assert contents(again) == [
        ("first", "ready"),
        ("second", "ready"),
        ("third", "interrupted"),
    ], "what the server confirmed; the send in flight is pending"
    world.server.release()  # the requests reached the server: applied, acks lost
    await again.websocket.connect()
    await until_ready(again)
    await settle()

    assert contents(again) == [("first, edited", "ready"), ("third", "ready")]
    assert [m.content for m in world.server.history("c1")] == ["first, edited", "third"]
    posts = [r.content for r in requests_of(world, PostMessageRequest)]
    assert posts.count("third") == 2, "sent again with its id: the server deduplicated it"
    assert len(requests_of(world, EditMessageRequest)) == 1, "the resume showed it applied"
    assert len(requests_of(world, DeleteMessageRequest)) == 1, "the resume showed it applied"


async def test_requests_that_never_left_go_out_once_in_order(world: World, path: str) -> None:
    ann = await world.client("ann", state_file=path)
    await ann.chats.join_chat(world.server.chat_token("ann", "c1"))
    first = await ann.chats.send_message("c1", "first")
    world.server.hold()
    world.start(ann.chats.send_message("c1", "second"))  # in flight, held
    world.start(ann.chats.send_message("c1", "third"))  # queued behind it
    world.start(ann.chats.update_message("c1", first.id, "first, edited"))
    await settle()
    held = len(world.server.requests)

    again = await restart(world, ann, path)
    world.server.lose_held()
    await again.websocket.connect()
    await until_ready(again)
    await settle()

    assert [m.content for m in world.server.history("c1")] == ["first, edited", "second", "third"]
    sent_again = [type(r).__name__ for _, r in world.server.requests[held:]]
    assert sent_again[:2] == ["ResumeRequest", "PostMessageRequest"]
    assert sent_again.count("PostMessageRequest") == 2
    assert sent_again.count("EditMessageRequest") == 1
    assert again.chats.store.state.chats["c1"].recovered == ()


async def test_a_send_during_the_resync_waits_for_the_recovered_ones(
    world: World, path: str
) -> None:
    ann = await world.client("ann", state_file=path)
    await ann.chats.join_chat(world.server.chat_token("ann", "c1"))
    world.server.hold()
    world.start(ann.chats.send_message("c1", "before the end"))
    await settle()
    again = await restart(world, ann, path)
    world.server.lose_held()

    await again.websocket.connect()
    after = await again.chats.send_message("c1", "after the restart")

    assert [m.content for m in world.server.history("c1")] == [
        "before the end",
        "after the restart",
    ]
    assert after.status == "ready"


async def test_close_keeps_the_requests_in_flight(world: World, path: str) -> None:
    ann = await world.client("ann", state_file=path)
    await ann.chats.join_chat(world.server.chat_token("ann", "c1"))
    world.server.hold()
    send = world.start(ann.chats.send_message("c1", "hi"))
    await settle()

    await ann.chats.close()

    with pytest.raises(CallCancelledError):
        await send
    state_file = StateFile.open(path, "ann", kept_messages=10)
    (restored,) = state_file.restored.chats
    state_file.close()
    assert [op.kind for op in restored.operations] == ["send"]


async def test_the_file_keeps_the_newest_messages_of_the_window(world: World, path: str) -> None:
    ann = await world.client("ann", state_file=path, max_messages_in_memory=3)
    await ann.chats.join_chat(world.server.chat_token("ann", "c1"))
    for number in range(80):
        world.server.post("c1", "bob", f"m{number}", f"bob-{number}")
    await settle()
    await ann.chats.close()

    state_file = StateFile.open(path, "ann", kept_messages=3)
    (restored,) = state_file.restored.chats
    state_file.close()
    assert [m.content for m in restored.messages] == ["m77", "m78", "m79"]


async def test_without_a_window_the_file_keeps_its_default(
    world: World, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("chats_store.chats.facade.DEFAULT_KEPT_MESSAGES", 5)
    ann = await world.client("ann", state_file=path)
    await ann.chats.join_chat(world.server.chat_token("ann", "c1"))
    for number in range(80):
        world.server.post("c1", "bob", f"m{number}", f"bob-{number}")
    await settle()
    messages = ann.chats.get_chat_messages("c1").value
    assert messages is not None and len(messages) == 80, "memory keeps them all"

    again = await restart(world, ann, path)

    kept = [content for content, _ in contents(again)]
    assert 5 <= len(kept) <= 5 + 64, "trimmed back to 5 once 64 more have come"
    assert kept == [f"m{number}" for number in range(80 - len(kept), 80)]


async def test_a_long_chat_shows_its_newest_at_once_and_the_rest_right_after(
    world: World, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann = await world.client("ann", state_file=path)
    await ann.chats.join_chat(world.server.chat_token("ann", "c1"))
    for number in range(RESTORED_AT_ONCE + 50):
        world.server.post("c1", "bob", f"m{number}", f"bob-{number}")
    await settle()
    everything = ann.chats.get_chat_messages("c1").value
    commits: list[object] = []
    commit = StateFile._commit
    monkeypatch.setattr(
        StateFile, "_commit", lambda self, writes: (commits.append(writes), commit(self, writes))
    )

    again = await restart(world, ann, path)

    shown = again.chats.get_chat_messages("c1").value
    assert shown is not None and everything is not None
    assert list(shown) == list(everything)[-RESTORED_AT_ONCE:]
    await settle()
    assert again.chats.get_chat_messages("c1").value == everything
    assert commits == [], "what came back from the file is not written again"


async def test_a_request_whose_record_failed_does_not_leave(
    world: World, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann = await world.client("ann", state_file=path)
    await ann.chats.join_chat(world.server.chat_token("ann", "c1"))

    def full_disk(self: StateFile, writes: Any) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    with monkeypatch.context() as patched:
        patched.setattr(StateFile, "_commit", full_disk)
        with pytest.raises(CallCancelledError) as raised:
            await ann.chats.send_message("c1", "not recorded")
    assert raised.value.code == ErrorCode.STATE_FILE_FAILED
    assert "could not record" in raised.value.detail
    assert requests_of(world, PostMessageRequest) == []
    assert contents(ann) == [("not recorded", "interrupted")]

    sent = await ann.chats.send_message("c1", "recorded")  # the disk has room again
    assert sent.status == "ready"
    again = await restart(world, ann, path)
    assert contents(again) == [("recorded", "ready"), ("not recorded", "interrupted")]


async def test_the_action_log_shows_the_restore_without_credentials(
    world: World, path: str, tmp_path: Path
) -> None:
    ann = await world.client("ann", state_file=path)
    await ann.chats.join_chat(world.server.chat_token("ann", "c1"))
    membership = ann.chats.store.state.chats["c1"].membership
    await ann.chats.close()
    log = tmp_path / "actions.jsonl"

    restored = create_chats(
        user_module=world.server.user("ann"),
        websocket_module=world.server.websocket(),
        config=ChatsConfig(host="memory", state_file=path),
        action_log=log,
    )
    await restored.close()

    entries = read_action_log(log.read_text().splitlines()).entries
    assert isinstance(entries[0].action, ChatsRestored)
    assert entries[0].action.chats[0].membership == REDACTED
    assert membership and membership not in log.read_text()


async def test_a_module_that_failed_to_start_leaves_the_file_free(
    world: World, path: str, tmp_path: Path
) -> None:
    def start(action_log: Path) -> Chats:
        return create_chats(
            user_module=world.server.user("ann"),
            websocket_module=world.server.websocket(),
            config=ChatsConfig(host="memory", state_file=path),
            action_log=action_log,
        )

    with pytest.raises(IsADirectoryError):
        start(tmp_path)  # the action log cannot be written
    await start(tmp_path / "actions.jsonl").close()  # the file is not "in use"


def test_operations_of_a_chat_in_order() -> None:
    restored = RestoredChat(
        "c1",
        3,
        "credential",
        2,
        {},
        (),
        (
            Message("a", "c1", "ann", "a", "ready", 1),
            Message("b", "c1", "ann", "b", "ready", 2),
            Message("p", "c1", "ann", "p", "interrupted"),
        ),
        (PendingOperation("send", "p"), PendingOperation("edit", "a", "a2")),
    )
    state = reduce_chats(ChatsState(), Restore((restored,))).state
    assert list(operations_of(state.chats["c1"]).values()) == list(restored.operations)


# What the file keeps, for any history ------------------------------------------------------


def kept_view(chat: ChatState) -> list[Message]:
    """The messages of ``chat`` as the file keeps them: as the server last confirmed them
    (the original of one being updated or deleted), the confirmed ones ``ready`` in
    ``seq`` order, then the pending ones ``interrupted`` in order. What the server
    confirmed is kept confirmed even while the message shows pending (a delete of an
    interrupted message whose send the server had applied)."""
    kept = [chat.originals.get(m.id, m) for m in chat.messages]
    confirmed = sorted((m for m in kept if m.seq is not None), key=lambda m: m.seq or 0)
    return [
        *(msgspec.structs.replace(m, status="ready") for m in confirmed),
        *(msgspec.structs.replace(m, status="interrupted") for m in kept if m.seq is None),
    ]


def recorded_and_restored(actions: Iterable[Any]) -> tuple[ChatsState, ChatsState]:
    """The state ``actions`` lead to, each recorded in a state file as it comes (the
    file written by its differences), and the state restored from that file (its
    older messages brought back too)."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "state")
        state_file = StateFile.open(path, cs.CLIENT_ID, kept_messages=1_000)
        state_file.follow(ChatsState(), ServerClock(lambda: 0.0))
        state = ChatsState(connection="connected")
        for action in actions:
            state = reduce_chats(state, action).state
            state_file.record(action, state)
        state_file.close()
        reopened = StateFile.open(path, cs.CLIENT_ID, kept_messages=1_000)
        restored = reduce_chats(ChatsState(), reopened.restored).state
        for chat_id in restored.chat_ids:
            history = reopened.history(chat_id)
            if history is not None:
                restored = reduce_chats(restored, history).state
        reopened.close()
    return state, restored


@settings(max_examples=60, deadline=None)
@given(cs.chats_scenarios(max_steps=30))
def test_the_file_follows_any_history_and_restores_what_it_kept(
    scenario: cs.ChatsScenario,
) -> None:
    """Each action of a valid history recorded as it comes restores the chats as the
    file keeps them from the final state."""
    state, restored = recorded_and_restored(scenario.actions)

    kept = [c for c in state.chat_ids if state.chats[c].status != "loading"]
    assert restored.chat_ids == tuple(kept)
    for chat_id in kept:
        chat, back = state.chats[chat_id], restored.chats[chat_id]
        assert list(back.messages) == kept_view(chat)
        assert {op.message_id: op for op in back.recovered} == operations_of(chat)
        sends = [op.message_id for op in back.recovered if op.kind == "send"]
        assert sends == [entry.message_id for entry in chat.send_queue if unconfirmed(chat, entry)]
        assert (back.last_seq, back.membership, back.members_amount) == (
            chat.last_seq,
            chat.membership,
            chat.members_amount,
        )
        assert dict(back.member_metadata or {}) == dict(chat.member_metadata or {})
        assert back.restrictions == chat.restrictions


def unconfirmed(chat: ChatState, entry: QueuedSend) -> bool:
    """Whether the message of a queued send is still not confirmed (a push may confirm
    it while the send is in flight: then there is nothing to send again)."""
    message = chat.messages.find(entry.message_id)
    return message is not None and message.seq is None


JOINED = (
    JoinChat(1, "c1", "token"),
    ChatJoined(1, "c1", ChatSnapshot((), 1, {}, (), 1, membership="credential")),
)
"""Chat c1 joined: the start of the histories below."""


def test_a_message_sent_again_is_recovered_behind_the_sends_made_before_it() -> None:
    refused = Failure("refused", ErrorCode.PERMISSION_DENIED, "refused")
    state, restored = recorded_and_restored(
        (
            *JOINED,
            SendMessage(2, "c1", "m2", cs.CLIENT_ID, "first", 2.0),
            SendMessage(3, "c1", "m3", cs.CLIENT_ID, "second", 3.0),
            MessageSendFailed(2, "c1", "m2", refused),  # m3 goes out
            ResendMessage(4, "c1", "m2"),  # queued behind m3
        )
    )

    chat = state.chats["c1"]
    assert [entry.message_id for entry in chat.send_queue] == ["m3", "m2"]
    assert list(operations_of(chat)) == ["m3", "m2"]
    assert restored.chats["c1"].recovered == (
        PendingOperation("send", "m3"),
        PendingOperation("send", "m2"),
    )


POSTED_M2 = Message("m2", "c1", cs.CLIENT_ID, "hi", "ready", 2, 2.0)


def pushed_during(operation: Any) -> tuple[ChatsState, ChatsState]:
    """Recorded and restored: a send of ``m2`` that timed out after the server applied
    it, then ``operation`` on it, during which its push (:data:`POSTED_M2`) arrives."""
    return recorded_and_restored(
        (
            *JOINED,
            SendMessage(2, "c1", "m2", cs.CLIENT_ID, "hi", 2.0),
            MessageSendFailed(2, "c1", "m2", Failure("timeout", "timeout", "no reply in time")),
            operation,
            MessagePosted("c1", 2, POSTED_M2),
        )
    )


def test_a_message_confirmed_by_a_push_during_its_resend_is_not_sent_again() -> None:
    posted = POSTED_M2
    state, restored = pushed_during(ResendMessage(3, "c1", "m2"))

    chat = state.chats["c1"]
    assert [entry.message_id for entry in chat.send_queue] == ["m2"]  # its reply is awaited
    assert list(chat.messages) == [posted]
    assert list(restored.chats["c1"].messages) == [posted]
    assert restored.chats["c1"].recovered == ()


def test_a_message_the_server_confirmed_during_its_delete_is_kept_confirmed() -> None:
    """Its send timed out after the server applied it; the user deletes the interrupted
    message; its push arrives while the delete is in flight."""
    posted = POSTED_M2
    state, restored = pushed_during(DeleteMessage(3, "c1", "m2"))

    chat = state.chats["c1"]
    assert [(m.id, m.seq, m.status) for m in chat.messages] == [("m2", 2, "deleting")]
    assert chat.originals["m2"] == posted
    assert list(restored.chats["c1"].messages) == kept_view(chat) == [posted]
    assert restored.chats["c1"].recovered == (PendingOperation("delete", "m2"),)


# Refusals ------------------------------------------------------------------------------


def refusal(path: str) -> StateFileError:
    """What opening ``path`` for ann raises."""
    with pytest.raises(StateFileError) as raised:
        StateFile.open(path, "ann", kept_messages=10)
    return raised.value


async def test_a_file_of_another_user_is_refused(world: World, path: str) -> None:
    ann = await world.client("ann", state_file=path)
    await ann.chats.close()

    with pytest.raises(StateFileError) as raised:
        await world.client("bob", connect=False, state_file=path)

    assert raised.value.reason == "other_user"
    assert "user 'ann', not 'bob'" in str(raised.value)
    assert str(raised.value).startswith(f"state file {path!r}")


async def test_a_file_in_use_is_refused(world: World, path: str) -> None:
    await world.client("ann", state_file=path)
    with pytest.raises(StateFileError) as raised:
        await world.client("ann", connect=False, state_file=path)
    assert raised.value.reason == "in_use"
    assert "another Chats module has it open" in str(raised.value)


def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(path: str) -> None:
    Path(path).write_bytes(b"not a database " * 100)

    refused = refusal(path)

    assert refused.reason == "damaged"
    assert "not a readable SQLite file" in str(refused)
    assert Path(path).read_bytes() == b"not a database " * 100


def test_a_file_of_another_program_is_refused(path: str) -> None:
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE notes (text TEXT)")
    other.close()

    refused = refusal(path)

    assert refused.reason == "not_a_state_file"
    assert "another program" in str(refused)


def test_a_file_of_a_newer_version_is_refused(path: str) -> None:
    StateFile.open(path, "ann", kept_messages=10).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()

    refused = refusal(path)

    assert refused.reason == "newer_version"
    assert f"schema version {SCHEMA_VERSION + 1}" in str(refused)
    assert "upgrade chats_store" in str(refused)


async def test_a_damaged_row_is_refused(world: World, path: str) -> None:
    ann = await world.client("ann", state_file=path)
    await ann.chats.join_chat(world.server.chat_token("ann", "c1"))
    await ann.chats.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE chats SET restrictions = '{not json'")
    db.close()

    refused = refusal(path)

    assert refused.reason == "damaged"
    assert "cannot be read" in str(refused)


def test_a_file_whose_pages_are_damaged_is_refused(path: str) -> None:
    state_file = StateFile.open(path, "ann", kept_messages=10)
    state_file.close()
    data = bytearray(Path(path).read_bytes())
    data[4096:] = b"\xff" * (len(data) - 4096)  # every page after the first
    Path(path).write_bytes(bytes(data))

    refused = refusal(path)

    assert refused.reason == "damaged"


# Migrations ----------------------------------------------------------------------------


def test_a_file_of_version_1_is_upgraded(path: str) -> None:
    """A file as version 1 wrote it (no clock estimate) opens, upgraded in place."""
    with sqlite3.connect(path) as db:
        db.executescript(MIGRATIONS[0])
        db.execute(f"PRAGMA application_id={APPLICATION_ID}")
        db.execute("PRAGMA user_version=1")
        db.execute("INSERT INTO meta VALUES ('user_id', 'ann')")
        db.execute(
            "INSERT INTO chats VALUES ('c1', 1, 7, 'credential', 3, ?, ?)",
            (json.dumps({"role": "guest"}), json.dumps([{"kind": "mute", "until": None}])),
        )
        db.execute("INSERT INTO messages VALUES ('c1', 5, 'm1', 'bob', 'hi', 100.0, NULL)")
        db.execute("INSERT INTO pending VALUES ('c1', 1, 'p', 'ann', 'yo', 101.0)")
        db.execute("INSERT INTO operations (chat_id, message_id, kind) VALUES ('c1', 'p', 'send')")
    db.close()

    state_file = StateFile.open(path, "ann", kept_messages=10)
    (chat,) = state_file.restored.chats
    state_file.close()

    assert (chat.chat_id, chat.last_seq, chat.members_amount) == ("c1", 7, 3)
    assert dict(chat.member_metadata) == {"role": "guest"}
    assert [(m.id, m.status) for m in chat.messages] == [("m1", "ready"), ("p", "interrupted")]
    assert chat.operations == (PendingOperation("send", "p"),)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
        assert db.execute("SELECT count(*) FROM server_clock").fetchone()[0] == 0
    db.close()
