"""A streamed response, for the HTTP chapter's exercises (docs/learn/http.md).

    devserve --trace --app-dir docs/examples/learn stream:app

Sends three body messages with `more_body=True`, then an empty last one. The app never says
how long the body is, so devserve frames it: `transfer-encoding: chunked` for HTTP/1.1, and
for HTTP/1.0 (which has no chunks) the end of the body is the end of the connection.
"""

from __future__ import annotations

from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    for word in (b"one\n", b"two\n", b"three\n"):
        await send({"type": "http.response.body", "body": word, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
