"""The one error a control command raises: its own module, so the signal handlers, the control
API and the supervisor share it without importing each other."""

from __future__ import annotations


class CommandError(ValueError):
    """A control command that cannot be carried out; the message says why."""
