"""ASGI apps for the wire-level tests (tests/test_http_wire.py, tests/test_request_corpus.py).

Apps that the test thread must synchronise with use `threading.Event`s (the server runs in
another thread with its own loop), waited on from the app through the default executor.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import socket
import threading
import time
from collections.abc import Sequence
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
        digest = hashlib.sha256()
        while True:
            message = await receive()
            body = message.get("body", b"")
            self.largest = max(self.largest, len(body))
            total += len(body)
            digest.update(body)
            await asyncio.sleep(0.001)  # a slow consumer (not synchronisation)
            if not message.get("more_body"):
                break
        await respond(send, 200, f"{total} {digest.hexdigest()}".encode())


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


# --------------------------------------------------------------------------- client side
@dataclasses.dataclass
class Response:
    """One HTTP/1.1 response as parsed off the wire by `parse_responses`."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    trailers: list[tuple[str, str]]
    chunks: list[bytes]

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k == name.lower()]
        return ", ".join(values) if values else None

    def names(self) -> list[str]:
        return [k for k, _ in self.headers]


class Incomplete(ValueError):
    """The bytes end in the middle of a response (`need`: the total size known to be needed)."""

    def __init__(self, message: str, need: int = 0) -> None:
        super().__init__(message)
        self.need = need


def _fields(block: bytes) -> list[tuple[str, str]]:
    fields = []
    for line in block.split(b"\r\n"):
        if line:
            name, sep, value = line.partition(b":")
            if not sep:
                raise ValueError(f"malformed field line {line!r}")
            fields.append((name.decode("latin-1").lower(), value.strip().decode("latin-1")))
    return fields


def parse_responses(
    data: bytes, bodiless: Sequence[bool] = (), *, eof: bool = True
) -> list[Response]:
    """Split `data` into responses with strict framing checks; interim (1xx) ones included.

    `bodiless[n]` says that the n-th final response answers a HEAD request. Without a
    Content-Length or chunked framing, a body runs to the end of `data` (only with `eof`).
    """
    responses: list[Response] = []
    finals = 0
    pos = 0
    while pos < len(data):
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            raise Incomplete(f"incomplete head: {data[pos:]!r}")
        status_line, _, block = data[pos:end].partition(b"\r\n")
        version, code, _reason = status_line.decode("latin-1").split(" ", 2)
        if version != "HTTP/1.1":
            raise ValueError(f"bad status line {status_line!r}")
        status = int(code)
        headers = _fields(block)
        pos = end + 4
        names = [k for k, _ in headers]
        body, trailers, chunks = b"", [], []
        if status < 200:
            responses.append(Response(status, headers, b"", [], []))
            continue
        is_head = finals < len(bodiless) and bodiless[finals]
        finals += 1
        if is_head or status in (204, 304):
            pass
        elif "transfer-encoding" in names:
            if "content-length" in names:
                raise ValueError("response with both Content-Length and Transfer-Encoding")
            while True:
                line_end = data.find(b"\r\n", pos)
                if line_end < 0:
                    raise Incomplete("incomplete chunk size")
                size = int(data[pos:line_end].split(b";")[0], 16)
                pos = line_end + 2
                if size == 0:
                    end = data.find(b"\r\n\r\n", pos - 2)
                    if end < 0:
                        raise Incomplete("incomplete trailer section")
                    trailers = _fields(data[pos:end])
                    pos = end + 4
                    break
                if len(data) < pos + size + 2:
                    raise Incomplete("incomplete chunk")
                chunks.append(data[pos : pos + size])
                if data[pos + size : pos + size + 2] != b"\r\n":
                    raise ValueError("chunk not followed by CRLF")
                pos += size + 2
            body = b"".join(chunks)
        elif "content-length" in names:
            length = int(dict(headers)["content-length"])
            if len(data) < pos + length:
                raise Incomplete(f"body shorter than {length}", need=pos + length)
            body = data[pos : pos + length]
            pos += length
        else:
            if not eof:
                raise Incomplete("body delimited by the end of the connection")
            body = data[pos:]
            pos = len(data)
        responses.append(Response(status, headers, body, trailers, chunks))
    return responses


def read_until_closed(sock: socket.socket, timeout: float = 2.0) -> tuple[bytes, bool]:
    """Read until EOF/reset or until `timeout` passes; returns (data, closed)."""
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return b"".join(chunks), False
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return b"".join(chunks), True
        except TimeoutError:
            return b"".join(chunks), False
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)


def read_responses(
    sock: socket.socket, count: int, bodiless: Sequence[bool] = (), timeout: float = 2.0
) -> list[Response]:
    """Read from a kept-alive connection until `count` final responses have arrived."""
    deadline = time.monotonic() + timeout
    data = bytearray()
    need = 0
    while True:
        if len(data) >= need:
            try:
                responses = parse_responses(bytes(data), bodiless, eof=False)
                if sum(r.status >= 200 for r in responses) >= count:
                    return responses
            except Incomplete as exc:
                need = exc.need
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{count} responses not received in time: {bytes(data[:500])!r}")
        sock.settimeout(left)
        chunk = sock.recv(262144)
        if not chunk:
            raise ConnectionError(f"closed after {bytes(data[:500])!r}")
        data += chunk
