"""An app whose /slow request waits until a file (named by the query string) exists.

The test controls when the request finishes by creating that file; the app prints
`slow_app: started` once the request is in flight so the test knows when to act.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        release = scope["query_string"].decode()
        print("slow_app: started", flush=True)
        while not os.path.exists(release):
            await asyncio.sleep(0.01)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"done"})
