"""The spec's user module: the client's identity and session credential."""
