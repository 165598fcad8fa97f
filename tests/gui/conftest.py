"""The GUI tests' network: the real server, bob, and ann on her own store loop."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.gui.network import ChatNet, chat_net


@pytest.fixture
def net() -> Iterator[ChatNet]:
    with chat_net() as net:
        yield net
