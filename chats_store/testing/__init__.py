"""Public helpers for testing code built on chats_store.

``in_memory``: the reference server's core in memory, with an in-memory transport,
for unit tests of the Chats effects and facade; ``server_model``: the same core
driven synchronously for Hypothesis; ``strategies``: Hypothesis strategies;
``state_machine``: a reusable ``RuleBasedStateMachine`` for the reducer.
Integration tests should use the real reference server instead.
"""
