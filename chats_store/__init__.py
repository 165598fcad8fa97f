"""chats_store: the state layer of chat clients, a Redux-style reactive store.

The public API, in the spec's terms (``../shared/spec/chats-module.txt``)::

    user = create_user(session_token)
    websocket = create_websocket()
    chats = create_chats(user_module=user, websocket_module=websocket,
                         config=ChatsConfig(host="127.0.0.1:8765"))
    await websocket.connect()
    context = await chats.join_chat(chat_token)
    chats.get_chat_messages(context.chat_id).subscribe(print)

See ``docs/api.md`` for every name.
"""

from chats_store.chats.facade import Chats, ChatsConfig, create_chats
from chats_store.chats.model import (
    ChatContext,
    ChatRemoval,
    ChatStatus,
    ConnectionStatus,
    Message,
    MessageStatus,
    Restriction,
    SyncStatuses,
)
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
    "ChatStatus",
    "Chats",
    "ChatsConfig",
    "ChatsStoreError",
    "ConnectFailedError",
    "ConnectionLostError",
    "ConnectionStatus",
    "ErrorCode",
    "Getter",
    "Message",
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
