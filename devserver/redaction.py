"""Which header and query values are secrets, and hiding them from records, traces and logs.

A name is secret when it contains one of `--redact-names`' words (case-insensitive): by default
Authorization, Cookie, Set-Cookie, X-Api-Key, X-Auth-Token, ?session_id= and the like. A query
string is split at `&` and `;`, and a header value that holds a URL (a Referer, a Location) has
its query redacted too. Names come from clients, so the answers are cached in a bounded map,
never one entry per name sent.
Also here: `printable`, which escapes control characters in client text before it is shown. This
module only decides and rewrites text; it knows nothing about serving.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote_plus

from devserver.config import REDACT_NAMES

REDACTED = "[redacted]"
_CACHE_SIZE = 512  # distinct header names remembered; a client inventing names resets it
_SEPARATORS = re.compile(r"([&;])")
_USERINFO = re.compile(r"(://)[^/?#@\s]*@")  # https://user:password@host
# C0 (but tab), DEL and C1: a path decodes %1b and %0a into them
_UNPRINTABLE = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if c != 0x09}


def printable(text: str) -> str:
    """`text` with control characters escaped (`\\x1b`, `\\x0a`): what a client sent must not
    forge a log line, move the cursor or retitle the terminal when it is shown."""
    return text.translate(_UNPRINTABLE)


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
        if not self.words or "=" not in query:
            return query
        parts = _SEPARATORS.split(query)  # separators kept, at the odd indexes
        changed = False
        for index in range(0, len(parts), 2):
            name, sep, value = parts[index].partition("=")
            if sep and value and self.secret(unquote_plus(name)):
                parts[index] = f"{name}={REDACTED}"
                changed = True
        return "".join(parts) if changed else query

    def header(self, name: str, value: str) -> str:
        """A header's value as shown: [redacted] under a secret name, else with the query of a
        URL in it redacted (`Referer: https://x/?token=…`)."""
        if self.secret(name):
            return REDACTED
        if not self.words:
            return value
        if "@" in value:
            value = _USERINFO.sub(rf"\1{REDACTED}@", value)
        if "?" in value:
            start, _, query = value.partition("?")
            return f"{start}?{self.query(query)}"
        return value
