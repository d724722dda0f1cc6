"""An app for the telemetry-hardening tests: it answers every path, and /tamper writes bytes that
are not a channel message into every connected Unix stream socket of its worker (the channel to
the supervisor among them), as a buggy or hostile app could.

    /tamper   writes a frame header announcing 4 GiB, then answers "tampered"
    /raise    raises RuntimeError (a 500: such requests' records are always kept)
    /pid      answers with the worker's pid
    /upload*  reads the request body, then answers
"""

from __future__ import annotations

import os
import socket
from typing import Any


def _tamper() -> int:
    written = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            sock = socket.socket(fileno=os.dup(int(name)))
        except OSError:
            continue  # not a socket
        with sock:
            if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
                continue
            try:
                sock.getpeername()
                sock.send(b"\xff\xff\xff\xff")
                written += 1
            except OSError:
                continue  # a listener, or not connected
    return written


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/raise":
        raise RuntimeError("raised on purpose")
    if path.startswith("/upload"):
        while (await receive()).get("more_body"):
            pass
    body = str(os.getpid()).encode()
    if path == "/tamper":
        body = f"tampered {_tamper()}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
