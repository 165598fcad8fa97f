"""A small Tkinter chat window on chats_store.

    python docs/examples/tk_chat.py HOST:PORT SESSION_TOKEN CHAT_TOKEN

The store runs on an asyncio loop in a background thread (``StoreThread``); the
window lives on Tk's main thread. Getter values cross over with
``observe_on(TkinterScheduler(root))``; actions go the other way with
``asyncio.run_coroutine_threadsafe``. Closing the window disposes its
subscriptions on the store's thread. See docs/embedding.md.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import threading
import tkinter as tk
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from reactivex import operators as ops
from reactivex.abc import DisposableBase
from reactivex.disposable import CompositeDisposable
from reactivex.scheduler.mainloop import TkinterScheduler

from chats_store import Chats, ChatsConfig, Message, create_chats, create_user, create_websocket
from chats_store.websocket.module import WebSocket


class StoreThread:
    """An asyncio loop in a daemon thread: the thread the store belongs to."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="chats-store", daemon=True
        )
        self.thread.start()

    def submit(self, coroutine: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        """Run ``coroutine`` on the store's loop (from any thread); returns a future."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def call_soon(self, function: Callable[[], Any]) -> None:
        """Run ``function`` on the store's thread, without waiting."""
        self.loop.call_soon_threadsafe(function)

    def stop(self) -> None:
        """Stop the loop, wait for the thread, close the loop."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


async def connect(host: str, session_token: str, chat_token: str) -> tuple[Chats, WebSocket, str]:
    """Create, connect and join (on the store's loop)."""
    websocket = create_websocket()
    chats = create_chats(
        user_module=create_user(session_token),
        websocket_module=websocket,
        config=ChatsConfig(host=host),
    )
    await websocket.connect()
    context = await chats.join_chat(chat_token)
    return chats, websocket, context.chat_id


class ChatWindow:
    """A message list, an entry and a send button for one chat."""

    def __init__(self, root: tk.Tk, store: StoreThread, chats: Chats, chat_id: str) -> None:
        self.root, self.store, self.chats, self.chat_id = root, store, chats, chat_id
        self.closed = False
        self.received = 0  # emissions delivered to this view (the tests read it)
        self.status = tk.Label(root, text="…", anchor="w")
        self.status.pack(fill="x")
        self.messages = tk.Listbox(root, width=60, height=15)
        self.messages.pack(fill="both", expand=True)
        self.entry = tk.Entry(root)
        self.entry.pack(side="left", fill="x", expand=True)
        self.entry.bind("<Return>", lambda _event: self.send())
        self.send_button = tk.Button(root, text="Send", command=self.send)
        self.send_button.pack(side="right")
        root.protocol("WM_DELETE_WINDOW", self.close)
        self._subscription: DisposableBase | None = None
        scheduler = TkinterScheduler(root)

        def subscribe() -> None:  # on the store's thread: the store is not thread-safe
            on_tk = ops.observe_on(scheduler)
            self._subscription = CompositeDisposable(
                chats.get_chat_messages(chat_id).pipe(on_tk).subscribe(self.show_messages),
                chats.get_chat_status(chat_id).pipe(on_tk).subscribe(self.show_status),
            )

        store.call_soon(subscribe)

    # Called on Tk's thread (observe_on) ------------------------------------------------

    def show_messages(self, messages: Sequence[Message] | None) -> None:
        if self.closed:
            return
        self.received += 1
        self.messages.delete(0, "end")
        for message in messages or ():
            mark = "" if message.status == "ready" else f"  ({message.status})"
            self.messages.insert("end", f"{message.author_id}: {message.content}{mark}")

    def show_status(self, status: str | None) -> None:
        if not self.closed:
            self.received += 1
            self.status.config(text=f"{self.chat_id}: {status}")

    def shown(self) -> list[str]:
        return list(self.messages.get(0, "end"))

    # GUI callbacks -----------------------------------------------------------------------

    def send(self) -> None:
        text = self.entry.get().strip()
        if not text:
            return
        self.entry.delete(0, "end")
        future = self.store.submit(self.chats.send_message(self.chat_id, text))
        future.add_done_callback(self._sent)

    def _sent(self, future: concurrent.futures.Future[Any]) -> None:
        error = future.exception()  # on the store's thread; show it on Tk's
        if error is not None:
            self.root.after(0, lambda: self.status.config(text=f"not sent: {error}"))

    def close(self) -> None:
        """Dispose the subscriptions (on the store's thread), then destroy the window."""
        self.closed = True
        subscription = self._subscription
        if subscription is not None:
            self.store.call_soon(subscription.dispose)
        self.root.destroy()


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    store = StoreThread()
    chats, websocket, chat_id = store.submit(connect(*argv)).result(timeout=15)
    root = tk.Tk()
    root.title(f"chats_store · {chat_id}")
    ChatWindow(root, store, chats, chat_id)
    root.mainloop()
    store.submit(websocket.disconnect()).result(timeout=5)
    store.submit(chats.close()).result(timeout=5)
    store.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
