"""HTTP/1.1 on the wire: raw sockets against a real server (bad input, app failures, features).

Every test talks bytes to `run_server` over 127.0.0.1 and checks the exact bytes that come back:
status, framing, which headers are there, and whether the connection is kept or closed.
Synchronisation is by socket reads with deadlines and threading events, never by sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import json
import logging
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import apps, wire_apps
from tests.utils import Running, is_closed, run_server, until
from tests.wire_apps import parse_responses, read_responses, read_until_closed
from tests.wire_client import GET, GET_CLOSE, HOST, assert_rejected, assert_still_serving, exchange


def post(path: str, body: bytes, *headers: bytes) -> bytes:
    head = b"POST %b HTTP/1.1\r\n" % path.encode() + HOST
    head += b"Content-Length: %d\r\n" % len(body) + b"".join(h + b"\r\n" for h in headers)
    return head + b"\r\n" + body


def errors(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if r.levelno >= logging.ERROR]


# =========================================================================== bad input
@pytest.fixture
def strict_server() -> Iterator[Running]:
    with run_server(wire_apps.record, limit_request_line=128, max_header_size=1024) as server:
        yield server


def test_malformed_request_line_is_400_and_closed(strict_server: Running) -> None:
    """A request line that is not `METHOD target HTTP/x.y` gets a 400 and a closed connection."""
    response = assert_rejected(strict_server, b"GARBAGE\r\n\r\n", 400)
    assert response.body == b"Bad Request\n"


def test_request_line_over_the_limit_is_414(strict_server: Running) -> None:
    """A request target longer than --limit-request-line is answered 414 and closed."""
    target = b"/" + b"a" * 200
    assert_rejected(strict_server, b"GET %b HTTP/1.1\r\n" % target + HOST + b"\r\n", 414)


def test_request_line_at_the_limit_is_served(strict_server: Running) -> None:
    """A target of exactly --limit-request-line bytes is still served."""
    target = b"/" + b"a" * 127
    with strict_server.connect() as sock:
        sock.sendall(b"GET %b HTTP/1.1\r\n" % target + HOST + b"\r\n")
        [response] = read_responses(sock, 1)
    assert response.status == 200
    assert json.loads(response.body)["path"] == target.decode()


def test_header_block_over_max_header_size_is_431(strict_server: Running) -> None:
    """Many headers adding up to more than max_header_size get 431 and a closed connection."""
    headers = b"".join(b"X-Header-%d: %b\r\n" % (i, b"v" * 50) for i in range(40))
    assert_rejected(strict_server, b"GET / HTTP/1.1\r\n" + HOST + headers + b"\r\n", 431)


def test_single_huge_header_is_431(strict_server: Running) -> None:
    """One header value larger than max_header_size gets 431 and a closed connection."""
    data = b"GET / HTTP/1.1\r\n" + HOST + b"X-Big: " + b"v" * 3000 + b"\r\n\r\n"
    assert_rejected(strict_server, data, 431)


def test_head_larger_than_the_buffer_bound_sent_in_pieces_is_431(strict_server: Running) -> None:
    """A header line that never ends, sent in many small writes, is cut off with 431."""
    with strict_server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n" + HOST + b"X-Endless: ")
        closed = False
        for _ in range(400):
            try:
                sock.sendall(b"v" * 64)
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
        raw, closed_now = read_until_closed(sock)
    assert closed or closed_now
    [response] = parse_responses(raw)
    assert response.status == 431


def test_content_length_with_transfer_encoding_is_400(strict_server: Running) -> None:
    """A request with both Content-Length and Transfer-Encoding is a framing error: 400."""
    data = (
        b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    assert_rejected(strict_server, data, 400)


def test_content_length_with_transfer_encoding_is_refused_and_closed(
    strict_server: Running,
) -> None:
    """CL+TE (either order) gets exactly one error response and the connection is closed."""
    for headers in (
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
    ):
        raw, closed = exchange(strict_server, b"POST / HTTP/1.1\r\n" + HOST + headers + b"\r\n")
        [response] = parse_responses(raw)
        assert response.status in (400, 501)
        assert closed
    assert_still_serving(strict_server)


def test_two_differing_content_lengths_are_400(strict_server: Running) -> None:
    """Two Content-Length headers with different values get 400 and a closed connection."""
    data = b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"
    assert_rejected(strict_server, data, 400)


def test_negative_content_length_is_400(strict_server: Running) -> None:
    """A negative Content-Length gets 400 and a closed connection."""
    data = b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: -5\r\n\r\nhello"
    assert_rejected(strict_server, data, 400)


def test_non_numeric_content_length_is_400(strict_server: Running) -> None:
    """A Content-Length that is not a number gets 400 and a closed connection."""
    data = b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: abc\r\n\r\nhello"
    assert_rejected(strict_server, data, 400)


def test_invalid_chunk_size_is_400(strict_server: Running) -> None:
    """A chunk size that is not hexadecimal gets 400 and a closed connection."""
    data = (
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nhello\r\n0\r\n\r\n"
    )
    assert_rejected(strict_server, data, 400)


def test_obs_fold_is_400(strict_server: Running) -> None:
    """A header continued on the next line (obsolete line folding) gets 400."""
    data = b"GET / HTTP/1.1\r\n" + HOST + b"X-Folded: first\r\n  second\r\n\r\n"
    assert_rejected(strict_server, data, 400)


def test_space_before_colon_is_400(strict_server: Running) -> None:
    """Whitespace between a header name and its colon gets 400."""
    assert_rejected(strict_server, b"GET / HTTP/1.1\r\nHost : test\r\n\r\n", 400)


def test_unsupported_transfer_encoding_is_501(strict_server: Running) -> None:
    """Transfer-Encoding: gzip (a coding the server does not implement) gets 501 and close."""
    data = b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: gzip\r\n\r\nxxxx"
    response = assert_rejected(strict_server, data, 501)
    assert response.body == b"Not Implemented\n"


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(
            b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 44\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            b"GET /smuggled HTTP/1.1\r\n" + HOST + b"\r\n",
            id="CL.TE",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n"
            b"Content-Length: 4\r\n\r\n2c\r\nGET /smuggled HTTP/1.1\r\n" + HOST + b"X: \r\n"
            b"0\r\n\r\n",
            id="TE.CL",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n"
            b"Transfer-Encoding: x\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n" + HOST + b"\r\n",
            id="TE.TE",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length : 34\r\n\r\n"
            b"GET /smuggled HTTP/1.1\r\n" + HOST + b"\r\n",
            id="CL-space-before-colon",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 0\r\nContent-Length: 34\r\n\r\n"
            b"GET /smuggled HTTP/1.1\r\n" + HOST + b"\r\n",
            id="CL.CL",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
            b"0\nGET /smuggled HTTP/1.1\r\n" + HOST + b"\r\n\r\n",
            id="bare-LF-last-chunk",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
            b'1;a="\r\n"\r\nX\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n' + HOST + b"\r\n",
            id="quoted-chunk-extension",
        ),
    ],
)
def test_smuggling_attempt_never_yields_a_second_response(
    strict_server: Running, payload: bytes
) -> None:
    """An ambiguously framed request gets one error response; the hidden request is never run."""
    raw, closed = exchange(strict_server, payload)
    responses = parse_responses(raw)
    assert len(responses) == 1, raw
    assert responses[0].status >= 400
    assert b"smuggled" not in raw
    assert closed
    assert_still_serving(strict_server)


@pytest.mark.parametrize(
    "target",
    [b"example.com:443", b"http://[::1", b"https://example.com:99999/x"],
    ids=["authority-form", "unclosed-ipv6", "port-out-of-range"],
)
def test_unparsable_request_target_is_400(strict_server: Running, target: bytes) -> None:
    """A request target that cannot be split into path and query gets 400, not a dropped socket."""
    method = b"CONNECT" if target == b"example.com:443" else b"GET"
    assert_rejected(strict_server, b"%b %b HTTP/1.1\r\n" % (method, target) + HOST + b"\r\n", 400)


def test_unparsable_request_target_never_reaches_the_app(strict_server: Running) -> None:
    """A CONNECT request (authority-form target) is never handed to the app; the server goes on."""
    raw, closed = exchange(strict_server, b"CONNECT example.com:443 HTTP/1.1\r\n" + HOST + b"\r\n")
    assert closed
    assert b"200 OK" not in raw
    assert_still_serving(strict_server)


def test_bad_request_after_a_good_one_answers_both_in_order(strict_server: Running) -> None:
    """A valid request pipelined before a malformed one gets its 200, then the 400, then close."""
    data = GET + b"GET / HTTP/1.1\r\nHost : bad\r\n\r\n"
    raw, closed = exchange(strict_server, data)
    assert [r.status for r in parse_responses(raw)] == [200, 400]
    assert closed


def test_bad_chunk_while_the_app_reads_the_body_closes(strict_server: Running) -> None:
    """A chunked body that turns malformed after the app started reading it ends the connection."""
    head = b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
    with strict_server.connect() as sock:
        sock.sendall(head + b"5\r\nhello\r\n")
        assert not is_closed(sock, timeout=0.1)  # the app is waiting for more body
        sock.sendall(b"zz\r\n")
        raw, closed = read_until_closed(sock)
    assert closed
    assert [r.status for r in parse_responses(raw)] == [400]
    assert_still_serving(strict_server)


# =========================================================================== app behaviour
def test_app_raising_before_start_is_500_and_close(server_log: list[logging.LogRecord]) -> None:
    """An exception before http.response.start becomes a 500 with Connection: close."""
    with run_server(wire_apps.raise_before_start) as server:
        raw, closed = exchange(server, GET)
    [response] = parse_responses(raw)
    assert response.status == 500
    assert response.header("connection") == "close"
    assert response.body == b"Internal Server Error"
    assert closed
    assert "Exception in ASGI application" in errors(server_log)


def test_the_500_for_a_head_request_has_no_body(server_log: list[logging.LogRecord]) -> None:
    """devserve's own 500 answers a HEAD request with headers only (Content-Length kept)."""
    request = b"HEAD / HTTP/1.1\r\n" + HOST + b"\r\n"
    with run_server(wire_apps.raise_before_start) as server:
        raw, closed = exchange(server, request)
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 500 ")
    assert b"content-length: 21" in head.lower()
    assert rest == b""
    assert closed


@pytest.mark.parametrize(
    "app", [wire_apps.raise_after_start, wire_apps.raise_after_start_chunked], ids=["CL", "chunked"]
)
def test_app_raising_after_start_closes_without_a_complete_body(
    app: Any, server_log: list[logging.LogRecord]
) -> None:
    """An exception mid-body closes the connection so the client sees a truncated response."""
    with run_server(app) as server:
        raw, closed = exchange(server, GET)
    assert closed
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(wire_apps.Incomplete):
        parse_responses(raw, eof=False)
    assert "Exception in ASGI application" in errors(server_log)


def test_app_returning_without_a_response_is_500(server_log: list[logging.LogRecord]) -> None:
    """An app that returns without sending anything gets a 500 on its behalf, then close."""
    with run_server(wire_apps.return_without_response) as server:
        raw, closed = exchange(server, GET)
    [response] = parse_responses(raw)
    assert response.status == 500
    assert closed
    assert any("without completing the response" in m for m in errors(server_log))


def test_app_returning_after_start_only_closes(server_log: list[logging.LogRecord]) -> None:
    """An app that returns after http.response.start alone leaves no usable response: closed."""
    with run_server(wire_apps.return_after_start) as server:
        raw, closed = exchange(server, GET)
    assert closed
    responses = []
    with contextlib.suppress(wire_apps.Incomplete):
        responses = parse_responses(raw, eof=False)
    assert all(r.status == 500 for r in responses)
    assert any("without completing the response" in m for m in errors(server_log))


def test_app_returning_mid_body_closes_with_incomplete_body(
    server_log: list[logging.LogRecord],
) -> None:
    """An app that returns with more_body still pending gets its connection closed mid-body."""
    with run_server(wire_apps.return_mid_body) as server:
        raw, closed = exchange(server, GET)
    assert closed
    with pytest.raises(wire_apps.Incomplete):
        parse_responses(raw, eof=False)
    assert any("without completing the response" in m for m in errors(server_log))


def test_body_before_start_is_logged_and_500(server_log: list[logging.LogRecord]) -> None:
    """http.response.body before http.response.start is an ASGI error: logged, 500, closed."""
    with run_server(wire_apps.body_before_start) as server:
        raw, closed = exchange(server, GET)
    [response] = parse_responses(raw)
    assert response.status == 500
    assert closed
    assert any("Exception in ASGI application" in m for m in errors(server_log))
    failure = next(r for r in server_log if r.exc_info)
    assert "http.response.body" in str(failure.exc_info[1])  # type: ignore[index]


def test_two_starts_is_logged_and_500(server_log: list[logging.LogRecord]) -> None:
    """A second http.response.start is an ASGI error: logged, and the client gets a 500."""
    with run_server(wire_apps.two_starts) as server:
        raw, closed = exchange(server, GET)
    assert closed
    assert any("Exception in ASGI application" in m for m in errors(server_log))
    [response] = parse_responses(raw)
    assert response.status == 500


def test_two_starts_is_logged_and_closed(server_log: list[logging.LogRecord]) -> None:
    """A second http.response.start is logged, never reaches the wire, and ends the connection."""
    with run_server(wire_apps.two_starts) as server:
        raw, closed = exchange(server, GET)
    assert closed
    assert b"201" not in raw
    failure = next(r for r in server_log if r.exc_info)
    assert "http.response.start" in str(failure.exc_info[1])  # type: ignore[index]


def test_message_after_the_response_is_logged_and_connection_kept(
    server_log: list[logging.LogRecord],
) -> None:
    """A body sent after the response completed is logged; the finished response stands."""
    with run_server(wire_apps.body_after_done) as server, server.connect() as sock:
        sock.sendall(GET)
        [response] = read_responses(sock, 1)
        assert response.body == b"done"
        until(lambda: any(r.exc_info for r in server_log), "the app's traceback in the log")
        sock.sendall(GET_CLOSE)
        [again] = read_responses(sock, 1)
        assert again.body == b"done"
    assert "while complete" in str(next(r for r in server_log if r.exc_info).exc_info[1])  # type: ignore[index]


def test_limit_concurrency_answers_503() -> None:
    """With limit_concurrency=1, a request while another is in flight gets 503 and close."""
    gate = wire_apps.Gate()
    with run_server(gate, limit_concurrency=1) as server, server.connect() as first:
        first.sendall(GET)
        assert gate.entered.wait(2)
        raw, closed = exchange(server, GET)
        [response] = parse_responses(raw)
        assert response.status == 503
        assert response.header("connection") == "close"
        assert closed
        gate.release.set()
        [ok] = read_responses(first, 1)
        assert ok.status == 200 and ok.body == b"released"
        assert_still_serving(server)


# =========================================================================== protocol features
def test_keep_alive_serves_two_requests_on_one_socket() -> None:
    """Two sequential requests on one HTTP/1.1 connection are both answered; it stays open."""
    with run_server(wire_apps.record) as server, server.connect() as sock:
        ports = []
        for path in (b"/one", b"/two"):
            sock.sendall(b"GET %b HTTP/1.1\r\n" % path + HOST + b"\r\n")
            [response] = read_responses(sock, 1)
            seen = json.loads(response.body)
            assert seen["path"] == path.decode()
            assert response.header("connection") is None
            ports.append(seen["client"][1])
        assert ports[0] == ports[1]
        assert not is_closed(sock, timeout=0.05)


def test_pipelined_requests_are_answered_in_order() -> None:
    """Three requests sent in one write get three responses in request order."""
    requests = b"".join(b"GET /%d HTTP/1.1\r\n" % i + HOST + b"\r\n" for i in (1, 2, 3))
    with run_server(wire_apps.record) as server, server.connect() as sock:
        sock.sendall(requests)
        responses = read_responses(sock, 3)
    assert [json.loads(r.body)["path"] for r in responses] == ["/1", "/2", "/3"]


def test_pipelined_posts_keep_their_own_bodies() -> None:
    """Pipelined POSTs with bodies (CL and chunked) each reach the app with their own body."""
    chunked = (
        b"POST /c HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    data = post("/a", b"first") + chunked + post("/b", b"third")
    with run_server(apps.echo) as server, server.connect() as sock:
        sock.sendall(data)
        responses = read_responses(sock, 3)
    assert [(r.header("x-path"), r.body) for r in responses] == [
        ("/a", b"first"),
        ("/c", b"abcde"),
        ("/b", b"third"),
    ]


def test_chunked_request_body_is_reassembled() -> None:
    """A chunked request body (with an extension and a trailer) reaches the app whole."""
    data = (
        b"POST /up HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    with run_server(apps.echo) as server, server.connect() as sock:
        sock.sendall(data)
        [response] = read_responses(sock, 1)
    assert response.body == b"hello 0123456789"


def test_streaming_response_is_chunked_with_correct_framing() -> None:
    """more_body parts without a Content-Length are sent chunked; empty parts make no chunk."""
    with run_server(wire_apps.stream) as server, server.connect() as sock:
        sock.sendall(GET)
        [response] = read_responses(sock, 1)
        sock.sendall(GET)  # still usable: the chunked framing ended the body
        [again] = read_responses(sock, 1)
    assert response.header("transfer-encoding") == "chunked"
    assert response.header("content-length") is None
    assert response.chunks == [b"alpha", b"beta-", b"gamma"]
    assert again.body == b"alphabeta-gamma"


def test_streaming_response_to_http10_is_delimited_by_close() -> None:
    """HTTP/1.0 cannot take chunks: the streamed body runs until the connection closes."""
    with run_server(wire_apps.stream) as server:
        raw, closed = exchange(server, b"GET / HTTP/1.0\r\n\r\n")
    assert closed
    [response] = parse_responses(raw)
    assert response.header("transfer-encoding") is None
    assert response.body == b"alphabeta-gamma"


def test_content_length_response_is_framed_exactly() -> None:
    """A body sent in parts under the app's Content-Length is sent as-is, not chunked."""
    with run_server(wire_apps.fixed_length) as server, server.connect() as sock:
        sock.sendall(GET + GET)
        responses = read_responses(sock, 2)
    for response in responses:
        assert response.header("content-length") == "10"
        assert response.header("transfer-encoding") is None
        assert response.body == b"0123456789"


def test_single_body_gets_a_content_length() -> None:
    """A one-message body without the app's Content-Length gets one computed by the server."""
    with run_server(apps.hello) as server, server.connect() as sock:
        sock.sendall(GET)
        [response] = read_responses(sock, 1)
    assert response.header("content-length") == "13"
    assert response.body == b"Hello, world!"


def test_expect_100_continue_is_sent_when_the_app_reads_the_body() -> None:
    """With Expect: 100-continue, '100 Continue' comes only once the app asks for the body."""
    app = wire_apps.ExpectApp()
    head = b"POST /read HTTP/1.1\r\n" + HOST + b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    with run_server(app) as server, server.connect() as sock:
        sock.sendall(head)
        sock.settimeout(2)
        interim = b""
        while b"\r\n\r\n" not in interim:
            interim += sock.recv(65536)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        [response] = read_responses(sock, 1)
        assert response.status == 200
        assert response.body == b"got hello"
        sock.sendall(GET_CLOSE)  # the connection is still good
        assert read_responses(sock, 1)[0].status == 413
    assert app.bodies == [b"hello"]


def test_expect_100_continue_not_sent_when_the_app_answers_without_reading() -> None:
    """An app that answers without reading the body gets no 100; the connection then closes."""
    app = wire_apps.ExpectApp()
    head = (
        b"POST /ignore HTTP/1.1\r\n" + HOST + b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    )
    with run_server(app) as server:
        raw, closed = exchange(server, head)
    assert b"100 Continue" not in raw
    [response] = parse_responses(raw)
    assert response.status == 413
    assert closed  # the unsent body would otherwise be read as the next request
    assert app.bodies == []


def test_expect_100_continue_unread_announces_the_close() -> None:
    """When the server will close because the body was never read, it says Connection: close."""
    head = (
        b"POST /ignore HTTP/1.1\r\n" + HOST + b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    )
    with run_server(wire_apps.ExpectApp()) as server:
        raw, closed = exchange(server, head)
    [response] = parse_responses(raw)
    assert closed
    assert response.header("connection") == "close"


def test_expect_100_continue_with_the_body_already_sent_sends_no_100() -> None:
    """A client that sends the body without waiting gets no 100, only the final response."""
    app = wire_apps.ExpectApp()
    data = post("/read", b"hello", b"Expect: 100-continue")
    with run_server(app) as server, server.connect() as sock:
        sock.sendall(data)
        responses = read_responses(sock, 1)
    assert [r.status for r in responses] == [200]


def test_head_response_has_headers_but_no_body() -> None:
    """HEAD gets the GET headers (Content-Length included) but not one body byte."""
    head = b"HEAD / HTTP/1.1\r\n" + HOST + b"\r\n"
    with run_server(wire_apps.status_from_path) as server, server.connect() as sock:
        sock.sendall(head + GET_CLOSE)
        raw, closed = read_until_closed(sock)
    first, second = parse_responses(raw, bodiless=[True, False])
    assert first.status == 200
    assert first.header("content-length") == "4"
    assert first.body == b""
    assert second.body == b"body"  # a body byte after HEAD would have broken this framing
    assert closed


def test_head_of_streaming_response_has_no_body() -> None:
    """HEAD to a streaming app sends neither chunks nor body bytes."""
    request = b"HEAD / HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n"
    with run_server(wire_apps.stream) as server:
        raw, closed = exchange(server, request)
    assert closed
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert rest == b""


@pytest.mark.parametrize("status", [204, 304])
def test_bodiless_statuses_have_no_body(status: int) -> None:
    """204 and 304 responses carry no body and no chunked framing; keep-alive continues."""
    request = b"GET /%d HTTP/1.1\r\n" % status + HOST + b"\r\n"
    with run_server(wire_apps.status_from_path) as server, server.connect() as sock:
        sock.sendall(request + GET_CLOSE)
        raw, closed = read_until_closed(sock)
    first, second = parse_responses(raw)
    assert first.status == status
    assert first.body == b""
    assert first.header("transfer-encoding") is None
    if status == 204:
        assert first.header("content-length") is None
    assert second.status == 200 and second.body == b"body"
    assert closed


def test_http10_request_is_closed_after_the_response() -> None:
    """An HTTP/1.0 request without keep-alive gets `Connection: close` and a closed socket."""
    with run_server(wire_apps.record) as server:
        raw, closed = exchange(server, b"GET / HTTP/1.0\r\n\r\n")
    [response] = parse_responses(raw)
    assert response.header("connection") == "close"
    assert json.loads(response.body)["http_version"] == "1.0"
    assert closed


def test_http10_keep_alive_keeps_the_connection() -> None:
    """HTTP/1.0 with Connection: keep-alive is answered with keep-alive and stays open."""
    with run_server(wire_apps.record) as server, server.connect() as sock:
        sock.sendall(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        [response] = read_responses(sock, 1)
        assert response.header("connection") == "keep-alive"
        sock.sendall(b"GET /b HTTP/1.0\r\n\r\n")
        raw, closed = read_until_closed(sock)
    [second] = parse_responses(raw)
    assert json.loads(second.body)["path"] == "/b"
    assert closed


def test_connection_close_closes_after_the_response() -> None:
    """`Connection: close` from the client is echoed and the server closes after the response."""
    with run_server(wire_apps.record) as server:
        raw, closed = exchange(server, GET_CLOSE + GET)
    [response] = parse_responses(raw)
    assert response.header("connection") == "close"
    assert closed


def test_app_connection_close_header_closes() -> None:
    """An app sending `connection: close` ends the connection after its response."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await wire_apps.respond(send, 200, b"bye", [(b"Connection", b"close")])

    with run_server(app, lifespan="off") as server:
        raw, closed = exchange(server, GET + GET)
    [response] = parse_responses(raw)
    assert response.header("connection") == "close"
    assert closed


def test_date_and_server_headers_are_sent() -> None:
    """Responses carry `server: devserve` and a current RFC 9110 Date."""
    with run_server(apps.hello) as server, server.connect() as sock:
        sock.sendall(GET)
        [response] = read_responses(sock, 1)
    assert response.header("server") == "devserve"
    date = email.utils.parsedate_to_datetime(response.header("date") or "")
    assert abs(date.timestamp() - time.time()) < 5
    assert (response.header("date") or "").endswith(" GMT")


def test_no_server_and_no_date_header() -> None:
    """--no-server-header and --no-date-header leave those headers out."""
    with run_server(apps.hello, server_header=False, date_header=False) as server:
        raw, _ = exchange(server, GET_CLOSE)
    [response] = parse_responses(raw)
    assert response.header("server") is None
    assert response.header("date") is None
    assert response.body == b"Hello, world!"


def test_extra_headers_are_added_to_every_response() -> None:
    """--header NAME:VALUE adds the header to app responses and to the server's own errors."""
    with run_server(apps.hello, header=(("X-A", "1"), ("X-B", "two words"))) as server:
        raw, _ = exchange(server, GET_CLOSE)
        error, _ = exchange(server, b"GARBAGE\r\n\r\n")
    for response in parse_responses(raw) + parse_responses(error):
        assert response.header("x-a") == "1"
        assert response.header("x-b") == "two words"


def test_idle_keep_alive_connection_is_closed_after_the_timeout() -> None:
    """A kept-alive connection with no new request is closed after timeout_keep_alive."""
    with run_server(apps.hello, timeout_keep_alive=0.3) as server, server.connect() as sock:
        sock.sendall(GET)
        read_responses(sock, 1)
        started = time.monotonic()
        raw, closed = read_until_closed(sock, timeout=10)
        elapsed = time.monotonic() - started
    assert closed and raw == b""
    # The time is the behaviour here. Not before the 0.3 s (less a little: `started` comes after
    # the response), and well before the default 5 s, so it is this timeout that fired; the
    # upper bound is generous for a busy machine, only a guard against another timeout.
    assert 0.2 <= elapsed < 3


def test_slow_request_head_is_cut_off_after_the_header_timeout() -> None:
    """A client trickling its request head gets 408 and a close after timeout_request_header."""
    head = b"GET / HTTP/1.1\r\n" + HOST + b"X-Slow: " + b"a" * 200
    with run_server(apps.hello, timeout_request_header=0.3) as server, server.connect() as sock:
        started = time.monotonic()
        sent = 0
        for byte in head:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 1
            readable, _, _ = select.select([sock], [], [], 0.02)  # trickle pace: await a reply
            if readable:
                break
        raw, closed = read_until_closed(sock, timeout=10)
        elapsed = time.monotonic() - started
    assert closed
    [response] = parse_responses(raw)
    assert response.status == 408
    # The timeout counts from the head's first byte: the 408 came while the head was still
    # trickling in (all of it takes over 4 s), whatever the machine's load; and not before 0.3 s.
    assert sent < len(head), "the trickle kept restarting the header timeout"
    assert elapsed >= 0.25


def test_trailers_are_sent_when_the_client_accepts_them() -> None:
    """http.response.trailers go after the last chunk when the client sent `TE: trailers`."""
    request = b"GET / HTTP/1.1\r\n" + HOST + b"TE: trailers\r\n\r\n"
    with run_server(wire_apps.trailers) as server, server.connect() as sock:
        sock.sendall(request)
        [response] = read_responses(sock, 1)
        sock.sendall(GET)  # still framed correctly: the next response parses
        [plain] = read_responses(sock, 1)
    assert response.header("transfer-encoding") == "chunked"
    assert response.body == b"payload"
    assert response.trailers == [("x-checksum", "abc123")]
    assert plain.trailers == []
    assert plain.body == b"payload"


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"HEAD / HTTP/1.1\r\n" + HOST + b"TE: trailers\r\n\r\n",
        b"GET / HTTP/1.0\r\nTE: trailers\r\n\r\n",
    ],
    ids=["HEAD", "HTTP/1.0"],
)
def test_trailers_that_cannot_be_sent_are_dropped_silently(
    request_bytes: bytes, server_log: list[logging.LogRecord]
) -> None:
    """An app that declared trailers may send them even when the response cannot carry them."""
    with run_server(wire_apps.trailers) as server, server.connect() as sock:
        sock.sendall(request_bytes)
        read_until_closed(sock, timeout=0.3)
    assert errors(server_log) == []


def test_pathsend_sends_the_file(tmp_path: Path) -> None:
    """http.response.pathsend sends the file's bytes with its size as Content-Length."""
    data = bytes(range(256)) * 1000
    path = tmp_path / "file.bin"
    path.write_bytes(data)
    with run_server(wire_apps.PathSend(str(path))) as server, server.connect() as sock:
        sock.sendall(GET)
        [response] = read_responses(sock, 1)
        sock.sendall(b"HEAD / HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n")
        raw, closed = read_until_closed(sock)
    assert response.header("content-length") == str(len(data))
    assert response.body == data
    [head] = parse_responses(raw, bodiless=[True])
    assert head.header("content-length") == str(len(data))
    assert head.body == b"" and closed


def test_large_request_body_to_a_slow_reader_is_fully_delivered() -> None:
    """A 4 MiB body reaches a slow app whole, in bounded pieces (the server stops reading)."""
    size = 4 * 1024 * 1024
    body = wire_apps.pattern(0, size)
    app = wire_apps.SlowReader()
    with run_server(app) as server, server.connect() as sock:
        sock.sendall(post("/", body))
        [response] = read_responses(sock, 1, timeout=5)
    assert response.body == f"{size} {hashlib.sha256(body).hexdigest()}".encode()
    assert app.largest <= 512 * 1024  # never a multi-megabyte buffer: reading was paused


def test_large_response_to_a_slow_reader_is_fully_delivered() -> None:
    """An 8 MiB response to a client that does not read at first waits for it, then all arrives."""
    size = 8 * 1024 * 1024
    app = wire_apps.BigResponse(size)
    with run_server(app) as server:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        with sock:
            sock.settimeout(5)
            sock.connect((server.host, server.port))
            sock.sendall(GET)
            assert app.blocked.wait(3), "send() never waited for the slow client"
            assert not app.finished.is_set()
            [response] = read_responses(sock, 1, timeout=5)
    assert len(response.body) == size
    assert response.body == wire_apps.pattern(0, size)


# =========================================================================== scope
@pytest.fixture
def recorder() -> Iterator[Running]:
    with run_server(wire_apps.record) as server:
        yield server


def seen(server: Running, request: bytes) -> dict[str, Any]:
    with server.connect() as sock:
        sock.sendall(request)
        [response] = read_responses(sock, 1)
    assert response.status == 200
    summary: dict[str, Any] = json.loads(response.body)
    return summary


def test_scope_path_is_percent_decoded_and_raw_path_is_not(recorder: Running) -> None:
    """scope['path'] is percent-decoded UTF-8; raw_path keeps the bytes as sent."""
    got = seen(recorder, b"GET /caf%C3%A9/a%20b/c%2Fd HTTP/1.1\r\n" + HOST + b"\r\n")
    assert got["path"] == "/café/a b/c/d"
    assert got["raw_path"] == "/caf%C3%A9/a%20b/c%2Fd"


def test_scope_query_string_is_raw_bytes(recorder: Running) -> None:
    """query_string is everything after the first '?', undecoded; it is not part of path."""
    got = seen(recorder, b"GET /p?a=1&b=%20x?y HTTP/1.1\r\n" + HOST + b"\r\n")
    assert got["path"] == "/p"
    assert got["raw_path"] == "/p"
    assert got["query_string"] == "a=1&b=%20x?y"


def test_scope_root_path_prefixes_path_and_raw_path() -> None:
    """With root_path=/api, path and raw_path start with it and root_path is in the scope."""
    with run_server(wire_apps.record, root_path="/api") as server:
        got = seen(server, b"GET /items/a%20b?x=1 HTTP/1.1\r\n" + HOST + b"\r\n")
    assert got["root_path"] == "/api"
    assert got["path"] == "/api/items/a b"
    assert got["raw_path"] == "/api/items/a%20b"
    assert got["query_string"] == "x=1"


def test_scope_headers_are_lower_cased_in_order(recorder: Running) -> None:
    """Header names are lower-cased, values kept byte for byte, order and duplicates preserved."""
    request = (
        b"GET / HTTP/1.1\r\nHost: test\r\nX-Multi: One\r\nACCEPT: */*\r\n"
        b"x-multi: Two\r\nX-Empty:\r\nX-Spaces:   padded value\r\n\r\n"
    )
    got = seen(recorder, request)
    assert got["headers"] == [
        ["host", "test"],
        ["x-multi", "One"],
        ["accept", "*/*"],
        ["x-multi", "Two"],
        ["x-empty", ""],
        ["x-spaces", "padded value"],
    ]


def test_scope_client_server_version_and_scheme(recorder: Running) -> None:
    """client and server are the socket's (host, port); http_version and scheme are right."""
    with recorder.connect() as sock:
        sock.sendall(GET)
        [response] = read_responses(sock, 1)
        client = sock.getsockname()
    got = json.loads(response.body)
    assert got["client"] == [client[0], client[1]]
    assert got["server"] == [recorder.host, recorder.port]
    assert got["http_version"] == "1.1"
    assert got["scheme"] == "http"
    assert got["method"] == "GET"


def test_scope_state_is_a_copy_of_the_lifespan_state() -> None:
    """Each request's scope['state'] starts as a copy of what lifespan startup stored."""
    with run_server(wire_apps.LifespanState()) as server, server.connect() as sock:
        sock.sendall(GET + GET)
        first, second = read_responses(sock, 2)
    for response in (first, second):
        # the app bumps its request's copy; the next request still sees the startup value
        assert json.loads(response.body)["state"] == {"db": "connected", "count": 1}


def test_scope_header_values_exclude_trailing_whitespace(recorder: Running) -> None:
    """Leading and trailing spaces/tabs around a header value are not part of the value."""
    got = seen(recorder, b"GET / HTTP/1.1\r\nHost: test\r\nX-Spaces: \t value \t \r\n\r\n")
    assert got["headers"][1] == ["x-spaces", "value"]


def test_receive_waiting_after_the_response_returns_disconnect() -> None:
    """An app still awaiting receive() when its response completes gets http.disconnect."""
    seen: list[str] = []

    async def app(scope: dict, receive: object, send: object) -> None:
        if scope["type"] != "http":
            return
        await receive()  # the (empty) body

        async def listen() -> None:
            seen.append((await receive())["type"])  # type: ignore[operator]

        listener = asyncio.ensure_future(listen())
        await asyncio.sleep(0)
        await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]
        await asyncio.wait_for(listener, 2)

    with run_server(app) as server:
        sock = server.connect()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        [response] = read_responses(sock, 1)
        assert response.body == b"ok"
        until(lambda: seen, "the app's listener to receive a message")
    assert seen == ["http.disconnect"]
