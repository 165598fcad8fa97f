"""A small Qt chat window on chats_store (PySide6).

    pip install chats_store PySide6-Essentials
    python qt_chat.py HOST:PORT SESSION_TOKEN CHAT_TOKEN

The store runs on its own asyncio loop thread (``StoreLoop``); the window lives on
Qt's GUI thread. A ``QtBridge`` carries getter values to the window (on the GUI
thread, conflated) and actions to the store (``bridge.call``, never blocking).
Closing the window deletes it, which disposes its bindings.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

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
from chats_store.gui.qt import QtBridge


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


class ChatWindow(QWidget):
    """A header, the messages, an entry and a send button for one chat."""

    def __init__(self, bridge: QtBridge, chats: Chats, chat_id: str) -> None:
        super().__init__()
        self.bridge, self.chats, self.chat_id = bridge, chats, chat_id
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.setWindowTitle(f"chats_store · {chat_id}")
        self.resize(460, 360)
        self.header = QLabel("…")
        self.header.setStyleSheet("font-weight: bold; padding: 4px;")
        self.messages = QListWidget()
        self.entry = QLineEdit()
        self.entry.setPlaceholderText("Message")
        self.entry.returnPressed.connect(self.send)
        self.send_button = QPushButton("Send")
        self.send_button.clicked.connect(self.send)
        self.notice = QLabel("")
        self.notice.setStyleSheet("color: #b00020;")
        row = QHBoxLayout()
        row.addWidget(self.entry)
        row.addWidget(self.send_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.header)
        layout.addWidget(self.messages)
        layout.addLayout(row)
        layout.addWidget(self.notice)
        # Values arrive on the GUI thread; the window's deletion disposes both bindings.
        bridge.bind(chats.get_chat_summary(chat_id), self.show_summary, owner=self)
        bridge.bind(chats.get_chat_messages(chat_id), self.show_messages, owner=self)

    def show_summary(self, summary: ChatSummary) -> None:
        members = "?" if summary.members_amount is None else summary.members_amount
        status = "" if summary.status == "ready" else f" · {summary.status}"
        self.header.setText(f"# {summary.chat_id} · {members} members{status}")

    def show_messages(self, messages: Sequence[Message] | None) -> None:
        self.messages.clear()
        self.messages.addItems([describe(message) for message in messages or ()])
        self.messages.scrollToBottom()

    def shown(self) -> list[str]:
        return [self.messages.item(row).text() for row in range(self.messages.count())]

    def send(self) -> None:
        text = self.entry.text().strip()
        if not text:
            return
        self.entry.clear()
        self.notice.clear()
        call = self.bridge.call(self.chats.send_message(self.chat_id, text))
        call.add_done_callback(lambda done: self.sent(done, text))

    def sent(self, call: CallFuture[Message], text: str) -> None:
        """On the GUI thread, once the send finished: say why it failed, keep the text."""
        error = call.exception()
        if error is not None:
            self.notice.setText(f"not sent: {error}")
            if not self.entry.text():
                self.entry.setText(text)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    app = QApplication([])
    with StoreLoop() as store_loop:
        chats, websocket, chat_id = store_loop.run(connect(*argv), timeout=15)
        bridge = QtBridge(store_loop)
        window = ChatWindow(bridge, chats, chat_id)
        window.show()
        app.exec()
        bridge.close()
        store_loop.run(disconnect(chats, websocket), timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
