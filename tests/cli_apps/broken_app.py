"""A module whose import raises: the CLI must show this traceback, then one error line."""

from __future__ import annotations


def _explode() -> None:
    raise RuntimeError("broken_app refuses to import")


_explode()
