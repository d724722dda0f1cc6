"""An ASGI app that answers every request with a JSON summary of its scope.

Served by the CLI tests as `scope_app:app`; also offers a factory, a dotted attribute and a
non-callable attribute so the loader's error paths can be exercised. It speaks lifespan and, at
shutdown, prints `scope_app: shutdown after startup` so tests can see both phases ran (nothing is
printed before "serving on", so the first line a test waits for is always the server's own).
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace
from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        started = False
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                started = True
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                print(f"scope_app: shutdown{' after startup' if started else ''}", flush=True)
                await send({"type": "lifespan.shutdown.complete"})
                return
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    body = json.dumps(
        {
            "scheme": scope["scheme"],
            "client": scope["client"],
            "server": scope["server"],
            "method": scope["method"],
            "path": scope["path"],
            "root_path": scope["root_path"],
            "host": headers.get("host"),
            "env": os.environ.get("DEVSERVE_TEST_VALUE"),
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app() -> Any:
    """A factory: `scope_app:create_app --factory`."""
    return app


holder = SimpleNamespace(app=app)  # `scope_app:holder.app`
not_callable = 42  # `scope_app:not_callable`


def failing_factory() -> Any:
    """A factory that raises: `scope_app:failing_factory --factory`."""
    raise RuntimeError("factory broke")
