"""The spec's Chats module.

Pure core: ``model`` (state and value types), ``actions``, ``commands``
(effects as data), ``reducer``, ``selectors``, ``validation``. Runtime shell:
``transport`` (the network seam), ``effects`` (the command interpreter) and
``facade`` (``create_chats``). This package file imports none of them.
"""
