"""Embedding the store in a GUI application: the store's loop thread and the bridges.

A ``Chats`` module belongs to one asyncio loop and takes no locks; a GUI toolkit owns
its main thread. :mod:`chats_store.gui.loop` runs the store's loop on a thread of its
own (``StoreLoop``); a bridge created on the GUI thread carries calls to that loop and
getter values back, through the toolkit's own thread-safe mechanism:
:mod:`chats_store.gui.qt` (``QtBridge``, PySide6) and :mod:`chats_store.gui.tk`
(``TkBridge``, tkinter); :mod:`chats_store.gui.bridge` is what they share. An asyncio
application (Textual, qasync) runs the store on its own loop and needs no bridge.
Importing this package imports no toolkit.
"""
