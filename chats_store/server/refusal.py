"""The server's one refusal: a request (or a token) is refused with an ErrorCode.

Token verification (:mod:`chats_store.server.tokens`) and the chat rules
(:mod:`chats_store.server.service`) raise :class:`RefusedError`; the core turns it
into the ``error`` reply of the request (a :class:`~chats_store.chats.actions.Failure`
of kind ``refused``), the handshake into an HTTP 401. Nothing was changed when it
is raised.
"""

from __future__ import annotations

from chats_store.chats.actions import Failure
from chats_store.errors import ErrorCode

__all__ = ["RefusedError"]


class RefusedError(Exception):
    """Refused with ``code``; ``message`` tells the client which rule and what to do."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def failure(self) -> Failure:
        """The refusal as the reply value a client receives."""
        return Failure("refused", self.code, self.message)
