"""An app for the supervisor tests: each path misbehaves in one way a real app can.

    /pid          answers with the worker's pid
    /env          answers with LISTEN_FDS and LISTEN_PID as the worker sees them (JSON)
    /slow?PATH    waits until the file PATH exists, then answers "done"
    /hang         blocks the worker's event loop (time.sleep, forever)
    /exit         kills the worker with os._exit(1) mid-request
    /raise        raises RuntimeError (a 500, and the exception in the log)

It speaks no lifespan and prints one line when a request starts to wait (`supervised_app: slow in
pid N`, `supervised_app: hang in pid N`) so a test knows when to act; nothing else is printed,
so with --log-format json every other line is the server's own.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return  # lifespan auto: an app that returns goes on without lifespan, quietly
    path = scope["path"]
    body = b"done"
    if path == "/pid":
        body = str(os.getpid()).encode()
    elif path == "/env":
        names = ("LISTEN_FDS", "LISTEN_PID")
        body = json.dumps({name: os.environ.get(name) for name in names}).encode()
    elif path == "/slow":
        release = scope["query_string"].decode()
        print(f"supervised_app: slow in pid {os.getpid()}", flush=True)
        while not os.path.exists(release):
            await asyncio.sleep(0.01)
    elif path == "/hang":
        print(f"supervised_app: hang in pid {os.getpid()}", flush=True)
        hang_forever()
    elif path == "/exit":
        os._exit(1)
    elif path == "/raise":
        raise RuntimeError(f"raised on purpose in pid {os.getpid()}")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def hang_forever() -> None:
    while True:
        time.sleep(0.05)
