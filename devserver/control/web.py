"""The admin ASGI app, served by the supervisor on --admin with devserve's own HTTP stack.

For now it answers the health checks of load balancers and Kubernetes:
    GET /livez   200 while the supervisor runs (it answers, so it lives)
    GET /readyz  200 when at least one worker serves and devserve is not stopping, else 503
The web dashboard (/, /ws, /api, /metrics) will join these routes.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def admin_app(status: Callable[[], dict[str, Any]]) -> Callable[..., Awaitable[None]]:
    """`status()` returns {"ready": bool, ...}: the supervisor's view, read on every request."""

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan: nothing to start; the server runs it with lifespan off anyway
        path = scope["path"]
        if path == "/livez":
            await _json(send, 200, {"status": "alive"})
        elif path == "/readyz":
            state = status()
            await _json(send, 200 if state["ready"] else 503, state)
        else:
            await _json(send, 404, {"error": f"no such endpoint: {path}"})

    return app


async def _json(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"cache-control", b"no-store")],
        }
    )
    await send({"type": "http.response.body", "body": data})
