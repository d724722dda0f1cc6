"""HTTP/2 limits and defences on the wire: SETTINGS, header limits, CONTINUATION runs, floods and
rapid reset, concurrent streams, flow control, timers, and the graceful drain.

Each test talks to a real server on 127.0.0.1 through tests/h2_client.py, with short timeouts
set per test. Synchronisation is by what the server sends (a PING's acknowledgement says it has
read everything before it), by the app's notes read on the server's loop, or by polling with a
deadline; never by sleeping.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import hpack
import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hyperframe.frame import Frame, GoAwayFrame, PingFrame, WindowUpdateFrame

from devserver.protocols.http2 import FLOOD_LIMITS
from tests.h2_apps import Recorder
from tests.h2_client import (
    H2Client,
    continuation_run,
    data_frame,
    priority_frame,
    settings_frame,
    unknown_frame,
)
from tests.h2_serving import calls, connect, h2_connections, serving
from tests.utils import Running, run_devserve, run_server, until, waiting_to_drain

ROOT = str(Path(__file__).resolve().parent.parent)
MAX_STREAM_ID = 2**31 - 1


def assert_goaway(client: H2Client, code: ErrorCodes, last: int | None = None) -> None:
    """The server ended the connection with GOAWAY `code` (naming `last`) and closed it."""
    client.read_until_closed()
    assert client.goaway is not None, client.summary()
    assert client.goaway.error_code == code, client.summary()
    if last is not None:
        assert client.goaway.last_stream_id == last, client.summary()


def assert_serves(server: Running) -> None:
    """A new connection to `server` is served."""
    with connect(server) as client:
        assert client.get("/other").status == 200, client.summary()


def warnings(log: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in log if r.levelno >= logging.WARNING]


# =========================================================================== SETTINGS
def test_settings_and_connection_window_follow_the_flags() -> None:
    """The server's SETTINGS carry the --h2-* flags and --max-header-size; a WINDOW_UPDATE on
    stream 0 right after them raises the connection window to --h2-connection-window."""
    options = {
        "h2_max_concurrent_streams": 7,
        "h2_max_frame_size": 32768,
        "h2_stream_window": 12345,
        "h2_connection_window": 100000,
        "max_header_size": 4096,
    }
    with serving(**options) as (server, _), connect(server) as client:
        assert client.server_settings[SettingCodes.MAX_CONCURRENT_STREAMS] == 7
        assert client.server_settings[SettingCodes.MAX_FRAME_SIZE] == 32768
        assert client.server_settings[SettingCodes.INITIAL_WINDOW_SIZE] == 12345
        assert client.server_settings[SettingCodes.MAX_HEADER_LIST_SIZE] == 4096
        assert client.server_settings[SettingCodes.ENABLE_CONNECT_PROTOCOL] == 1
        client.barrier()
        assert client.window_updates == [(0, 100000 - 65535)]


def test_default_settings_and_no_extended_connect_without_websockets() -> None:
    """The defaults (100 streams, 16 KiB frames, 65535 windows, 64 KiB header lists, a 256 KiB
    connection window); --ws none turns SETTINGS_ENABLE_CONNECT_PROTOCOL off."""
    with serving(ws="none") as (server, _), connect(server) as client:
        settings = client.server_settings
        assert settings[SettingCodes.MAX_CONCURRENT_STREAMS] == 100
        assert settings[SettingCodes.MAX_FRAME_SIZE] == 16384
        assert settings[SettingCodes.INITIAL_WINDOW_SIZE] == 65535
        assert settings[SettingCodes.MAX_HEADER_LIST_SIZE] == 65536
        assert settings.get(SettingCodes.ENABLE_CONNECT_PROTOCOL, 0) == 0
        client.barrier()
        assert client.window_updates == [(0, 262144 - 65535)]


# =========================================================================== 431
@pytest.fixture
def limited() -> Iterator[tuple[Running, Recorder]]:
    with serving(limit_request_fields=10, limit_request_field_size=100) as served:
        yield served


def fields_request(client: H2Client, count: int, size: int = 0) -> int:
    """A request to /limit whose head has `count` fields in all (4 pseudo-header fields and
    count - 4 others), the last of `size` bytes (name and value) when size is given."""
    extra = [(b"x-%02d" % n, b"v") for n in range(count - 4)]
    if size:
        extra[-1] = (b"x-big", b"v" * (size - 5))
    return client.headers(client.request_fields("/limit", headers=extra))


@pytest.mark.parametrize(
    ("count", "size", "status"),
    [(14, 0, 200), (15, 0, 431), (10, 100, 200), (10, 101, 431), (200, 0, 431)],
    ids=[
        "exactly the field count",
        "one field more",
        "a field of exactly the size",
        "a field one byte larger",
        "200 fields",
    ],
)
def test_header_field_limits_answer_431_on_the_stream(
    limited: tuple[Running, Recorder],
    server_log: list[logging.LogRecord],
    count: int,
    size: int,
    status: int,
) -> None:
    """More fields than --limit-request-fields (regular fields: the 4 pseudo-headers are not
    counted, as HTTP/1.1 counts no request line) or one larger
    than --limit-request-field-size: 431 on that stream with END_STREAM, the app never called;
    the next request on the connection is served. At the limits: served."""
    server, app = limited
    with connect(server) as client:
        response = client.response(fields_request(client, count, size))
        assert response.status == status, client.summary()
        assert response.ended and response.reset is None
        assert client.get("/after").status == 200
        assert client.stays_open()
    expected = ["/limit", "/after"] if status == 200 else ["/after"]
    assert server.call(lambda: app.paths) == expected
    if status == 431:
        assert any(
            m.startswith("431 Request Header Fields Too Large from") for m in warnings(server_log)
        )


# =========================================================================== header lists
def test_header_list_beyond_max_header_size_ends_the_connection(
    server_log: list[logging.LogRecord],
) -> None:
    """A header list that decodes to more than --max-header-size (SETTINGS_MAX_HEADER_LIST_SIZE),
    cut into HEADERS and CONTINUATION frames: GOAWAY ENHANCE_YOUR_CALM and close, the app
    never called, other connections served."""
    with serving(max_header_size=8192, limit_request_fields=1000) as (server, app):
        with connect(server) as client:
            extra = [(b"x-%02d" % n, b"v" * 1000) for n in range(10)]
            client.headers(client.request_fields("/big", headers=extra), fragment=1000)
            assert_goaway(client, ErrorCodes.ENHANCE_YOUR_CALM, last=0)
        assert_serves(server)
        assert server.call(lambda: app.paths) == ["/other"]
    assert any("HTTP/2 connection error from" in m for m in warnings(server_log))


def test_hpack_bomb_is_bounded_by_the_decoded_size() -> None:
    """A small block that decodes big (one 4000-byte field, then 20 one-byte references to it
    in the HPACK table: about 80 KB decoded): GOAWAY ENHANCE_YOUR_CALM, the app never called."""
    with serving(limit_request_fields=1000) as (server, app):
        with connect(server) as client:
            fields = client.request_fields("/bomb", headers=[(b"x-bomb", b"v" * 4000)] * 20)
            assert len(hpack.Encoder().encode(fields)) < 4100  # small on the wire
            client.headers(fields)
            assert_goaway(client, ErrorCodes.ENHANCE_YOUR_CALM, last=0)
        assert server.call(lambda: app.paths) == []


def test_header_block_across_continuation_frames_is_served() -> None:
    """A header block within the limits, in HEADERS and 40 CONTINUATION frames, is served
    whole."""
    with serving(limit_request_field_size=8190) as (server, app), connect(server) as client:
        extra = [(b"x-%02d" % n, b"%02d" % n * 100) for n in range(20)]
        stream_id = client.headers(client.request_fields("/split", headers=extra), fragment=100)
        assert client.response(stream_id).status == 200, client.summary()
        [seen] = server.call(lambda: app.seen)
        assert [f for f in seen.headers if f[0].startswith(b"x-")] == extra


def test_continuation_flood_ends_the_connection(server_log: list[logging.LogRecord]) -> None:
    """HEADERS and then more than 64 CONTINUATION frames that never end the block: GOAWAY
    PROTOCOL_ERROR and close once the run is too long, and the server serves other
    connections."""
    with serving() as (server, app):
        with connect(server) as client:
            block = client.conn.encoder.encode(client.request_fields("/flood"))
            client.send_frame(*continuation_run(1, block, 65, end=False))
            assert_goaway(client, ErrorCodes.PROTOCOL_ERROR, last=0)
        assert_serves(server)
        assert server.call(lambda: app.paths) == ["/other"]
    assert any("Too many continuation frames" in m for m in warnings(server_log))


def test_continuation_flood_of_large_frames_ends_the_connection() -> None:
    """A header block cut into 16 KiB CONTINUATION frames, past twice the header list limit:
    GOAWAY ENHANCE_YOUR_CALM as the frames arrive, before the block is whole; the app is
    never called and other connections are served."""
    with serving() as (server, app):
        with connect(server) as client:
            extra = [(b"x-%03d" % n, b"v" * 8000) for n in range(100)]  # ~800 KB
            client.headers(client.request_fields("/flood", headers=extra), fragment=16384)
            assert_goaway(client, ErrorCodes.ENHANCE_YOUR_CALM, last=0)
        assert_serves(server)
        assert server.call(lambda: app.paths) == ["/other"]


# =========================================================================== rapid reset, floods
def rapid_resets(client: H2Client, count: int) -> None:
    """`count` streams each opened (HEADERS) and reset (RST_STREAM CANCEL) in one write."""
    conn = client.conn
    for _ in range(count):
        stream_id = conn.get_next_available_stream_id()
        conn.send_headers(stream_id, client.request_fields("/reset"), end_stream=True)
        conn.reset_stream(stream_id, ErrorCodes.CANCEL)
    client.flush()


def test_streams_reset_in_the_read_that_opened_them_never_start() -> None:
    """100 HEADERS + RST_STREAM pairs in one write (the limit): no app starts, the connection
    lives on and serves the next request."""
    with serving() as (server, app), connect(server) as client:
        rapid_resets(client, FLOOD_LIMITS["stream resets"])
        assert client.get("/after").status == 200, client.summary()
        assert client.stays_open()
        assert server.call(lambda: app.paths) == ["/after"]


def test_rapid_reset_past_the_limit_gets_enhance_your_calm(
    server_log: list[logging.LogRecord],
) -> None:
    """101 HEADERS + RST_STREAM pairs in a second: GOAWAY ENHANCE_YOUR_CALM and close; no app
    ever started; other connections are served."""
    with serving() as (server, app):
        with connect(server) as client:
            rapid_resets(client, FLOOD_LIMITS["stream resets"] + 1)
            assert_goaway(client, ErrorCodes.ENHANCE_YOUR_CALM)
        assert_serves(server)
        assert server.call(lambda: app.paths) == ["/other"]
    assert any("more than 100 stream resets in a second" in m for m in warnings(server_log))


def flood(
    client: H2Client, kind: str, count: int, held_app_runs: Callable[[], object] = lambda: None
) -> None:
    """`count` frames of `kind` in one write (empty DATA on stream 1, opened first)."""
    frames: list[Frame]
    if kind == "pings":
        frames = [PingFrame(0, opaque_data=b"%08d" % n) for n in range(count)]
    elif kind == "settings frames":
        frames = [settings_frame() for _ in range(count)]
    elif kind == "priority frames":
        frames = [priority_frame(2 * n + 101) for n in range(count)]
    elif kind == "unknown frames":
        frames = [unknown_frame(0xFA, 0) for _ in range(count)]
    elif kind == "tiny window updates":
        frames = [WindowUpdateFrame(0, window_increment=1) for _ in range(count)]
    elif kind == "refused streams":
        # one stream whose app runs on after its reset fills a limit of one running app:
        # every stream after it is refused (built by hand: the client's h2 would open none)
        held = client.request("/hold", "POST", end_stream=False)
        held_app_runs()  # a reset in the read that opened it would start no app
        client.reset(held)
        client.barrier()
        # one at a time: h2 counts a stream open until its reset is sent, after the read, and
        # a second one in the same read would pass the limit of one (a connection error)
        for _ in range(count):
            refused = client.request("/r")
            client.read_until(client.answered(refused), "a reset")
            if client.closed:
                break
        return
    else:
        client.request("/slow", "POST", end_stream=False)
        frames = [data_frame(1, b"") for _ in range(count)]
    client.send_frame(*frames)


def limited_to_one(kind: str) -> dict[str, int]:
    """The server's options for a flood of `kind`: refused streams need the stream limit met."""
    return {"h2_max_concurrent_streams": 1} if kind == "refused streams" else {}


KINDS = [
    "pings",
    "settings frames",
    "priority frames",
    "empty data frames",
    "unknown frames",
    "tiny window updates",
    "refused streams",
]
# What the client sends of each kind anyway: its SETTINGS at the start, the barrier's PING.
ALREADY = {"pings": 1, "settings frames": 1}


@pytest.mark.parametrize("kind", KINDS)
def test_flood_past_the_limit_gets_enhance_your_calm(
    server_log: list[logging.LogRecord], kind: str
) -> None:
    """One more frame of a cheap kind than FLOOD_LIMITS allows in a second: GOAWAY
    ENHANCE_YOUR_CALM, close, a warning naming the kind; other connections are served."""
    limit = FLOOD_LIMITS[kind]
    with serving(**limited_to_one(kind)) as (server, app):
        with connect(server) as client:
            flood(client, kind, limit + 1, lambda: calls(server, app, 1))
            assert_goaway(client, ErrorCodes.ENHANCE_YOUR_CALM)
        assert_serves(server)
    assert any(f"more than {limit} {kind} in a second" in m for m in warnings(server_log))


@pytest.mark.parametrize("kind", KINDS)
def test_flood_up_to_the_limit_is_served(kind: str) -> None:
    """As many frames of a cheap kind as FLOOD_LIMITS allows in a second: the connection goes
    on and serves the next request."""
    with serving(**limited_to_one(kind)) as (server, app), connect(server) as client:
        flood(
            client, kind, FLOOD_LIMITS[kind] - ALREADY.get(kind, 0), lambda: calls(server, app, 1)
        )
        assert client.stays_open(), client.summary()
        if kind == "refused streams":  # its app still runs: the next is refused as well
            server.call(app.open)
            [conn] = h2_connections(server)
            until(lambda: server.call(lambda: conn.running == 0), "the held app to end")
        assert client.get("/after").status == 200


# =========================================================================== concurrent streams
def test_stream_past_max_concurrent_streams_ends_the_connection(
    server_log: list[logging.LogRecord],
) -> None:
    """100 streams open at once all run; the 101st is a connection error (h2's
    TooManyStreamsError): GOAWAY PROTOCOL_ERROR naming the 100th, close; the apps of the open
    streams learn of the disconnect; other connections are served."""
    with serving() as (server, app):
        with connect(server) as client:
            conn = client.conn
            for _ in range(100):
                conn.send_headers(
                    conn.get_next_available_stream_id(),
                    client.request_fields("/open", "POST"),
                    end_stream=False,
                )
            client.flush()
            assert len(calls(server, app, 100)) == 100
            # h2 will not open a 101st stream itself: the frame is built by hand
            client.send_frame(client.raw_headers(201, client.request_fields("/101st")))
            assert_goaway(client, ErrorCodes.PROTOCOL_ERROR, last=199)
        until(
            lambda: server.call(lambda: all(s.messages for s in app.seen)),
            "every open stream's app to learn of the disconnect",
        )
        assert all(s.messages[-1]["type"] == "http.disconnect" for s in app.seen)
        assert_serves(server)
        assert "/101st" not in server.call(lambda: app.paths)
    assert any("HTTP/2 connection error" in m for m in warnings(server_log))


def test_max_concurrent_streams_flag_and_freed_slots() -> None:
    """--h2-max-concurrent-streams 3: three open streams run, a fourth ends the connection;
    streams that ended free their slot (many sequential requests are served)."""
    with serving(h2_max_concurrent_streams=3) as (server, app):
        with connect(server) as client:
            for n in range(10):
                assert client.get(f"/seq{n}").status == 200
        with connect(server) as client:
            for _ in range(3):
                client.request("/open", "POST", end_stream=False)
            calls(server, app, 13)
            client.send_frame(client.raw_headers(7, client.request_fields("/fourth")))
            assert_goaway(client, ErrorCodes.PROTOCOL_ERROR, last=5)


def test_limit_concurrency_answers_503_on_the_stream() -> None:
    """--limit-concurrency 1: while one request runs, another stream on the connection gets
    503 from the server (its app never called); after it, requests are served again."""
    with serving(limit_concurrency=1) as (server, app), connect(server) as client:
        held = client.request("/hold")
        calls(server, app, 1)
        busy = client.get("/busy")
        assert busy.status == 503, client.summary()
        server.call(app.open)
        assert client.response(held).status == 200
        assert client.get("/after").status == 200
        assert server.call(lambda: app.paths) == ["/hold", "/after"]


# =========================================================================== flow control
def test_app_that_does_not_read_stops_the_upload_at_the_stream_window() -> None:
    """An app that reads nothing: the client can send one --h2-stream-window of body and no
    more (no WINDOW_UPDATE for it), the server holds at most that; DATA past the window is a
    connection FLOW_CONTROL_ERROR."""
    with serving(h2_stream_window=1000) as (server, _), connect(server) as client:
        stream_id = client.request("/hold", "POST", end_stream=False)
        assert client.conn.local_flow_control_window(stream_id) == 1000
        client.data(stream_id, b"x" * 1000)
        client.barrier()
        assert client.conn.local_flow_control_window(stream_id) == 0
        assert [w for w in client.window_updates if w[0] == stream_id] == []

        def held() -> int:
            [conn] = h2_connections(server)
            return sum(stream.body_size for stream in conn.streams.values())

        assert server.call(held) == 1000
        client.send_frame(data_frame(stream_id, b"y"))
        assert_goaway(client, ErrorCodes.FLOW_CONTROL_ERROR)


def test_connection_window_bounds_what_all_streams_hold() -> None:
    """Several streams whose apps read nothing: together they hold at most one
    --h2-connection-window; the client's connection window is then shut."""
    options = {"h2_stream_window": 40000, "h2_connection_window": 65535}
    with serving(**options) as (server, _), connect(server) as client:
        conn = client.conn
        sent = 0
        for _ in range(3):
            stream_id = client.request("/hold", "POST", end_stream=False)
            size = min(conn.local_flow_control_window(stream_id), 40000)
            if size:
                client.data(stream_id, b"x" * size)
                sent += size
        client.barrier()
        assert sent == 65535 and conn.outbound_flow_control_window == 0

        def held() -> int:
            [h2conn] = h2_connections(server)
            return sum(stream.body_size for stream in h2conn.streams.values())

        assert server.call(held) == 65535


def test_app_that_reads_gets_window_updates() -> None:
    """An app that reads: WINDOW_UPDATEs come for the stream and the connection as it reads,
    so a body of ten windows goes through whole."""
    with serving(h2_stream_window=1000) as (server, _), connect(server) as client:
        conn = client.conn
        stream_id = client.request("/", "POST", end_stream=False)
        left = 10000
        while left:
            window = min(conn.local_flow_control_window(stream_id), left)
            if window:
                client.data(stream_id, b"x" * window)
                left -= window
            else:
                client.read_until(
                    lambda: conn.local_flow_control_window(stream_id) > 0, "a WINDOW_UPDATE"
                )
        client.data(stream_id, b"", end_stream=True)
        assert bytes(client.response(stream_id).body) == b"ok / 10000"
        assert len([w for w in client.window_updates if w[0] == stream_id]) >= 9


def test_response_to_a_client_that_opens_no_window_is_reset_after_timeout_send() -> None:
    """A client with SETTINGS_INITIAL_WINDOW_SIZE 0 asks for a large body: it gets the HEADERS,
    and after --timeout-send RST_STREAM FLOW_CONTROL_ERROR; the app's send raised. The
    connection serves on."""
    window_zero = {SettingCodes.INITIAL_WINDOW_SIZE: 0}
    with serving(timeout_send=0.3) as (server, app), connect(server, settings=window_zero) as c:
        response = c.response(c.headers(c.request_fields("/big?100000")))
        assert response.status == 200 and response.body == b"", c.summary()
        assert response.reset == ErrorCodes.FLOW_CONTROL_ERROR
        [seen] = server.call(lambda: app.seen)
        assert seen.failure is not None and "ClientDisconnected" in seen.failure
        assert c.stays_open()


@contextlib.contextmanager
def deaf_client(server: Running) -> Iterator[H2Client]:
    """A client that opens every window, then never reads (a tiny receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((server.host, server.port))
    with contextlib.closing(sock):
        client = H2Client(sock, {SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
        client.start()
        client.conn.increment_flow_control_window(2**31 - 1 - 65535)
        client.flush()
        yield client


def test_client_that_reads_nothing_is_cut_after_timeout_send(
    server_log: list[logging.LogRecord],
) -> None:
    """A client that opens every window and then reads nothing from its socket: once the
    server's write buffer has been full for --timeout-send, the connection is aborted."""
    with serving(timeout_send=0.3) as (server, _), deaf_client(server) as client:
        client.request("/big?8000000")
        until(lambda: server.call(lambda: not h2_connections(server)), "the abort")
    assert any("it took no response bytes for 0.3s" in m for m in warnings(server_log))


@pytest.mark.parametrize(
    "path", ["/big?50000000", "/whole?50000000"], ids=["64 KiB sends", "one send"]
)
def test_sends_wait_for_a_client_that_does_not_read(path: str) -> None:
    """An app sends 50 MB (in 64 KiB sends, or in one) to a client that opened its windows but
    reads nothing: the send waits for the socket to drain (as over HTTP/1.1), so the server
    holds a bounded amount; it stops reading that client meanwhile, and serves the others.
    (Once a send went on without looking at the socket: 47 MB ended up in the write buffer.)"""
    with serving(timeout_send=5) as (server, app), deaf_client(server) as client:
        client.request(path)

        def state() -> tuple[bool, int, bool] | None:
            [conn] = h2_connections(server)
            waiting = waiting_to_drain(server.server)
            if app.seen and (waiting or server.server.state.in_flight == 0):
                return waiting, conn.transport.get_write_buffer_size(), conn.flow.read_paused
            return None

        waiting, buffered, read_paused = until(lambda: server.call(state), "the app to wait")
        assert waiting, f"the app sent it all: {buffered} bytes held by the server"
        assert buffered < 4 * 2**20
        assert read_paused, "the server reads on while its write buffer is full"
        assert_serves(server)


def test_one_large_send_is_framed_in_linear_time() -> None:
    """48 MB in one send reaches a client that reads it in well under 4 s (about 0.4 s here):
    framing it by copying the rest of the body for every 16 KiB frame took O(N^2) (32 MB:
    2.9 s, 64 MB: 76 s, the worker's loop held all along)."""
    settings = {SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1}
    with serving() as (server, _), connect(server, settings=settings) as client:
        client.conn.increment_flow_control_window(2**31 - 1 - 65535)
        response = client.response(client.request("/whole?48000000"), timeout=4)
        assert len(response.body) == 48000000


# =========================================================================== timers
def test_idle_connection_gets_goaway_after_timeout_keep_alive() -> None:
    """A connection with no open stream for --timeout-keep-alive: GOAWAY(NO_ERROR) in two steps
    (the highest id, then the last stream served), then the close."""
    with serving(timeout_keep_alive=0.2) as (server, _), connect(server) as client:
        assert client.get("/").status == 200
        client.read_until_closed()
        codes = [(g.error_code, g.last_stream_id) for g in client.goaways]
        assert codes == [(ErrorCodes.NO_ERROR, MAX_STREAM_ID), (ErrorCodes.NO_ERROR, 1)]


def test_fresh_idle_connection_gets_goaway_naming_no_stream() -> None:
    """A connection that never opened a stream gets the final GOAWAY with last stream 0."""
    with serving(timeout_keep_alive=0.2) as (server, _), connect(server) as client:
        client.read_until_closed()
        assert client.goaway is not None and client.goaway.last_stream_id == 0


def test_open_stream_keeps_the_connection_from_idling() -> None:
    """A stream waiting for its body for several keep-alive timeouts is not cut; once it is
    answered, the idle timer runs again."""
    with serving(timeout_keep_alive=0.2) as (server, app), connect(server) as client:
        stream_id = client.request("/", "POST", end_stream=False)
        calls(server, app, 1)
        start = server.call(lambda: server.server.state.ticks)
        until(
            lambda: server.call(lambda: server.server.state.ticks) >= start + 20,
            "five keep-alive timeouts (20 ticks of 0.05 s)",
        )
        assert client.stays_open(), client.summary()
        client.data(stream_id, b"end", end_stream=True)
        assert bytes(client.response(stream_id).body) == b"ok / 3"
        client.read_until_closed()
        assert client.goaway is not None and client.goaway.last_stream_id == stream_id


def test_stalled_body_gets_408_on_its_stream(server_log: list[logging.LogRecord]) -> None:
    """An app waits for body bytes that stop for --timeout-request-body: 408 on that stream
    (then RST_STREAM NO_ERROR, as the body never ended); the connection serves on."""
    with serving(timeout_request_body=0.3) as (server, _), connect(server) as client:
        stream_id = client.request("/", "POST", end_stream=False)
        client.data(stream_id, b"abc")
        response = client.response(stream_id)
        assert (response.status, bytes(response.body)) == (408, b"Request Timeout\n")
        assert response.ended
        client.read_until(lambda: response.reset is not None, "RST_STREAM after the 408")
        assert response.reset == ErrorCodes.NO_ERROR
        assert client.get("/after").status == 200
    assert any(m.startswith("408 for POST /:") for m in warnings(server_log))


def test_stalled_body_after_the_response_began_resets_the_stream() -> None:
    """The same stall once the response has begun: RST_STREAM (CANCEL: the stream is no longer
    wanted) on the stream, the app learns of the disconnect, the connection serves on, and the
    stream is forgotten (the connection can idle again)."""
    with serving(timeout_request_body=0.3) as (server, app), connect(server) as client:
        stream_id = client.request("/stream", "POST", end_stream=False)
        client.read_until(lambda: client.streams[stream_id].status, "the streamed head")
        response = client.response(stream_id)
        assert response.status == 200 and response.reset == ErrorCodes.CANCEL
        [seen] = server.call(lambda: app.seen)
        until(lambda: seen.messages, "the app's disconnect")
        assert seen.messages[-1]["type"] == "http.disconnect"
        assert client.get("/after").status == 200


def test_response_before_the_body_ended_resets_the_rest_with_no_error() -> None:
    """An app that answers without reading the body: the full response, then RST_STREAM
    NO_ERROR so the client stops sending (RFC 9113 8.1); the connection serves on."""
    with serving() as (server, _), connect(server) as client:
        stream_id = client.request("/early", "POST", end_stream=False)
        client.data(stream_id, b"part")
        response = client.response(stream_id)
        client.read_until(lambda: response.reset is not None, "RST_STREAM after the response")
        assert (response.status, bytes(response.body)) == (200, b"ok /early 0")
        assert response.reset == ErrorCodes.NO_ERROR
        assert client.get("/after").status == 200


# =========================================================================== graceful drain
def test_stop_drains_the_stream_in_flight() -> None:
    """The server is asked to stop with a stream in flight: GOAWAY(NO_ERROR, 2^31-1) and a PING,
    then GOAWAY(NO_ERROR) naming that stream; a stream opened after it is refused
    (REFUSED_STREAM) and never reaches the app; the one in flight completes; then the close."""
    with serving(timeout_graceful_shutdown=5) as (server, app), connect(server) as client:
        stream_id = client.request("/stream", "POST", end_stream=False)
        client.read_until(lambda: client.streams[stream_id].status, "the streamed head")
        server.stop()
        client.read_until(lambda: len(client.goaways) == 2, "two GOAWAYs")
        codes = [(g.error_code, g.last_stream_id) for g in client.goaways]
        assert codes == [(ErrorCodes.NO_ERROR, MAX_STREAM_ID), (ErrorCodes.NO_ERROR, stream_id)]
        late = client.request("/late")
        client.read_until(lambda: client.streams[late].done, "the late stream refused")
        assert client.streams[late].reset == ErrorCodes.REFUSED_STREAM
        client.data(stream_id, b"body", end_stream=True)
        response = client.response(stream_id)
        assert (response.status, bytes(response.body), response.reset) == (200, b"4", None)
        client.read_until_closed()
    assert app.paths == ["/stream"]  # the server has stopped: its notes are final


def test_stream_opened_before_the_drain_ping_comes_back_is_served() -> None:
    """A stream the client opened before it saw the first GOAWAY (sent ahead of its PING
    acknowledgement) is named by the final GOAWAY and served (RFC 9113 6.8)."""
    with serving(timeout_graceful_shutdown=5) as (server, _), connect(server) as client:
        first = client.request("/stream", "POST", end_stream=False)
        client.read_until(lambda: client.streams[first].status, "the streamed head")
        client.autoflush = False  # hold back the PING acknowledgement
        server.stop()
        client.read_until(lambda: client.goaways, "the first GOAWAY")
        ack = client.conn.data_to_send()
        crossing = client.conn.get_next_available_stream_id()
        client.conn.send_headers(crossing, client.request_fields("/crossing"), end_stream=True)
        client.send_raw(client.conn.data_to_send() + ack)
        client.autoflush = True
        client.read_until(lambda: len(client.goaways) == 2, "the final GOAWAY")
        assert client.goaways[1].last_stream_id == crossing
        assert client.response(crossing).status == 200
        client.data(first, b"", end_stream=True)
        assert client.response(first).status == 200
        client.read_until_closed()


def test_sigterm_drains_the_stream_in_flight() -> None:
    """Under the real CLI, SIGTERM with a stream in flight: GOAWAY(NO_ERROR) naming it, a new
    stream refused or left unanswered, the stream in flight completes, devserve exits 0."""
    args = ("--timeout-graceful-shutdown", "5", "--app-dir", ROOT, "tests.h2_apps:app")
    with run_devserve(*args) as proc, H2Client.connect("127.0.0.1", proc.port) as client:
        stream_id = client.request("/stream", "POST", end_stream=False)
        client.read_until(lambda: client.streams[stream_id].status, "the streamed head")
        proc.proc.terminate()
        client.read_until(
            lambda: client.goaway and client.goaway.last_stream_id != MAX_STREAM_ID,
            "the final GOAWAY",
            timeout=5,
        )
        assert client.goaway is not None
        assert (client.goaway.error_code, client.goaway.last_stream_id) == (0, stream_id)
        late = client.request("/late")
        client.barrier()
        assert client.streams[late].reset in (None, ErrorCodes.REFUSED_STREAM)
        assert client.streams[late].status is None
        client.data(stream_id, b"body", end_stream=True)
        response = client.response(stream_id)
        assert (response.status, bytes(response.body)) == (200, b"4"), client.summary()
        client.read_until_closed(timeout=5)
        assert proc.proc.wait(timeout=10) == 0


def test_client_goaway_lets_its_stream_in_flight_finish() -> None:
    """The client sends GOAWAY(NO_ERROR) with a stream in flight: that stream's response still
    arrives, a stream opened after it is refused, then the server closes."""
    with serving() as (server, app), connect(server) as client:
        stream_id = client.request("/stream", "POST", end_stream=False)
        client.read_until(lambda: client.streams[stream_id].status, "the streamed head")
        client.goodbye(last_stream_id=0)
        until(lambda: server.call(lambda: h2_connections(server)[0].peer_gone), "the GOAWAY read")
        late = client.request("/late")
        client.read_until(lambda: client.streams[late].done, "the late stream refused")
        assert client.streams[late].reset == ErrorCodes.REFUSED_STREAM
        client.data(stream_id, b"body", end_stream=True)
        response = client.response(stream_id)
        assert (response.status, bytes(response.body)) == (200, b"4"), client.summary()
        client.read_until_closed()
        assert server.call(lambda: app.paths) == ["/stream"]


def test_client_goaway_and_the_rest_of_its_body_in_one_write() -> None:
    """GOAWAY(NO_ERROR) and the DATA that ends the stream in flight, in one write: the response
    still arrives. (h2 alone refuses every frame after a GOAWAY it received: once, the DATA
    made the server end the connection with PROTOCOL_ERROR.)"""
    with serving() as (server, _), connect(server) as client:
        stream_id = client.request("/stream", "POST", end_stream=False)
        client.read_until(lambda: client.streams[stream_id].status, "the streamed head")
        client.conn.send_data(stream_id, b"body", end_stream=True)
        goaway = GoAwayFrame(0, last_stream_id=0, error_code=0).serialize()
        client.send_raw(goaway + client.conn.data_to_send())  # one write
        response = client.response(stream_id)
        assert (response.status, bytes(response.body)) == (200, b"4"), client.summary()


def test_client_goaway_with_an_error_closes_at_once() -> None:
    """A client GOAWAY with an error code: the server closes at once, the app of the stream in
    flight learns of the disconnect."""
    with serving() as (server, app), connect(server) as client:
        stream_id = client.request("/stream", "POST", end_stream=False)
        client.read_until(lambda: client.streams[stream_id].status, "the streamed head")
        client.goodbye(last_stream_id=0, code=ErrorCodes.PROTOCOL_ERROR)
        client.read_until_closed()
        [seen] = server.call(lambda: app.seen)
        until(lambda: seen.messages, "the app's disconnect")
        assert seen.messages[-1]["type"] == "http.disconnect"


def test_a_huge_hpack_table_offered_by_the_client_is_not_taken() -> None:
    """A client's SETTINGS_HEADER_TABLE_SIZE of 4 GiB: devserve's HPACK encoder keeps a 4 KiB
    table all the same (with it, each distinct response field was kept, and searched for every
    field encoded after: each response cost more than the last), and the client still decodes
    every response."""

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        path = scope["path"].encode()
        headers = [(b"x-request-id", path * 4)]  # a new value for every response
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    settings = {SettingCodes.HEADER_TABLE_SIZE: 2**32 - 1}
    with run_server(app) as server, connect(server, settings=settings) as client:
        for number in range(300):
            response = client.get(f"/{number:05d}")
            assert dict(response.headers)[b"x-request-id"] == f"/{number:05d}".encode() * 4
        [conn] = h2_connections(server)
        table = server.call(lambda: conn.h2.encoder.header_table)
        assert server.call(lambda: (table.maxsize, table._current_size <= 4096)) == (4096, True)


@pytest.mark.parametrize(("length", "status"), [(100, 200), (101, 414)])
def test_path_longer_than_limit_request_line_answers_414(length: int, status: int) -> None:
    """A :path longer than --limit-request-line: 414 on its stream, as HTTP/1.1 answers a long
    request line (HPACK would otherwise let a client re-send a huge path as one byte)."""
    with serving(limit_request_line=100) as (server, app), connect(server) as client:
        response = client.get("/" + "p" * (length - 1))
        assert response.status == status, client.summary()
        assert client.get("/after").status == 200
        assert server.call(lambda: len(app.paths)) == (2 if status == 200 else 1)
