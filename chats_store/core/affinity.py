"""Which asyncio loop, and so which thread, an object belongs to (runtime).

A store, its getters and the ``Chats`` module on top of it take no locks: they belong
to the asyncio loop that runs their effects. :class:`LoopAffinity` remembers that loop
(the one running when the object was created, or else the one of its first checked
call) and turns a call from anywhere else into a :class:`WrongThreadError` that says
how to make the call from where it was made, instead of a hang or a value delivered
on the wrong thread.
"""

from __future__ import annotations

import asyncio
import threading

from chats_store.errors import WrongThreadError

__all__ = ["LoopAffinity"]

HOW_TO_CROSS = (
    "from another thread, hand the call to that loop: "
    "asyncio.run_coroutine_threadsafe(coroutine, loop) for an action, "
    "loop.call_soon_threadsafe(function) for a subscription; from a GUI thread, "
    "a chats_store.gui bridge does both (bridge.call, bridge.bind)"
)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class LoopAffinity:
    """The asyncio loop (and its thread) that owns an object; checks calls against it.

    Unbound until a loop is known: created inside a running loop, it belongs to that
    loop at once; created outside one, to the loop of its first :meth:`check_loop`.
    An unbound affinity lets every call through (a store used without asyncio, in a
    pure test, belongs to whoever uses it).
    """

    __slots__ = ("_loop", "_thread_id", "_thread_name", "owner")

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread_id: int | None = None
        self._thread_name = ""
        self.bind()

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The owning loop, None while unbound."""
        return self._loop

    def bind(self) -> None:
        """Belong to the running loop, if a loop runs and none was bound before."""
        if self._loop is None:
            loop = _running_loop()
            if loop is not None:
                self._loop = loop
                self._thread_id = threading.get_ident()
                self._thread_name = threading.current_thread().name

    def check_loop(self, call: str) -> None:
        """Raise :class:`WrongThreadError` unless ``call`` runs on the owning loop.

        For coroutines (actions): the first check of an unbound affinity binds it.
        """
        loop = _running_loop()
        if self._loop is None:
            self.bind()
        elif loop is not self._loop:
            where = "another asyncio loop" if loop is not None else "no running asyncio loop"
            raise WrongThreadError(self._message(call, where))

    def check_thread(self, call: str) -> None:
        """Raise :class:`WrongThreadError` unless ``call`` runs on the owning loop's thread."""
        if self._thread_id is not None and threading.get_ident() != self._thread_id:
            raise WrongThreadError(self._message(call, "outside its loop's thread"))

    def _message(self, call: str, where: str) -> str:
        return (
            f"{call} must run on the asyncio loop that owns {self.owner} (thread "
            f"{self._thread_name!r}), but ran on thread "
            f"{threading.current_thread().name!r} ({where}); {HOW_TO_CROSS}"
        )
