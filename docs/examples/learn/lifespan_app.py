"""Lifespan, for the Lifespan chapter (docs/learn/lifespan.md).

    devserve --no-tui --app-dir docs/examples/learn lifespan_app:app

Startup prints a line and stores a greeting in the lifespan state; every request's scope
gets a copy of that state, and GET / answers with the greeting. Shutdown prints a line.
With LIFESPAN_FAIL=1 in the environment, startup fails: devserve exits with status 3.
"""

from __future__ import annotations

import os
from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            print(f"lifespan_app: got {message['type']}", flush=True)
            if message["type"] == "lifespan.startup":
                if os.environ.get("LIFESPAN_FAIL") == "1":
                    await send({"type": "lifespan.startup.failed", "message": "no database"})
                    return
                scope["state"]["greeting"] = "hello from startup"
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    elif scope["type"] == "http":
        body = (scope["state"].get("greeting", "no lifespan ran") + "\n").encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
