"""HTTP/1.1 connections on httptools: parse requests, hand each to a RequestCycle, in order.

One `HTTPProtocol` per connection. It owns the parser, keep-alive, pipelining (responses leave in
request order; at most PIPELINE_LIMIT requests queue, the rest of the read waits unparsed and
reading pauses), limits on the request head and on chunk
framing, the idle, header-read and body-read timers (driven by the server's tick, not by a timer
per request), making room at --limit-connections, and graceful close.
Anything malformed gets one 4xx/5xx answer and a closed connection: the parser (llhttp, strict)
rejects ambiguous framing, so no second request can ever be smuggled behind a bad one.
"""

from __future__ import annotations

import asyncio
import collections
import http
import logging
import re
from time import perf_counter
from typing import IO, Any, NoReturn

import httptools

from devserver.asgi import HTTPScope
from devserver.protocols import wire
from devserver.protocols.cycle import RequestCycle
from devserver.protocols.flow import FlowControl
from devserver.protocols.http2 import PREFACE, HTTP2Protocol
from devserver.protocols.proxy import apply_proxy_headers
from devserver.protocols.scope import http_scope
from devserver.protocols.sendfile import send_file
from devserver.protocols.state import HTTPSettings, ServerState
from devserver.protocols.websocket import WebSocketProtocol, is_websocket_upgrade

logger = logging.getLogger("devserve.server")


# Decoded once: get_method() returns bytes, and the few common methods repeat forever.
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")}


LATE_CONNECTION_GRACE = 0.5  # seconds a connection accepted during shutdown gets to send
# Bytes of framing (size line, extensions, CRLFs) a chunk may carry on average; trailers get
# --max-header-size on top. A plain chunk needs about 10.
CHUNK_FRAMING = 1024
# Parsed requests a connection may queue behind the one being answered. Each costs a RequestCycle
# and its scope (about 1.5 KB); a client that pipelines without reading its responses would
# otherwise make the server parse and queue every request of every read (8,700 per 256 KiB).
# Beyond it, the rest of the read is kept unparsed (one read at most) and reading pauses.
PIPELINE_LIMIT = 16
# The end of a request head. The parser is strict, so no head ends any other way (a bare LF is
# an error) and none is shorter than b"GET / HTTP/1.0\r\n\r\n", 18 bytes: a read this short
# ends at most PIPELINE_LIMIT heads and is parsed whole, without looking for them.
HEAD_END = b"\r\n\r\n"
SHORT_READ = PIPELINE_LIMIT * 18


class HTTPError(Exception):
    """A request the server answers itself, with `status`, before the app sees it."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


def _check_transfer_encoding(value: bytes) -> None:
    """Only `chunked`, exactly once: other codings are 501, odd lists 400 (llhttp decides the
    rest, such as Transfer-Encoding together with Content-Length)."""
    codings = [coding.strip() for coding in value.lower().split(b",")]
    if any(coding != b"chunked" for coding in codings):
        raise HTTPError(501, f"unsupported transfer-encoding {value!r}")
    if len(codings) != 1:
        raise HTTPError(400, f"invalid transfer-encoding {value!r}")


# A request line whose method is a well-formed token (upper case, as every registered method
# is; a lower-case `get` stays a 400, most likely a broken client).
_REQUEST_LINE = re.compile(rb"(?:^|\n)([A-Z][A-Z0-9_-]*) [^ \r\n]+ HTTP/[0-9]\.[0-9]\r\n")


def _invalid_method_status(data: bytes) -> int:
    """llhttp refused a method: 501 if the failed request line names a well-formed method it
    does not know (RFC 9110 9.1, an extension method), 400 if it is malformed.

    Only the error path pays for this. llhttp gives no position, so the failed line is the
    first well-formed request line in the read whose method it does not know.
    """
    for match in _REQUEST_LINE.finditer(data):
        if not _llhttp_knows(match.group(1)):
            return 501
    return 400


def _llhttp_knows(method: bytes) -> bool:
    try:
        httptools.HttpRequestParser(object()).feed_data(method + b" / HTTP/1.1\r\n")
    except httptools.HttpParserInvalidMethodError:
        return False
    except httptools.HttpParserError:
        pass
    return True


def _head_too_large(settings: HTTPSettings, size: int, fields: int) -> NoReturn:
    """Name the limit a request head (or trailer section) just broke, as a 431."""
    if size > settings.limit_request_field_size:
        detail = f"a header field larger than {settings.limit_request_field_size} bytes"
    elif fields > settings.limit_request_fields:
        detail = f"more than {settings.limit_request_fields} header fields"
    else:
        detail = f"headers larger than {settings.max_header_size} bytes"
    raise HTTPError(431, detail)


class HTTPProtocol(asyncio.Protocol):
    """One client connection speaking HTTP/1.x."""

    __slots__ = (
        "state",
        "settings",
        "loop",
        "transport",
        "flow",
        "parser",
        "client",
        "server",
        "scheme",
        "trusted_proxy",
        "url",
        "headers",
        "expect_100",
        "host_count",
        "fields",
        "in_head",
        "fresh",
        "head_tick",
        "head_size",
        "head_read",
        "chunked",
        "chunks",
        "chunk_framing",
        "idle_since",
        "parsing",
        "cycle",
        "pipeline",
        "pending_error",
        "upgrade",
        "upgrade_rest",
        "unparsed",
        "unparsed_at",
        "preface",
    )

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.settings = state.settings
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.expect_100 = False
        self.host_count = 0
        self.fields = 0  # header (then trailer) fields of the request being parsed
        self.in_head = False
        self.fresh = True  # no request has begun on it yet
        self.head_tick = 0
        self.head_size = 0
        self.head_read = 0
        self.chunked = False  # a chunked body is being parsed
        self.chunks = 0
        self.chunk_framing = 0  # bytes read for it that were not body bytes
        self.idle_since = state.ticks
        self.parsing: RequestCycle | None = None
        self.cycle: RequestCycle | None = None
        self.pipeline: collections.deque[RequestCycle] = collections.deque()
        self.pending_error: bytes | None = None
        self.upgrade: HTTPScope | None = None  # the HTTP scope of a WebSocket handshake
        self.upgrade_rest: bytes | None = None  # what followed its head, once it is all read
        self.unparsed: bytes | None = None  # a read kept back, from unparsed_at, while the
        self.unparsed_at = 0  # pipeline is full
        self.preface = b""  # the first bytes, while they may yet be the HTTP/2 preface

    # ------------------------------------------------------------------ asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.flow = FlowControl(self.transport)
        self.client = _address(transport.get_extra_info("peername"))
        self.server = _address(transport.get_extra_info("sockname"), unix_path=True)
        self.scheme = "https" if transport.get_extra_info("sslcontext") else "http"
        peer_host = self.client[0] if self.client else None
        self.trusted_proxy = (
            self.settings.proxy_headers and peer_host in self.settings.trusted_peers
        )
        state = self.state
        state.connections.add(self)
        if len(state.connections) >= self.settings.limit_connections:
            make_room(state, self)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
            self._switch_to_http2(b"")  # TLS chose HTTP/2 (ALPN): no HTTP/1.1 is spoken here
            return
        if state.shutting_down:  # accepted just before the listener closed: still answer it
            state.idle.clear()
            self.shutdown(max(state.keep_idle, LATE_CONNECTION_GRACE))

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.forget(self)
        for cycle in (self.cycle, self.parsing, *self.pipeline):
            if cycle is not None:
                cycle.disconnect()
        self.pipeline.clear()
        self.unparsed = None
        self.flow.resume_writing()
        if self.state.shutting_down:
            self.state.check_idle()

    def pause_writing(self) -> None:
        self.flow.pause_writing()
        self.flow.writes_paused_at(self.state.ticks)

    def resume_writing(self) -> None:
        self.flow.resume_writing()

    def data_received(self, data: bytes) -> None:
        if self.fresh and not self.in_head:  # the connection's first bytes: which protocol?
            first = self._first_bytes(data)
            if first is None:
                return
            data = first
        if self.unparsed is not None:  # read while a read is kept back: it goes behind it
            self.unparsed = self.unparsed[self.unparsed_at :] + data
            self.unparsed_at = 0
            self.flow.pause_reading()
        elif len(data) <= SHORT_READ and not self.pipeline:
            self._parse(data, 0, len(data))
        else:
            self._parse_bounded(data, 0)

    def _first_bytes(self, data: bytes) -> bytes | None:
        """Hand the connection to HTTP/2 if it opens with the preface (prior knowledge); None
        while the bytes so far could still be the preface, else what to parse as HTTP/1.1."""
        settings = self.settings
        if not self.preface and data[:1] != b"P":  # not "PRI *": surely HTTP/1.x
            if not settings.http1:
                self._reject(505, "this server speaks HTTP/2 only (--http 2)")
                return None
            return data
        data = self.preface + data
        self.preface = b""
        if settings.http2:
            if data.startswith(PREFACE):
                self._switch_to_http2(data)
                return None
            if len(data) < len(PREFACE) and PREFACE.startswith(data):
                self.preface = data  # a preface cut across reads: wait for the rest
                return None
        elif data.startswith(PREFACE[: len(data)]) and len(data) >= len(b"PRI * HTTP/2"):
            self._reject(505, "HTTP/2 is off (--http 1)")
            return None
        if not settings.http1:
            self._reject(505, "this server speaks HTTP/2 only (--http 2)")
            return None
        return data

    def _switch_to_http2(self, data: bytes) -> None:
        """Hand the connection to an HTTP2Protocol; `data` begins with the preface."""
        self.state.connections.discard(self)
        http2 = HTTP2Protocol(self.state, self.client, self.server, self.scheme, self.trusted_proxy)
        self.transport.set_protocol(http2)
        http2.start(self.transport, data)

    def _parse_bounded(self, data: bytes, start: int) -> bool:
        """Parse data[start:] in slices that each end no more request heads than the pipeline
        has room for; once it is full, keep the rest unparsed and pause reading.

        Returns False once nothing more may be parsed (an error, an upgrade).
        """
        while start < len(data):
            room = PIPELINE_LIMIT - len(self.pipeline)
            if room <= 0:
                self.unparsed, self.unparsed_at = data, start
                self.flow.pause_reading()
                return True
            if start == 0 and self.in_head:
                # The head in progress may end in the first 3 bytes, with a HEAD_END begun in
                # the last read: it takes a place, or is fed those bytes alone if it needs the
                # last one. Later slices look back 3 bytes for a HEAD_END they cut.
                room -= 1
            if room:
                stop = _after_heads(data, max(start - 3, 0) + self._body_left(), room)
            else:
                stop = min(3, len(data))
            if not self._parse(data, start, stop):
                return False
            start = stop
        return True

    def _body_left(self) -> int:
        """Bytes still to come of the Content-Length body being parsed, else 0. No head ends
        inside it, so the search for HEAD_END skips it rather than cut it into slices."""
        cycle = self.parsing
        if cycle is None or cycle.body_complete or self.in_head or self.chunked:
            return 0
        for name, value in self.headers:
            if name == b"content-length":
                # on_body counts a body down in chunk_framing (only chunked ones count it up)
                return max(int(value) + self.chunk_framing, 0) if value.isdigit() else 0
        return 0

    def _parse(self, data: bytes, start: int, stop: int) -> bool:
        """Feed data[start:stop] to the parser; False once nothing more may be parsed."""
        chunk = data[start:stop]
        # A slice that begins inside a head (or a chunked body) counts wholly towards that
        # head's (or body's framing) bound, checked after the feed: the parser buffers a partial
        # line. One that ends it stops counting, so pipelined requests behind it are not counted.
        if self.in_head:
            self.head_read += len(chunk)
        elif self.chunked:
            self.chunk_framing += len(chunk)
        try:
            self.parser.feed_data(chunk)
        except httptools.HttpParserUpgrade as exc:
            if self.upgrade is None:
                self._refuse_upgrade()
            else:
                self.upgrade_rest = data[start + exc.args[0] :] if exc.args else b""
                self.flow.pause_reading()
                if self.cycle is None:
                    self._switch_to_websocket()
            return False
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if not isinstance(cause, HTTPError):
                raise
            self._reject(cause.status, str(cause))
            return False
        except httptools.HttpParserInvalidMethodError as exc:
            self._reject(_invalid_method_status(chunk), str(exc))
            return False
        except httptools.HttpParserError as exc:
            self._reject(400, str(exc))
            return False
        if self.in_head:
            settings = self.settings
            if self.head_read > 2 * settings.max_header_size + settings.limit_request_line:
                self._reject(431, "request head too large")
                return False
        elif self.chunked:
            return self._check_chunk_framing()
        return True

    def _parse_kept(self) -> None:
        """The pipeline has drained: parse the read kept back, then read on if it all was.

        Called from the loop, never from inside the parser or an app's send().
        """
        data, self.unparsed = self.unparsed, None
        if data is None or self.transport.is_closing():
            return
        if (
            self._parse_bounded(data, self.unparsed_at)
            and self.unparsed is None
            and not self.pipeline
            and not self.transport.is_closing()
        ):
            self.flow.resume_reading()

    def _read_on(self) -> None:
        """The pipeline is empty: parse the read kept back, if any, else read on."""
        if self.unparsed is None:
            self.flow.resume_reading()
        else:
            self.loop.call_soon(self._parse_kept)

    def _check_chunk_framing(self) -> bool:
        """Bound a chunked body's framing (size lines, chunk extensions, trailers): llhttp
        skips extensions without a limit and httptools buffers a trailer line whole."""
        framing = self.chunk_framing
        if framing < 0:  # body bytes of the slice its head ended in, which was not counted
            self.chunk_framing = 0
        elif framing > self.settings.max_header_size + (self.chunks + 1) * CHUNK_FRAMING:
            self._reject(400, "chunk extensions or trailers too large")
            return False
        return True

    # ------------------------------------------------------------------ httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.expect_100 = False
        self.host_count = 0
        self.fields = 0
        self.in_head = True
        self.fresh = False
        self.head_tick = self.state.ticks
        self.head_size = 0
        self.head_read = 0
        self.chunked = False

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.settings.limit_request_line:
            raise HTTPError(414, f"request target longer than {self.settings.limit_request_line}")

    def on_header(self, name: bytes, value: bytes) -> None:
        settings = self.settings
        size = len(name) + len(value)
        self.head_size += size + 4
        self.fields += 1
        if (
            self.head_size > settings.max_header_size
            or size > settings.limit_request_field_size
            or self.fields > settings.limit_request_fields
        ):
            _head_too_large(settings, size, self.fields)
        name = name.lower()
        if not self.in_head:
            return  # a trailer field of a chunked body: never mixed into the request's headers
        if value[-1:] in (b" ", b"\t"):
            value = value.rstrip(b" \t")  # llhttp strips leading whitespace only
        if name == b"host":
            self.host_count += 1
        elif name == b"transfer-encoding":
            _check_transfer_encoding(value)
            self.chunked = True
        elif name == b"expect" and value.lower() == b"100-continue":
            self.expect_100 = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.fields = 0  # trailers, if any, get a section (and a field count) of their own
        self.chunks = self.chunk_framing = 0
        parser = self.parser
        state = self.state
        version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            raise HTTPError(505, f"HTTP/{version} is not supported")
        if self.host_count != 1 and (version == "1.1" or self.host_count):
            raise HTTPError(400, f"{self.host_count} Host headers (HTTP/1.1 needs exactly one)")
        if version == "1.0" and any(name == b"transfer-encoding" for name, _ in self.headers):
            # RFC 9112 6.1: its framing is faulty. An HTTP/1.0 hop may not know chunked and
            # read the body another way, so what follows on this connection is never served.
            raise HTTPError(400, "Transfer-Encoding in an HTTP/1.0 request")
        try:
            method = parser.get_method()
            scope = http_scope(
                _METHODS.get(method) or method.decode("ascii"),
                version,
                self.url,
                self.headers,
                self.scheme,
                self.client,
                self.server,
                self.settings.root_path,
                state.lifespan_state.copy(),
            )
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        if self.trusted_proxy:
            settings = self.settings
            apply_proxy_headers(
                scope, settings.trusted_peers, settings.forwarded_host, settings.forwarded_headers
            )
        if (
            self.settings.websocket
            and parser.should_upgrade()
            and is_websocket_upgrade(self.headers)
        ):
            self.upgrade = scope  # handed over once the parser stops at the end of the head
            return
        cycle = RequestCycle(
            self,
            scope,
            parser.should_keep_alive() and not state.shutting_down,
            self.expect_100 and scope["http_version"] == "1.1",
            perf_counter() if state.timed else 0.0,
        )
        self.parsing = cycle
        if self.cycle is None:
            self._start(cycle)
        else:
            self.pipeline.append(cycle)
            self.flow.pause_reading()

    def on_body(self, body: bytes) -> None:
        self.chunk_framing -= len(body)
        if self.parsing is not None:
            self.parsing.feed_body(body)

    def on_chunk_header(self) -> None:
        self.chunks += 1

    def on_message_complete(self) -> None:
        self.chunked = False
        if self.parsing is not None:
            self.parsing.end_body()

    # ------------------------------------------------------------------ request/response flow
    def _start(self, cycle: RequestCycle) -> None:
        self.cycle = cycle
        self.state.start(cycle)

    def response_complete(self, cycle: RequestCycle) -> None:
        """Called by the cycle once its last byte is written: log it, then serve the next one."""
        state = self.state
        self.cycle = None
        state.requests += 1
        request_done = state.request_done
        if request_done is not None:
            request_done(cycle)
        if state.access_logger is not None:
            state.log_access(self, cycle)
        if not cycle.keep_alive or (cycle.expect_100 and not cycle.body_complete):
            self.transport.close()  # flushes what was written first
            return
        if self.pipeline:
            following = self.pipeline.popleft()
            if not self.pipeline:
                self._read_on()
            self._start(following)
        elif self.upgrade_rest is not None:
            self._switch_to_websocket()
        elif self.pending_error is not None:
            self.transport.write(self.pending_error)
            self.transport.close()
        else:
            self.idle_since = state.ticks
            if self.flow.read_paused:
                self._read_on()

    def resume_reading_for(self, cycle: RequestCycle) -> None:
        """The app wants more of `cycle`'s body; read on unless requests are queued."""
        if cycle is self.parsing and not self.pipeline and self.unparsed is None:
            self.flow.resume_reading()

    def _reject(self, status: int, detail: str) -> None:
        """Answer a malformed request with `status` and close, after the responses before it."""
        phrase = http.HTTPStatus(status).phrase
        logger.warning("%d %s from %s: %s", status, phrase, self._peer(), detail)
        self.state.count_rejected()
        self.flow.pause_reading()
        self.in_head = False
        self.unparsed = None
        response = wire.simple_response(
            status, http.HTTPStatus(status).phrase + "\n", self.state.default_headers
        )
        broken = self.parsing if self.parsing and not self.parsing.body_complete else None
        if broken is not None and self._drop_broken(broken, response):
            return
        if self.cycle is None:
            self.transport.write(response)
            self.transport.close()
        else:
            self.pending_error = response

    def _drop_broken(self, cycle: RequestCycle, response: bytes) -> bool:
        """The body of `cycle` turned out malformed: it can never be answered normally.

        If its app is running, `response` goes out unless the app's began, and the connection
        closes at once (True).
        """
        if cycle in self.pipeline:
            self.pipeline.remove(cycle)
            return False
        cycle.disconnect()
        if cycle is not self.cycle:
            return False
        if not cycle.on_wire():
            self.transport.write(response)
        self.cycle = None
        self.transport.close()
        return True

    def _switch_to_websocket(self) -> None:
        """Hand the connection to a WebSocketProtocol, with the bytes that followed the head."""
        scope, rest = self.upgrade, self.upgrade_rest or b""
        self.upgrade = self.upgrade_rest = None
        assert scope is not None
        self.state.connections.discard(self)
        websocket = WebSocketProtocol(self.state, self.transport, scope)
        self.transport.set_protocol(websocket)
        websocket.start(rest)

    def _refuse_upgrade(self) -> None:
        """An Upgrade request (WebSocket, h2c): served as plain HTTP, then the connection ends.

        The bytes after its head belong to another protocol, so nothing more is parsed.
        """
        self.flow.pause_reading()
        if self.parsing is not None:
            self.parsing.keep_alive = False

    # ------------------------------------------------------------------ timers and shutdown
    def on_tick(self) -> None:
        """Close the connection when its idle, header-read or body-read timer has run out."""
        state, settings = self.state, self.settings
        if self.flow.write_paused and self._send_stalled():
            return
        cycle = self.cycle
        if cycle is not None:
            if cycle.waits_for_body() and state.timed_out(
                cycle.wait_tick, settings.timeout_request_body
            ):
                self._body_timed_out(cycle)
            return
        if self.in_head:
            if state.timed_out(self.head_tick, settings.timeout_request_header):
                self._reject(408, "request head not received in time")
        elif state.timed_out(self.idle_since, settings.timeout_keep_alive):
            self.transport.close()

    def _peer(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "unix socket"

    def _send_stalled(self) -> bool:
        """Abort the connection when its client has taken none of what waits for it for
        --timeout-send (a client that stopped reading would hold it, an app's send() and a
        WSGI thread forever); any progress starts the count again."""
        stalled_since = self.flow.stalled_since(self.state.ticks)
        if not self.state.timed_out(stalled_since, self.settings.timeout_send):
            return False
        logger.warning(
            "closing the connection from %s: it took no response bytes for %gs",
            self._peer(),
            self.settings.timeout_send,
        )
        self.transport.abort()  # close() would wait for the buffer to drain: it never will
        return True

    def _body_timed_out(self, cycle: RequestCycle) -> None:
        """The client stopped sending a body the app waits for: 408 unless the response has
        begun, then close; the app's receive() returns http.disconnect."""
        logger.warning(
            "408 for %s %s: no request body bytes for %gs",
            cycle.method,
            cycle.scope["path"],
            self.settings.timeout_request_body,
        )
        self.state.count_rejected()
        response = wire.simple_response(408, "Request Timeout\n", self.state.default_headers)
        self.flow.pause_reading()
        self.pipeline.clear()
        self.unparsed = None
        self._drop_broken(cycle, response)

    def shutdown(self, keep_idle: float = 0.0, fresh_grace: float = 0.0) -> None:
        """Graceful stop: close after the response in progress; an idle connection now, or,
        with `keep_idle`, once it stayed idle that long.

        Keeping an idle keep-alive connection open for a moment during a rolling restart means
        a client that sends its next request right now gets an answer (with Connection: close)
        instead of a reset: closing at once races with every busy keep-alive client. A connection
        that has carried no request yet waits at least `fresh_grace`: its client has just
        connected to send one, and unlike a reused connection's, that request is not retried.
        """
        if self.cycle is None:
            if self.fresh:
                keep_idle = max(keep_idle, fresh_grace)
            if keep_idle > 0:
                self.loop.call_later(keep_idle, self._close_if_idle)
            else:
                self.transport.close()
            return
        for cycle in (self.cycle, *self.pipeline):
            cycle.keep_alive = False
        self.pipeline.clear()
        self.unparsed = None

    def is_idle(self) -> bool:
        """No request is being read or answered (--limit-connections may close it)."""
        return self.cycle is None and not self.in_head

    def close_idle(self) -> None:
        self.transport.close()

    def _close_if_idle(self) -> None:
        # not once handed over: its first bytes may have made it an HTTP/2 or WebSocket one
        if self.cycle is None and not self.in_head and self.transport.get_protocol() is self:
            self.transport.close()

    async def send_file(self, file: IO[bytes], count: int, offset: int = 0) -> int:
        return await send_file(self.transport, self.flow, file, count, offset)


def _after_heads(data: bytes, start: int, heads: int) -> int:
    """Where the `heads`-th HEAD_END from `start` ends; the end of `data` if there are fewer."""
    for _ in range(heads):
        found = data.find(HEAD_END, start)
        if found < 0:
            return len(data)
        start = found + len(HEAD_END)
    return start


def make_room(state: ServerState, newcomer: HTTPProtocol | None = None) -> None:
    """At --limit-connections: close the longest idle HTTP connections (those that have served
    a request before those that have sent none yet) until one more fits; with too few idle,
    also stop accepting until one closes (below the cap again, accept). Only called at the cap
    or while accepting is paused: no cost below it.

    A client that has just connected gets LATE_CONNECTION_GRACE to start its request before
    it counts as idle: closing it would drop a request that, unlike a reused connection's, no
    client retries. Connections accepted in one burst can pass the cap; the excess goes first.
    """
    still_open = 0
    idle = []
    for conn in state.connections:
        if conn.transport.is_closing():
            continue
        still_open += 1
        if conn is newcomer or not isinstance(conn, HTTPProtocol | HTTP2Protocol):
            continue
        if conn.is_idle() and (
            not conn.fresh or state.timed_out(conn.idle_since, LATE_CONNECTION_GRACE)
        ):
            idle.append(conn)
    excess = still_open - state.settings.limit_connections + 1
    if excess <= 0:
        state.resume_accepting()  # if it was paused: a connection has closed since
        return
    for conn in sorted(idle, key=_idle_order)[:excess]:
        conn.close_idle()
    if len(idle) < excess:
        state.pause_accepting()


def _idle_order(conn: HTTPProtocol | HTTP2Protocol) -> tuple[bool, int]:
    return (conn.fresh, conn.idle_since)


def _address(info: Any, unix_path: bool = False) -> Any:
    """(host, port) from a peername/sockname; (path, None) for a Unix socket's own name."""
    if isinstance(info, tuple | list) and len(info) >= 2:
        return (str(info[0]), int(info[1]))
    if unix_path and isinstance(info, str) and info:
        return (info, None)
    return None
