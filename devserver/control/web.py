"""The admin ASGI app, served by the supervisor on --admin with devserve's own HTTP stack.

    GET /livez    200 while the supervisor runs (it answers, so it lives)
    GET /readyz   200 when at least one worker serves and devserve is not stopping, else 503
    GET /metrics  Prometheus exposition (control/prometheus.py), in the format the scraper asks
The web dashboard (/, /ws, /api) will join these routes.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def admin_app(
    status: Callable[[], dict[str, Any]], metrics: Callable[[str], tuple[bytes, str]]
) -> Callable[..., Awaitable[None]]:
    """`status()` returns {"ready": bool, ...}: the supervisor's view, read on every request;
    `metrics(accept)` returns the Prometheus exposition and its content type."""

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan: nothing to start; the server runs it with lifespan off anyway
        path = scope["path"]
        if path == "/livez":
            await _json(send, 200, {"status": "alive"})
        elif path == "/readyz":
            state = status()
            await _json(send, 200 if state["ready"] else 503, state)
        elif path == "/metrics":
            accept = dict(scope["headers"]).get(b"accept", b"").decode("latin-1")
            body, content_type = metrics(accept)
            await _respond(send, 200, body, content_type.encode())
        else:
            await _json(send, 404, {"error": f"no such endpoint: {path}"})

    return app


async def _json(send: Send, status: int, body: dict[str, Any]) -> None:
    await _respond(send, status, json.dumps(body).encode(), b"application/json")


async def _respond(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"cache-control", b"no-store")],
        }
    )
    await send({"type": "http.response.body", "body": body})
