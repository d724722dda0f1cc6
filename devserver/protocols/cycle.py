"""One HTTP request's life as the app sees it: `receive()`, `send()` and the ASGI message order.

The response side is an explicit state machine (START → BODY → [TRAILERS] → DONE); any message
that does not fit the state raises `ASGIProtocolError` naming what was expected. Framing
(Content-Length or chunked), HEAD and bodiless statuses are decided here, once, when the first
body message arrives, so that the head and a one-shot body leave in a single write.
The cycle never reads from the socket; the connection that carries it (a `Carrier`: the HTTP/1.1
`HTTPProtocol`) feeds it, and `ServerState.start` runs the app with its `receive` and `send`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
from collections.abc import Mapping
from typing import IO, Any, Protocol

from devserver.asgi import HTTPIncoming, HTTPRequestEvent, HTTPScope, Outgoing
from devserver.protocols import wire
from devserver.protocols.errors import ASGIProtocolError, ClientDisconnected
from devserver.protocols.flow import FlowControl
from devserver.protocols.state import ServerState
from devserver.tracing import Trace

logger = logging.getLogger("devserve.server")

# Buffer at most this much unread request body before we stop reading from the socket.
BODY_HIGH_WATER = 65536
SENDFILE_CHUNK = 1 << 20


class Carrier(Protocol):
    """What a cycle needs of the connection that carries it (protocols/http.py's HTTPProtocol):
    somewhere to write, its flow control, the server state, and two calls back."""

    state: ServerState
    transport: asyncio.Transport
    flow: FlowControl

    def resume_reading_for(self, cycle: RequestCycle) -> None:
        """The app waits in receive() for more of `cycle`'s body."""
        ...

    def response_complete(self, cycle: RequestCycle) -> None:
        """`cycle`'s last response byte is written (or its answer: 500, 503)."""
        ...

    async def send_file(self, file: IO[bytes], count: int, offset: int = 0) -> int:
        """Write `count` bytes of `file` from `offset`; how many were written."""
        ...


class Response(enum.Enum):
    START = "waiting for http.response.start"
    BODY = "sending the body"
    TRAILERS = "sending trailers"
    DONE = "complete"


class RequestCycle:
    """Holds one request's scope, buffered body and response state."""

    stream_id = None  # HTTP/1.1 has no streams (an Exchange's field)

    __slots__ = (
        "conn",
        "scope",
        "method",
        "is_head",
        "keep_alive",
        "chunked_ok",
        "expect_100",
        "body",
        "body_complete",
        "body_reported",
        "disconnected",
        "waiter",
        "wait_tick",
        "response",
        "status",
        "head",
        "chunked",
        "body_on_wire",
        "length_left",
        "trailers",
        "bytes_sent",
        "bytes_received",
        "started_at",
        "trace",
        "failure",
    )

    def __init__(
        self,
        conn: Carrier,
        scope: HTTPScope,
        keep_alive: bool,
        expect_100: bool,
        started_at: float,
    ) -> None:
        self.conn = conn
        self.scope = scope
        self.method: str = scope["method"]
        self.is_head = self.method == "HEAD"
        self.keep_alive = keep_alive
        self.chunked_ok = scope["http_version"] == "1.1"
        self.expect_100 = expect_100
        self.body: bytes | bytearray = b""
        self.body_complete = False
        self.body_reported = False
        self.disconnected = False
        self.waiter: asyncio.Future[None] | None = None
        self.wait_tick = 0  # when receive() began waiting for body bytes (--timeout-request-body)
        self.response = Response.START
        self.status = 0
        self.head = b""
        self.chunked = False
        self.body_on_wire = True
        self.length_left: int | None = None
        self.trailers = False
        self.bytes_sent = 0
        self.bytes_received = 0
        self.started_at = started_at
        self.trace: Trace | None = None
        self.failure: BaseException | None = None

    # ------------------------------------------------------------------ fed by the connection
    def feed_body(self, data: bytes) -> None:
        if self.response is Response.DONE:
            return  # the app answered without reading it all; the rest is discarded
        self.bytes_received += len(data)
        body = self.body
        if not body:
            self.body = data
        else:  # a body read in many pieces grows in place, not by copying what came before
            if type(body) is bytes:
                body = self.body = bytearray(body)
            body += data
        if len(self.body) > BODY_HIGH_WATER:
            self.conn.flow.pause_reading()
        self._wake()

    def end_body(self) -> None:
        self.body_complete = True
        if self.waiter is not None:
            self._wake()

    def waits_for_body(self) -> bool:
        """Whether the app is blocked in receive() on body bytes the client has yet to send."""
        waiter = self.waiter
        return waiter is not None and not waiter.done() and not self.body_complete

    def on_wire(self) -> bool:
        """Whether any of the response has been written (after that, only a close can end it)."""
        return self.response is not Response.START and not self.head

    def disconnect(self) -> None:
        self.disconnected = True
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # ------------------------------------------------------------------ the app's receive()
    async def receive(self) -> HTTPIncoming:
        if self.expect_100:
            self.expect_100 = False
            if not self.body_complete and not self.disconnected:
                self.conn.transport.write(wire.CONTINUE_100)
        while True:
            if self.disconnected or self.response is Response.DONE:
                return {"type": "http.disconnect"}
            if self.body or (self.body_complete and not self.body_reported):
                return self._take_body()
            self.conn.resume_reading_for(self)
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
        more = not self.body_complete
        self.body_reported = not more
        if more:
            self.conn.resume_reading_for(self)
        return {"type": "http.request", "body": body, "more_body": more}

    # ------------------------------------------------------------------ the app's send()
    async def send(self, message: Outgoing) -> None:
        kind = message.get("type")
        if self.disconnected:
            raise ClientDisconnected(f"client disconnected before {kind!r}")
        fields: Mapping[str, Any] = message  # an app is not type-checked: each field is, here
        response = self.response
        if response is Response.BODY and kind == "http.response.body":
            self._send_body(fields.get("body", b""), fields.get("more_body", False))
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
        if self.conn.flow.write_paused:
            await self.conn.flow.drain()
            if self.disconnected and self.response is not Response.DONE:
                raise ClientDisconnected("client disconnected while the response was sent")

    def _start(self, message: Mapping[str, Any]) -> None:
        status = message.get("status")
        if type(status) is not int or status not in wire.STATUS_LINES or status < 200:
            # A 1xx head would be read as an interim response, and the body after it as the
            # next response: the keep-alive connection would be out of step for good.
            raise ASGIProtocolError(
                f"http.response.start: invalid status {status!r} (a final status, 200-599)"
            )
        parts = [wire.STATUS_LINES[status], self.conn.state.default_headers]
        length: int | None = None
        chunked = False
        for name, value in message.get("headers", ()):
            lower = name.lower()
            if lower == b"content-length":
                length = content_length(value)
            elif lower == b"transfer-encoding":
                chunked = value.strip().lower() == b"chunked"
                if not chunked:
                    raise ASGIProtocolError(f"unsupported response transfer-encoding {value!r}")
                continue  # we frame the body ourselves and add the header when we chunk
            elif lower == b"connection":
                if value.strip().lower() == b"close":
                    self.keep_alive = False
                continue  # decided by the server, written below
            wire.check_header(name, value)
            parts.append(b"%b: %b\r\n" % (name, value))
        self.status = status
        self.length_left = length
        self.chunked = chunked
        self.trailers = bool(message.get("trailers", False))
        self.head = b"".join(parts)
        self.response = Response.BODY

    def _frame_head(self, body: bytes, more_body: bool) -> bytes:
        """Finish the head now that the first body message shows how the body is framed."""
        extra = b""
        status = self.status
        self.body_on_wire = wire.has_body(status, self.is_head)
        if wire.bodiless_status(status):
            self.length_left = None
            self.chunked = False
        elif self.length_left is not None:
            self.chunked = False
        elif not more_body and not self.trailers and not self.chunked:
            if status != 304 and (body or not self.is_head):
                extra = b"content-length: %d\r\n" % len(body)
        elif self.chunked_ok and not self.is_head and status != 304:
            self.chunked = True
            extra = b"transfer-encoding: chunked\r\n"
        else:  # HTTP/1.0 or HEAD streaming: the end of the body is the end of the connection
            self.chunked = False
            if not self.is_head and status != 304:
                self.keep_alive = False
        if self.expect_100 and not self.body_complete:
            self.keep_alive = False  # the client may still send the body we never asked for
        if self.conn.state.shutting_down:
            self.keep_alive = False
        if not self.keep_alive:
            extra += b"connection: close\r\n"
        elif not self.chunked_ok:
            extra += b"connection: keep-alive\r\n"
        head, self.head = self.head, b""
        return head + extra + wire.CRLF

    def _send_body(self, body: bytes, more_body: bool) -> None:
        head = self.head
        if head:
            head = self._frame_head(body, more_body)
        if not self.body_on_wire:
            payload = body = b""
        elif self.chunked:
            payload = wire.chunk(body) if body else b""
            if not more_body and not self.trailers:
                payload += wire.LAST_CHUNK
        else:
            payload = body
            if self.length_left is not None:
                left = self.length_left = self.length_left - len(body)
                if left < 0 or (left and not more_body):
                    length_mismatch(left)
        self.bytes_sent += len(body)
        data = head + payload if head else payload
        if data:
            self.conn.transport.write(data)
        if not more_body:
            self._finish_body()

    def _finish_body(self) -> None:
        if self.trailers:
            self.response = Response.TRAILERS
        else:
            self._complete()

    def _send_trailers(self, message: Mapping[str, Any]) -> None:
        headers = list(message.get("headers", ()))
        for name, value in headers:
            wire.check_header(name, value)
        if self.chunked:  # without chunking (HEAD, HTTP/1.0) trailers are dropped silently
            self.conn.transport.write(wire.trailer_block(headers))
        if not message.get("more_trailers", False):
            self._complete()

    def _complete(self) -> None:
        self.response = Response.DONE
        self._wake()  # a receive() still waiting now returns http.disconnect
        self.conn.response_complete(self)

    async def _send_path(self, message: Mapping[str, Any]) -> None:
        with open(path_to_send(message), "rb") as file:  # the whole file, as a zero-copy send
            await self._send_zerocopy({"file": file, "offset": 0})

    async def _send_zerocopy(self, message: Mapping[str, Any]) -> None:
        """The Zero Copy Send extension: part of an open file as (part of) the body.

        Without a Content-Length from the app, a last message is framed by the part's size; the
        app's own Content-Length decides how much is sent when the message gives no count.
        """
        file = message.get("file")
        more = bool(message.get("more_body", False))
        offset, count, size = file_part(file, message, self.length_left)
        if self.head:
            if self.length_left is None and not more and not self.trailers and not self.chunked:
                self.length_left = count
                self.head += b"content-length: %d\r\n" % count
            self.conn.transport.write(self._frame_head(b"", True))
        if self.length_left is not None:
            if count > self.length_left:
                raise ASGIProtocolError("response body longer than its Content-Length")
            self.length_left -= count
        if self.body_on_wire and count:
            await self._send_file_part(file, offset, count, size)
        if not more:
            if self.chunked and not self.trailers:
                self.conn.transport.write(wire.LAST_CHUNK)
            if self.length_left:
                length_mismatch(self.length_left)
            self._finish_body()

    async def _send_file_part(self, file: Any, offset: int, count: int, size: int) -> None:
        if self.chunked:
            self.conn.transport.write(b"%x\r\n" % count)
        sent = await self.conn.send_file(file, count, offset)
        self.bytes_sent += sent
        if sent < count:
            if size - offset < count:
                raise ASGIProtocolError(f"zerocopysend: the file ended {count - sent} bytes early")
            self.disconnected = True  # the socket broke under sendfile: the client is gone
            self.conn.transport.close()
            raise ClientDisconnected("client disconnected while a file was sent")
        if self.chunked:
            self.conn.transport.write(wire.CRLF)

    # ------------------------------------------------------------------ as a Session
    def describe(self) -> str:
        return f"{self.method} {self.scope['path']}"

    def client_left(self) -> bool:
        return self.disconnected

    def answer_busy(self) -> None:
        self.answer(503, "Service Unavailable: too many requests in flight")

    def app_ended(self, failed: bool) -> None:
        """The app's call is over: a failure, or a response it left unfinished, becomes a 500
        (or a closed connection, if the response had begun)."""
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
        """Answer on the app's behalf (500, 503) and close the connection after it."""
        self.head = b""
        self.status = status
        self.keep_alive = False
        self.response = Response.DONE
        response = wire.simple_response(
            status, text, self.conn.state.default_headers, head=self.is_head
        )
        self.conn.transport.write(response)
        if not self.is_head:  # its body counts, as the access log and metrics count an app's
            self.bytes_sent += len(text.encode())
        self.conn.response_complete(self)

    def _abort_response(self) -> None:
        """Answer 500 if nothing was sent yet, else close the connection mid-response."""
        if self.disconnected or self.response is Response.DONE:
            return
        if self.response is Response.START or self.head:  # nothing on the wire yet
            self.answer(500, "Internal Server Error")
        else:
            self.keep_alive = False
            self.response = Response.DONE
            self.conn.transport.close()


def length_mismatch(left: int) -> None:
    if left < 0:
        raise ASGIProtocolError("response body longer than its Content-Length")
    raise ASGIProtocolError(f"response body {left} bytes shorter than its Content-Length")


def content_length(value: bytes) -> int:
    text = value.strip()
    if not text.isdigit():
        raise ASGIProtocolError(f"invalid response Content-Length {value!r}")
    return int(text)


def path_to_send(message: Mapping[str, Any]) -> str:
    """The file of an http.response.pathsend message: an absolute path (its spec)."""
    path = message.get("path")
    if not isinstance(path, str) or not os.path.isabs(path):
        raise ASGIProtocolError(f"http.response.pathsend: 'path' must be absolute, got {path!r}")
    return path


def file_part(
    file: Any, message: Mapping[str, Any], length_left: int | None
) -> tuple[int, int, int]:
    """(offset, count, file size) of a zerocopysend message, defaults filled in: without a count,
    what is left of the response's Content-Length (`length_left`), else the rest of the file."""
    try:
        size = os.fstat(file.fileno()).st_size
        offset = message.get("offset")
        if offset is None:
            offset = file.tell()  # the spec: from the file's current position
    except (AttributeError, OSError, ValueError):
        raise ASGIProtocolError(
            f"http.response.zerocopysend: 'file' must be an open OS-level file, got {file!r}"
        ) from None
    count = message.get("count")
    if count is None:
        count = length_left if length_left is not None else max(0, size - offset)
    if type(offset) is not int or type(count) is not int or offset < 0 or count < 0:
        raise ASGIProtocolError(
            f"http.response.zerocopysend: invalid offset {offset!r} or count {count!r}"
        )
    return offset, count, size
