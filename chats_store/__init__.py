"""chats_store: the state layer of chat clients, a Redux-style reactive store.

The public API, the Chats module of a chat SDK (inside a coroutine)::

    user = create_user(session_token)
    websocket = create_websocket()
    chats = create_chats(user_module=user, websocket_module=websocket,
                         config=ChatsConfig(host="127.0.0.1:8765"))
    await websocket.connect()
    context = await chats.join_chat(chat_token)
    chats.get_chat_messages(context.chat_id).subscribe(print)

Every name, the state's shape, GUI embedding and the testing kit are documented in
the project's documentation (the ``Documentation`` URL of the package metadata, and
``docs/`` in the source distribution).
"""

from chats_store.chats.facade import Chats, ChatsConfig, create_chats
from chats_store.chats.model import (
    ChatContext,
    ChatRemoval,
    ChatsState,
    ChatState,
    ChatStatus,
    ConnectionStatus,
    Message,
    MessageSequence,
    MessageStatus,
    Restriction,
    SyncStatuses,
)
from chats_store.chats.selectors import ChatSummary
from chats_store.core.store import Getter
from chats_store.errors import (
    ActionCallError,
    ActionError,
    AuthenticationError,
    CallCancelledError,
    ChatsStoreError,
    ConnectFailedError,
    ConnectionLostError,
    ErrorCode,
    ProtocolError,
    RequestTimeoutError,
    ServerRefusedError,
    TokenError,
    TransportError,
    WrongThreadError,
)
from chats_store.user.module import User, create_user
from chats_store.websocket.module import ReconnectPolicy, WebSocket, create_websocket

__version__ = "0.1.0"

__all__ = [
    "ActionCallError",
    "ActionError",
    "AuthenticationError",
    "CallCancelledError",
    "ChatContext",
    "ChatRemoval",
    "ChatState",
    "ChatStatus",
    "ChatSummary",
    "Chats",
    "ChatsConfig",
    "ChatsState",
    "ChatsStoreError",
    "ConnectFailedError",
    "ConnectionLostError",
    "ConnectionStatus",
    "ErrorCode",
    "Getter",
    "Message",
    "MessageSequence",
    "MessageStatus",
    "ProtocolError",
    "ReconnectPolicy",
    "RequestTimeoutError",
    "Restriction",
    "ServerRefusedError",
    "SyncStatuses",
    "TokenError",
    "TransportError",
    "User",
    "WebSocket",
    "WrongThreadError",
    "create_chats",
    "create_user",
    "create_websocket",
]
