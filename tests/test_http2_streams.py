"""HTTP/2 streams that end early, on the wire: each test is one bug the code review found (and
commit f310489 fixed) in how a stream, or the WebSocket on it, ends before its response did:
the server's own answers to a client whose window is shut, a 408 or a --timeout-send reset that
left the stream or its window behind, a client's GOAWAY that threw away queued responses, a
refused or abandoned WebSocket handshake, WebSockets counted as connections, a client that
answers no PING, 431 floods, HEAD with pathsend, and apps of reset streams past
--h2-max-concurrent-streams.

Each test talks to a real server on 127.0.0.1 through tests/h2_client.py with short timeouts.
Synchronisation is by what the server sends (a PING's acknowledgement says it has read
everything before it), by the app's notes read on the server's loop, or by polling with a
deadline; never by sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes

from devserver.protocols.http2 import FLOOD_LIMITS
from tests.h2_client import Fields, H2Client, Stream, unread
from tests.h2_serving import calls, connect, h2_connections, serving
from tests.utils import collected_records, until

MAX_STREAM_ID = 2**31 - 1
WINDOW_ZERO = {SettingCodes.INITIAL_WINDOW_SIZE: 0}


def assert_idles_out(client: H2Client, last: int) -> None:
    """The connection has nothing open on the server: after --timeout-keep-alive it gets the
    graceful GOAWAY pair (the final one naming `last`) and is closed."""
    client.read_until_closed()
    codes = [(g.error_code, g.last_stream_id) for g in client.goaways]
    assert codes == [(ErrorCodes.NO_ERROR, MAX_STREAM_ID), (ErrorCodes.NO_ERROR, last)], (
        client.summary()
    )


def ws_fields(version: bytes = b"13", path: str = "/ws") -> Fields:
    """An RFC 8441 extended CONNECT for a WebSocket."""
    return [
        (b":method", b"CONNECT"),
        (b":protocol", b"websocket"),
        (b":scheme", b"http"),
        (b":authority", b"test"),
        (b":path", path.encode()),
        (b"sec-websocket-version", version),
    ]


class WebSocketApp:
    """Accepts a WebSocket at /ws and waits for its end; at /late, waits for the client to
    go first (it never accepts). Notes the messages it received; plain http: 200 `ok`."""

    def __init__(self) -> None:
        self.received: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        if scope["type"] != "websocket":
            return
        self.received.append((await receive())["type"])  # websocket.connect
        if scope["path"] == "/ws":
            await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            self.received.append(message["type"])
            if message["type"] == "websocket.disconnect":
                return


# =========================================================================== the server's answers
def test_408_to_a_client_whose_window_is_shut_leaves_the_timers_running(
    server_log: list[logging.LogRecord],
) -> None:
    """A stalled upload gets its 408 while the client's stream window is 0: the 408's body
    cannot be sent, so the stream is reset, and nothing raises. (Once the reset stream was
    reset again, StreamClosedError escaped from the connection's on_tick and the server's tick
    task died: no timer of that worker ever ran again.)"""
    with (
        serving(timeout_request_body=0.2) as (server, app),
        connect(server, settings=WINDOW_ZERO) as client,
    ):
        stream_id = client.request("/upload", "POST", end_stream=False)
        calls(server, app, 1)
        response = client.response(stream_id)
        assert response.status == 408 and response.reset is not None, client.summary()
        state = server.server.state
        ticks = server.call(lambda: state.ticks)
        until(lambda: server.call(lambda: state.ticks) >= ticks + 5, "five more ticks")
        assert client.stays_open(), client.summary()
    assert not [r for r in server_log if r.levelno >= logging.ERROR], server_log


def test_503_to_a_client_whose_window_is_shut_keeps_the_connection() -> None:
    """--limit-concurrency 1 and a client whose stream window is 0: a second request, its body
    still open, gets a 503 that cannot be sent whole, so its stream is reset; no exception
    escapes the read ("Fatal error: protocol.data_received() call failed" closed the whole
    connection, the healthy stream with it); the first request is answered once the client
    opens its windows, and the connection serves on."""
    with collected_records("asyncio") as asyncio_log, serving(limit_concurrency=1) as (server, app):
        with connect(server, settings=WINDOW_ZERO) as client:
            held = client.request("/hold")
            calls(server, app, 1)
            busy = client.request("/upload", "POST", end_stream=False)
            response = client.response(busy)
            assert response.status == 503 and response.reset is not None, client.summary()
            assert client.stays_open(), client.summary()
            client.conn.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 65535})
            client.flush()
            server.call(app.open)
            assert bytes(client.response(held).body) == b"ok /hold 0", client.summary()
            assert client.get("/after").status == 200, client.summary()
        assert server.call(lambda: app.paths) == ["/hold", "/after"]
    assert not [r.getMessage() for r in asyncio_log if r.levelno >= logging.ERROR]


def test_client_goaway_read_while_an_app_computes_does_not_drop_its_response() -> None:
    """A client's GOAWAY(NO_ERROR) arrives while an app computes (blocking the loop); the app
    then answers, and the GOAWAY is read in the same loop pass, before the response is
    written: the response still reaches the client (RFC 9113 6.8). (h2 clears what it has
    queued when it reads a GOAWAY: the response was thrown away, the stream counted as
    answered, and the connection closed.)"""
    called = threading.Event()
    goaway_arrived = threading.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        called.set()
        # Blocking work, until the client's GOAWAY waits in the server's socket.
        [conn] = h2_connections(server)
        sock = conn.transport.get_extra_info("socket")
        until(lambda: unread(sock) > 0, "the GOAWAY to arrive")
        goaway_arrived.set()
        await asyncio.sleep(0)  # one loop pass: the socket's read is queued behind this task
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"computed"})

    with serving(app) as (server, _), connect(server) as client:
        stream_id = client.request("/compute")
        assert called.wait(5), "the app was never called"
        client.goodbye(last_stream_id=0)
        assert goaway_arrived.wait(5), "the GOAWAY never reached the server"
        response = client.response(stream_id)
        assert (response.status, bytes(response.body)) == (200, b"computed"), client.summary()
        client.read_until_closed()  # the client went away: closed once its stream is done


# =========================================================================== streams forgotten
def test_408_after_the_response_began_forgets_the_stream() -> None:
    """A stalled upload whose response has begun is reset (CANCEL) after
    --timeout-request-body, and forgotten: with nothing else open the connection idles out
    after --timeout-keep-alive. (The stream stayed in the connection's table: the connection
    was never idle again, pinged forever, and a drain waited for its whole grace.)"""
    with (
        serving(timeout_request_body=0.2, timeout_keep_alive=0.3) as (server, _),
        connect(server) as client,
    ):
        stream_id = client.request("/stream", "POST", end_stream=False)
        response = client.response(stream_id)
        assert response.status == 200 and response.reset is not None, client.summary()
        assert_idles_out(client, last=stream_id)
        assert response.reset == ErrorCodes.CANCEL  # no longer wanted: not an error


def test_timeout_send_reset_gives_back_the_unread_body_window() -> None:
    """An app answers without reading an upload of a whole connection window, to a client that
    opens no window for the answer: after --timeout-send the stream is reset
    (FLOW_CONTROL_ERROR) and the window of the body nobody read is given back to the
    connection, so the client can upload again. (It was kept: each such stream took its
    window from the connection for good, and a few stalled every later upload.)"""
    with (
        serving(timeout_send=0.2, h2_connection_window=65535) as (server, _),
        connect(server, settings=WINDOW_ZERO) as client,
    ):
        conn = client.conn
        stream_id = client.request("/big?100", "POST", body=b"u" * 65535, end_stream=False)
        assert conn.outbound_flow_control_window == 0
        response = client.response(stream_id)
        assert response.reset == ErrorCodes.FLOW_CONTROL_ERROR, client.summary()
        client.read_until(
            lambda: conn.outbound_flow_control_window == 65535,
            "the connection window given back",
        )
        conn.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 65535})
        client.flush()
        again = client.request("/", "POST", body=b"v" * 65535)
        assert bytes(client.response(again).body) == b"ok / 65535", client.summary()


def test_refused_websocket_handshake_leaves_nothing_behind() -> None:
    """An RFC 8441 handshake with Sec-WebSocket-Version 12 is refused with a complete answer,
    and the stream is forgotten: the connection idles out after --timeout-keep-alive. (A dead
    entry stayed in the connection's WebSockets: it never idled again.)"""
    app = WebSocketApp()
    with serving(app, timeout_keep_alive=0.3) as (server, _), connect(server) as client:
        stream_id = client.headers(ws_fields(version=b"12"), end_stream=False)
        response = client.response(stream_id)
        assert response.status is not None and response.status >= 400, client.summary()
        assert response.ended
        assert_idles_out(client, last=stream_id)
    assert app.received == []


# =========================================================================== clients gone
def test_client_that_reads_nothing_and_answers_no_ping_is_cut_and_its_app_ends(
    server_log: list[logging.LogRecord],
) -> None:
    """A client opens every window, asks for an endless body and then reads nothing, so
    answers no PING: after --h2-ping-interval and --h2-ping-timeout the connection is aborted,
    the app's send fails and nothing stays in flight. (A close() waited for a write buffer that
    never drains, and a closed connection's timers no longer ran, so --timeout-send never cut
    it either: the connection and its app stayed for good.)"""
    options = {"h2_ping_interval": 0.2, "h2_ping_timeout": 0.2, "timeout_send": 60}
    with serving(**options) as (server, app):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((server.host, server.port))
        with contextlib.closing(sock):
            client = H2Client(sock, {SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
            client.start()
            client.conn.increment_flow_control_window(2**31 - 1 - 65535)
            client.flush()
            client.request(f"/big?{2**40}")  # and reads nothing from now on
            calls(server, app, 1)
            state = server.server.state
            until(
                lambda: server.call(lambda: state.in_flight == 0 and not h2_connections(server)),
                "the connection aborted and its app ended",
            )
        [seen] = server.call(lambda: app.seen)
        assert seen.failure is not None, "the app's send never failed"
    assert any("no answer to a PING in 0.2s" in r.getMessage() for r in server_log)


# =========================================================================== floods
def head_too_large(client: H2Client, count: int) -> list[int]:
    """`count` requests whose heads have one field more than --limit-request-fields 1, in one
    write; their stream ids."""
    conn = client.conn
    ids = []
    for _ in range(count):
        stream_id = conn.get_next_available_stream_id()
        fields = client.request_fields("/431", headers=[(b"x-a", b"1"), (b"x-b", b"2")])
        conn.send_headers(stream_id, fields, end_stream=True)
        client.streams[stream_id] = Stream(stream_id)
        ids.append(stream_id)
    client.flush()
    return ids


def test_flood_of_requests_answered_431_gets_enhance_your_calm() -> None:
    """Requests answered 431 count as malformed ones: as many as FLOOD_LIMITS allows in a
    second are answered and the connection lives on; one more gets GOAWAY ENHANCE_YOUR_CALM.
    (They escaped the limit: each costs a parse, an answer and a log line for ~20 bytes of
    HPACK, without end.)"""
    limit = FLOOD_LIMITS["malformed requests"]
    with serving(limit_request_fields=1) as (server, app):
        with connect(server) as client:
            ids = head_too_large(client, limit)
            client.read_until(lambda: all(client.streams[i].done for i in ids), "the 431s")
            assert {client.streams[i].status for i in ids} == {431}
            assert client.stays_open(), client.summary()
        with connect(server) as client:
            head_too_large(client, limit + 1)
            client.read_until_closed()
            assert client.goaway is not None, client.summary()
            assert client.goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM, client.summary()
        assert server.call(lambda: app.paths) == []


def test_rapid_resets_cannot_run_more_apps_than_max_concurrent_streams() -> None:
    """A client opens streams and resets each once its app runs (slowly, far under the reset
    flood limit): the apps run on, and count against --h2-max-concurrent-streams, so a stream
    past it is refused (REFUSED_STREAM) and its app never runs; once the apps end, streams are
    served again. (h2 forgets a reset stream at once: a client could run any number of apps on
    one connection, CVE-2023-44487 slowed down.)"""
    with serving(h2_max_concurrent_streams=5) as (server, app), connect(server) as client:
        for n in range(1, 6):
            stream_id = client.request("/hold")
            calls(server, app, n)
            client.reset(stream_id)
        client.barrier()
        refused = client.response(client.request("/refused"))
        assert refused.reset == ErrorCodes.REFUSED_STREAM, client.summary()
        assert server.call(lambda: app.paths) == ["/hold"] * 5
        server.call(app.open)
        until(lambda: server.call(lambda: server.server.state.in_flight == 0), "the apps' end")
        assert client.get("/after").status == 200, client.summary()


# =========================================================================== WebSockets
def test_client_end_before_the_websocket_accept_gets_rst_stream() -> None:
    """A client ends its half of an RFC 8441 stream (DATA with END_STREAM) before the app
    accepted: the stream is reset (CANCEL), with no HEADERS and no DATA; the app learns the
    WebSocket is gone, and the connection serves on. (The server ended the stream with an empty
    DATA frame before any HEADERS, a malformed response the client's h2 refuses.)"""
    app = WebSocketApp()
    with serving(app) as (server, _), connect(server) as client:
        stream_id = client.headers(ws_fields(path="/late"), end_stream=False)
        until(lambda: server.call(lambda: app.received), "the app's websocket.connect")
        client.data(stream_id, b"", end_stream=True)
        client.read_until(
            lambda: client.streams[stream_id].done or client.error, f"stream {stream_id} to end"
        )
        assert client.error is None, client.summary()
        stream = client.streams[stream_id]
        assert (stream.headers, bytes(stream.body)) == ([], b"")
        assert stream.reset == ErrorCodes.CANCEL, client.summary()
        until(
            lambda: server.call(lambda: app.received[-1] == "websocket.disconnect"),
            "the app's websocket.disconnect",
        )
        assert client.get("/after").status == 200, client.summary()
        assert client.stays_open()


def test_websockets_on_one_http2_connection_count_as_one_connection() -> None:
    """Four WebSockets on one HTTP/2 connection are four streams of one connection for
    --limit-connections 3: two more clients, open at once, are served (three connections).
    (Each WebSocket counted as a connection of its own: at the next accept there were six of
    three, and the server stopped accepting: the second client waited.)"""
    app = WebSocketApp()
    with serving(app, limit_connections=3) as (server, _), connect(server) as client:
        ids = [client.headers(ws_fields(), end_stream=False) for _ in range(4)]
        client.read_until(lambda: all(client.streams[i].status == 200 for i in ids), "four accepts")
        with connect(server) as first, connect(server) as second:
            assert first.get("/first").status == 200, first.summary()
            assert second.get("/second").status == 200, second.summary()
            assert server.call(lambda: len(server.server.state.connections)) == 3
        assert client.stays_open(), client.summary()


# =========================================================================== HEAD
def test_head_with_pathsend_reads_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """HEAD answered with http.response.pathsend: the head with the file's length, no body, and
    the file is not read (os.pread counted; a GET of the same file reads it). (It was read
    whole, 64 KiB at a time, and thrown away: seconds for a large file.)"""
    path = tmp_path / "sparse.bin"
    size = 4 << 20
    with path.open("wb") as file:
        file.truncate(size)
    reads = []
    pread = os.pread

    def counted(fd: int, length: int, offset: int) -> bytes:
        reads.append(length)
        return pread(fd, length, offset)

    monkeypatch.setattr(os, "pread", counted)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"content-length", b"%d" % size)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.pathsend", "path": str(path)})

    wide = {SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1}
    with serving(app) as (server, _), connect(server, settings=wide) as client:
        client.conn.increment_flow_control_window(2**31 - 1 - 65535)
        client.flush()
        head = client.response(client.request("/file", method="HEAD"))
        assert head.status == 200 and head.header(b"content-length") == b"%d" % size
        assert head.ended and bytes(head.body) == b""
        assert reads == []
        got = client.response(client.request("/file"), timeout=10)
        assert len(got.body) == size and sum(reads) == size


def test_a_close_frame_sent_before_the_accept_waits_for_it(
    server_log: list[logging.LogRecord],
) -> None:
    """A client sends a close frame right behind its extended CONNECT, with a window of one
    byte for the answer: the frame waits, unparsed, until the app accepts (as over HTTP/1.1).
    It was parsed at once: websockets answered the close before the accept, the phase went
    OPEN at the accept all the same, and the app's return raised InvalidState from the task
    ('Task exception was never retrieved'), once per stream a client opened."""
    app = WebSocketApp()
    settings = {SettingCodes.INITIAL_WINDOW_SIZE: 1}
    close_frame = bytes([0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xE8 ^ 2])  # masked, code 1000
    failures: list[BaseException] = []
    with serving(app) as (server, _), connect(server, settings=settings) as client:
        server.loop.call_soon_threadsafe(
            server.loop.set_exception_handler,
            lambda loop, context: failures.append(context.get("exception") or Exception()),
        )
        stream_id = client.headers(ws_fields(), end_stream=False)
        client.data(stream_id, close_frame)
        until(
            lambda: server.call(lambda: app.received[-1:] == ["websocket.disconnect"]),
            "the app's websocket.disconnect",
        )
        assert server.call(lambda: app.received) == ["websocket.connect", "websocket.disconnect"]
        assert client.get("/after").status == 200, client.summary()
    assert failures == []
    assert [r.getMessage() for r in server_log if r.levelno >= logging.ERROR] == []
