"""``chats-store tui``: a terminal chat client built with Textual on the public API (runtime).

Needs the ``tui`` extra (``pip install 'chats_store[tui]'``); the CLI imports this
module only when the ``tui`` command runs, so the core package works without Textual.

Every view is fed by a getter subscription (no polling): the chat list by ``chats_ids``,
the connection line by ``websocket.status`` and ``websocket.last_error`` (why it is
down), and, for the chat shown, its header by ``get_chat_status`` /
``get_chat_members_amount``, the messages by ``get_chat_messages`` and the restriction
line by ``get_client_chat_member_restrictions``. The header says "moderator" when the
chat token the client joined with grants ``moderate`` (read from its claims, as the
client reads its user id). The subscriptions of the chat shown are disposed when another
chat is shown, all of them when the app unmounts. A one-second timer only re-renders the
time left of a mute from the last restrictions received.

Everything the server sends is shown inert: the widgets are given ``rich.text.Text``
(never markup, so ``[/]`` or ``[@click=...]`` in a member's text is just text) and
every control character is replaced by a visible one (:func:`inert`), so no member
can write escape sequences to another's terminal.

Keys: ``tab`` / ``shift+tab`` move between the chat list, the messages, the input
and the notice log (``shift+tab`` from the input selects the messages; the log
scrolls with the arrows, ``page up``/``page down``, ``home``/``end``). On a selected
message ``e`` edits it, ``r`` resends it (``interrupted``) and ``delete`` deletes it
(own messages) after a confirmation: no letter deletes anything, so a word typed
while the list has the focus is harmless. ``escape`` cancels an edit; ``ctrl+o``
loads older messages; ``ctrl+q`` quits. Commands are typed in the input:
``/join TOKEN``, ``/leave``, ``/mute USER MINUTES [reason]``, ``/unmute USER``,
``/block USER MINUTES [reason]``, ``/unblock USER``, ``/kick USER [reason]``,
``/help``. While muted the input is disabled (an edit waits, ``e`` says why); a send
or edit refused before it left (not connected, too long) gives the typed text back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import ClassVar, TypeVar

from reactivex.disposable import CompositeDisposable
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Footer, Input, OptionList, RichLog, Static
from textual.widgets.option_list import Option

from chats_store.chats.facade import Chats, ChatsConfig, create_chats
from chats_store.chats.model import ChatStatus, ConnectionStatus, Message, Restriction
from chats_store.errors import ActionCallError, ChatsStoreError
from chats_store.tokens import chat_grant
from chats_store.user.module import create_user
from chats_store.websocket.module import ConnectionFault, WebSocket, create_websocket

__all__ = ["ChatApp", "ConfirmDelete", "inert", "render_message", "run_tui"]

W = TypeVar("W", bound=Widget)

_STATUS_MARKS: Mapping[str, tuple[str, str]] = {
    "sending": ("  ⧗ sending…", "yellow"),
    "interrupted": ("  ⚠ interrupted - r to resend", "bold red"),
    "updating": ("  ✎ updating…", "yellow"),
    "deleting": ("  ✖ deleting…", "red"),
}
_CONNECTION_STYLES: Mapping[str, str] = {
    "connected": "bold green",
    "connecting": "bold yellow",
    "disconnected": "bold red",
}
_PAST = {"mute": "muted", "block": "blocked", "unmute": "unmuted", "unblock": "unblocked"}
HELP = (
    "Type a message and press enter. Commands: /join TOKEN, /leave, "
    "/mute USER MINUTES [reason], /unmute USER, /block USER MINUTES [reason] "
    "(0 = permanent), /unblock USER, /kick USER [reason], /help. On a selected message: "
    "e edit, r resend, delete delete (after a confirmation)."
)
_TYPE_HERE = "Message - /help for commands"
_EDITING = "Editing - enter saves, escape cancels"
_MUTED = "Muted: you can read but not send"


_INERT = str.maketrans(
    {
        **{code: 0x2400 + code for code in range(0x20)},  # C0: its control picture (␛ for ESC)
        0x7F: 0x2421,  # DEL: ␡
        **dict.fromkeys(range(0x80, 0xA0), 0xFFFD),  # C1 (CSI, OSC, ... in one byte)
        # Bidirectional embeddings, overrides and isolates: they reorder what follows.
        **dict.fromkeys((*range(0x202A, 0x202F), *range(0x2066, 0x206A)), 0xFFFD),
    }
)


def inert(text: str) -> str:
    """``text`` (from the server: content, ids, reasons, details) safe to show.

    Every C0 and C1 control character, DEL and the bidirectional controls become a
    visible, harmless character: nothing a member types reaches the terminal as an
    escape sequence (ESC, CSI, OSC: a window title, a clipboard write) or reorders
    the line. Markup is another matter: this client never parses it, every widget is
    given :class:`~rich.text.Text` (see :func:`_plain`).
    """
    return text.translate(_INERT)


def _plain(text: str, style: str = "") -> Text:
    """``text`` as a widget's content: :func:`inert`, and never parsed as markup."""
    return Text(inert(text), style=style)


def render_message(message: Message, own_id: str) -> Text:
    """One line of the message view: author, content and, unless ``ready``, the status."""
    text = Text()
    own = message.author_id == own_id
    text.append(inert(message.author_id), style="bold cyan" if own else "bold magenta")
    text.append(": ")
    text.append(inert(message.content))
    if message.edited_at is not None:
        text.append(" (edited)", style="dim")
    mark = _STATUS_MARKS.get(message.status)
    if mark is not None:
        text.append(mark[0], style=mark[1])
    return text


def _time_left(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.999))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def describe_restriction(restriction: Restriction, now: float) -> str:
    """``muted (flooding), 4 min 59 s left`` or ``muted permanently``."""
    verb = "muted" if restriction.kind == "mute" else "blocked"
    reason = f" ({restriction.reason})" if restriction.reason else ""
    if restriction.until is None:
        return f"{verb}{reason} permanently"
    return f"{verb}{reason}, {_time_left(restriction.until - now)} left"


class ChatList(OptionList):
    """The joined chats (``chats_ids``); highlighting one shows it."""


class MessageList(OptionList):
    """The messages of the chat shown; key bindings act on the highlighted one.

    Deleting takes the ``delete`` key and a confirmation, never a letter: a word typed
    while the list has the focus must not delete anything.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("e", "app.edit_message", "Edit"),
        Binding("r", "app.resend_message", "Resend"),
        Binding("delete", "app.delete_message", "Delete"),
    ]


class ConfirmDelete(ModalScreen[bool]):
    """ "Delete this message?": ``y`` deletes, ``n`` or ``escape`` keeps it."""

    CSS = """
    ConfirmDelete { align: center middle; }
    #question { width: 60; height: auto; padding: 1 2; border: thick $error; background: $panel; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Delete"),
        Binding("n", "answer(False)", "Keep"),
        Binding("escape", "answer(False)", "Keep", show=False),
    ]

    def __init__(self, message: Message) -> None:
        super().__init__()
        self.message = message

    def compose(self) -> ComposeResult:
        question = Text("Delete your message\n", style="bold")
        question.append(f"“{inert(self.message.content)}”", style="italic")
        question.append("?\n\ny: delete   n / escape: keep")
        yield Static(question, id="question")

    def action_answer(self, delete: bool) -> None:
        self.dismiss(delete)


class ChatApp(App[None]):
    """The terminal chat client of one user, on a :class:`Chats` and its :class:`WebSocket`.

    On mount it connects the WebSocket module (unless already connected) and joins
    the chat of every token in ``chat_tokens``. The caller owns ``chats`` and
    ``websocket``: it disconnects and closes them after the app has exited.
    """

    TITLE = "chats_store"
    CSS = """
    #connection { height: 1; background: $panel; padding: 0 1; }
    #sidebar { width: 24; border-right: solid $primary; }
    #sidebar-title, #chat-header { height: 1; padding: 0 1; text-style: bold; }
    #restrictions { height: auto; padding: 0 1; color: $error; text-style: bold; }
    #restrictions.none { display: none; }
    ChatList, MessageList { border: none; height: 1fr; }
    #log { height: 7; border-top: solid $primary; padding: 0 1; scrollbar-size-vertical: 1; }
    #log:focus { border-top: solid $accent; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("escape", "cancel_edit", "Cancel edit", show=False),
        Binding("ctrl+o", "load_older", "Older messages"),
    ]

    def __init__(
        self,
        chats: Chats,
        websocket: WebSocket,
        user_id: str,
        chat_tokens: Sequence[str] = (),
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__()
        self.chats = chats
        self.websocket = websocket
        self.user_id = user_id
        self.chat_tokens = tuple(chat_tokens)
        # A mute ends by the server's clock: count it down with the module's estimate.
        self._clock = chats.server_clock if clock is None else clock
        self.current_chat: str | None = None
        self.editing: str | None = None  # id of the message being edited
        self._chat_ids: tuple[str, ...] = ()
        self._messages: tuple[Message, ...] = ()
        self._restrictions: tuple[Restriction, ...] = ()
        self._connection: ConnectionStatus = "disconnected"
        self._fault: ConnectionFault | None = None
        self._status: ChatStatus | None = None
        self._members: int | None = None
        self._grants: dict[str, tuple[str, ...]] = {}  # chat id -> permissions joined with
        self.subscriptions = CompositeDisposable()  # for the app's whole life
        self.chat_subscriptions = CompositeDisposable()  # for the chat shown

    # Layout ------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(id="connection")
        with Horizontal():
            with Vertical(id="sidebar"):
                yield Static("Chats", id="sidebar-title")
                yield ChatList(id="chats")
            with Vertical(id="main"):
                yield Static("no chat", id="chat-header")
                yield Static(id="restrictions", classes="none")
                yield MessageList(id="messages")
                yield Input(placeholder=_TYPE_HERE, id="input")
                yield RichLog(id="log", wrap=True, markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.subscriptions.add(self.websocket.status.subscribe(self._set_connection))
        self.subscriptions.add(self.websocket.last_error.subscribe(self._set_fault))
        self.subscriptions.add(self.chats.chats_ids.subscribe(self._show_chat_ids))
        self.set_interval(1.0, self._show_restrictions)  # the time left of a mute
        self._widget("#input", Input).focus()
        self.run_worker(self._start(), name="start", group="start")

    def on_unmount(self) -> None:
        self.chat_subscriptions.dispose()
        self.subscriptions.dispose()

    async def _start(self) -> None:
        if self.websocket.status.value == "disconnected":
            try:
                await self.websocket.connect()
            except ChatsStoreError as error:
                self.say(f"cannot connect: {error}", style="bold red")
                return
        for token in self.chat_tokens:
            await self.join(token)

    async def join(self, token: str) -> None:
        """Join the chat of ``token``; remember what the token grants (for the header)."""
        try:
            context = await self.chats.join_chat(token)
        except ChatsStoreError as error:
            self.say(f"cannot join: {error}", style="bold red")
            return
        self._grants[context.chat_id] = chat_grant(token)[1]
        self._render_header()
        self.say(f"joined {context.chat_id} ({context.members_amount} members)")

    # Views: each one is a getter subscriber ------------------------------------------

    def _widget(self, selector: str, kind: type[W]) -> W:
        """A widget of the main screen (also while a confirmation is shown over it)."""
        return self.screen_stack[0].query_one(selector, kind)

    def say(self, line: str, *, style: str = "") -> None:
        """Add a line to the notice log under the input (it may quote the server)."""
        self._widget("#log", RichLog).write(_plain(line, style))

    def _set_connection(self, status: ConnectionStatus) -> None:
        self._connection = status
        self._show_connection()

    def _set_fault(self, fault: ConnectionFault | None) -> None:
        self._fault = fault
        self._show_connection()

    def _show_connection(self) -> None:
        """The connection line: its status, and while it is not connected, why."""
        status = self._connection
        line = Text()
        line.append("● ", style=_CONNECTION_STYLES[status])
        line.append(status, style=_CONNECTION_STYLES[status])
        line.append(f"   {inert(self.user_id)}", style="bold")
        line.append(f" @ {self.chats.config.host}", style="dim")
        if status != "connected" and self._fault is not None:
            line.append(f"   {inert(self._fault.detail)}", style="red")
        self._widget("#connection", Static).update(line)

    def _show_chat_ids(self, chat_ids: tuple[str, ...]) -> None:
        for gone in set(self._chat_ids) - set(chat_ids):
            removal = self.chats.get_chat_removal(gone).value
            if removal is not None:
                detail = f" ({removal.detail})" if removal.detail else ""
                self.say(f"{gone}: {removal.reason.replace('_', ' ')}{detail}", style="bold red")
        self._chat_ids = chat_ids
        chat_list = self._widget("#chats", ChatList)
        chat_list.set_options(Option(_plain(f"# {chat_id}"), id=chat_id) for chat_id in chat_ids)
        if self.current_chat not in chat_ids:
            self.show_chat(chat_ids[0] if chat_ids else None)
        elif self.current_chat is not None:
            chat_list.highlighted = chat_ids.index(self.current_chat)

    def show_chat(self, chat_id: str | None) -> None:
        """Show ``chat_id``: move the per-chat subscriptions to its getters."""
        self.chat_subscriptions.dispose()
        self.current_chat = chat_id
        self.editing = None
        self._messages = ()
        self._restrictions = ()
        self._status, self._members = None, None
        self._show_input_state()
        if chat_id in self._chat_ids:
            self._widget("#chats", ChatList).highlighted = self._chat_ids.index(chat_id)
        if chat_id is None:
            self._show_messages(None)
            self._show_restrictions()
            self._render_header()
            return
        chats = self.chats
        self.chat_subscriptions = CompositeDisposable(
            chats.get_chat_status(chat_id).subscribe(self._set_status),
            chats.get_chat_members_amount(chat_id).subscribe(self._set_members),
            chats.get_chat_messages(chat_id).subscribe(self._show_messages),
            chats.get_client_chat_member_restrictions(chat_id).subscribe(self._set_restrictions),
        )

    def _set_status(self, status: ChatStatus | None) -> None:
        self._status = status
        self._render_header()

    def _set_members(self, members: int | None) -> None:
        self._members = members
        self._render_header()

    def _render_header(self) -> None:
        header = self._widget("#chat-header", Static)
        if self.current_chat is None:
            header.update("no chat")
            return
        line = _plain(f"# {self.current_chat}", "bold")
        members = "?" if self._members is None else str(self._members)
        line.append(f"   {members} members")
        if self._status is not None and self._status != "ready":
            line.append(f"   {self._status}…", style="yellow")
        if "moderate" in self._grants.get(self.current_chat, ()):
            line.append("   moderator", style="bold green")
        header.update(line)

    def _show_messages(self, messages: Sequence[Message] | None) -> None:
        view = self._widget("#messages", MessageList)
        selected = view.highlighted_option
        at_end = view.highlighted is None or view.highlighted >= view.option_count - 1
        self._messages = tuple(messages or ())
        view.set_options(
            Option(render_message(message, self.user_id), id=message.id)
            for message in self._messages
        )
        ids = [message.id for message in self._messages]
        if not ids:
            return
        if selected is not None and selected.id in ids and not at_end:
            view.highlighted = ids.index(selected.id)
        else:
            view.highlighted = len(ids) - 1  # follow the conversation
        view.scroll_to_highlight()

    def _set_restrictions(self, restrictions: tuple[Restriction, ...] | None) -> None:
        self._restrictions = restrictions or ()
        self._show_restrictions()

    def _show_restrictions(self) -> None:
        lines = self.screen_stack[0].query("#restrictions").results(Static)
        line = next(lines, None)
        if line is None:
            return  # the app is closing: its widgets went before the mute countdown stopped
        now = self._clock()
        active = [r for r in self._restrictions if r.is_active(now)]
        line.set_class(not active, "none")
        line.update(_plain("You are " + "; ".join(describe_restriction(r, now) for r in active)))
        self._show_input_state()

    @property
    def muted(self) -> bool:
        """Whether the client has an active mute in the chat shown."""
        now = self._clock()
        return any(r.kind == "mute" and r.is_active(now) for r in self._restrictions)

    def _show_input_state(self) -> None:
        """The input's one rule: disabled while muted; its placeholder says why or what."""
        field = self._widget("#input", Input)
        muted = self.muted
        field.placeholder = _MUTED if muted else _EDITING if self.editing else _TYPE_HERE
        if muted != field.disabled:
            field.disabled = muted
            if not muted:
                field.focus()

    # Input and commands --------------------------------------------------------------

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if isinstance(event.option_list, ChatList) and event.option.id != self.current_chat:
            self.show_chat(event.option.id)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        event.input.clear()
        if text.startswith("/"):
            self.run_command(text)
            return
        chat_id = self.current_chat
        if chat_id is None:
            self.say("no chat to send to", style="bold red")
            event.input.value = text
            return
        editing, self.editing = self.editing, None
        self._show_input_state()
        if editing is not None:
            call: Awaitable[object] = self.chats.update_message(chat_id, editing, text)
        else:
            call = self.chats.send_message(chat_id, text)
        self._attempt(call, given_back=(text, editing))

    def _give_back(self, text: str, editing: str | None) -> None:
        """A send or edit refused before it left: put its text (and edit) back in the input."""
        field = self._widget("#input", Input)
        if field.value:
            return  # the user typed something else meanwhile: keep it
        field.value = text
        self.editing = editing
        self._show_input_state()

    def run_command(self, text: str) -> None:
        """Run a ``/command`` typed in the input (moderation, ``/leave``, ``/help``)."""
        name, *args = text[1:].split(maxsplit=1)
        words = args[0].split(maxsplit=2) if args else []
        chat_id = self.current_chat
        if name == "help":
            self.say(HELP)
            return
        if name == "join":
            if not args:
                self.say("usage: /join TOKEN (a chat token)", style="bold red")
                return
            self.run_worker(self.join(args[0].strip()), group="actions")
            return
        if chat_id is None:
            self.say("join a chat first", style="bold red")
            return
        chats = self.chats
        try:
            if name == "leave":
                self._attempt(chats.leave_chat(chat_id), f"left {chat_id}")
            elif name in ("mute", "block"):
                member, minutes, *reason = words[0], int(words[1]), *words[2:]
                moderate = chats.mute_chat_member if name == "mute" else chats.block_chat_member
                done = f"{_PAST[name]} {member}"
                done += f" for {minutes} min" if minutes else " permanently"
                self._attempt(moderate(chat_id, member, minutes, " ".join(reason) or None), done)
            elif name in ("unmute", "unblock"):
                lift = chats.unmute_chat_member if name == "unmute" else chats.unblock_chat_member
                self._attempt(lift(chat_id, words[0]), f"{_PAST[name]} {words[0]}")
            elif name == "kick":
                reason = args[0].split(maxsplit=1)[1:]
                kicked = f"kicked {words[0]}"
                self._attempt(
                    chats.kick_chat_member(chat_id, words[0], " ".join(reason) or None), kicked
                )
            else:
                self.say(f"unknown command /{name} - /help lists them", style="bold red")
        except (IndexError, ValueError):
            self.say(f"usage: {HELP}", style="bold red")

    def _attempt(
        self,
        call: Awaitable[object],
        done: str | None = None,
        *,
        given_back: tuple[str, str | None] | None = None,
    ) -> None:
        """Run an action in a worker; report its failure (or ``done``) in the log.

        ``given_back``: the text (and the message being edited) to put back in the
        input if the call is refused before anything was sent (``ActionCallError``);
        when it was sent, the message itself keeps its content (``interrupted``).
        """

        async def attempt() -> None:
            try:
                await call
            except ChatsStoreError as error:
                self.say(str(error), style="bold red")
                if given_back is not None and isinstance(error, ActionCallError):
                    self._give_back(*given_back)
            else:
                if done is not None:
                    self.say(done, style="green")

        self.run_worker(attempt(), group="actions")

    # Message key bindings -------------------------------------------------------------

    def _selected(self) -> Message | None:
        view = self._widget("#messages", MessageList)
        option = view.highlighted_option
        return next((m for m in self._messages if option and m.id == option.id), None)

    def action_edit_message(self) -> None:
        message = self._selected()
        if message is None or message.author_id != self.user_id:
            self.say("select one of your messages to edit it", style="bold red")
            return
        if self.muted:
            self.say(
                "you are muted: you can read but not edit until the mute ends", style="bold red"
            )
            return
        self.editing = message.id
        field = self._widget("#input", Input)
        field.value = inert(message.content)
        self._show_input_state()
        field.focus()

    def action_cancel_edit(self) -> None:
        if self.editing is not None:
            self.editing = None
            self._widget("#input", Input).clear()
            self._show_input_state()

    def action_delete_message(self) -> None:
        message = self._selected()
        chat_id = self.current_chat
        if message is None or message.author_id != self.user_id or chat_id is None:
            self.say("select one of your messages to delete it", style="bold red")
            return

        def answered(delete: bool | None) -> None:
            if delete:
                self._attempt(self.chats.delete_message(chat_id, message.id))

        self.push_screen(ConfirmDelete(message), answered)

    def action_resend_message(self) -> None:
        message = self._selected()
        if message is None or message.status != "interrupted" or self.current_chat is None:
            self.say("select an interrupted message to resend it", style="bold red")
            return
        self._attempt(self.chats.resend_message(self.current_chat, message.id))

    def action_load_older(self) -> None:
        if self.current_chat is not None:
            self._attempt(self.chats.load_older_messages(self.current_chat))


async def run_tui_async(
    host: str, session_token: str, chat_tokens: Sequence[str], *, secure: bool = False
) -> None:
    """Run the client until the user quits; the connection is closed afterwards."""
    user = create_user(session_token)
    websocket = create_websocket()
    chats = create_chats(
        user_module=user, websocket_module=websocket, config=ChatsConfig(host=host, secure=secure)
    )
    try:
        await ChatApp(chats, websocket, user.user_id, chat_tokens).run_async()
    finally:
        await websocket.disconnect()
        await chats.close()


def run_tui(
    host: str, session_token: str, chat_tokens: Sequence[str], *, secure: bool = False
) -> int:
    """``chats-store tui``: run the client; returns the exit status."""
    asyncio.run(run_tui_async(host, session_token, chat_tokens, secure=secure))
    return 0
