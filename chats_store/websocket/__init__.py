"""The spec's webSocket module: managed connections with status, requests and reconnects.

``connection`` is one connection (the Chats transport); ``module`` is the
connection manager that modules register with (``create_websocket``);
``reconnect`` is when to try again (``ReconnectPolicy`` and its schedule).
"""
