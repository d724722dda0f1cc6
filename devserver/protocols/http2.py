"""HTTP/2 connections on h2's Sans-I/O state machine: each stream is one ASGI request.

The HTTP/1.1 protocol hands a connection over when its first bytes are the HTTP/2 preface (prior
knowledge, as proxies and gRPC clients speak it) or when TLS chose `h2` by ALPN. From then on
`HTTP2Protocol` feeds what it reads to h2, turns h2's events into streams (protocols/stream.py's
StreamCycle), and writes what h2 says to write. h2 owns framing, HPACK and flow-control
accounting; this module owns what a server decides:

- which requests run (http2_request.py checks each head by RFC 9113 section 8; a malformed one
  gets its stream reset with PROTOCOL_ERROR and the connection lives on);
- backpressure: a request body's window is given back only as the app reads it, and a response
  waits for the peer's window, then for the socket to drain;
- defences (http2_guard.py): frame headers are checked as they arrive, floods of cheap frames
  and malformed requests end the connection; a stream reset by its client in the read that
  opened it never starts its app, and the apps of reset streams still count against the
  stream limit; h2 bounds the decoded header list (SETTINGS_MAX_HEADER_LIST_SIZE,
  --max-header-size); reads are fed in slices with a time budget so one connection cannot hold
  the loop;
- timers (on the server's tick): idle connections, bodies that stop, responses whose window
  never opens (--timeout-send);
- graceful close: GOAWAY in two steps (RFC 9113 6.8), the streams it names finish, then the close.

h2 moves its state machine to CLOSED when it sends or receives GOAWAY, after which it refuses to
send anything. A graceful GOAWAY is therefore written here, beside h2 (its frame is built by
hyperframe), and a client's NO_ERROR GOAWAY puts the state machine back, so that the streams
the client has open still get their responses.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import time
from time import perf_counter
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame

from devserver.protocols.cycle import Response
from devserver.protocols.errors import ClientDisconnected
from devserver.protocols.flow import FlowControl
from devserver.protocols.http2_guard import FLOOD_LIMITS, FloodCounter, FrameGuard
from devserver.protocols.http2_request import (
    HeadTooLarge,
    MalformedRequest,
    parse_head,
    request_scope,
)
from devserver.protocols.proxy import apply_proxy_headers
from devserver.protocols.state import ServerState
from devserver.protocols.stream import Fields, StreamCycle
from devserver.protocols.websocket_h2 import Http2WebSocket, StreamTransport

logger = logging.getLogger("devserve.server")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
RFC_WINDOW = 65535  # every window's size before SETTINGS or WINDOW_UPDATE change it
# Reads are fed to h2 in slices; after READ_BUDGET seconds the rest waits for the next loop pass
# (as protocols/websocket.py does), so a read of thousands of tiny frames cannot hold the loop.
SLICE = 65536
READ_BUDGET = 0.002
TINY_WINDOW_UPDATE = 1024  # bytes: a WINDOW_UPDATE smaller than this counts as a cheap frame
ENCODER_TABLE_SIZE = 4096  # bytes: our HPACK encoder's table, whatever larger the client allows
SEND_CHUNK = 65536  # a large body is written, and the socket's backlog heeded, this often
DRAIN_GRACE = 0.25  # seconds a connection stays open after its graceful GOAWAY when idle
GOAWAY_ROUND_TRIP = 1.0  # the longest wait for the drain's PING to come back
DRAIN_PING = b"draining"  # the opaque data of that PING
KEEPALIVE_PING = b"alive?\x00\x00"  # and of a keepalive one
MAX_STREAM_ID = 2**31 - 1

_CONFIG = h2.config.H2Configuration(
    client_side=False,
    header_encoding=None,
    # http2_request.py applies RFC 9113 section 8 itself, as stream errors: h2's checks would
    # end the whole connection for one malformed request.
    validate_inbound_headers=False,
    normalize_inbound_headers=False,
    # stream.py lower-cases and checks what the app sends, and drops connection-specific fields.
    validate_outbound_headers=False,
    normalize_outbound_headers=False,
)


_State = h2.connection.ConnectionState
_Input = h2.connection.ConnectionInputs


class _StateMachine(h2.connection.H2ConnectionStateMachine):
    """h2's connection state machine, except that a GOAWAY from the client closes nothing.

    h2 moves to CLOSED on it and then refuses every frame: the DATA that ends a stream in flight,
    read with the GOAWAY, and the responses the client still waits for, which RFC 9113 6.8 lets
    finish. HTTP2Protocol refuses new streams itself once the client went away.
    """

    _transitions = {
        **h2.connection.H2ConnectionStateMachine._transitions,
        (_State.IDLE, _Input.RECV_GOAWAY): (None, _State.IDLE),
        (_State.SERVER_OPEN, _Input.RECV_GOAWAY): (None, _State.SERVER_OPEN),
    }


class HTTP2Protocol(asyncio.Protocol):
    """One client connection speaking HTTP/2."""

    def __init__(
        self,
        state: ServerState,
        client: tuple[str, int] | None,
        server: tuple[str, int | None] | None,
        scheme: str,
        trusted_proxy: bool,
    ) -> None:
        self.state = state
        self.settings = settings = state.settings
        self.loop = asyncio.get_running_loop()
        self.client = client
        self.server = server
        self.scheme = scheme
        self.trusted_proxy = trusted_proxy
        self.h2 = h2.connection.H2Connection(config=_CONFIG)
        self.h2.state_machine = _StateMachine()
        codes = h2.settings.SettingCodes
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                codes.MAX_CONCURRENT_STREAMS: settings.h2_max_concurrent_streams,
                codes.MAX_HEADER_LIST_SIZE: settings.max_header_size,
                # A smaller window only by the update below: a client may send a default
                # window's worth on each stream before it has read these (RFC 9113 6.9.3).
                codes.INITIAL_WINDOW_SIZE: max(settings.h2_stream_window, RFC_WINDOW),
                codes.MAX_FRAME_SIZE: settings.h2_max_frame_size,
                codes.ENABLE_CONNECT_PROTOCOL: 1 if settings.websocket else 0,
            },
        )
        self.h2.decoder.max_header_list_size = settings.max_header_size
        self.streams: dict[int, StreamCycle] = {}
        self.websockets: dict[int, StreamTransport] = {}  # streams carrying a WebSocket
        self.starting: list[StreamCycle] = []  # opened in this read: their apps start after it
        self.flush_pending = False
        self.unflushed = 0  # DATA bytes given to h2 since the last write
        self.closed = False
        self.goaway_sent = False
        self.peer_gone = False  # the client sent GOAWAY: no more streams will come
        self.last_stream_id = MAX_STREAM_ID  # after our final GOAWAY: streams above it are refused
        self.final_goaway: asyncio.TimerHandle | None = None
        self.draining = False  # the final GOAWAY is sent: close once the streams are done
        self.keep_idle = 0.0
        self.idle_since = state.ticks
        self.read_tick = state.ticks  # when the client last sent anything
        self.ping_tick: int | None = None  # when our keepalive PING went, until its answer
        self.fresh = True  # no stream has been opened on it yet
        self.running = 0  # streams (and WebSockets) of this connection whose app runs
        self.floods = FloodCounter()
        self.backlog = b""
        self.feeding: asyncio.Handle | None = None
        self.settings_seen = False  # the client's preface ends with SETTINGS (RFC 9113 3.4)
        # a header block's encoded size is about its decoded size: twice the list's limit
        self.frame_guard = FrameGuard(
            settings.h2_max_frame_size, 2 * settings.max_header_size, len(PREFACE)
        )
        self._handlers: dict[type, Any] = {
            h2.events.RequestReceived: self._on_request,
            h2.events.DataReceived: self._on_data,
            h2.events.StreamEnded: self._on_stream_ended,
            h2.events.StreamReset: self._on_stream_reset,
            h2.events.WindowUpdated: self._on_window_updated,
            h2.events.RemoteSettingsChanged: self._on_settings,
            h2.events.PingReceived: self._on_ping,
            h2.events.PingAckReceived: self._on_ping_ack,
            h2.events.PriorityUpdated: self._on_priority,
            h2.events.UnknownFrameReceived: self._on_unknown_frame,
            h2.events.ConnectionTerminated: self._on_goaway,
            h2.events.TrailersReceived: self._on_trailers,
        }

    # ------------------------------------------------------------------ the handover
    def start(self, transport: asyncio.Transport, data: bytes) -> None:
        """Take over `transport` (its first bytes `data`, the preface among them) and answer
        with our SETTINGS."""
        self.transport = transport
        self.flow = FlowControl(transport)
        state = self.state
        state.connections.add(self)
        self.h2.initiate_connection()
        if self.settings.h2_stream_window < RFC_WINDOW:  # applied once the client acknowledges it
            stream_window = h2.settings.SettingCodes.INITIAL_WINDOW_SIZE
            self.h2.update_settings({stream_window: self.settings.h2_stream_window})
        window = self.settings.h2_connection_window
        if window > RFC_WINDOW:
            self.h2.increment_flow_control_window(window - RFC_WINDOW)
        self._flush()
        if state.shutting_down:  # accepted just before the listener closed: still answer it
            state.idle.clear()
            self.shutdown(state.keep_idle)
        if data:
            self.data_received(data)

    # ------------------------------------------------------------------ asyncio callbacks
    def data_received(self, data: bytes) -> None:
        self.read_tick = self.state.ticks
        if self.backlog:  # reading is paused, but a transport may hand over what it had read
            self.backlog += data
            return
        started = time.perf_counter()
        size = len(data)
        if size <= SLICE:
            self._receive(data)
        else:
            at = 0
            while at < size and not self.closed:
                self._receive(data[at : at + SLICE])
                at += SLICE
                if at < size and (
                    self.flow.write_paused or time.perf_counter() - started > READ_BUDGET
                ):
                    self.backlog = data[at:]
                    break
        if self.backlog and not self.closed:
            self.flow.pause_reading()
            if self.feeding is None and not self.flow.write_paused:
                self.feeding = self.loop.call_soon(self._continue)

    def _continue(self) -> None:
        self.feeding = None
        data, self.backlog = self.backlog, b""
        if data and not self.closed:
            self.data_received(data)
        if self.feeding is None and not self.backlog and not self.flow.write_paused:
            self.flow.resume_reading()

    def _receive(self, data: bytes) -> None:
        refused = self.frame_guard.check(data)
        if refused is not None:
            self._fail(*refused)
            return
        if self.flush_pending:
            # h2 drops what it has queued when it reads a GOAWAY: responses go out first.
            self._flush()
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._connection_error(exc)
            return
        if not events:
            return
        if not self.settings_seen:
            if type(events[0]) is not h2.events.RemoteSettingsChanged:
                self.h2.clear_outbound_data_buffer()  # no answer to what came instead
                self._fail(ErrorCodes.PROTOCOL_ERROR, "the preface is not followed by SETTINGS")
                return
            self.settings_seen = True
        handlers = self._handlers
        for event in events:
            handler = handlers.get(type(event))
            if handler is not None:
                handler(event)
            if self.closed:
                return
        if self.starting:
            starting, self.starting = self.starting, []
            start = self.state.start
            for stream in starting:
                if not stream.disconnected:  # reset in the same read: its app never starts
                    self.app_started(stream)
                    start(stream)
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.state.forget(self)
        if self.feeding is not None:
            self.feeding.cancel()
            self.feeding = None
        self.backlog = b""
        streams, self.streams = self.streams, {}
        for stream in streams.values():
            stream.disconnect()
        self._lose_websockets()
        self.flow.resume_writing()
        if self.state.shutting_down:
            self.state.check_idle()

    def pause_writing(self) -> None:
        self.flow.pause_writing()
        self.flow.writes_paused_at(self.state.ticks)
        # What a client sends makes us write (acknowledgements, responses): one that does not
        # read would otherwise grow the write buffer without bound.
        self.flow.pause_reading()
        for websocket in list(self.websockets.values()):
            if websocket.protocol is not None:
                websocket.protocol.pause_writing()

    def resume_writing(self) -> None:
        self.flow.resume_writing()
        for websocket in list(self.websockets.values()):
            if websocket.protocol is not None and not websocket.write_paused:
                websocket.protocol.resume_writing()
        if self.backlog:
            if self.feeding is None:
                self.feeding = self.loop.call_soon(self._continue)
        elif not self.closed:
            self.flow.resume_reading()

    # ------------------------------------------------------------------ h2 events
    def _on_request(self, event: h2.events.RequestReceived) -> None:
        stream_id = event.stream_id
        settings = self.settings
        if (
            stream_id > self.last_stream_id
            or self.peer_gone
            # Apps of streams the client has reset still run: they count against the limit,
            # or a client could start any number by resetting each (CVE-2023-44487).
            or self.running >= settings.h2_max_concurrent_streams
        ):
            self._reset(stream_id, ErrorCodes.REFUSED_STREAM)  # safe to retry
            self._count("refused streams")
            return
        state = self.state
        try:
            head = parse_head(
                event.headers,  # type: ignore[arg-type]
                settings.limit_request_fields,
                settings.limit_request_field_size,
                settings.limit_request_line,
                settings.websocket,
            )
            scope = request_scope(
                head,
                self.scheme,
                self.client,
                self.server,
                settings.root_path,
                state.lifespan_state.copy(),
            )
        except MalformedRequest as exc:
            self._refuse(stream_id, str(exc))
            return
        except HeadTooLarge as exc:
            self._answer_too_large(stream_id, exc, not event.stream_ended)
            return
        if self.trusted_proxy:
            apply_proxy_headers(
                scope, settings.trusted_peers, settings.forwarded_host, settings.forwarded_headers
            )
        if head.protocol:
            if head.protocol != b"websocket":
                self._refuse(stream_id, f"unknown :protocol {head.protocol[:40]!r}")
                return
            # registered first: its handshake may end the stream at once (a refusal, a 503)
            transport = self.websockets[stream_id] = StreamTransport(self, stream_id)
            Http2WebSocket(state, transport, scope).start(b"")
            self.fresh = False
            return
        stream = StreamCycle(
            self,
            stream_id,
            scope,
            perf_counter() if state.timed else 0.0,
            bool(event.stream_ended),
        )
        self.streams[stream_id] = stream
        self.starting.append(stream)
        self.fresh = False

    def _on_data(self, event: h2.events.DataReceived) -> None:
        stream = self.streams.get(event.stream_id)  # type: ignore[arg-type]
        size = event.flow_controlled_length or 0
        if not event.data and not event.stream_ended:
            self._count("empty data frames")
        if stream is None:
            websocket = self.websockets.get(event.stream_id)  # type: ignore[arg-type]
            if websocket is not None:
                websocket.received(event.data or b"", size)
                return
        if stream is None or stream.response is Response.DONE:
            if size:  # nobody will read it: give the window back now
                self.h2.acknowledge_received_data(size, event.stream_id)  # type: ignore[arg-type]
            return
        stream.feed_body(event.data or b"", size)

    def _on_stream_ended(self, event: h2.events.StreamEnded) -> None:
        stream = self.streams.get(event.stream_id)  # type: ignore[arg-type]
        if stream is not None:
            stream.end_body()
        elif event.stream_id in self.websockets:  # the client's half is closed: as a TCP FIN
            self.close_websocket(self.websockets[event.stream_id])  # type: ignore[index]

    def _on_trailers(self, event: h2.events.TrailersReceived) -> None:
        pass  # ASGI has no request trailers; StreamEnded follows and ends the body

    def _on_stream_reset(self, event: h2.events.StreamReset) -> None:
        self._count("stream resets")
        stream = self.streams.get(event.stream_id)  # type: ignore[arg-type]
        if stream is not None:
            self._end_stream(stream, None)
        websocket = self.websockets.pop(event.stream_id, None)  # type: ignore[arg-type]
        if websocket is not None:
            websocket.lost()
        self._maybe_idle()

    def _on_window_updated(self, event: h2.events.WindowUpdated) -> None:
        if (event.delta or 0) < TINY_WINDOW_UPDATE:
            # each may wake every send waiting for the window, to send a few bytes
            self._count("tiny window updates")
            if self.closed:
                return
        if event.stream_id:
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.window_opened()
            elif event.stream_id in self.websockets:
                self.pump(self.websockets[event.stream_id])
        else:
            self._windows_opened()

    def _on_settings(self, event: h2.events.RemoteSettingsChanged) -> None:
        self._count("settings frames")
        changed = event.changed_settings
        if h2.settings.SettingCodes.INITIAL_WINDOW_SIZE in changed:
            self._windows_opened()
        if h2.settings.SettingCodes.HEADER_TABLE_SIZE in changed:
            # The client's table size is what our HPACK encoder may use, not must: hpack keeps
            # every distinct response field up to it and searches them all for each field, so
            # a client offering 4 GiB would make each response cost more than the last.
            encoder = self.h2.encoder
            if encoder.header_table_size > ENCODER_TABLE_SIZE:
                encoder.header_table_size = ENCODER_TABLE_SIZE
                # and the client hears only of that size: the larger one was never used
                encoder.table_size_changes = [
                    size for size in encoder.table_size_changes if size <= ENCODER_TABLE_SIZE
                ]

    def _on_ping(self, event: h2.events.PingReceived) -> None:
        self._count("pings")  # h2 has queued the acknowledgement

    def _on_priority(self, event: h2.events.PriorityUpdated) -> None:
        self._count("priority frames")  # streams are served in the order they come

    def _on_unknown_frame(self, event: h2.events.UnknownFrameReceived) -> None:
        self._count("unknown frames")

    def _on_goaway(self, event: h2.events.ConnectionTerminated) -> None:
        """The client is done with the connection: finish its open streams, then close. After
        an error code, nothing it has open will be read: close now."""
        self.peer_gone = True
        if event.error_code != ErrorCodes.NO_ERROR or not (self.streams or self.websockets):
            self._close()

    def _windows_opened(self) -> None:
        for stream in self.streams.values():
            stream.window_opened()
        for websocket in list(self.websockets.values()):
            self.pump(websocket)

    # ------------------------------------------------------------------ ending streams
    def _reset(self, stream_id: int, code: ErrorCodes) -> None:
        """RST_STREAM, unless the stream or the connection is already gone."""
        if self.closed:
            return
        with contextlib.suppress(h2.exceptions.StreamClosedError):
            self.h2.reset_stream(stream_id, code)
        self.flush_soon()

    def _end_stream(self, stream: StreamCycle, code: ErrorCodes | None) -> None:
        """End `stream` before its response did (reset with `code`, or by the client: None):
        forget it, give back the window of its unread body; its app sees http.disconnect."""
        if code is not None:
            self._reset(stream.stream_id, code)
        self.streams.pop(stream.stream_id, None)
        stream.disconnect()
        self._release(stream)

    def app_started(self, session: StreamCycle | Http2WebSocket) -> None:
        session.counted = True
        self.running += 1

    def app_finished(self, session: StreamCycle | Http2WebSocket) -> None:
        """`session`'s app returned (or never ran: a 503): one more may start."""
        if session.counted:
            session.counted = False
            self.running -= 1

    # ------------------------------------------------------------------ errors and defences
    def _refuse(self, stream_id: int, detail: str) -> None:
        """A malformed request: reset its stream (RFC 9113 8.1.1), serve the others."""
        logger.warning("malformed HTTP/2 request from %s: %s", self._peer(), detail)
        self.state.count_rejected()
        # Each costs a parse, a reset and a log line, where over HTTP/1.1 it would cost the
        # client its connection ("MadeYouReset", CVE-2025-8671): past a rate, GOAWAY.
        self._count("malformed requests")
        self._reset(stream_id, ErrorCodes.PROTOCOL_ERROR)

    def _answer_too_large(self, stream_id: int, exc: HeadTooLarge, body_follows: bool) -> None:
        """431 (or 414) on the stream, as HTTP/1.1 answers the same head."""
        phrase = http.HTTPStatus(exc.status).phrase
        logger.warning("%d %s from %s: %s", exc.status, phrase, self._peer(), exc)
        self.state.count_rejected()
        self._count("malformed requests")  # as cheap to send, as costly to answer
        if self.closed:
            return
        fields: Fields = [(b":status", b"%d" % exc.status), *self.state.default_fields]
        with contextlib.suppress(h2.exceptions.StreamClosedError):
            self.h2.send_headers(stream_id, fields, end_stream=True)
        if body_follows:  # no need to send it (RFC 9113 8.1)
            self._reset(stream_id, ErrorCodes.NO_ERROR)

    def _count(self, kind: str) -> None:
        """Count one cheap frame; past its FLOOD_LIMITS rate, end the connection."""
        if self.floods.over(kind, self.loop.time()):
            logger.warning(
                "closing the HTTP/2 connection from %s: more than %d %s in a second",
                self._peer(),
                FLOOD_LIMITS[kind],
                kind,
            )
            self.state.count_rejected()
            self._abort(ErrorCodes.ENHANCE_YOUR_CALM)

    def _fail(self, code: ErrorCodes, detail: str) -> None:
        logger.warning("HTTP/2 connection error from %s: %s", self._peer(), detail)
        self.state.count_rejected()
        self._abort(code)

    def _connection_error(self, exc: h2.exceptions.ProtocolError) -> None:
        """h2 found a connection error (a bad frame, a flow-control violation, too many
        streams, an oversized header list): it has queued GOAWAY; send it and close."""
        logger.warning(
            "HTTP/2 connection error from %s: %s: %s", self._peer(), type(exc).__name__, exc
        )
        self.state.count_rejected()
        if self.h2.state_machine.state is not _State.CLOSED:  # h2 raised before its GOAWAY
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self.h2.close_connection(error_code=ErrorCodes.PROTOCOL_ERROR)
        self._close()

    def _abort(self, code: ErrorCodes) -> None:
        self.h2.close_connection(error_code=code, last_stream_id=self.h2.highest_inbound_stream_id)
        self._close()

    def _close(self) -> None:
        """Write what h2 has queued (GOAWAY among it) and close; open streams are cut."""
        if self.closed:
            return
        self._flush()
        self.closed = True
        self.backlog = b""
        for stream in self.streams.values():
            stream.disconnect()
        self._lose_websockets()
        self.flow.resume_writing()  # a send waiting to drain wakes, and finds its client gone
        self.transport.close()

    def _peer(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "unix socket"

    # ------------------------------------------------------------------ writing (StreamCarrier)
    def _flush(self) -> None:
        self.flush_pending = False
        self.unflushed = 0
        data = self.h2.data_to_send()
        if data and not self.transport.is_closing():
            self.transport.write(data)

    def flush_soon(self) -> None:
        """Write on the next loop pass: the responses of many streams then leave in one write."""
        if not self.flush_pending:
            self.flush_pending = True
            self.loop.call_soon(self._flush)

    def send_head(self, stream: StreamCycle, fields: Fields, end: bool) -> None:
        if self.closed or stream.disconnected:
            return
        try:
            self.h2.send_headers(stream.stream_id, fields, end_stream=end)
        except h2.exceptions.StreamClosedError:  # reset by the client in the meantime
            stream.disconnect()
            return
        self.flush_soon()

    async def send_body(self, stream: StreamCycle, data: bytes, end: bool) -> None:
        """DATA frames as the peer's windows allow; every SEND_CHUNK bytes they are written and,
        if the socket is backed up, the send waits for it to drain (and the loop gets a turn)."""
        connection = self.h2
        stream_id = stream.stream_id
        view = memoryview(data)
        at, size = 0, len(data)
        unflushed = 0  # of this send: a long body is written every SEND_CHUNK
        waiting_since: int | None = None  # the tick since which the window let nothing out
        while not stream.disconnected and not self.closed:
            try:
                window = connection.local_flow_control_window(stream_id)
            except h2.exceptions.StreamClosedError:
                stream.disconnect()
                break
            room = min(window, connection.max_outbound_frame_size)
            if size - at <= room:
                connection.send_data(stream_id, view[at:] if at else data, end_stream=end)
                break
            if room > 0:
                waiting_since = None
                connection.send_data(stream_id, view[at : at + room])
                at += room
                unflushed += room
                if unflushed >= SEND_CHUNK:
                    unflushed = 0
                    self._flush()
                    if self.flow.write_paused:
                        await self.flow.drain()
                continue
            self.flush_soon()  # what fitted goes now; the rest waits for WINDOW_UPDATE
            if waiting_since is None:  # a WINDOW_UPDATE that opens no room is no progress
                waiting_since = stream.window_tick = self.state.ticks
            stream.window_waiter = self.loop.create_future()
            try:
                await stream.window_waiter
            finally:
                stream.window_waiter = None
        self.unflushed += size  # of all sends since the last write
        if self.unflushed >= SEND_CHUNK:
            self._flush()  # and heed the socket now: an app may send on without a pause
        else:
            self.flush_soon()
        if self.flow.write_paused:
            await self.flow.drain()
        if stream.disconnected and not end:
            raise ClientDisconnected("client disconnected while the response was sent")

    def send_final_data(self, stream: StreamCycle, data: bytes) -> None:
        """The server's own short answer (500, 503, 408): sent now if the peer's windows take
        it, else the stream is reset (a client that opens no window gets no answer)."""
        if self.closed or stream.disconnected:
            return
        try:
            window = self.h2.local_flow_control_window(stream.stream_id)
            if len(data) <= min(window, self.h2.max_outbound_frame_size):
                self.h2.send_data(stream.stream_id, data, end_stream=True)
            else:
                self._reset(stream.stream_id, ErrorCodes.INTERNAL_ERROR)
                stream.disconnected = True  # ended: nothing more is sent on it
        except h2.exceptions.StreamClosedError:
            stream.disconnect()
        self.flush_soon()

    def send_trailers(self, stream: StreamCycle, fields: Fields) -> None:
        if self.closed or stream.disconnected:
            return
        try:
            self.h2.send_headers(stream.stream_id, fields, end_stream=True)
        except h2.exceptions.StreamClosedError:
            stream.disconnect()
        self.flush_soon()

    def consumed(self, stream: StreamCycle, size: int) -> None:
        if not self.closed:
            self.h2.acknowledge_received_data(size, stream.stream_id)
            self.flush_soon()

    def reset(self, stream: StreamCycle) -> None:
        if not stream.disconnected:
            self._reset(stream.stream_id, ErrorCodes.INTERNAL_ERROR)
            stream.disconnected = True

    def response_complete(self, stream: StreamCycle) -> None:
        """`stream`'s response is complete (or reset): count and log it, free what it held."""
        state = self.state
        self.streams.pop(stream.stream_id, None)
        state.requests += 1
        request_done = state.request_done
        if request_done is not None:
            request_done(stream)
        if state.access_logger is not None:
            state.log_access(self, stream)
        if not stream.body_complete and not stream.disconnected:
            # Answered before the whole body came: ask the client to stop sending it, without
            # calling it an error (RFC 9113 8.1).
            self._reset(stream.stream_id, ErrorCodes.NO_ERROR)
        self._release(stream)
        self._maybe_idle()

    def _release(self, stream: StreamCycle) -> None:
        """Give back the window of body bytes nobody will read now."""
        stream.body = b""
        if stream.unacknowledged and not self.closed:
            size, stream.unacknowledged = stream.unacknowledged, 0
            self.h2.acknowledge_received_data(size, stream.stream_id)
            self.flush_soon()

    def _maybe_idle(self) -> None:
        if self.streams or self.websockets:
            return
        self.idle_since = self.state.ticks
        if (self.draining or self.peer_gone) and not self.closed:
            self.loop.call_later(max(self.keep_idle, DRAIN_GRACE), self._close)

    # ------------------------------------------------------------------ WebSockets (RFC 8441)
    def send_websocket_head(self, websocket: StreamTransport, fields: Fields, end: bool) -> None:
        if self.closed or websocket.ended:
            return
        try:
            self.h2.send_headers(websocket.stream_id, fields, end_stream=end)
        except h2.exceptions.StreamClosedError:
            end = True
        websocket.head_sent = True
        self.flush_soon()
        if end:
            websocket.ended = True
            self._websocket_ended(websocket)

    def pump(self, websocket: StreamTransport) -> None:
        """Send what the WebSocket wrote as far as the peer's windows allow; END_STREAM after
        the last of it once it closed."""
        if websocket.ended or self.closed:
            return
        connection, stream_id, pending = self.h2, websocket.stream_id, websocket.pending
        try:
            while pending:
                window = connection.local_flow_control_window(stream_id)
                size = min(window, connection.max_outbound_frame_size, len(pending))
                if size <= 0:
                    break
                connection.send_data(stream_id, bytes(pending[:size]))
                del pending[:size]
            if websocket.closing and not pending:
                connection.end_stream(stream_id)
                websocket.ended = True
        except h2.exceptions.StreamClosedError:
            websocket.ended = True
        self.flush_soon()
        websocket.sent()
        if websocket.ended:
            self._websocket_ended(websocket)

    def acknowledge(self, stream_id: int, size: int) -> None:
        if size and not self.closed:
            self.h2.acknowledge_received_data(size, stream_id)
            self.flush_soon()

    def close_websocket(self, websocket: StreamTransport) -> None:
        """The client ended its half of the stream: the WebSocket is over; end ours."""
        protocol, websocket.protocol = websocket.protocol, None
        if protocol is not None:
            protocol.connection_lost(None)
        if not websocket.head_sent:  # gone before its handshake was answered: no DATA first
            self.reset_websocket(websocket)
            return
        websocket.closing = True
        self.pump(websocket)

    def reset_websocket(self, websocket: StreamTransport) -> None:
        if not websocket.ended:
            self._reset(websocket.stream_id, ErrorCodes.CANCEL)
        websocket.ended = True
        self._websocket_ended(websocket)

    def _websocket_ended(self, websocket: StreamTransport) -> None:
        self.websockets.pop(websocket.stream_id, None)
        websocket.lost()
        self._maybe_idle()

    def _lose_websockets(self) -> None:
        websockets, self.websockets = self.websockets, {}
        for websocket in websockets.values():
            websocket.lost()

    # ------------------------------------------------------------------ timers and shutdown
    def is_idle(self) -> bool:
        """No stream is open (--limit-connections may close it)."""
        return not self.streams and not self.websockets and not self.closed

    def close_idle(self) -> None:
        """Close at once, with a GOAWAY that says no stream was left unanswered."""
        if not self.closed:
            self._flush()
            self.transport.write(_goaway(self.h2.highest_inbound_stream_id))
            self._close()

    def on_tick(self) -> None:
        """Close an idle or stalled connection; end streams whose body or window stopped
        coming; keep the WebSockets on it alive."""
        state, settings = self.state, self.settings
        if self.flow.write_paused and self._send_stalled():
            return  # checked even once closed: a close waits for a buffer that never drains
        if self.closed or self._keepalive_failed():
            return
        for websocket in list(self.websockets.values()):
            if websocket.protocol is not None:
                websocket.protocol.on_tick()
        if not self.streams:
            if not self.websockets and state.timed_out(
                self.idle_since, settings.timeout_keep_alive
            ):
                self.shutdown()
            return
        for stream in list(self.streams.values()):
            if stream.window_waiter is not None and state.timed_out(
                stream.window_tick, settings.timeout_send
            ):
                logger.warning(
                    "resetting HTTP/2 stream %d from %s: its window stayed shut for %gs",
                    stream.stream_id,
                    self._peer(),
                    settings.timeout_send,
                )
                self._end_stream(stream, ErrorCodes.FLOW_CONTROL_ERROR)
            elif stream.waits_for_body() and state.timed_out(
                stream.wait_tick, settings.timeout_request_body
            ):
                logger.warning(
                    "408 for %s: no request body bytes for %gs",
                    stream.describe(),
                    settings.timeout_request_body,
                )
                state.count_rejected()
                if stream.response is Response.START:
                    stream.answer(408, "Request Timeout\n")
                    stream.disconnect()
                else:
                    self._end_stream(stream, ErrorCodes.CANCEL)
        self._maybe_idle()

    def _send_stalled(self) -> bool:
        """Abort the connection when its client has taken none of what waits for it for
        --timeout-send; any progress starts the count again (as HTTP/1.1's)."""
        stalled_since = self.flow.stalled_since(self.state.ticks)
        if not self.state.timed_out(stalled_since, self.settings.timeout_send):
            return False
        logger.warning(
            "closing the HTTP/2 connection from %s: it took no response bytes for %gs",
            self._peer(),
            self.settings.timeout_send,
        )
        self._hang_up()
        return True

    def _hang_up(self) -> None:
        """Abort: the client takes nothing, so a close would wait for it forever."""
        self.closed = True
        for stream in self.streams.values():
            stream.disconnect()
        self.flow.resume_writing()
        self.transport.abort()

    def shutdown(self, keep_idle: float = 0.0, fresh_grace: float = 0.0) -> None:
        """Graceful stop, in the two steps RFC 9113 6.8 advises: GOAWAY naming the highest
        stream id there can be, and a PING; once the PING comes back (one round trip: every
        stream the client opened before it saw the GOAWAY has arrived), or after
        GOAWAY_ROUND_TRIP, GOAWAY with the real last stream id. Streams up to it finish; any
        later one is refused (REFUSED_STREAM, safe to retry); then the connection closes.

        The GOAWAYs are built here rather than by h2, whose state machine would refuse to send
        the responses still owed (see the module's docstring).
        """
        if self.closed or self.goaway_sent:
            return
        for websocket in list(self.websockets.values()):
            if websocket.protocol is not None:
                websocket.protocol.shutdown(keep_idle)  # a close frame: 1012, restarting
        self._flush()
        self.goaway_sent = True
        self.keep_idle = keep_idle
        self.transport.write(_goaway(MAX_STREAM_ID))
        self.h2.ping(DRAIN_PING)
        self._flush()
        self.final_goaway = self.loop.call_later(GOAWAY_ROUND_TRIP, self._final_goaway)

    def _keepalive_failed(self) -> bool:
        """With streams open and nothing read for --h2-ping-interval, PING the client; close the
        connection if the answer is --h2-ping-timeout late (a peer gone without a word would
        otherwise hold a long response, or a WebSocket, forever)."""
        state, settings = self.state, self.settings
        if self.ping_tick is not None:
            if not state.timed_out(self.ping_tick, settings.h2_ping_timeout):
                return False
            logger.warning(
                "closing the HTTP/2 connection from %s: no answer to a PING in %gs",
                self._peer(),
                settings.h2_ping_timeout,
            )
            self._hang_up()  # it answers nothing: it would not read a GOAWAY either
            return True
        if (self.streams or self.websockets) and state.timed_out(
            self.read_tick, settings.h2_ping_interval
        ):
            self.ping_tick = state.ticks
            self.h2.ping(KEEPALIVE_PING)
            self._flush()
        return False

    def _on_ping_ack(self, event: h2.events.PingAckReceived) -> None:
        if event.ping_data == KEEPALIVE_PING:
            self.ping_tick = None
        elif event.ping_data == DRAIN_PING and self.final_goaway is not None:
            self.final_goaway.cancel()
            self._final_goaway()

    def _final_goaway(self) -> None:
        self.final_goaway = None
        if self.closed:
            return
        self._flush()
        self.last_stream_id = self.h2.highest_inbound_stream_id
        self.transport.write(_goaway(self.last_stream_id))
        self.draining = True
        if not self.streams and not self.websockets:
            self.loop.call_later(max(self.keep_idle, DRAIN_GRACE), self._close)


def _goaway(last_stream_id: int) -> bytes:
    return GoAwayFrame(stream_id=0, last_stream_id=last_stream_id, error_code=0).serialize()
