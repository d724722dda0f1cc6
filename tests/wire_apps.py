"""ASGI apps for the wire-level tests (tests/test_http_wire.py, tests/test_request_corpus.py).

Apps that the test thread must synchronise with use `threading.Event`s (the server runs in
another thread with its own loop), waited on from the app through the default executor.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

Scope = dict[str, Any]


async def read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    return body


async def _lifespan(scope: Scope, receive: Any, send: Any) -> bool:
    """Refuse lifespan politely (so apps below work with --lifespan auto); True if handled."""
    if scope["type"] != "lifespan":
        return False
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return True


async def respond(send: Any, status: int, body: bytes, headers: list[Any] | None = None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers or []})
    await send({"type": "http.response.body", "body": body})


def scope_summary(scope: Scope, body: bytes) -> dict[str, Any]:
    """A JSON-able view of what the app saw (bytes as latin-1 text)."""
    return {
        "method": scope["method"],
        "path": scope["path"],
        "raw_path": scope["raw_path"].decode("latin-1"),
        "query_string": scope["query_string"].decode("latin-1"),
        "root_path": scope["root_path"],
        "http_version": scope["http_version"],
        "scheme": scope["scheme"],
        "client": list(scope["client"]) if scope["client"] else None,
        "server": list(scope["server"]) if scope["server"] else None,
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
        "state": dict(scope.get("state", {})),
        "body": body.decode("latin-1"),
    }


async def record(scope: Scope, receive: Any, send: Any) -> None:
    """Answers 200 with a JSON description of the request's scope and full body."""
    if await _lifespan(scope, receive, send):
        return
    body = await read_body(receive)
    payload = json.dumps(scope_summary(scope, body)).encode()
    await respond(send, 200, payload, [(b"content-type", b"application/json")])


class LifespanState:
    """Sets lifespan state at startup, then answers like `record`."""

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    scope["state"]["db"] = "connected"
                    scope["state"]["count"] = 1
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        # mutate the request's copy: must not leak into the next request
        body = await read_body(receive)
        summary = scope_summary(scope, body)
        scope["state"]["count"] += 1
        await respond(send, 200, json.dumps(summary).encode())


# --------------------------------------------------------------------------- misbehaving apps
async def raise_before_start(scope: Scope, receive: Any, send: Any) -> None:
    if await _lifespan(scope, receive, send):
        return
    raise RuntimeError("boom before start")


async def raise_after_start(scope: Scope, receive: Any, send: Any) -> None:
    if await _lifespan(scope, receive, send):
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]}
    )
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    raise RuntimeError("boom after start")


async def raise_after_start_chunked(scope: Scope, receive: Any, send: Any) -> None:
    if await _lifespan(scope, receive, send):
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    raise RuntimeError("boom after start")


async def return_without_response(scope: Scope, receive: Any, send: Any) -> None:
    if await _lifespan(scope, receive, send):
        return


async def return_after_start(scope: Scope, receive: Any, send: Any) -> None:
    if await _lifespan(scope, receive, send):
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})


async def return_mid_body(scope: Scope, receive: Any, send: Any) -> None:
    if await _lifespan(scope, receive, send):
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})


async def body_before_start(scope: Scope, receive: Any, send: Any) -> None:
    if await _lifespan(scope, receive, send):
        return
    await send({"type": "http.response.body", "body": b"too early"})


async def two_starts(scope: Scope, receive: Any, send: Any) -> None:
    if await _lifespan(scope, receive, send):
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.start", "status": 201, "headers": []})


async def body_after_done(scope: Scope, receive: Any, send: Any) -> None:
    if await _lifespan(scope, receive, send):
        return
    await respond(send, 200, b"done")
    await send({"type": "http.response.body", "body": b"extra"})


class Gate:
    """Each request signals `entered`, then waits until the test calls `release.set()`."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if await _lifespan(scope, receive, send):
            return
        self.entered.set()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.release.wait, 5)
        await respond(send, 200, b"released")


# --------------------------------------------------------------------------- protocol features
async def stream(scope: Scope, receive: Any, send: Any) -> None:
    """Streams three parts with more_body and no Content-Length: chunked on HTTP/1.1."""
    if await _lifespan(scope, receive, send):
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for part in (b"alpha", b"", b"beta-", b"gamma"):
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def fixed_length(scope: Scope, receive: Any, send: Any) -> None:
    """Streams a body in parts under an explicit Content-Length."""
    if await _lifespan(scope, receive, send):
        return
    headers = [(b"content-length", b"10")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"01234", "more_body": True})
    await send({"type": "http.response.body", "body": b"56789"})


async def status_from_path(scope: Scope, receive: Any, send: Any) -> None:
    """GET /204 answers 204, /304 answers 304 (each trying to send a body), else 200 'body'."""
    if await _lifespan(scope, receive, send):
        return
    code = scope["path"].strip("/")
    status = int(code) if code.isdigit() else 200
    headers = [(b"etag", b'"x"')] if status == 304 else []
    await respond(send, status, b"body" if status == 200 else b"", headers)


class ExpectApp:
    """/read reads the body before answering; /ignore answers without reading (records both)."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if await _lifespan(scope, receive, send):
            return
        if scope["path"] == "/read":
            body = await read_body(receive)
            self.bodies.append(body)
            await respond(send, 200, b"got " + body)
        else:
            await respond(send, 413, b"no thanks")


async def trailers(scope: Scope, receive: Any, send: Any) -> None:
    """Sends a chunked body with trailers when the client says `TE: trailers`."""
    if await _lifespan(scope, receive, send):
        return
    headers = dict(scope["headers"])
    wants = b"trailers" in headers.get(b"te", b"")
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"trailer", b"x-checksum")],
            "trailers": wants,
        }
    )
    await send({"type": "http.response.body", "body": b"payload", "more_body": True})
    await send({"type": "http.response.body", "body": b""})
    if wants:
        await send(
            {
                "type": "http.response.trailers",
                "headers": [(b"x-checksum", b"abc123")],
                "more_trailers": False,
            }
        )


class PathSend:
    """Answers with the file at `path` through http.response.pathsend."""

    def __init__(self, path: str) -> None:
        self.path = path

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if await _lifespan(scope, receive, send):
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": self.path})


class SlowReader:
    """Reads the request body slowly and records the largest single body message it got."""

    def __init__(self) -> None:
        self.largest = 0

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if await _lifespan(scope, receive, send):
            return
        total = 0
        digest = 0
        while True:
            message = await receive()
            body = message.get("body", b"")
            self.largest = max(self.largest, len(body))
            total += len(body)
            digest = (digest + sum(body[::4096])) % 1_000_003
            await asyncio.sleep(0.001)  # a slow consumer (not synchronisation)
            if not message.get("more_body"):
                break
        await respond(send, 200, f"{total} {digest}".encode())


class BigResponse:
    """Sends `size` bytes in 64 KiB parts; sets `blocked` once a send() had to wait (drain)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.blocked = threading.Event()
        self.finished = threading.Event()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if await _lifespan(scope, receive, send):
            return
        headers = [(b"content-length", str(self.size).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        part = 65536
        for offset in range(0, self.size, part):
            data = pattern(offset, min(part, self.size - offset))
            more = offset + part < self.size
            task = asyncio.ensure_future(
                send({"type": "http.response.body", "body": data, "more_body": more})
            )
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            if not task.done():
                self.blocked.set()
            await task
        self.finished.set()


def pattern(offset: int, size: int) -> bytes:
    """Deterministic bytes for position `offset` of a large body (cheap to check)."""
    block = bytes(range(256)) * 256  # 64 KiB
    start = offset % 256
    data = (block[start:] + block[:start]) * (size // len(block) + 1)
    return data[:size]
