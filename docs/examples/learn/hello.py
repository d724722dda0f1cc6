"""The smallest useful ASGI app, for the HTTP chapter (docs/learn/http.md).

    devserve --trace --app-dir docs/examples/learn hello:app

GET any path: 200 with a plain-text body naming the method and path. POST a body: the
answer says how many bytes arrived and in how many `http.request` messages.
"""

from __future__ import annotations

from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return  # lifespan: returning at once tells devserve "not supported" (--lifespan auto)
    # The request body arrives as one or more http.request messages; read until more_body ends.
    size, messages, more = 0, 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        messages += 1
        more = message.get("more_body", False)
    if scope["method"] == "POST":
        text = f"got {size} bytes in {messages} message(s)\n"
    else:
        text = f"hello from {scope['method']} {scope['path']}\n"
    body = text.encode()
    # The response: one http.response.start (status, headers), then the body message(s).
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"x-example", b"hello")],
        }
    )
    await send({"type": "http.response.body", "body": body})
