"""An app whose answers the metrics tests know in advance.

GET  /status/NNN?size=B   status NNN with a body of B bytes (default 10)
GET  /sleep?ms=N          sleeps N ms; the `x-app-ms` header says how long the app took
POST /upload              reads the body; answers its length as text
GET  /boom                raises before answering (devserve answers 500 for it)
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import parse_qs


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    began = time.perf_counter()
    path = scope["path"]
    query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    status, body, headers = 404, b"no route\n", []
    if path.startswith("/status/"):
        status = int(path.rsplit("/", 1)[1])
        body = b"x" * int(query.get("size", "10"))
    elif path == "/sleep":
        await asyncio.sleep(float(query["ms"]) / 1000)
        status, body = 200, b"slept"
        headers.append((b"x-app-ms", b"%.6f" % ((time.perf_counter() - began) * 1000)))
    elif path == "/boom":
        raise RuntimeError("boom (the metrics tests' deliberate failure)")
    elif path == "/upload":
        size = 0
        more = True
        while more:
            message = await receive()
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        status, body = 200, str(size).encode()
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
