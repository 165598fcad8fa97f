"""The Chats store driven by random action sequences (see chats_store.testing.state_machine)."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

from chats_store.testing.state_machine import ChatsStateMachine

TestChatsStateMachine = ChatsStateMachine.TestCase
TestChatsStateMachine.settings = settings(
    max_examples=100,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
