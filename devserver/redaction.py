"""Which header and query values are secrets, and hiding them from records, traces and logs.

A name is secret when it contains one of `--redact-names`' words (case-insensitive): by default
Authorization, Cookie, Set-Cookie, X-Api-Key, X-Auth-Token, ?session_id= and the like. Names
come from clients, so the answers are cached in a bounded map, never one entry per name sent.
This module only decides and rewrites text; it knows nothing about serving.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import unquote_plus

from devserver.config import REDACT_NAMES

REDACTED = "[redacted]"
_CACHE_SIZE = 512  # distinct header names remembered; a client inventing names resets it


class Redactor:
    """Hides the values of secret names; `Redactor(())` hides nothing (`--no-redact`)."""

    __slots__ = ("words", "_known")

    def __init__(self, words: Iterable[str] = REDACT_NAMES) -> None:
        self.words = tuple(word.lower() for word in words if word)
        self._known: dict[str, bool] = {}

    @classmethod
    def of(cls, redact: bool | Redactor) -> Redactor:
        """A Redactor as given, else the default one (True) or none at all (False)."""
        if isinstance(redact, Redactor):
            return redact
        return cls() if redact else cls(())

    @property
    def active(self) -> bool:
        return bool(self.words)

    def secret(self, name: str) -> bool:
        """Whether values under `name` are hidden."""
        known = self._known.get(name)
        if known is None:
            lower = name.lower()
            known = any(word in lower for word in self.words)
            if len(self._known) >= _CACHE_SIZE:
                self._known.clear()
            self._known[name] = known
        return known

    def query(self, query: str) -> str:
        """`query` with the values of secret parameters replaced (`?token=[redacted]&page=2`)."""
        if not self.words or not query:
            return query
        parts = query.split("&")
        changed = False
        for index, part in enumerate(parts):
            name, sep, value = part.partition("=")
            if sep and value and self.secret(unquote_plus(name)):
                parts[index] = f"{name}={REDACTED}"
                changed = True
        return "&".join(parts) if changed else query
