"""An app that breaks the ASGI message order, for the HTTP chapter's exercises.

    devserve --trace --app-dir docs/examples/learn broken:app

GET /: sends a body before http.response.start. devserve's response state machine
(RequestCycle.send in devserver/protocols/cycle.py) refuses it with ASGIProtocolError, logs
the traceback, and answers 500 itself because nothing reached the wire yet.
GET /twice: starts the response twice; the second start is refused the same way, but as the
head has not been written yet (it waits for the first body message), the client still gets 500.
"""

from __future__ import annotations

from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    start = {"type": "http.response.start", "status": 200, "headers": []}
    if scope["path"] == "/twice":
        await send(start)
        await send(start)  # raises: the cycle is now waiting for a body
    await send({"type": "http.response.body", "body": b"too early"})  # raises on GET /
