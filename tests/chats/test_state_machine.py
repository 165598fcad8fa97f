"""The Chats store driven by random action sequences (see chats_store.testing.state_machine).

``CHATS_STORE_LONG=1`` runs 2,000 examples instead of 100 (the opt-in long run of the
fuzz tests, see ``tests/fuzz/support.py``).
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

from chats_store.testing.state_machine import ChatsStateMachine
from tests.fuzz.support import LONG

TestChatsStateMachine = ChatsStateMachine.TestCase
TestChatsStateMachine.settings = settings(
    max_examples=2_000 if LONG else 100,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
