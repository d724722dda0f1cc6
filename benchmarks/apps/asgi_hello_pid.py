"""ASGI hello world that also names the worker: 'Hello, world!' plus an x-worker-pid header.

Used by restart_bench.py to tell which worker process answered each request. Handles lifespan.
"""

import os

BODY = b"Hello, world!"


async def app(scope, receive, send):
    if scope["type"] == "http":
        headers = [
            (b"content-type", b"text/plain"),
            (b"content-length", str(len(BODY)).encode()),
            (b"x-worker-pid", str(os.getpid()).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": BODY})
    elif scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
