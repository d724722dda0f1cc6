"""WebSocket connections: websockets' Sans-I/O `ServerProtocol` on asyncio, spoken to the app as
ASGI websocket messages (spec 2.4).

The HTTP protocol hands over a connection whose request head asked for a WebSocket; from then on
this protocol owns the transport. websockets decides everything about the wire (handshake
validation, framing, masking, close handshake, permessage-deflate, message size); this module only
moves bytes between it and the socket, and turns frames into ASGI messages and back, with
backpressure both ways: reading pauses while --ws-max-queue messages, or --ws-max-size bytes of
them, wait for the app (a compressed message can be a thousand times its size on the wire), and
`send()` waits while the client is slow to take what was written. Reading also pauses while the
transport's write buffer is over its high-water mark: what a client sends makes us write (a pong
per ping, the app's replies), so a client that sends without reading would otherwise grow the
buffer without bound. Parsing is budgeted: one read can hold tens of thousands of tiny frames
(and uvloop reads a ready socket up to 32 times in a row), so a read is fed to websockets a slice
at a time and the loop gets its turn back once READ_BUDGET is spent; the rest waits, with reading
paused. A client sending more than CONTROL_FRAMES_PER_SECOND pings and pongs is closed (1008).
"""

from __future__ import annotations

import asyncio
import enum
import http
import logging
import os
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, cast

from websockets.datastructures import Headers
from websockets.exceptions import InvalidHeader, InvalidHeaderValue
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import SEND_EOF, State
from websockets.server import ServerProtocol

from devserver.asgi import (
    HTTPScope,
    Outgoing,
    WebSocketDisconnectEvent,
    WebSocketIncoming,
    WebSocketReceiveEvent,
    WebSocketScope,
)
from devserver.protocols import wire
from devserver.protocols.errors import ASGIProtocolError, ClientDisconnected
from devserver.protocols.flow import FlowControl
from devserver.protocols.state import ServerState
from devserver.tracing import Trace

logger = logging.getLogger("devserve.server")
# What websockets itself logs (every open and close, at INFO): devserve.logging.configure keeps
# it at WARNING unless a --log-config says otherwise.
_frames_logger = logging.getLogger("devserve.websocket")

CLOSE_TIMEOUT = 5.0  # seconds the client gets to answer our close frame before the TCP close
# Fairness between connections: websockets parses a few microseconds per frame, and a 256 kB read
# of 10-byte pings took 150 ms; uvloop then read the same socket again, up to 32 times, before any
# other connection or timer ran. Reads are fed in slices (a slice of the smallest frames parses in
# a few ms), and after READ_BUDGET seconds the rest of a read waits for the next loop pass.
SLICE = 8192
READ_BUDGET = 0.002
# Pings and pongs a client may send per second; legitimate keepalives are far rarer. Over it, the
# connection is closed with 1008 (policy violation): each ping makes us write a pong.
CONTROL_FRAMES_PER_SECOND = 100
# The same parameters websockets' own servers use: compression with bounded memory per connection.
_DEFLATE = ServerPerMessageDeflateFactory(
    server_max_window_bits=12, client_max_window_bits=12, compress_settings={"memLevel": 5}
)


class Phase(enum.Enum):
    HANDSHAKE = "waiting for websocket.accept, websocket.close or websocket.http.response.start"
    DENIAL = "sending the denial response (websocket.http.response.body)"
    OPEN = "open"
    CLOSED = "closed"


def is_websocket_upgrade(headers: list[tuple[bytes, bytes]]) -> bool:
    """Does this request head ask for a WebSocket (an `Upgrade` header naming websocket)?"""
    return any(name == b"upgrade" and b"websocket" in value.lower() for name, value in headers)


def _has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(
        name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0")
        for name, value in headers
    )


def websocket_scope(http_scope: HTTPScope) -> WebSocketScope:
    """The ASGI websocket scope for an upgrade request, from the HTTP scope built for its head."""
    scope: dict[str, Any] = dict(http_scope)  # its keys, in order, less `method`
    del scope["method"]
    scope["type"] = "websocket"
    scope["scheme"] = "wss" if http_scope["scheme"] in ("https", "wss") else "ws"
    scope["subprotocols"] = [
        token.strip().decode("latin-1")
        for name, value in http_scope["headers"]
        if name == b"sec-websocket-protocol"
        for token in value.split(b",")
        if token.strip()
    ]
    scope["extensions"] = {"websocket.http.response": {}}  # its own: an app may add keys
    return cast(WebSocketScope, scope)


class WebSocketProtocol(asyncio.Protocol):
    """One upgraded connection: the handshake, then frames both ways, until the close."""

    stream_id: int | None = None  # set when it runs on an HTTP/2 stream (RFC 8441)
    ACCEPTED = 101  # the handshake's status that opens the WebSocket (200 over HTTP/2)
    # It is a connection of the server's own (ticks, shutdown, --limit-connections); over
    # HTTP/2 it is a stream, and its connection passes those on.
    OWN_CONNECTION = True

    def __init__(
        self, state: ServerState, transport: asyncio.Transport, http_scope: HTTPScope
    ) -> None:
        self.state = state
        self.settings = settings = state.settings
        self.loop = asyncio.get_running_loop()
        self.transport = transport
        self.flow = FlowControl(transport)
        self.scope = websocket_scope(http_scope)
        self.ws = ServerProtocol(
            extensions=[_DEFLATE] if settings.ws_per_message_deflate else None,
            max_size=settings.ws_max_size,
            logger=_frames_logger,
        )
        self.phase = Phase.HANDSHAKE
        self.handshake: Response | None = None
        self.early = b""  # frames a client sent before our 101: fed once the app accepts
        self.messages: deque[WebSocketReceiveEvent | WebSocketDisconnectEvent] = deque()
        self.queued_bytes = 0  # the payload bytes of `messages`
        self.connect_sent = False
        self.disconnect_queued = False
        self.waiter: asyncio.Future[None] | None = None
        self.fragments: list[bytes] = []
        self.fragment_opcode: Opcode | None = None
        self.denial_status = 0
        self.denial_headers: list[tuple[bytes, bytes]] | None = None
        self.ping_sent_at: float | None = None
        self.last_ping_at = self.loop.time()
        self.control_window = 0.0  # when the current second of counting pings and pongs began
        self.control_frames = 0  # pings and pongs received in it
        self.backlog = b""  # the rest of a read not yet fed to websockets; reading is paused
        self.feeding: asyncio.Handle | None = None  # the next loop pass feeds the backlog
        self.close_timer: asyncio.TimerHandle | None = None
        # What the access log reads: the handshake is logged as one request, once it is answered.
        self.method: str = http_scope["method"]
        self.status = 0
        self.bytes_sent = 0  # the denial body, then message payloads sent
        self.bytes_received = 0  # message payloads received
        self.started_at = time.perf_counter()
        self.trace: Trace | None = None
        self.failure: BaseException | None = None

    # ------------------------------------------------------------------ the handover
    def start(self, rest: bytes) -> None:
        """Validate the handshake, then run the app; `rest` followed the head in the same read."""
        if self.OWN_CONNECTION:
            self.state.connections.add(self)
        self.state.websockets += 1
        self.flow.pause_reading()  # a client must wait for our 101 before it sends frames
        self.early = rest
        response = self._validate()
        if response.status_code != self.ACCEPTED:
            self._reject_handshake(response)
            return
        self.handshake = response
        self._run_app()

    def _run_app(self) -> None:
        self.state.start(self)

    def _validate(self) -> Response:
        """websockets checks the head: we feed it the head as bytes and read its verdict."""
        scope = self.scope
        if self.method != "GET":
            response = self.ws.reject(http.HTTPStatus.METHOD_NOT_ALLOWED, "WebSocket needs GET\n")
            response.headers["Allow"] = "GET"
            return response
        if scope["http_version"] != "1.1":
            return self.ws.reject(
                http.HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, "WebSocket needs 1.1\n"
            )
        if _has_body(scope["headers"]):
            return self.ws.reject(http.HTTPStatus.BAD_REQUEST, "A WebSocket request has no body\n")
        headers = Headers([(n.decode("latin-1"), v.decode("latin-1")) for n, v in scope["headers"]])
        try:
            self.ws.receive_data(Request("/", headers).serialize())
        except (InvalidHeader, InvalidHeaderValue) as exc:  # e.g. several Sec-WebSocket-Key
            return self.ws.reject(http.HTTPStatus.BAD_REQUEST, f"Bad WebSocket request: {exc}\n")
        events = self.ws.events_received()
        if not events or not isinstance(events[0], Request):
            return self.ws.reject(http.HTTPStatus.BAD_REQUEST, "Bad WebSocket request head\n")
        return self.ws.accept(events[0])

    def _reject_handshake(self, response: Response) -> None:
        client = self.scope.get("client")
        peer = f"{client[0]}:{client[1]}" if client else "unix socket"
        detail = bytes(response.body).decode("utf-8", "replace").strip()
        logger.warning(
            "%d %s from %s: %s", response.status_code, response.reason_phrase, peer, detail
        )
        self.phase = Phase.CLOSED
        if self.settings.server_header:
            response.headers["Server"] = "devserve"
        self._send_handshake_response(response)
        self.transport.close()
        self._log(response.status_code, len(response.body))

    # ------------------------------------------------------------------ asyncio callbacks
    def data_received(self, data: bytes) -> None:
        if self.backlog:  # reading is paused, but a transport may hand over what it had read
            self.backlog += data
            return
        started = time.perf_counter()
        size = len(data)
        if size <= SLICE:  # the common case: one slice, nothing kept back
            self._receive(data)
        else:
            at = 0
            while at < size:
                self._receive(data[at : at + SLICE])
                at += SLICE
                if at < size and (
                    not self._may_read() or time.perf_counter() - started > READ_BUDGET
                ):
                    self.backlog = data[at:]
                    break
        if self.backlog or time.perf_counter() - started > READ_BUDGET:
            self._yield()

    def _yield(self) -> None:
        """Stop reading until the next loop pass, so other connections and the server's timers run
        first; then feed the backlog, if reading may go on by then."""
        if self.transport.is_closing():
            self.backlog = b""  # our close was sent: what the client says now is discarded
            return
        self.flow.pause_reading()
        if self.feeding is None and self._may_read():
            self.feeding = self.loop.call_soon(self._continue)

    def _continue(self) -> None:
        self.feeding = None
        data, self.backlog = self.backlog, b""
        if data:
            self.data_received(data)
        if self.feeding is None:
            self._resume()

    def _resume(self) -> None:
        """Reading may go on (the client took what we wrote, the app took a message, a close
        began): the backlog first, on the next loop pass, then the socket."""
        if self.feeding is not None or not self.flow.read_paused or not self._may_read():
            return
        if self.backlog:
            self.feeding = self.loop.call_soon(self._continue)
        else:
            self.flow.resume_reading()

    def _receive(self, data: bytes) -> None:
        ws = self.ws
        ws.receive_data(data)
        events = ws.events_received()
        self._flush()  # pongs, the echo of a close frame, a close after a protocol error
        for frame in events:
            if isinstance(frame, Frame):
                self._on_frame(frame)
        if ws.state is not State.OPEN:
            self._closing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.forget(self)
        self.state.websockets -= 1
        self.ws.receive_eof()
        if self.close_timer is not None:
            self.close_timer.cancel()
        if self.feeding is not None:
            self.feeding.cancel()
            self.feeding = None
        self.backlog = b""
        self.phase = Phase.CLOSED
        self._queue_disconnect()
        self.flow.resume_writing()  # wakes a send() waiting to drain: it then raises
        if self.state.shutting_down:
            self.state.check_idle()

    def pause_writing(self) -> None:
        self.flow.pause_writing()
        self.flow.pause_reading()  # whatever we read now could only add to the backlog

    def resume_writing(self) -> None:
        self.flow.resume_writing()
        self._resume()

    def _may_read(self) -> bool:
        """Whether reading may resume: the client takes what we write, and while the WebSocket
        is open, the app keeps up; after the close began we read on for the client's reply."""
        if self.flow.write_paused or self.transport.is_closing():
            return False
        if self.phase is Phase.OPEN:
            return not self._queue_full()
        # Closed after a 101 (not a refused or denied handshake, which never read frames).
        return self.phase is Phase.CLOSED and self.status == self.ACCEPTED

    # ------------------------------------------------------------------ frames → messages
    def _on_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        data = frame.data if type(frame.data) is bytes else bytes(frame.data)
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                self._message(opcode, data)
            else:
                self.fragment_opcode = opcode
                self.fragments = [data]
        elif opcode is Opcode.CONT:
            if data:  # empty fragments add nothing, and could grow the list without bound
                self.fragments.append(data)
            if frame.fin and self.fragment_opcode is not None:
                data, self.fragments = b"".join(self.fragments), []
                self._message(self.fragment_opcode, data)
                self.fragment_opcode = None
        elif opcode is Opcode.PONG:
            self.ping_sent_at = None
            self._count_control_frame()
        elif opcode is Opcode.PING:
            self._count_control_frame()

    def _count_control_frame(self) -> None:
        """Close a client that floods pings or pongs: more than CONTROL_FRAMES_PER_SECOND."""
        now = self.loop.time()
        if now - self.control_window >= 1.0:
            self.control_window, self.control_frames = now, 0
        self.control_frames += 1
        if self.control_frames > CONTROL_FRAMES_PER_SECOND and self.phase is Phase.OPEN:
            logger.info("WebSocket %s: a ping flood, closing", self._path())
            self.ws.fail(CloseCode.POLICY_VIOLATION, "too many pings")
            self._flush()
            self._closing()

    def _queue_full(self) -> bool:
        settings = self.settings
        return (
            len(self.messages) >= settings.ws_max_queue or self.queued_bytes >= settings.ws_max_size
        )

    def _message(self, opcode: Opcode, data: bytes) -> None:
        if self.disconnect_queued:
            return
        self.bytes_received += len(data)
        if self.state.stats is not None:
            self.state.stats.ws_received += 1
        if opcode is Opcode.TEXT:
            try:
                text = data.decode()
            except UnicodeDecodeError as exc:
                self.ws.fail(CloseCode.INVALID_DATA, f"invalid UTF-8 at position {exc.start}")
                self._flush()
                self._closing()  # nothing after a failure reaches the app (RFC 6455 7.1.7)
                return
            self.messages.append({"type": "websocket.receive", "text": text})
            self.queued_bytes += len(text)  # counted as receive() takes it off: characters
        else:
            self.messages.append({"type": "websocket.receive", "bytes": data})
            self.queued_bytes += len(data)
        if self._queue_full():
            self.flow.pause_reading()
        self._wake()

    def _closing(self) -> None:
        """The close handshake began (either side) or the connection failed: tell the app."""
        if self.phase is Phase.OPEN:
            self.phase = Phase.CLOSED
        # Read on even with a full queue: the client's close reply must be read to end cleanly,
        # and what else arrives now is discarded. Not while our writes back up: the close timer
        # ends a client that neither reads nor stops sending.
        self._resume()
        if self.ws.close_expected() and self.close_timer is None:
            self.close_timer = self.loop.call_later(CLOSE_TIMEOUT, self.transport.abort)
        self._queue_disconnect()

    def _queue_disconnect(self) -> None:
        if self.disconnect_queued:
            return
        self.disconnect_queued = True
        self.messages.append(self._disconnect_message())
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # ------------------------------------------------------------------ the app's receive()
    async def receive(self) -> WebSocketIncoming:
        if not self.connect_sent:
            self.connect_sent = True
            return {"type": "websocket.connect"}
        while not self.messages:
            if self.disconnect_queued:  # the disconnect was already taken: it stays the answer
                return self._disconnect_message()
            self.waiter = self.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        message = self.messages.popleft()
        if message["type"] == "websocket.receive":  # a text counts as its characters
            self.queued_bytes -= len(message.get("bytes") or message.get("text") or b"")
        self._resume()
        return message

    def _disconnect_message(self) -> WebSocketDisconnectEvent:
        """websocket.disconnect with the close code received, else the one sent, else 1006."""
        close = self.ws.close_rcvd or self.ws.close_sent
        code, reason = (close.code, close.reason) if close else (CloseCode.ABNORMAL_CLOSURE, "")
        return {"type": "websocket.disconnect", "code": int(code), "reason": reason}

    # ------------------------------------------------------------------ the app's send()
    async def send(self, message: Outgoing) -> None:
        kind = message.get("type")
        fields: Mapping[str, Any] = message  # an app is not type-checked: each field is, here
        phase = self.phase
        if phase is Phase.OPEN and kind == "websocket.send":
            self._send_data(fields)
        elif phase is Phase.OPEN and kind == "websocket.close":
            self._close(fields.get("code") or CloseCode.NORMAL_CLOSURE, fields.get("reason"))
        elif phase is Phase.HANDSHAKE and kind == "websocket.accept":
            self._accept(fields)
        elif phase is Phase.HANDSHAKE and kind == "websocket.close":
            self._write_denial(403, [], b"Forbidden\n")
        elif phase is Phase.HANDSHAKE and kind == "websocket.http.response.start":
            self._start_denial(fields)
        elif phase is Phase.DENIAL and kind == "websocket.http.response.body":
            self._denial_body(fields.get("body", b""), fields.get("more_body", False))
        elif phase is Phase.CLOSED:
            if kind == "websocket.close":
                return  # closing twice is harmless
            raise ClientDisconnected(f"WebSocket closed before {kind!r}")
        else:
            raise ASGIProtocolError(f"unexpected ASGI message {kind!r} while {phase.value}")
        if self.flow.write_paused:
            await self.flow.drain()
            if self.transport.is_closing() and kind == "websocket.send":
                raise ClientDisconnected("client disconnected while a message was sent")

    def _accept(self, message: Mapping[str, Any]) -> None:
        response = self.handshake
        assert response is not None
        subprotocol = message.get("subprotocol")
        if subprotocol is not None:
            response.headers["Sec-WebSocket-Protocol"] = subprotocol
        for name, value in message.get("headers", ()):
            wire.check_header(name, value)
            response.headers[name.decode("latin-1")] = value.decode("latin-1")
        if self.settings.server_header:
            response.headers["Server"] = "devserve"
        self._send_handshake_response(response)
        self.phase = Phase.OPEN
        self._log(response.status_code, 0)
        if self.state.stats is not None:
            self.state.stats.ws_opened += 1
        self.last_ping_at = self.loop.time()
        early, self.early = self.early, b""
        if self._may_read():
            self.flow.resume_reading()
        if early:
            self.data_received(early)
        if self.state.shutting_down and self.phase is Phase.OPEN:
            self._close(CloseCode.SERVICE_RESTART, "server shutting down")

    def _send_handshake_response(self, response: Response) -> None:
        """Write the handshake's answer (101, or a refusal) as the connection's protocol frames
        it: here an HTTP/1.1 head."""
        self.ws.send_response(response)
        self._flush()

    def _send_data(self, message: Mapping[str, Any]) -> None:
        text = message.get("text")
        if text is not None:
            data = text.encode()
            self.ws.send_text(data)
        else:
            data = message.get("bytes")
            if data is None:
                raise ASGIProtocolError("websocket.send needs 'bytes' or 'text'")
            self.ws.send_binary(data)
        self.bytes_sent += len(data)
        if self.state.stats is not None:
            self.state.stats.ws_sent += 1
        self._flush()

    def _close(self, code: int, reason: str | None) -> None:
        self.ws.send_close(code, reason or "")
        self._flush()
        self._closing()

    # ------------------------------------------------------------------ denial responses
    def _start_denial(self, message: Mapping[str, Any]) -> None:
        status = message.get("status")
        if type(status) is not int or status not in wire.STATUS_LINES or status == 101:
            raise ASGIProtocolError(f"websocket.http.response.start: invalid status {status!r}")
        self.denial_status = status
        self.denial_headers = list(message.get("headers", ()))
        self.phase = Phase.DENIAL

    def _denial_body(self, body: bytes, more_body: bool) -> None:
        if self.denial_headers is not None:
            headers, self.denial_headers = self.denial_headers, None
            if more_body:
                self._write_head(self.denial_status, headers, None)
            else:
                self._write_denial(self.denial_status, headers, body)
                return
        if body:
            self.bytes_sent += len(body)
        self._write_part(body, not more_body)
        if not more_body:
            self._end_denial()

    def _write_denial(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.bytes_sent = len(body)
        self._write_head(status, headers, len(body), body)
        self._end_denial()

    def _write_part(self, body: bytes, last: bool) -> None:
        """A part of a streamed denial body: an HTTP/1.1 chunk."""
        if body:
            self.transport.write(wire.chunk(body))
        if last:
            self.transport.write(wire.LAST_CHUNK)

    def _write_head(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        length: int | None,
        body: bytes = b"",
    ) -> None:
        """The denial's head, and its whole `body` when `length` is known (else chunks follow)."""
        if length is None:
            framing = b"transfer-encoding: chunked\r\n"
        else:
            framing = b"content-length: %d\r\n" % length
        parts = [wire.STATUS_LINES[status], self.state.default_headers]
        for name, value in headers:
            lower = name.lower()
            if lower in (b"content-length", b"transfer-encoding", b"connection"):
                continue  # framed here: the connection ends with this response
            wire.check_header(name, value)
            parts.append(b"%b: %b\r\n" % (name, value))
        parts += [framing, b"connection: close\r\n\r\n", body]
        self.transport.write(b"".join(parts))
        self.phase = Phase.DENIAL
        self.status = status

    def _end_denial(self) -> None:
        self._log(self.status, self.bytes_sent)
        self.phase = Phase.CLOSED
        self.disconnect_queued = True  # the app never had a WebSocket: nothing to tell it
        self.messages.append({"type": "websocket.disconnect", "code": 1000, "reason": ""})
        self._wake()
        self.transport.close()

    def _log(self, status: int, bytes_sent: int) -> None:
        """The handshake's access-log line, once it is answered (101, or a denial)."""
        self.status, self.bytes_sent = status, bytes_sent
        self.state.log_access(self, self)

    # ------------------------------------------------------------------ writing
    def _flush(self) -> None:
        data = self.ws.data_to_send()
        if not data:
            return
        if SEND_EOF in data:
            payload = b"".join(data)
            if payload:
                self.transport.write(payload)
            self.transport.close()  # a server ends the TCP connection once the close is done
            return
        self.transport.write(data[0] if len(data) == 1 else b"".join(data))

    # ------------------------------------------------------------------ as a Session
    def describe(self) -> str:
        return f"WebSocket {self._path()}"

    def client_left(self) -> bool:
        return self.phase is Phase.CLOSED

    def answer_busy(self) -> None:
        self._write_denial(503, [], b"Service Unavailable: too many requests in flight\n")

    def app_ended(self, failed: bool) -> None:
        """The app's call is over: a handshake it left unanswered is denied with a 500, an open
        WebSocket closed (1011 after a failure), a denial cut short; its record is counted."""
        phase = self.phase
        if phase is Phase.HANDSHAKE:
            if not failed:
                logger.error("ASGI app returned without accepting WebSocket %s", self._path())
            self._write_denial(500, [], b"Internal Server Error\n")
        elif phase is Phase.OPEN and self.ws.state is State.OPEN:  # not once a close began
            self._close(CloseCode.INTERNAL_ERROR if failed else CloseCode.NORMAL_CLOSURE, "")
        elif phase is Phase.DENIAL:
            if not failed:
                logger.error("ASGI app returned without finishing the denial response")
            self.transport.close()
        if self.state.stats is not None:
            self.state.stats.websocket_done(self)

    def _path(self) -> str:
        return self.scope["path"]

    # ------------------------------------------------------------------ timers and shutdown
    def on_tick(self) -> None:
        """Keepalive: ping every --ws-ping-interval; a pong later than --ws-ping-timeout fails."""
        if self.phase is not Phase.OPEN:
            return
        settings, now = self.settings, self.loop.time()
        if self.ping_sent_at is not None:
            timeout = settings.ws_ping_timeout
            if timeout > 0 and now - self.ping_sent_at >= timeout:
                logger.info("WebSocket %s: no pong in %gs, closing", self._path(), timeout)
                self.ws.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
                self._flush()
                self._closing()
            return
        interval = settings.ws_ping_interval
        if interval > 0 and now - self.last_ping_at >= interval:
            self.last_ping_at = self.ping_sent_at = now
            self.ws.send_ping(os.urandom(4))
            self._flush()

    def shutdown(self, keep_idle: float = 0.0, fresh_grace: float = 0.0) -> None:
        """Graceful stop: close 1012 (service restart), so clients know to reconnect."""
        if self.phase is Phase.OPEN:
            self._close(CloseCode.SERVICE_RESTART, "server restarting")
