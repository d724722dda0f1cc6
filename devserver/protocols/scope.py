"""Build the ASGI HTTP connection scope from what the parser saw (ASGI HTTP spec 2.4).

One function, called once per request; it must stay lean because it is on the hot path.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import httptools

from devserver.asgi import Headers, HTTPScope


def split_target(target: bytes) -> tuple[bytes, bytes]:
    """Request target → (raw path, query string); origin form fast, absolute form parsed."""
    if target[:1] != b"/":
        if target == b"*":
            return target, b""
        try:
            url = httptools.parse_url(target)
        except httptools.HttpParserInvalidURLError:
            raise ValueError(f"invalid request target {target[:100]!r}") from None
        return url.path or b"/", url.query or b""
    path, _, query = target.partition(b"?")
    return path.partition(b"#")[0], query.partition(b"#")[0]


def decode_path(raw_path: bytes) -> str:
    path = raw_path.decode("ascii", "surrogateescape")
    return unquote(path) if "%" in path else path


def http_scope(
    method: str,
    http_version: str,
    target: bytes,
    headers: Headers,
    scheme: str,
    client: tuple[str, int] | None,
    server: tuple[str, int | None] | None,
    root_path: str,
    state: dict[str, Any],
) -> HTTPScope:
    raw_path, query = split_target(target)
    path = decode_path(raw_path)
    if root_path:
        path = root_path + path
        raw_path = root_path.encode("utf-8") + raw_path
    return {
        "type": "http",
        # Fresh dicts (literals: the cheapest way) for every scope: an app or middleware that
        # adds a key must not see it turn up in every later request.
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": http_version,
        "method": method,
        "scheme": scheme,
        "path": path,
        "raw_path": raw_path,
        "query_string": query,
        "root_path": root_path,
        "headers": headers,
        "client": client,
        "server": server,
        "state": state,
        "extensions": {
            "http.response.pathsend": {},
            "http.response.trailers": {},
            "http.response.zerocopysend": {},
        },
    }
