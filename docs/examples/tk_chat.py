"""A small Tkinter chat window on chats_store.

    pip install chats_store
    python tk_chat.py HOST:PORT SESSION_TOKEN CHAT_TOKEN

The store runs on its own asyncio loop thread (``StoreLoop``); the window lives on
Tk's thread. A ``TkBridge`` carries getter values to the window (the Tk thread drains
a queue with ``after``: Tk is never called from another thread) and actions to the
store (``bridge.call``, never blocking). Destroying the window disposes its bindings.
"""

from __future__ import annotations

import sys
import tkinter as tk
from collections.abc import Sequence

from chats_store import (
    Chats,
    ChatsConfig,
    ChatSummary,
    Message,
    WebSocket,
    create_chats,
    create_user,
    create_websocket,
)
from chats_store.gui.bridge import CallFuture
from chats_store.gui.loop import StoreLoop
from chats_store.gui.tk import TkBridge


async def connect(host: str, session_token: str, chat_token: str) -> tuple[Chats, WebSocket, str]:
    """Create, connect and join, on the store's loop (so that the modules belong to it)."""
    websocket = create_websocket()
    chats = create_chats(
        user_module=create_user(session_token),
        websocket_module=websocket,
        config=ChatsConfig(host=host),
    )
    await websocket.connect()
    context = await chats.join_chat(chat_token)
    return chats, websocket, context.chat_id


async def disconnect(chats: Chats, websocket: WebSocket) -> None:
    await websocket.disconnect()
    await chats.close()


def describe(message: Message) -> str:
    """One line of the message list: author, content and, unless ``ready``, the status."""
    mark = "" if message.status == "ready" else f"  ({message.status}…)"
    return f"{message.author_id}: {message.content}{mark}"


class ChatWindow:
    """A header, the messages, an entry and a send button for one chat, in ``window``."""

    def __init__(self, window: tk.Misc, bridge: TkBridge, chats: Chats, chat_id: str) -> None:
        self.window, self.bridge, self.chats, self.chat_id = window, bridge, chats, chat_id
        self.header = tk.Label(window, text="…", anchor="w", font=("TkDefaultFont", 11, "bold"))
        self.header.pack(fill="x", padx=6, pady=(6, 2))
        self.messages = tk.Listbox(window, width=56, height=14, activestyle="none")
        self.messages.pack(fill="both", expand=True, padx=6)
        row = tk.Frame(window)
        row.pack(fill="x", padx=6, pady=4)
        self.entry = tk.Entry(row)
        self.entry.pack(side="left", fill="x", expand=True)
        self.entry.bind("<Return>", lambda _event: self.send())
        self.send_button = tk.Button(row, text="Send", command=self.send)
        self.send_button.pack(side="right", padx=(4, 0))
        self.notice = tk.Label(window, text="", anchor="w", fg="#b00020")
        self.notice.pack(fill="x", padx=6, pady=(0, 6))
        # Values arrive on Tk's thread; destroying the window disposes both bindings.
        bridge.bind(chats.get_chat_summary(chat_id), self.show_summary, owner=window)
        bridge.bind(chats.get_chat_messages(chat_id), self.show_messages, owner=window)

    def show_summary(self, summary: ChatSummary) -> None:
        members = "?" if summary.members_amount is None else summary.members_amount
        status = "" if summary.status == "ready" else f" · {summary.status}"
        self.header.config(text=f"# {summary.chat_id} · {members} members{status}")

    def show_messages(self, messages: Sequence[Message] | None) -> None:
        self.messages.delete(0, "end")
        for message in messages or ():
            self.messages.insert("end", describe(message))
        self.messages.see("end")

    def shown(self) -> list[str]:
        return list(self.messages.get(0, "end"))

    def send(self) -> None:
        text = self.entry.get().strip()
        if not text:
            return
        self.entry.delete(0, "end")
        self.notice.config(text="")
        call = self.bridge.call(self.chats.send_message(self.chat_id, text))
        call.add_done_callback(lambda done: self.sent(done, text))

    def sent(self, call: CallFuture[Message], text: str) -> None:
        """On Tk's thread, once the send finished: say why it failed, keep the text."""
        error = call.exception()
        if error is not None:
            self.notice.config(text=f"not sent: {error}")
            if not self.entry.get():
                self.entry.insert(0, text)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with StoreLoop() as store_loop:
        chats, websocket, chat_id = store_loop.run(connect(*argv), timeout=15)
        root = tk.Tk()
        root.title(f"chats_store · {chat_id}")
        ChatWindow(root, TkBridge(root, store_loop), chats, chat_id)
        root.mainloop()  # returns once the window is closed (its bridge closes with it)
        store_loop.run(disconnect(chats, websocket), timeout=5)
    # ``root`` is freed here, on Tk's thread, after the store's thread has stopped.
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
