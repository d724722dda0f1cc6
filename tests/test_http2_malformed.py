"""Malformed HTTP/2 on the wire: request heads RFC 9113 section 8 calls malformed, bodies that
disagree with their content-length, broken frames and connection openings.

Each test talks to a real server on 127.0.0.1 through tests/h2_client.py (h2 sending header
fields exactly as given, hand-built frames where h2 will not build them). A malformed head
must cost only its own stream: RST_STREAM PROTOCOL_ERROR, the app never called, and the next
request on the same connection served as usual.
"""

from __future__ import annotations

import itertools
import logging
import socket
from collections.abc import Callable, Iterator

import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import PingFrame, SettingsFrame

from tests.h2_apps import Recorder
from tests.h2_client import PREFACE, Fields, H2Client, data_frame, unacknowledged, unread
from tests.utils import Running, run_server, until
from tests.wire_apps import parse_responses, read_until_closed

GOOD: Fields = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"test")]


def head(*fields: tuple[bytes, bytes], path: bytes = b"/bad") -> Fields:
    """A request head to /bad with `fields` after its pseudo-header fields."""
    return [*GOOD, (b":path", path), *fields]


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Running, Recorder]]:
    app = Recorder()
    with run_server(app, timeout_graceful_shutdown=0.5) as server:
        yield server, app


@pytest.fixture
def server(served: tuple[Running, Recorder]) -> Running:
    return served[0]


@pytest.fixture
def app(served: tuple[Running, Recorder]) -> Recorder:
    served[1].seen.clear()
    return served[1]


def all_read(server: Running, sock: socket.socket) -> Callable[[], bool]:
    """A probe for `until`: the server has read every byte written to `sock` so far (its
    kernel acknowledged them and none waits in the server's sockets), so that what is written
    next comes in a read of its own."""

    def nothing_unread() -> bool:
        connections = server.server.state.connections
        return not any(unread(c.transport.get_extra_info("socket")) for c in connections)

    return lambda: unacknowledged(sock) == 0 and server.call(nothing_unread)


def assert_refused(
    server: Running, app: Recorder, fields: Fields, log: list[logging.LogRecord], detail: str
) -> None:
    """`fields` as one request: its stream is reset with PROTOCOL_ERROR and the app never sees
    it; a well-formed request after it on the same connection is served."""
    with H2Client.connect(server.host, server.port) as client:
        bad = client.response(client.headers(fields))
        assert bad.reset == ErrorCodes.PROTOCOL_ERROR, client.summary()
        assert bad.status is None
        after = client.get("/after")
        assert (after.status, bytes(after.body)) == (200, b"ok /after 0"), client.summary()
        assert client.goaway is None and not client.closed
    assert app.paths == ["/after"], "the malformed request reached the app"
    warnings = [r.getMessage() for r in log if r.levelno == logging.WARNING]
    assert any(
        m.startswith("malformed HTTP/2 request from 127.0.0.1:") and detail in m for m in warnings
    ), warnings


MALFORMED = {
    # RFC 9113 8.2.1: field names are lower-case tokens
    "upper-case name": (head((b"X-Upper", b"v")), "invalid header name"),
    "name with a space": (head((b"x y", b"v")), "invalid header name"),
    "name with a colon inside": (head((b"x:y", b"v")), "invalid header name"),
    "empty name": (head((b"", b"v")), "invalid header name"),
    "name with a non-ASCII byte": (head((b"x\xff", b"v")), "invalid header name"),
    # 8.2.2: connection-specific fields
    "connection": (head((b"connection", b"keep-alive")), "connection-specific header"),
    "keep-alive": (head((b"keep-alive", b"timeout=5")), "connection-specific header"),
    "proxy-connection": (head((b"proxy-connection", b"close")), "connection-specific header"),
    "transfer-encoding": (head((b"transfer-encoding", b"chunked")), "connection-specific"),
    "upgrade": (head((b"upgrade", b"websocket")), "connection-specific header"),
    "te other than trailers": (head((b"te", b"gzip")), "te other than 'trailers'"),
    "te with trailers and more": (head((b"te", b"trailers, gzip")), "te other than"),
    # 8.2.1: field values
    "NUL in a value": (head((b"x-v", b"a\x00b")), "invalid value"),
    "CR in a value": (head((b"x-v", b"a\rb")), "invalid value"),
    "LF in a value": (head((b"x-v", b"a\nb")), "invalid value"),
    "CRLF in a value, smuggling a field": (head((b"x-v", b"a\r\nx-admin: 1")), "invalid value"),
    "leading space in a value": (head((b"x-v", b" a")), "invalid value"),
    "trailing space in a value": (head((b"x-v", b"a ")), "invalid value"),
    "leading tab in a value": (head((b"x-v", b"\ta")), "invalid value"),
    "trailing tab in a value": (head((b"x-v", b"a\t")), "invalid value"),
    "CRLF in :path": (head(path=b"/a\r\nx: y"), "invalid value"),
    # 8.3: pseudo-header fields
    "pseudo-header after a regular field": (
        [*GOOD, (b"x-v", b"1"), (b":path", b"/bad")],
        "after a regular field",
    ),
    "unknown pseudo-header": (head((b":foo", b"1")), "unknown pseudo-header"),
    "response pseudo-header in a request": (head((b":status", b"200")), "unknown pseudo-header"),
    "duplicate :path": ([*head(), (b":path", b"/bad2")], "duplicate pseudo-header"),
    "duplicate :method": ([(b":method", b"GET"), *head()], "duplicate pseudo-header"),
    "empty :path": (head(path=b""), "empty pseudo-header"),
    "empty :method": ([(b":method", b""), *GOOD[1:], (b":path", b"/bad")], "empty pseudo"),
    "empty :authority": ([*GOOD[:2], (b":authority", b""), (b":path", b"/bad")], "empty"),
    "no :method": ([*GOOD[1:], (b":path", b"/bad")], "no :method"),
    "no :scheme": ([GOOD[0], GOOD[2], (b":path", b"/bad")], "no :scheme or :path"),
    "no :path": (GOOD, "no :scheme or :path"),
    ":scheme ftp": ([GOOD[0], (b":scheme", b"ftp"), GOOD[2], (b":path", b"/bad")], ":scheme"),
    ":path without a slash": (head(path=b"bad"), "invalid :path"),
    ":path * with GET": (head(path=b"*"), "invalid :path"),
    ":path in absolute form": (head(path=b"http://test/bad"), "invalid :path"),
    "plain CONNECT": ([(b":method", b"CONNECT"), (b":authority", b"test:443")], "CONNECT"),
    ":protocol with GET": (
        [*GOOD, (b":path", b"/bad"), (b":protocol", b"websocket")],
        ":protocol in a request other than CONNECT",
    ),
    ":protocol other than websocket": (
        [(b":method", b"CONNECT"), *GOOD[1:], (b":path", b"/bad"), (b":protocol", b"h3")],
        "unknown :protocol",
    ),
    "host differing from :authority": (head((b"host", b"other")), "host differs"),
}


@pytest.mark.parametrize(("fields", "detail"), MALFORMED.values(), ids=list(MALFORMED))
def test_malformed_head_resets_only_its_stream(
    server: Running,
    app: Recorder,
    server_log: list[logging.LogRecord],
    fields: Fields,
    detail: str,
) -> None:
    """A malformed request head gets RST_STREAM PROTOCOL_ERROR and a warning; the app never
    runs for it, and the connection goes on serving."""
    assert_refused(server, app, fields, server_log, detail)


# A :method must be a token (RFC 9110 9.1): an app that proxies it writes it into a request line.
INVALID_METHODS = {
    "space in :method": b"G ET",
    "request line in :method": b"GET /ADMIN HTTP/1.1",
    "control byte in :method": b"GET\x01",
    "non-ASCII :method": b"G\xc3\x89T",
    "separator in :method": b"GET;",
}


@pytest.mark.parametrize("method", INVALID_METHODS.values(), ids=list(INVALID_METHODS))
def test_method_that_is_not_a_token_is_malformed(
    server: Running, app: Recorder, server_log: list[logging.LogRecord], method: bytes
) -> None:
    """A :method that is not a token is reset and kept from the app."""
    fields = [(b":method", method), *GOOD[1:], (b":path", b"/bad")]
    assert_refused(server, app, fields, server_log, "invalid :method")


def test_unusual_token_methods_are_served(server: Running, app: Recorder) -> None:
    """Methods are case-sensitive tokens: lower-case and extension methods reach the app."""
    with H2Client.connect(server.host, server.port) as client:
        for method in ("get", "PROPFIND", "M-SEARCH", "X_Y.1~"):
            assert client.response(client.request("/m", method)).status == 200
    assert [seen.method for seen in app.seen] == ["get", "PROPFIND", "M-SEARCH", "X_Y.1~"]


# A :path is the absolute-path and query of a URI, an :authority a host and port (RFC 9113
# 8.3.1, RFC 3986): neither has white space or control bytes; HTTP/1.1 answers such a target 400.
INVALID_TARGETS = {
    "space in :path": head(path=b"/bad x"),
    "control byte in :path": head(path=b"/bad\x7f"),
    "tab in :path": head(path=b"/bad\tx"),
    "space in :authority": [*GOOD[:2], (b":authority", b"te st"), (b":path", b"/bad")],
}


@pytest.mark.parametrize("fields", INVALID_TARGETS.values(), ids=list(INVALID_TARGETS))
def test_target_with_white_space_or_control_bytes_is_malformed(
    server: Running, app: Recorder, server_log: list[logging.LogRecord], fields: Fields
) -> None:
    """A :path or :authority with a space or a control byte is reset and kept from the app
    (which would find it in scope path/raw_path or the host header)."""
    assert_refused(server, app, fields, server_log, "invalid ':")


def test_protocol_is_unknown_when_extended_connect_is_off(
    server_log: list[logging.LogRecord],
) -> None:
    """With --ws none the server does not offer extended CONNECT (SETTINGS_ENABLE_CONNECT_
    PROTOCOL 0), so a :protocol field is an unknown pseudo-header."""
    app = Recorder()
    with run_server(app, ws="none") as server:
        fields = [(b":method", b"CONNECT"), *GOOD[1:], (b":path", b"/bad")]
        assert_refused(
            server, app, [*fields, (b":protocol", b"websocket")], server_log, ":protocol"
        )


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        (head((b"te", b"trailers"), path=b"/te"), "/te"),
        (head((b"host", b"test"), path=b"/host"), "/host"),
        ([(b":method", b"OPTIONS"), *GOOD[1:], (b":path", b"*")], "*"),
        (head((b"x-v", b"inner space and\ttab"), path=b"/inner"), "/inner"),
    ],
    ids=["te trailers", "host equal to :authority", "OPTIONS *", "inner white space"],
)
def test_edge_cases_of_the_rules_are_served(
    server: Running, app: Recorder, fields: Fields, path: str
) -> None:
    """What the rules allow is served: te: trailers, a host equal to :authority, OPTIONS *,
    white space inside a value."""
    with H2Client.connect(server.host, server.port) as client:
        response = client.response(client.headers(fields))
        assert response.status == 200, client.summary()
    assert app.paths == [path]


def test_malformed_and_good_requests_interleaved_in_one_write(
    server: Running, app: Recorder
) -> None:
    """Malformed and good requests sent together: exactly the malformed streams are reset,
    every good one is answered with its own response, the app sees only the good ones."""
    with H2Client.connect(server.host, server.port) as client:
        conn = client.conn
        streams: dict[int, Fields] = {}
        for n in range(12):
            stream_id = conn.get_next_available_stream_id()
            if n % 2:
                fields = head((b"transfer-encoding", b"chunked"), (b"x-n", b"%d" % n))
            else:
                fields = head((b"x-n", b"%d" % n), path=b"/good%d" % n)
            streams[stream_id] = fields
            conn.send_headers(stream_id, fields, end_stream=True)
        client.flush()  # one write
        for stream_id in streams:
            client.response(stream_id)
        for n, stream_id in enumerate(streams):
            stream = client.streams[stream_id]
            if n % 2:
                assert stream.reset == ErrorCodes.PROTOCOL_ERROR, client.summary()
            else:
                assert bytes(stream.body) == b"ok /good%d 0" % n, client.summary()
        assert client.stays_open()
    assert sorted(app.paths) == sorted(f"/good{n}" for n in range(0, 12, 2))


def test_malformed_request_flood_gets_enhance_your_calm(server: Running, app: Recorder) -> None:
    """Hundreds of malformed requests a second on one connection (each costs the server a
    parse, a reset and a log line; over HTTP/1.1 each would cost a connection): GOAWAY
    ENHANCE_YOUR_CALM, as for the client's own resets."""
    with H2Client.connect(server.host, server.port) as client:
        conn = client.conn
        for _ in range(8):
            for _ in range(50):
                stream_id = conn.get_next_available_stream_id()
                fields = head((b"transfer-encoding", b"chunked"))
                conn.send_headers(stream_id, fields, end_stream=True)
            client.flush()
            client.read_until(client.answered(stream_id), "the batch answered")
            if client.closed:
                break
        assert client.goaway is not None, f"{len(client.resets())} streams reset, no GOAWAY"
        assert client.goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert app.paths == []


# =========================================================================== content-length
def test_body_shorter_than_content_length_ends_the_connection(
    server: Running, app: Recorder
) -> None:
    """content-length 10 and a body of 5 that ends: GOAWAY PROTOCOL_ERROR naming the stream,
    and the app, already waiting for the body, never gets those 5 bytes as a whole body."""
    with H2Client.connect(server.host, server.port) as client:
        stream_id = client.request("/cl", "POST", [(b"content-length", b"10")], end_stream=False)
        until(lambda: server.call(lambda: app.paths), "the app to start")
        client.data(stream_id, b"12345", end_stream=True)
        client.read_until_closed()
        assert client.goaway is not None, client.summary()
        assert client.goaway.error_code == ErrorCodes.PROTOCOL_ERROR
        assert client.goaway.last_stream_id == stream_id
    [seen] = until(lambda: server.call(lambda: list(app.seen)), "the app's call")
    until(lambda: seen.messages, "the app to learn of the disconnect")
    assert [m["type"] for m in seen.messages] == ["http.disconnect"]


def test_body_longer_than_content_length_never_completes(server: Running, app: Recorder) -> None:
    """content-length 3 and 5 body bytes in two DATA frames: GOAWAY PROTOCOL_ERROR; the app
    may have read the first frame, but never a complete body that disagrees with the length."""
    with H2Client.connect(server.host, server.port) as client:
        stream_id = client.request("/cl", "POST", [(b"content-length", b"3")], end_stream=False)
        client.data(stream_id, b"12")
        client.barrier()
        client.data(stream_id, b"345")
        client.read_until_closed()
        assert client.goaway is not None, client.summary()
        assert client.goaway.error_code == ErrorCodes.PROTOCOL_ERROR
    [seen] = until(lambda: server.call(lambda: list(app.seen)), "the app's call")
    until(lambda: any(m["type"] == "http.disconnect" for m in seen.messages), "the disconnect")
    assert not seen.complete and b"345" not in seen.body, seen.messages


def test_content_length_in_one_write_never_reaches_the_app(server: Running, app: Recorder) -> None:
    """HEADERS and a DATA that disagrees with content-length in one write: the app is never
    called (h2 raises before the request is handed over)."""
    with H2Client.connect(server.host, server.port) as client:
        conn = client.conn
        conn.send_headers(1, client.request_fields("/cl", "POST", [(b"content-length", b"4")]))
        conn.send_data(1, b"123", end_stream=True)
        client.flush()
        client.read_until_closed()
        assert client.goaway is not None and client.goaway.error_code == ErrorCodes.PROTOCOL_ERROR
    assert server.call(lambda: app.paths) == []


def test_non_numeric_content_length_ends_the_connection(server: Running, app: Recorder) -> None:
    """content-length: abc is refused by h2 as a connection error (GOAWAY PROTOCOL_ERROR), not
    as a stream error: RFC 9113 5.4.1 allows it; other connections are served."""
    with H2Client.connect(server.host, server.port) as client:
        client.request("/cl", "POST", [(b"content-length", b"abc")], body=b"abc")
        client.read_until_closed()
        assert client.goaway is not None and client.goaway.error_code == ErrorCodes.PROTOCOL_ERROR
    assert server.call(lambda: app.paths) == []
    with H2Client.connect(server.host, server.port) as client:
        assert client.get("/after").status == 200


def test_matching_content_length_is_served(server: Running, app: Recorder) -> None:
    """A body that matches its content-length, in several DATA frames, reaches the app whole."""
    with H2Client.connect(server.host, server.port) as client:
        stream_id = client.request("/cl", "POST", [(b"content-length", b"6")], end_stream=False)
        client.data(stream_id, b"123")
        client.data(stream_id, b"456", end_stream=True)
        assert bytes(client.response(stream_id).body) == b"ok /cl 6"


# =========================================================================== broken frames
def test_frame_larger_than_max_frame_size_ends_the_connection(
    server: Running, app: Recorder
) -> None:
    """A DATA frame of MAX_FRAME_SIZE + 1 bytes: GOAWAY FRAME_SIZE_ERROR and close; the server
    goes on serving other connections."""
    with H2Client.connect(server.host, server.port) as client:
        stream_id = client.request("/big-frame", "POST", end_stream=False)
        client.barrier()
        client.send_frame(data_frame(stream_id, b"x" * (client.server_settings[5] + 1)))
        client.read_until_closed()
        assert client.goaway is not None, client.summary()
        assert client.goaway.error_code == ErrorCodes.FRAME_SIZE_ERROR
    with H2Client.connect(server.host, server.port) as client:
        assert client.get("/after").status == 200


def test_frame_of_exactly_max_frame_size_is_served(server: Running, app: Recorder) -> None:
    """A DATA frame of exactly MAX_FRAME_SIZE bytes is read like any other."""
    with H2Client.connect(server.host, server.port) as client:
        size = client.server_settings[5]
        stream_id = client.request("/frame", "POST", end_stream=False)
        client.send_frame(data_frame(stream_id, b"x" * size, end_stream=True))
        assert bytes(client.response(stream_id).body) == b"ok /frame %d" % size


@pytest.mark.parametrize("cut", [False, True], ids=["in one read", "cut across reads"])
def test_oversized_frame_is_refused_at_its_header(
    server: Running, app: Recorder, cut: bool
) -> None:
    """A frame header announcing 16 MiB (MAX_FRAME_SIZE is 16 KiB), whole or cut across four
    reads after a small DATA frame: GOAWAY FRAME_SIZE_ERROR
    before its payload, which the server never buffers (RFC 9113 4.2; h2 alone would hold the
    whole frame first)."""
    with H2Client.connect(server.host, server.port) as client:
        stream_id = client.request("/big-frame", "POST", end_stream=False)
        header = b"\xff\xff\xff\x00\x00" + stream_id.to_bytes(4, "big")
        if cut:
            client.data(stream_id, b"abc")
            for byte in header[:4]:
                client.send_raw(bytes([byte]))
                until(all_read(server, client.sock), "the server to read it")
        client.send_raw((header[4:] if cut else header) + b"x" * 65536)
        client.read_until_closed(timeout=1.0)
        assert client.goaway is not None, client.summary()
        assert client.goaway.error_code == ErrorCodes.FRAME_SIZE_ERROR


def test_data_on_stream_zero_ends_the_connection(server: Running) -> None:
    """A DATA frame on stream 0 right after the preface and SETTINGS: GOAWAY PROTOCOL_ERROR."""
    with socket.create_connection((server.host, server.port), timeout=3) as sock:
        sock.sendall(PREFACE + SettingsFrame(0).serialize() + b"\x00" * 9)
        raw, closed = read_until_closed(sock, 3)
    assert closed
    assert raw.endswith(b"\x00\x00\x08\x07\x00\x00\x00\x00\x00" + b"\x00" * 4 + b"\x00\x00\x00\x01")


def test_first_frame_other_than_settings_is_an_invalid_preface(server: Running) -> None:
    """The preface, then a PING instead of SETTINGS: GOAWAY PROTOCOL_ERROR and close (RFC 9113
    3.4; h2 does not check it)."""
    with H2Client.connect(server.host, server.port, start=False) as client:
        client.send_raw(PREFACE + PingFrame(0, opaque_data=b"12345678").serialize())
        client.read_until(lambda: client.goaway is not None, "GOAWAY", timeout=1.0)
        assert client.goaway is not None
        assert client.goaway.error_code == ErrorCodes.PROTOCOL_ERROR


# =========================================================================== openings
def test_preface_split_across_writes_is_http2(server: Running, app: Recorder) -> None:
    """The preface in four reads (the server holds each part until the next): HTTP/2."""
    with H2Client.connect(server.host, server.port, start=False) as client:
        client.conn.initiate_connection()
        opening = client.conn.data_to_send()
        for start, end in itertools.pairwise([0, 1, 9, 23, len(opening)]):
            client.send_raw(opening[start:end])
            until(all_read(server, client.sock), f"the server to read {end} bytes")
        client.read_until(lambda: client.server_settings, "the server's SETTINGS")
        assert client.get("/split").status == 200


def test_garbage_after_a_partial_preface_is_http1_and_refused(server: Running) -> None:
    """'PRI * HTTP/2.0' and then not the rest of the preface is read as HTTP/1.1 and refused
    with 400; the server goes on serving."""
    with socket.create_connection((server.host, server.port), timeout=3) as sock:
        sock.sendall(PREFACE[:16])
        until(all_read(server, sock), "the partial preface read")
        sock.sendall(b"\r\nXX garbage\r\n\r\n")
        raw, closed = read_until_closed(sock, 3)
    assert [r.status for r in parse_responses(raw)] == [400], raw
    assert closed
    with H2Client.connect(server.host, server.port) as client:
        assert client.get("/after").status == 200


def test_http2_only_answers_http1_with_505() -> None:
    """--http 2: an HTTP/1.1 request gets 505 and the connection closes; HTTP/2 is served."""
    with run_server(Recorder(), http="2") as server:
        with socket.create_connection((server.host, server.port), timeout=3) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
            raw, closed = read_until_closed(sock, 3)
        assert [r.status for r in parse_responses(raw)] == [505], raw
        assert closed
        with H2Client.connect(server.host, server.port) as client:
            assert client.get("/").status == 200


def test_http2_only_answers_a_broken_preface_with_505() -> None:
    """--http 2: bytes that start like the preface and then differ are not HTTP/2: 505."""
    with run_server(Recorder(), http="2") as server:
        with socket.create_connection((server.host, server.port), timeout=3) as sock:
            sock.sendall(PREFACE[:16] + b"\r\nXX garbage\r\n\r\n")
            raw, closed = read_until_closed(sock, 3)
        assert [r.status for r in parse_responses(raw)] == [505], raw
        assert closed


def test_http1_only_answers_the_preface_with_505() -> None:
    """--http 1: the HTTP/2 preface is an HTTP/1.1 request for version 2.0: 505 and close (no
    SETTINGS); HTTP/1.1 requests are served."""
    app = Recorder()
    with run_server(app, http="1") as server:
        with socket.create_connection((server.host, server.port), timeout=3) as sock:
            sock.sendall(PREFACE + SettingsFrame(0).serialize())
            raw, closed = read_until_closed(sock, 3)
        assert [r.status for r in parse_responses(raw)] == [505], raw
        assert closed
        with socket.create_connection((server.host, server.port), timeout=3) as sock:
            sock.sendall(b"GET /one HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            raw, _ = read_until_closed(sock, 3)
        assert [r.status for r in parse_responses(raw)] == [200]
    assert app.paths == ["/one"]


def test_frames_cut_across_reads_are_served(server: Running, app: Recorder) -> None:
    """The preface, SETTINGS, a request with a body and a PING, cut every 7 bytes (frame headers
    cut across reads, each part read on its own): served as if written at once."""
    with H2Client.connect(server.host, server.port, start=False) as client:
        conn = client.conn
        conn.initiate_connection()
        stream_id = conn.get_next_available_stream_id()
        conn.send_headers(stream_id, client.request_fields("/bytes", "POST"))
        conn.send_data(stream_id, b"0123456789", end_stream=True)
        conn.ping(b"12345678")
        data = conn.data_to_send()
        for at in range(0, len(data), 7):
            client.send_raw(data[at : at + 7])
            until(all_read(server, client.sock), "the server to read the part")
        response = client.response(stream_id)
        assert bytes(response.body) == b"ok /bytes 10", client.summary()
        client.read_until(lambda: b"12345678" in client.ping_acks, "the PING acknowledgement")
        assert client.get("/after").status == 200
