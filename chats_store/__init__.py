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

The names are imported when first used (as ``websockets`` does), so that importing
a pure module (``chats_store.chats.reducer``, ``chats_store.protocol``...) does not
load the runtime (asyncio, websockets, reactivex) through this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
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
        StateFileError,
        TokenError,
        TransportError,
        WrongThreadError,
    )
    from chats_store.user.module import User, create_user
    from chats_store.websocket.module import (
        ConnectionFault,
        ReconnectPolicy,
        WebSocket,
        create_websocket,
    )

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
    "ConnectionFault",
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
    "StateFileError",
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

_LAZY_EXPORTS = {
    "chats_store.chats.facade": ("Chats", "ChatsConfig", "create_chats"),
    "chats_store.chats.model": (
        "ChatContext",
        "ChatRemoval",
        "ChatsState",
        "ChatState",
        "ChatStatus",
        "ConnectionStatus",
        "Message",
        "MessageSequence",
        "MessageStatus",
        "Restriction",
        "SyncStatuses",
    ),
    "chats_store.chats.selectors": ("ChatSummary",),
    "chats_store.core.store": ("Getter",),
    "chats_store.errors": (
        "ActionCallError",
        "ActionError",
        "AuthenticationError",
        "CallCancelledError",
        "ChatsStoreError",
        "ConnectFailedError",
        "ConnectionLostError",
        "ErrorCode",
        "ProtocolError",
        "RequestTimeoutError",
        "ServerRefusedError",
        "StateFileError",
        "TokenError",
        "TransportError",
        "WrongThreadError",
    ),
    "chats_store.user.module": ("User", "create_user"),
    "chats_store.websocket.module": (
        "ConnectionFault",
        "ReconnectPolicy",
        "WebSocket",
        "create_websocket",
    ),
}
"""Where each public name lives (the same as the ``TYPE_CHECKING`` imports above)."""

_MODULE_OF = {name: module for module, names in _LAZY_EXPORTS.items() for name in names}


def _import_on_first_use(name: str) -> object:
    """The public name ``name``, imported from its module and kept in this one."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(__import__(module, fromlist=(name,)), name)
    globals()[name] = value
    return value


def _every_name() -> list[str]:
    return sorted({*globals(), *_MODULE_OF})


# Hidden from type checkers, which see the names through the imports above, so that
# a misspelled ``from chats_store import ...`` is still an error for them.
if not TYPE_CHECKING:
    __getattr__ = _import_on_first_use
    __dir__ = _every_name
