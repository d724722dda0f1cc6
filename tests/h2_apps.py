"""The ASGI app of the HTTP/2 wire tests (tests/test_http2_limits.py, test_http2_malformed.py):
one app that notes every request it is called for, and what it read and sent, so a test can
say that a request never reached it; its path picks what it does.

It runs on the server's loop (`run_server`'s thread, or a devserve subprocess as
`tests.h2_apps:app`); the test reads what it noted once the exchange is over, and opens its
gate through `Running.call(app.open)`, on that loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

Scope = dict[str, Any]
CHUNK = 65536


@dataclasses.dataclass
class Seen:
    """One call of the app: the request and what became of it."""

    method: str
    path: str
    headers: list[tuple[bytes, bytes]]
    messages: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    failure: str | None = None  # what send() raised
    send_seconds = 0.0  # how long the body's send took (/whole)

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages)

    @property
    def complete(self) -> bool:
        """The app was told the body had ended (a last http.request)."""
        return any(m["type"] == "http.request" and not m.get("more_body") for m in self.messages)


class Recorder:
    """Answers by path:

    - `/big?N`: a body of N bytes in sends of 64 KiB (a failure is noted);
    - `/whole?N`: a body of N bytes in one send, timed;
    - `/hold`: reads nothing and answers only once the gate is open;
    - `/early`: answers at once, without reading the body;
    - `/stream`: sends its head at once (the client learns the app runs), reads the body to
      its end, then ends the response with the body's length;
    - anything else: reads the body, then answers 200 `ok <path> <length>`.
    """

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.gate: asyncio.Event | None = None

    @property
    def paths(self) -> list[str]:
        return [seen.path for seen in self.seen]

    def open(self) -> None:
        """Let the held requests go on (call it on the server's loop)."""
        self._gate().set()

    def _gate(self) -> asyncio.Event:
        if self.gate is None:
            self.gate = asyncio.Event()
        return self.gate

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        seen = Seen(scope["method"], scope["path"], list(scope["headers"]))
        self.seen.append(seen)
        path, query = scope["path"], scope["query_string"]

        async def noted_receive() -> dict[str, Any]:
            message: dict[str, Any] = await receive()
            seen.messages.append(message)
            return message

        async def noted_send(message: dict[str, Any]) -> None:
            try:
                await send(message)
            except Exception as exc:
                seen.failure = f"{type(exc).__name__}: {exc}"
                raise

        if path == "/big":
            await noted_send({"type": "http.response.start", "status": 200, "headers": []})
            left = int(query)
            while left:
                part = min(left, CHUNK)
                left -= part
                await noted_send(
                    {"type": "http.response.body", "body": b"x" * part, "more_body": bool(left)}
                )
            return
        if path == "/whole":
            body = b"x" * int(query)
            await noted_send({"type": "http.response.start", "status": 200, "headers": []})
            started = time.perf_counter()
            await noted_send({"type": "http.response.body", "body": body})
            seen.send_seconds = time.perf_counter() - started
            return
        if path == "/hold":
            await self._gate().wait()
        elif path == "/stream":
            await noted_send({"type": "http.response.start", "status": 200, "headers": []})
            await noted_send({"type": "http.response.body", "body": b"", "more_body": True})
            size = len(await _read_body(noted_receive))
            await noted_send({"type": "http.response.body", "body": b"%d" % size})
            return
        size = 0 if path == "/early" else len(await _read_body(noted_receive))
        await noted_send({"type": "http.response.start", "status": 200, "headers": []})
        await noted_send(
            {"type": "http.response.body", "body": b"ok %s %d" % (path.encode(), size)}
        )


async def _read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return body
        body += bytes(message.get("body", b""))
        if not message.get("more_body"):
            return body


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


app = Recorder()  # for a devserve subprocess: tests.h2_apps:app
