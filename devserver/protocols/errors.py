"""The errors an app's `send()` raises, shared by every protocol (HTTP/1.1, WebSocket).

A leaf module: the protocols import it, it imports nothing of theirs.
"""

from __future__ import annotations


class ASGIProtocolError(RuntimeError):
    """The app broke the ASGI message rules (wrong order, bad field)."""


class ClientDisconnected(OSError):
    """`send()` was called after the client went away (ASGI HTTP spec 2.4)."""
