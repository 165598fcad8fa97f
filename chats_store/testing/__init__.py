"""Public helpers for testing code built on chats_store.

``in_memory``: an in-memory chat server and transport for unit tests of the
Chats effects and facade; ``strategies``: Hypothesis strategies;
``state_machine``: a reusable ``RuleBasedStateMachine`` for the reducer.
Integration tests should use the real reference server instead.
"""
