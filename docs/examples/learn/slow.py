"""An app that takes its time, for the HTTP/2 chapter (docs/learn/http2.md).

    devserve --no-tui --trace --app-dir docs/examples/learn slow:app

It waits `?wait=` seconds (1 by default) before it reads the request body, then reads all of it
and answers how many bytes arrived in how many `http.request` messages. Over HTTP/2 a client may
send only one stream window of body (65,535 bytes by default) that the app has not read, so the
first message it reads is that window, however large the upload. Stop the server while it
waits, and the client reads a GOAWAY, then its response.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return  # lifespan: not supported (--lifespan auto)
    query = parse_qs(scope["query_string"].decode())
    await asyncio.sleep(float(query.get("wait", ["1"])[0]))
    sizes, more = [], True
    while more:
        message = await receive()
        sizes.append(len(message.get("body", b"")))
        more = message.get("more_body", False)
    text = f"got {sum(sizes)} bytes in {len(sizes)} message(s), the first {sizes[0]} bytes\n"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": text.encode()})
