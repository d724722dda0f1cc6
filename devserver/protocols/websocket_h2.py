"""WebSocket over an HTTP/2 stream (RFC 8441, extended CONNECT), through the same ASGI websocket
path as over HTTP/1.1.

`Http2WebSocket` is the HTTP/1.1 WebSocketProtocol with another handshake: a CONNECT request
with `:protocol websocket` instead of an Upgrade, answered with `:status 200` in HEADERS instead
of a 101 head, and no Sec-WebSocket-Key/Accept. Everything after it (frames, limits, pings,
close, backpressure) is the same code, writing to a `StreamTransport`: the stream dressed as the
asyncio transport that code expects. Its writes become DATA as the peer's windows allow (held
back past them, with pause_writing at a high-water mark), its close is END_STREAM, its abort
RST_STREAM, and pausing its reading holds back the stream's WINDOW_UPDATEs, so a client can
send at most one window that nobody reads.
"""

from __future__ import annotations

import asyncio
import http
from typing import Any, Protocol

from websockets.datastructures import Headers
from websockets.exceptions import InvalidHandshake
from websockets.http11 import Response
from websockets.protocol import State
from websockets.server import ServerProtocol

from devserver.asgi import HTTPScope
from devserver.protocols import wire
from devserver.protocols.state import ServerState
from devserver.protocols.websocket import _DEFLATE, Phase, WebSocketProtocol, _frames_logger

WRITE_HIGH_WATER = 65536  # bytes held for the peer's window before the WebSocket pauses writing
WRITE_LOW_WATER = 16384


class WebSocketCarrier(Protocol):
    """What a WebSocket's stream needs of its connection (protocols/http2.py's HTTP2Protocol)."""

    state: ServerState
    transport: asyncio.Transport

    def send_websocket_head(
        self, websocket: StreamTransport, fields: list[tuple[bytes, bytes]], end: bool
    ) -> None: ...

    def pump(self, websocket: StreamTransport) -> None:
        """Send what `websocket` wrote, as far as the peer's windows allow."""
        ...

    def acknowledge(self, stream_id: int, size: int) -> None:
        """Give `size` bytes of window back to the stream and the connection."""
        ...

    def reset_websocket(self, websocket: StreamTransport) -> None: ...

    def app_started(self, session: Http2WebSocket) -> None:
        """Its app runs: it counts against the connection's streams (see HTTP2Protocol)."""
        ...

    def app_finished(self, session: Http2WebSocket) -> None: ...


class StreamTransport:
    """One HTTP/2 stream, as the transport a WebSocketProtocol writes to and reads from."""

    def __init__(self, conn: WebSocketCarrier, stream_id: int) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self.protocol: Http2WebSocket | None = None
        self.pending = bytearray()  # written, waiting for the peer's window
        self.closing = False  # close() was called: END_STREAM once `pending` is sent
        self.ended = False  # END_STREAM or RST_STREAM was sent
        self.head_sent = False  # the handshake's answer (HEADERS) was sent
        self.reading = True
        self.held = bytearray()  # DATA that came while reading was paused
        self.feeding: asyncio.Handle | None = None
        self.unacknowledged = 0  # DATA read while reading was paused: its window is held back
        self.write_paused = False

    # what WebSocketProtocol calls
    def write(self, data: bytes) -> None:
        if self.closing or self.ended:
            return
        self.pending += data
        self.conn.pump(self)

    def close(self) -> None:
        if not self.closing and not self.ended:
            self.closing = True
            self.conn.pump(self)

    def abort(self) -> None:
        self.conn.reset_websocket(self)

    def is_closing(self) -> bool:
        return self.closing or self.ended

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        if self.reading:
            return
        self.reading = True
        if self.held and self.feeding is None:  # on the next loop pass: never from inside
            self.feeding = asyncio.get_running_loop().call_soon(self._feed_held)  # a send
        elif self.unacknowledged:
            size, self.unacknowledged = self.unacknowledged, 0
            self.conn.acknowledge(self.stream_id, size)

    def _feed_held(self) -> None:
        """What came while reading was paused goes to the WebSocket now, then the window
        back (unless the WebSocket paused again meanwhile: it keeps the rest itself)."""
        self.feeding = None
        held, self.held = bytes(self.held), bytearray()
        protocol = self.protocol
        if protocol is not None and held:
            protocol.data_received(held)
        if self.reading and self.unacknowledged:
            size, self.unacknowledged = self.unacknowledged, 0
            self.conn.acknowledge(self.stream_id, size)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.conn.transport.get_extra_info(name, default)

    def get_write_buffer_size(self) -> int:
        return len(self.pending) + self.conn.transport.get_write_buffer_size()

    # what the connection calls
    def received(self, data: bytes, flow_controlled: int) -> None:
        """DATA for the WebSocket: its frames, then the window back. While reading is paused
        (before the accept; while the app lags) the bytes are held as they came, unparsed: a
        compressed message could be a thousand times its size once parsed. The window they
        took stays shut meanwhile, so what is held is at most one stream window."""
        if not self.reading or self.held:
            self.held += data
            self.unacknowledged += flow_controlled
            return
        protocol = self.protocol
        if protocol is not None and data:
            protocol.data_received(data)
        self.conn.acknowledge(self.stream_id, flow_controlled)

    def sent(self) -> None:
        """Part of `pending` left: resume a paused writer once it is low."""
        protocol = self.protocol
        if self.write_paused and len(self.pending) <= WRITE_LOW_WATER and protocol is not None:
            self.write_paused = False
            protocol.resume_writing()
        elif not self.write_paused and len(self.pending) > WRITE_HIGH_WATER and protocol:
            self.write_paused = True
            protocol.pause_writing()

    def lost(self) -> None:
        """The stream ended (reset, or the connection went): as a lost connection."""
        self.ended = True
        self.pending.clear()
        self.held.clear()
        if self.feeding is not None:
            self.feeding.cancel()
            self.feeding = None
        protocol, self.protocol = self.protocol, None
        if protocol is not None:
            protocol.connection_lost(None)


class Http2WebSocket(WebSocketProtocol):
    """A WebSocket on an HTTP/2 stream: the RFC 8441 handshake, then WebSocketProtocol."""

    ACCEPTED = 200
    OWN_CONNECTION = False

    def __init__(
        self, state: ServerState, transport: StreamTransport, http_scope: HTTPScope
    ) -> None:
        super().__init__(state, transport, http_scope)  # type: ignore[arg-type]
        self.stream_transport = transport
        self.stream_id = transport.stream_id
        self.counted = False  # its app counts among the connection's running ones
        transport.protocol = self
        # No HTTP/1.1 handshake for websockets to parse: its protocol starts open, and only
        # negotiates the extensions (_validate).
        self.ws = ServerProtocol(
            extensions=[_DEFLATE] if self.settings.ws_per_message_deflate else None,
            max_size=self.settings.ws_max_size,
            logger=_frames_logger,
            state=State.OPEN,
        )

    def _run_app(self) -> None:
        self.stream_transport.conn.app_started(self)
        super()._run_app()

    def answer_busy(self) -> None:
        self.stream_transport.conn.app_finished(self)
        super().answer_busy()

    def app_ended(self, failed: bool) -> None:
        self.stream_transport.conn.app_finished(self)
        super().app_ended(failed)

    def _validate(self) -> Response:
        """RFC 8441 section 5: a CONNECT with :protocol websocket and Sec-WebSocket-Version 13."""
        headers = Headers(
            [(n.decode("latin-1"), v.decode("latin-1")) for n, v in self.scope["headers"]]
        )
        if headers.get("Sec-WebSocket-Version") != "13":
            response = _response(http.HTTPStatus.BAD_REQUEST, "WebSocket needs version 13\n")
            response.headers["Sec-WebSocket-Version"] = "13"
            return response
        try:
            extensions_header, extensions = self.ws.process_extensions(headers)
        except InvalidHandshake as exc:
            return _response(http.HTTPStatus.BAD_REQUEST, f"Bad WebSocket request: {exc}\n")
        self.ws.extensions = extensions
        response = Response(200, "OK", Headers())
        if extensions_header is not None:
            response.headers["Sec-WebSocket-Extensions"] = extensions_header
        return response

    def _send_handshake_response(self, response: Response) -> None:
        fields = [(b":status", b"%d" % response.status_code)]
        fields += [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in response.headers.raw_items()
            if name.lower() != "server"
        ]
        fields += self.state.default_fields
        # Never END_STREAM here: the WebSocket follows a 200, and a refusal's close() ends it.
        self.stream_transport.conn.send_websocket_head(self.stream_transport, fields, False)
        if response.body:
            self.stream_transport.write(bytes(response.body))

    def _write_head(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        length: int | None,
        body: bytes = b"",
    ) -> None:
        fields = [(b":status", b"%d" % status), *self.state.default_fields]
        for name, value in headers:
            lower = name.lower()
            if lower in (b"content-length", b"transfer-encoding", b"connection"):
                continue
            wire.check_header(name, value)
            fields.append((lower, value))
        if length is not None:
            fields.append((b"content-length", b"%d" % length))
        transport = self.stream_transport
        transport.conn.send_websocket_head(transport, fields, length == 0)
        if body:
            transport.write(body)
        self.phase = Phase.DENIAL
        self.status = status

    def _write_part(self, body: bytes, last: bool) -> None:
        if body:
            self.stream_transport.write(body)


def _response(status: http.HTTPStatus, text: str) -> Response:
    body = text.encode()
    return Response(
        status.value,
        status.phrase,
        Headers(
            [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
        ),
        body,
    )
