"""One HTTP/2 stream's request as the app sees it: `receive()`, `send()` and the ASGI message order.

The HTTP/2 twin of cycle.py's RequestCycle, with the same response states (START → BODY →
[TRAILERS] → DONE) and the same errors for an app that breaks them; the framing is the stream's
(HEADERS, DATA, END_STREAM), so there is no Content-Length to add nor chunking to choose. The body
the client sends is held until the app reads it, and only then is its flow-control window given
back: a slow app stops the upload at one window, without pausing the other streams. The
connection (protocols/http2.py's HTTP2Protocol, a `StreamCarrier`) writes the frames.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from typing import Any, Protocol

from devserver.asgi import HTTPIncoming, HTTPRequestEvent, HTTPScope, Outgoing
from devserver.protocols import wire
from devserver.protocols.cycle import (
    Response,
    content_length,
    file_part,
    length_mismatch,
    path_to_send,
)
from devserver.protocols.errors import ASGIProtocolError, ClientDisconnected
from devserver.protocols.state import ServerState
from devserver.tracing import Trace

logger = logging.getLogger("devserve.server")

FILE_CHUNK = 1 << 16  # a pathsend/zerocopysend file is read and framed in parts this large

Fields = list[tuple[bytes, bytes]]


class StreamCarrier(Protocol):
    """What a stream needs of its connection (protocols/http2.py's HTTP2Protocol)."""

    state: ServerState

    def send_head(self, stream: StreamCycle, fields: Fields, end: bool) -> None: ...

    async def send_body(self, stream: StreamCycle, data: bytes, end: bool) -> None:
        """Send DATA as the peer's windows allow; returns once it is written."""
        ...

    def send_final_data(self, stream: StreamCycle, data: bytes) -> None:
        """The server's own short answer: DATA with END_STREAM now, if the windows allow."""
        ...

    def send_trailers(self, stream: StreamCycle, fields: Fields) -> None: ...

    def consumed(self, stream: StreamCycle, size: int) -> None:
        """The app took `size` flow-controlled bytes of the body: open the windows again."""
        ...

    def response_complete(self, stream: StreamCycle) -> None: ...

    def reset(self, stream: StreamCycle) -> None:
        """End the stream with RST_STREAM (a response that cannot be completed)."""
        ...

    def app_finished(self, stream: StreamCycle) -> None:
        """`stream`'s app returned, or never ran (a 503)."""
        ...


class StreamCycle:
    """Holds one stream's scope, the body not yet read, and the response state."""

    __slots__ = (
        "conn",
        "stream_id",
        "scope",
        "method",
        "is_head",
        "body",
        "unacknowledged",
        "body_complete",
        "body_reported",
        "disconnected",
        "waiter",
        "wait_tick",
        "window_waiter",
        "window_tick",
        "response",
        "status",
        "fields",
        "length_left",
        "trailers",
        "bytes_sent",
        "bytes_received",
        "started_at",
        "trace",
        "failure",
        "counted",
    )

    def __init__(
        self,
        conn: StreamCarrier,
        stream_id: int,
        scope: HTTPScope,
        started_at: float,
        body_complete: bool,
    ) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self.scope = scope
        self.method: str = scope["method"]
        self.is_head = self.method == "HEAD"
        # the unread body: the first part as it came, more grown in place (a list of parts
        # would cost ~50 bytes each, and a client may send 2-byte DATA frames)
        self.body: bytes | bytearray = b""
        self.unacknowledged = 0  # flow-controlled bytes received and not yet given back
        self.body_complete = body_complete
        self.body_reported = False
        self.disconnected = False
        self.waiter: asyncio.Future[None] | None = None
        self.wait_tick = 0  # when receive() began to wait for body bytes (--timeout-request-body)
        self.window_waiter: asyncio.Future[None] | None = None  # send() waits for the window
        self.window_tick = 0  # ...since this tick (--timeout-send)
        self.response = Response.START
        self.status = 0
        self.fields: Fields | None = None  # the response head, held until the first body
        self.length_left: int | None = None
        self.trailers = False
        self.bytes_sent = 0
        self.bytes_received = 0
        self.started_at = started_at
        self.trace: Trace | None = None
        self.failure: BaseException | None = None
        self.counted = False  # its app counts among the connection's running ones

    # ------------------------------------------------------------------ fed by the connection
    def feed_body(self, data: bytes, flow_controlled: int) -> None:
        self.unacknowledged += flow_controlled
        if self.response is Response.DONE:
            return
        self.bytes_received += len(data)
        if data:
            body = self.body
            if not body:
                self.body = data
            else:
                if type(body) is bytes:
                    body = self.body = bytearray(body)
                body += data
            self._wake()

    def end_body(self) -> None:
        self.body_complete = True
        self._wake()

    @property
    def body_size(self) -> int:
        """Bytes of body received and not yet read by the app."""
        return len(self.body)

    def waits_for_body(self) -> bool:
        waiter = self.waiter
        return waiter is not None and not waiter.done() and not self.body_complete

    def disconnect(self) -> None:
        self.disconnected = True
        self.body = b""  # nobody will read it: not held while the app runs on
        self._wake()
        self.window_opened()

    def window_opened(self) -> None:
        waiter = self.window_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # ------------------------------------------------------------------ the app's receive()
    async def receive(self) -> HTTPIncoming:
        while True:
            if self.disconnected or self.response is Response.DONE:
                return {"type": "http.disconnect"}
            if self.body or (self.body_complete and not self.body_reported):
                return self._take_body()
            self.wait_tick = self.conn.state.ticks
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None

    def _take_body(self) -> HTTPRequestEvent:
        body, self.body = self.body, b""
        if type(body) is not bytes:
            body = bytes(body)
        if self.unacknowledged:
            size, self.unacknowledged = self.unacknowledged, 0
            self.conn.consumed(self, size)
        more = not self.body_complete
        self.body_reported = not more
        return {"type": "http.request", "body": body, "more_body": more}

    # ------------------------------------------------------------------ the app's send()
    async def send(self, message: Outgoing) -> None:
        kind = message.get("type")
        if self.disconnected:
            raise ClientDisconnected(f"client disconnected before {kind!r}")
        fields: Mapping[str, Any] = message  # an app is not type-checked: each field is, here
        response = self.response
        if response is Response.BODY and kind == "http.response.body":
            await self._send_body(fields.get("body", b""), fields.get("more_body", False))
        elif response is Response.START and kind == "http.response.start":
            self._start(fields)
        elif response is Response.BODY and kind == "http.response.pathsend":
            await self._send_path(fields)
        elif response is Response.BODY and kind == "http.response.zerocopysend":
            await self._send_zerocopy(fields)
        elif response is Response.TRAILERS and kind == "http.response.trailers":
            self._send_trailers(fields)
        else:
            raise ASGIProtocolError(
                f"unexpected ASGI message {kind!r} while {response.value}"
                + ("" if response is Response.DONE else " (see the ASGI HTTP spec)")
            )

    def _start(self, message: Mapping[str, Any]) -> None:
        status = message.get("status")
        if type(status) is not int or status not in wire.STATUS_LINES or status < 200:
            raise ASGIProtocolError(
                f"http.response.start: invalid status {status!r} (a final status, 200-599)"
            )
        fields: Fields = [(b":status", b"%d" % status), *self.conn.state.default_fields]
        length: int | None = None
        for name, value in message.get("headers", ()):
            lower = name.lower()
            if lower in wire.CONNECTION_SPECIFIC:  # none in HTTP/2 (RFC 9113 8.2.2); an app
                continue  # written for HTTP/1.1 sends them in good faith
            if lower == b"content-length":
                length = content_length(value)
            wire.check_header(name, value)
            fields.append((lower, value))
        self.status = status
        self.length_left = length
        self.trailers = bool(message.get("trailers", False))
        self.fields = fields
        self.response = Response.BODY

    def _head(self, end: bool) -> None:
        """Send the response head (with END_STREAM when nothing follows it)."""
        fields, self.fields = self.fields, None
        assert fields is not None
        if wire.bodiless_status(self.status) or self.status == 304:
            self.length_left = None
        self.conn.send_head(self, fields, end)

    async def _send_body(self, body: bytes, more_body: bool) -> None:
        if not wire.has_body(self.status, self.is_head):
            body = b""  # HEAD, 204, 304: whatever the app sends is not sent, nor counted
        elif self.length_left is not None:
            left = self.length_left = self.length_left - len(body)
            if left < 0 or (left and not more_body):
                length_mismatch(left)
        last = not more_body and not self.trailers
        if self.fields is not None:
            self._head(end=last and not body)
            if not more_body and not body:
                return self._finish_body()
        if body or last:
            self.bytes_sent += len(body)
            await self.conn.send_body(self, body, last)
            if self.disconnected and self.response is not Response.DONE:
                raise ClientDisconnected("client disconnected while the response was sent")
        if not more_body:
            self._finish_body()

    def _finish_body(self) -> None:
        if self.trailers:
            self.response = Response.TRAILERS
        else:
            self._complete()

    def _send_trailers(self, message: Mapping[str, Any]) -> None:
        fields: Fields = []
        for name, value in message.get("headers", ()):
            wire.check_header(name, value)  # a pseudo-header's ":" is refused here too
            lower = name.lower()
            if lower not in wire.CONNECTION_SPECIFIC:
                fields.append((lower, value))
        if message.get("more_trailers", False):
            raise ASGIProtocolError("more_trailers is not supported over HTTP/2: send them at once")
        self.conn.send_trailers(self, fields)
        self._complete()

    def _complete(self) -> None:
        self.response = Response.DONE
        self._wake()  # a receive() still waiting now returns http.disconnect
        self.conn.response_complete(self)

    async def _send_path(self, message: Mapping[str, Any]) -> None:
        with open(path_to_send(message), "rb") as file:
            await self._send_zerocopy({"file": file, "offset": 0})

    async def _send_zerocopy(self, message: Mapping[str, Any]) -> None:
        """The Zero Copy Send extension, framed as DATA: HTTP/2 cannot hand the socket a file
        (each part needs a frame header, and TLS would encrypt it anyway), so it is read."""
        file = message.get("file")
        more = bool(message.get("more_body", False))
        offset, count, size = file_part(file, message, self.length_left)
        if size - offset < count:
            raise ASGIProtocolError(f"zerocopysend: the file ended {count - size + offset} early")
        if self.length_left is not None and count > self.length_left:
            raise ASGIProtocolError("response body longer than its Content-Length")
        if count == 0 or not wire.has_body(self.status, self.is_head):
            await self._send_body(b"", more)  # HEAD, 204, 304: the file is not read
            return
        while count:
            part = os.pread(file.fileno(), min(count, FILE_CHUNK), offset)  # type: ignore[union-attr]
            offset += len(part)
            count -= len(part)
            await self._send_body(part, more or count > 0)

    # ------------------------------------------------------------------ as a Session
    def describe(self) -> str:
        return f"{self.method} {self.scope['path']}"

    def client_left(self) -> bool:
        return self.disconnected

    def answer_busy(self) -> None:
        self.conn.app_finished(self)  # it never ran
        self.answer(503, "Service Unavailable: too many requests in flight")

    def app_ended(self, failed: bool) -> None:
        """The app's call is over: a failure, or a response it left unfinished, becomes a 500
        (or a reset stream, once the response has begun)."""
        self.conn.app_finished(self)
        if failed:
            self._abort_response()
        elif self.response is not Response.DONE and not self.disconnected:
            logger.error(
                "ASGI app returned without completing the response to %s %s",
                self.method,
                self.scope["path"],
            )
            self._abort_response()

    def answer(self, status: int, text: str) -> None:
        """Answer on the app's behalf (500, 503, 408, 431), in one HEADERS and one DATA."""
        body = text.encode()
        payload = b"" if self.is_head else body
        self.status = status
        self.response = Response.DONE
        fields: Fields = [
            (b":status", b"%d" % status),
            *self.conn.state.default_fields,
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"%d" % len(body)),
        ]
        self.conn.send_head(self, fields, not payload)
        if payload:
            self.bytes_sent += len(payload)
            self.conn.send_final_data(self, payload)
        self.conn.response_complete(self)

    def _abort_response(self) -> None:
        if self.disconnected or self.response is Response.DONE:
            return
        if self.response is Response.START or self.fields is not None:
            self.answer(500, "Internal Server Error")
        else:
            self.response = Response.DONE
            self.conn.reset(self)
            self.conn.response_complete(self)
