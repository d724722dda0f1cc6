"""HTTP/1.1 hardening limits on the wire: header counts and sizes, stalled bodies, odd framing.

Each test starts a real server on 127.0.0.1 (`run_server`), talks raw bytes to it and checks the
status that comes back and whether the connection is closed. Timeouts are set short per test;
synchronisation is by socket reads with deadlines or by polling with a deadline, never by sleeping.
"""

from __future__ import annotations

import asyncio
import json
import re
import select
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from devserver.protocols.http import PIPELINE_LIMIT, HTTPProtocol
from devserver.protocols.state import HTTPSettings, ServerState
from tests import apps, wire_apps
from tests.protocol_fakes import FakeTransport, connect, run, settle
from tests.utils import (
    Running,
    devserve_command,
    is_closed,
    require_tool,
    run_server,
    spawned,
    until,
)
from tests.wire_apps import parse_responses, read_responses, read_until_closed
from tests.wire_client import HOST, assert_rejected, assert_still_serving, exchange


def served(server: Running, data: bytes) -> wire_apps.Response:
    with server.connect() as sock:
        sock.sendall(data)
        [response] = read_responses(sock, 1)
    return response


def get_with(fields: bytes) -> bytes:
    return b"GET / HTTP/1.1\r\n" + HOST + fields + b"\r\n"


# =========================================================================== header limits
@pytest.fixture
def limited() -> Iterator[Running]:
    with run_server(wire_apps.record, limit_request_fields=10, limit_request_field_size=100) as s:
        yield s


def test_thousands_of_empty_headers_are_431_by_default() -> None:
    """13,000 empty header fields (small in bytes) break the default of 100 fields: 431, close."""
    with run_server(wire_apps.record) as server:
        response = assert_rejected(server, get_with(b"X:\r\n" * 13000), 431)
    assert response.body == b"Request Header Fields Too Large\n"


def test_one_field_more_than_limit_request_fields_is_431(limited: Running) -> None:
    """With --limit-request-fields 10, an eleventh header field is answered 431 and closed."""
    assert_rejected(limited, get_with(b"".join(b"X-%d: v\r\n" % i for i in range(10))), 431)


def test_exactly_limit_request_fields_is_served(limited: Running) -> None:
    """Exactly --limit-request-fields header fields (Host included) are still served."""
    response = served(limited, get_with(b"".join(b"X-%d: v\r\n" % i for i in range(9))))
    assert response.status == 200


def test_field_larger_than_limit_request_field_size_is_431(limited: Running) -> None:
    """One field whose name and value add up to more than the limit gets 431 and a close."""
    assert_rejected(limited, get_with(b"X-Big: " + b"v" * 96 + b"\r\n"), 431)


def test_field_of_exactly_limit_request_field_size_is_served(limited: Running) -> None:
    """A field whose name and value add up to exactly --limit-request-field-size is served."""
    response = served(limited, get_with(b"X-Big: " + b"v" * 95 + b"\r\n"))
    assert response.status == 200


def test_trailer_fields_count_against_the_limits(limited: Running) -> None:
    """A chunked body's trailer section is held to the same field count limit: 400 or 431."""
    trailers = b"".join(b"T-%d: v\r\n" % i for i in range(11))
    data = (
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
        b"1\r\nx\r\n0\r\n" + trailers + b"\r\n"
    )
    raw, closed = exchange(limited, data)
    assert [r.status for r in parse_responses(raw)] in ([400], [431]), raw
    assert closed


# =========================================================================== stalled bodies
class BodyReader:
    """Reads the request body to its end (optionally after starting a streamed response),
    noting every message receive() gave; answers 200 with the body's length."""

    def __init__(self, respond_first: bool = False, then_listen: bool = False) -> None:
        self.respond_first = respond_first
        self.then_listen = then_listen  # after the body, wait in receive() for a disconnect
        self.messages: list[str] = []
        self.done = threading.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        try:
            if self.respond_first:
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"early", "more_body": True})
            size = 0
            while True:
                message = await receive()
                self.messages.append(message["type"])
                if message["type"] == "http.disconnect":
                    return
                size += len(message.get("body", b""))
                if not message.get("more_body"):
                    break
            if self.then_listen:
                listen = asyncio.ensure_future(receive())
                done, _ = await asyncio.wait([listen], timeout=0.8)
                self.messages.append("still waiting" if not done else listen.result()["type"])
                listen.cancel()
            body = b"%d" % size
            if not self.respond_first:
                await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})
        finally:
            self.done.set()


PARTIAL_POST = b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 10\r\n\r\nabc"


def test_stalled_body_is_408_and_closed_and_the_app_sees_a_disconnect() -> None:
    """A client that stops mid-body while the app waits gets 408 and a close after the timeout;
    the app's receive() returns http.disconnect."""
    app = BodyReader()
    with run_server(app, timeout_request_body=0.3) as server, server.connect() as sock:
        started = time.monotonic()
        sock.sendall(PARTIAL_POST)
        raw, closed = read_until_closed(sock, timeout=10)
        elapsed = time.monotonic() - started
        assert app.done.wait(10)
    assert closed
    [response] = parse_responses(raw)
    assert response.status == 408 and response.header("connection") == "close"
    # The time is the behaviour: not before the 0.3 s, and far before the default 30 s, so it
    # is this timeout that fired (the upper bound is generous: a guard, not a measurement).
    assert 0.25 <= elapsed < 10
    assert app.messages == ["http.request", "http.disconnect"]


def test_stalled_body_after_the_response_began_just_closes() -> None:
    """When the app already started its response, a stalled body ends in a close, no 408."""
    app = BodyReader(respond_first=True)
    with run_server(app, timeout_request_body=0.3) as server, server.connect() as sock:
        sock.sendall(PARTIAL_POST)
        raw, closed = read_until_closed(sock, timeout=3)
        assert app.done.wait(2)
    assert closed
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and b"408" not in raw
    with pytest.raises(wire_apps.Incomplete):
        parse_responses(raw, eof=False)
    assert app.messages[-1] == "http.disconnect"


def test_body_that_keeps_arriving_is_not_cut_off() -> None:
    """A body trickling in slower than the whole timeout, but never stalling that long, is read."""
    app = BodyReader()
    with run_server(app, timeout_request_body=0.3) as server, server.connect() as sock:
        sock.sendall(PARTIAL_POST)
        for byte in b"defghij":
            readable, _, _ = select.select([sock], [], [], 0.12)  # trickle pace; no reply yet
            assert not readable, "the server answered a body that was still arriving"
            sock.sendall(bytes([byte]))
        [response] = read_responses(sock, 1)
    assert response.status == 200 and response.body == b"10"


def test_app_waiting_for_a_disconnect_after_the_body_is_not_cut_off() -> None:
    """The body timer only runs while body bytes are due: a receive() after the whole body
    (listening for a disconnect) may wait past it."""
    app = BodyReader(then_listen=True)
    with run_server(app, timeout_request_body=0.2) as server, server.connect() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 3\r\n\r\nabc")
        [response] = read_responses(sock, 1, timeout=3)
    assert response.status == 200 and response.body == b"3"
    assert app.messages == ["http.request", "still waiting"]


# =========================================================================== framing
def test_http10_request_with_transfer_encoding_is_400_and_nothing_after_it_is_served() -> None:
    """An HTTP/1.0 request with Transfer-Encoding (faulty framing, RFC 9112 6.1) gets 400 and a
    close; a request hidden behind it, even with keep-alive, never runs."""
    data = (
        b"POST / HTTP/1.0\r\n" + HOST + b"Connection: keep-alive\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        b"GET /smuggled HTTP/1.1\r\n" + HOST + b"\r\n"
    )
    with run_server(wire_apps.record) as server:
        response = assert_rejected(server, data, 400)
    assert b"smuggled" not in response.body


# =========================================================================== methods
@pytest.mark.parametrize("method", [b"FOO", b"BREW", b"X-CUSTOM_1"])
def test_extension_method_is_501(method: bytes) -> None:
    """A well-formed method the server does not implement is 501 Not Implemented, then close."""
    with run_server(wire_apps.record) as server:
        response = assert_rejected(server, b"%b /x HTTP/1.1\r\n" % method + HOST + b"\r\n", 501)
    assert response.body == b"Not Implemented\n"


@pytest.mark.parametrize("method", [b"F@O", b"get", b"G(T"])
def test_malformed_method_stays_400(method: bytes) -> None:
    """A method that is not a well-formed (upper-case) token is a 400 Bad Request, then close."""
    with run_server(wire_apps.record) as server:
        assert_rejected(server, b"%b /x HTTP/1.1\r\n" % method + HOST + b"\r\n", 400)


def test_extension_method_pipelined_after_a_get_answers_200_then_501() -> None:
    """A GET and an extension method in one write get 200, then 501, then a close."""
    data = b"GET /a HTTP/1.1\r\n" + HOST + b"\r\nFOO /b HTTP/1.1\r\n" + HOST + b"\r\n"
    with run_server(wire_apps.record) as server:
        raw, closed = exchange(server, data)
    assert [r.status for r in parse_responses(raw)] == [200, 501]
    assert closed


# =========================================================================== app statuses
@pytest.mark.parametrize("status", [100, 101, 103, 199])
def test_app_sending_an_interim_status_gets_500_and_the_connection_stays_in_step(
    status: int,
) -> None:
    """An app that starts its response with a 1xx status gets a 500 (nothing of its response
    is written) and a close, so no later response on that connection is misread."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await wire_apps.respond(send, status if scope["path"] == "/" else 200, b"body")

    get = b"GET / HTTP/1.1\r\n" + HOST + b"\r\n"
    with run_server(app) as server:
        raw, closed = exchange(server, get + b"GET /next HTTP/1.1\r\n" + HOST + b"\r\n")
    assert [r.status for r in parse_responses(raw)] == [500], raw
    assert closed
    assert b"body" not in raw


# =========================================================================== scopes
def test_scopes_share_no_mutable_dicts() -> None:
    """Keys one request's app adds to scope['asgi'] and scope['extensions'] (and the dicts
    inside it) are not seen by the next request."""
    seen: list[tuple[dict[str, Any], dict[str, Any]]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        seen.append((dict(scope["asgi"]), {k: dict(v) for k, v in scope["extensions"].items()}))
        scope["asgi"]["leak"] = True
        scope["extensions"]["leak"] = {}
        for value in scope["extensions"].values():
            value["leak"] = True
        await wire_apps.respond(send, 200, b"ok")

    get = b"GET / HTTP/1.1\r\n" + HOST + b"\r\n"
    with run_server(app) as server, server.connect() as sock:
        sock.sendall(get)
        read_responses(sock, 1)
        sock.sendall(get)
        read_responses(sock, 1)
    first, second = seen
    assert first == second
    assert second[0] == {"version": "3.0", "spec_version": "2.4"}
    assert "leak" not in second[1]
    assert all(value == {} for value in second[1].values())


def test_websocket_scopes_share_no_mutable_dicts() -> None:
    """A key one WebSocket session's app adds to its scope's extensions or asgi dicts is not
    seen by the next session."""
    from devserver.protocols.websocket import websocket_scope

    http = {
        "type": "http", "method": "GET", "scheme": "http", "headers": [],
        "asgi": {"version": "3.0"}, "extensions": {},
    }  # fmt: skip
    first = websocket_scope(dict(http, asgi={"version": "3.0"}))
    first["extensions"]["websocket.http.response"]["leak"] = True
    first["extensions"]["leak"] = {}
    second = websocket_scope(dict(http, asgi={"version": "3.0"}))
    assert second["extensions"] == {"websocket.http.response": {}}


# ================================================================ head and framing bounds
def test_pipelined_requests_read_after_a_split_head_get_no_spurious_431() -> None:
    """Many pipelined requests arriving in one read that begins mid-head are all answered: the
    head-size bound counts one request's head, not the whole read."""
    count = 100
    rest = b"\r\n" + b"".join(b"GET /%d HTTP/1.1\r\n" % i + HOST + b"\r\n" for i in range(count))
    with run_server(wire_apps.record, max_header_size=1024, limit_request_line=128) as server:
        assert len(rest) > 2 * 1024 + 128  # more than one head may ever take
        connections = server.server.state.connections
        with server.connect() as sock:
            sock.sendall(b"GET /first HTTP/1.1\r\n" + HOST)
            until(lambda: any(getattr(c, "in_head", False) for c in connections), "the split head")
            sock.sendall(rest)
            responses = read_responses(sock, count + 1, timeout=5)
    assert [r.status for r in responses] == [200] * (count + 1)


def send_until_answered(sock: socket.socket, start: bytes, more: bytes, limit: int) -> bool:
    """Send `start`, then `more` again and again until the server answers (or closes) or
    `limit` bytes went out; whether it answered."""
    sock.sendall(start)
    sent = 0
    while sent < limit:
        try:
            sock.sendall(more)
        except (BrokenPipeError, ConnectionResetError):
            return True
        sent += len(more)
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            return True
    return False


def test_huge_chunk_extension_is_400_and_closed() -> None:
    """A chunk whose extension never ends is cut off with 400 and a close, not read forever."""
    head = b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n1;ext="
    with run_server(wire_apps.record) as server, server.connect() as sock:
        answered = send_until_answered(sock, head, b"a" * 65536, 4 * 1024 * 1024)
        raw, closed = read_until_closed(sock)
    assert answered and closed
    [response] = parse_responses(raw)
    assert response.status == 400


def test_endless_trailer_line_is_cut_off() -> None:
    """A trailer field that never ends is cut off with an error and a close."""
    head = b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nT: "
    with run_server(wire_apps.record) as server, server.connect() as sock:
        answered = send_until_answered(sock, head, b"a" * 65536, 4 * 1024 * 1024)
        raw, closed = read_until_closed(sock)
    assert answered and closed
    [response] = parse_responses(raw)
    assert response.status in (400, 431)


def test_many_chunks_with_short_extensions_are_read_whole() -> None:
    """A body of many small chunks, each with a signature-like extension, is accepted."""
    extension = b";chunk-signature=" + b"0f" * 32
    chunks = b"".join(b"1%b\r\n%d\r\n" % (extension, i % 10) for i in range(3000))
    data = (
        b"POST / HTTP/1.1\r\n"
        + HOST
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + chunks
        + b"0\r\n\r\n"
    )
    with run_server(wire_apps.record) as server, server.connect() as sock:
        sock.sendall(data)
        [response] = read_responses(sock, 1)
    assert response.status == 200
    assert len(json.loads(response.body)["body"]) == 3000


# =========================================================================== concurrency
def test_requests_arriving_in_one_loop_pass_are_held_to_limit_concurrency() -> None:
    """Two requests whose heads are read in the same loop pass (before either app task runs)
    count against --limit-concurrency 1 at once: one is served, the other gets 503."""

    async def main() -> None:
        settings = HTTPSettings(
            limit_concurrency=1, server_header=False, date_header=False, access_log=False
        )
        state = ServerState(apps.hello, settings)
        transports = []
        for _ in range(2):
            protocol = HTTPProtocol(state)
            transport = FakeTransport()
            transport.protocol = protocol
            protocol.connection_made(transport)  # type: ignore[arg-type]
            transports.append(transport)
        for transport in transports:
            assert transport.protocol is not None
            transport.protocol.data_received(b"GET / HTTP/1.1\r\n" + HOST + b"\r\n")
        await settle()
        statuses = sorted(parse_responses(t.take())[0].status for t in transports)
        assert statuses == [200, 503]
        assert state.in_flight == 0 and not state.tasks

    asyncio.run(main())


# =========================================================================== connections
class SlowPaths:
    """/slow waits for `release` (counting the waiters); every other path answers at once."""

    def __init__(self) -> None:
        self.waiting = 0
        self.release = threading.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/slow":
            self.waiting += 1
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 5)
        await wire_apps.respond(send, 200, scope["path"].encode())


def test_idle_connections_beyond_limit_connections_make_room_for_a_new_client() -> None:
    """With --limit-connections 3, idle connections (kept alive first, then silent ones after
    a short grace) are closed to make room: the open count stays at the cap and a
    well-behaved client is still served, long before any keep-alive timeout."""
    options = {"limit_connections": 3, "timeout_keep_alive": 60, "timeout_request_header": 0.4}
    with run_server(SlowPaths(), **options) as server:
        state = server.server.state
        kept = server.connect()
        kept.sendall(b"GET /kept HTTP/1.1\r\n" + HOST + b"\r\n")
        read_responses(kept, 1)
        silent = [server.connect() for _ in range(4)]
        with server.connect() as client:
            client.sendall(b"GET /client HTTP/1.1\r\n" + HOST + b"\r\n")
            [response] = read_responses(client, 1, timeout=4)
            assert response.body == b"/client"
            # connections accepted in one burst may pass the cap for a moment, never for long
            until(lambda: len(state.connections) <= 3, "at most 3 connections", timeout=3)
        assert is_closed(kept, timeout=1), "the idle kept-alive connection made room first"
        assert sum(is_closed(sock, timeout=0.2) for sock in silent) >= 2
        for sock in [kept, *silent]:
            sock.close()
        assert_still_serving(server)


def test_at_limit_connections_with_all_busy_the_worker_stops_accepting_until_room() -> None:
    """With every connection busy at the cap, a new client is not accepted (nor answered)
    until the busy ones finish and one goes; then it is served."""
    app = SlowPaths()
    with run_server(app, limit_connections=3, timeout_keep_alive=0.4) as server:
        busy = [server.connect() for _ in range(3)]
        for sock in busy:
            sock.sendall(b"GET /slow HTTP/1.1\r\n" + HOST + b"\r\n")
        until(lambda: app.waiting == 3, "3 requests waiting in the app")
        with server.connect() as late:  # completed by the kernel: it waits in the backlog
            late.sendall(b"GET /late HTTP/1.1\r\n" + HOST + b"\r\n")
            raw, closed = read_until_closed(late, timeout=0.3)
            assert raw == b"" and not closed, "answered while the worker was at its cap"
            assert len(server.server.state.connections) == 3
            app.release.set()
            for sock in busy:
                [done] = read_responses(sock, 1)
                assert done.body == b"/slow"
            [response] = read_responses(late, 1, timeout=3)
        assert response.body == b"/late"
        for sock in busy:
            sock.close()


# =========================================================================== pipeline bound
PIPELINED = 5000


def pipelined_gets(first: int, last: int) -> bytes:
    return b"".join(b"GET /%d HTTP/1.1\r\n" % i + HOST + b"\r\n" for i in range(first, last))


class PathEcho:
    """Answers each request with its path (a POST with its body after it); each request notes
    the longest pipeline any connection holds when it starts. With `hold_first`, the first
    request waits until `release()` is called (from any thread)."""

    def __init__(self, hold_first: bool = False) -> None:
        self.connections: Any = ()
        self.peak = 0
        self.entered = threading.Event()
        self.held: asyncio.Future[None] | None = None
        self.hold_first = hold_first

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.peak = max([self.peak, *(len(c.pipeline) for c in self.connections)])
        if self.hold_first:
            self.hold_first = False
            self.held = asyncio.get_running_loop().create_future()
            self.entered.set()
            await self.held
        body = scope["path"].encode() + await wire_apps.read_body(receive)
        await wire_apps.respond(send, 200, body)

    def release(self) -> None:
        assert self.held is not None
        self.held.set_result(None)


def test_one_read_of_thousands_of_pipelined_gets_queues_at_most_pipeline_limit() -> None:
    """One read of 5,000 pipelined GETs queues PIPELINE_LIMIT of them, keeps the rest unparsed
    with reading paused, and then answers all 5,000 in order."""

    async def main() -> None:
        app = PathEcho()
        protocol, transport, state = connect(app)
        app.connections = [protocol]
        protocol.data_received(pipelined_gets(0, PIPELINED))
        assert len(protocol.pipeline) == PIPELINE_LIMIT
        assert not transport.reading
        for _ in range(100 * PIPELINED):  # a bound: each pass of the loop answers some
            if state.requests == PIPELINED:
                break
            await asyncio.sleep(0)
        await settle()
        assert app.peak <= PIPELINE_LIMIT
        bodies = [r.body for r in parse_responses(transport.take())]
        assert bodies == [b"/%d" % i for i in range(PIPELINED)]
        assert transport.reading and not transport.closed

    run(main)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_pipelined_posts_with_head_ends_in_their_bodies_keep_their_bodies(chunked: bool) -> None:
    """Pipelined POSTs whose bodies are full of CRLF CRLF, all in one read, are each answered
    with their own body, in order, with at most PIPELINE_LIMIT queued."""
    count = 3 * PIPELINE_LIMIT

    def post(i: int) -> bytes:
        body = b"\r\n\r\n" * (i + 20) + b"%d" % i
        if chunked:
            framed = b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%b\r\n0\r\n\r\n" % (len(body), body)
        else:
            framed = b"Content-Length: %d\r\n\r\n%b" % (len(body), body)
        return b"POST /%d HTTP/1.1\r\n" % i + HOST + framed

    async def main() -> None:
        app = PathEcho()
        protocol, transport, state = connect(app)
        app.connections = [protocol]
        protocol.data_received(b"".join(post(i) for i in range(count)))
        for _ in range(100 * count):
            if state.requests == count:
                break
            await asyncio.sleep(0)
        await settle()
        assert app.peak <= PIPELINE_LIMIT
        bodies = [r.body for r in parse_responses(transport.take())]
        assert bodies == [b"/%d" % i + b"\r\n\r\n" * (i + 20) + b"%d" % i for i in range(count)]

    run(main)


def read_bodies(sock: socket.socket, count: int, timeout: float = 20.0) -> list[bytes]:
    """Read `count` responses (one status line each) and return their bodies."""
    deadline = time.monotonic() + timeout
    data = bytearray()
    while data.count(b"HTTP/1.1 ") < count:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        chunk = sock.recv(262144)
        assert chunk, f"closed after {data.count(b'HTTP/1.1 ')} responses"
        data += chunk
    return [r.body for r in parse_responses(bytes(data), eof=False)]


def test_client_pipelining_without_reading_holds_at_most_pipeline_limit_requests() -> None:
    """A client that pipelines 5,000 GETs behind a request the app holds, without reading, makes
    the server queue at most PIPELINE_LIMIT; once it reads, it gets all 5,000 in order."""
    app = PathEcho(hold_first=True)
    with run_server(app) as server, server.connect(timeout=20) as sock:
        connections = server.server.state.connections
        app.connections = connections
        sock.sendall(pipelined_gets(0, 1))
        assert app.entered.wait(5)
        sender = threading.Thread(target=sock.sendall, args=(pipelined_gets(1, PIPELINED),))
        sender.start()
        try:
            [conn] = [c for c in connections if isinstance(c, HTTPProtocol)]
            until(
                lambda: len(conn.pipeline), "a full pipeline", accept=lambda n: n == PIPELINE_LIMIT
            )
            assert conn.flow.read_paused
            server.loop.call_soon_threadsafe(app.release)
            bodies = read_bodies(sock, PIPELINED)
        finally:
            sender.join(timeout=20)
    assert bodies == [b"/%d" % i for i in range(PIPELINED)]
    assert app.peak <= PIPELINE_LIMIT


# ================================================================ a client that stops reading
def big_response_app(outcome: list[str], chunks: int = 32) -> Any:
    """Sends `chunks` MiB in 1 MiB bodies; notes "sent" or the error that ended the sends."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            for _ in range(chunks):
                await send(
                    {"type": "http.response.body", "body": b"x" * (1 << 20), "more_body": True}
                )
            await send({"type": "http.response.body", "body": b""})
        except OSError as exc:
            outcome.append(type(exc).__name__)
            raise
        outcome.append("sent")

    return app


def test_a_client_that_stops_reading_is_cut_off_after_timeout_send() -> None:
    """A client that reads nothing of a large response is aborted once --timeout-send passes
    with no progress, and the app's send() fails instead of waiting forever."""
    outcome: list[str] = []
    with run_server(big_response_app(outcome), timeout_send=0.5) as server:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(10)
        sock.connect((server.host, server.port))
        with sock:
            sock.sendall(b"GET /big HTTP/1.1\r\n" + HOST + b"\r\n")
            until(lambda: outcome, "the send to end")
            assert_still_serving(server)
    assert outcome != ["sent"]


def test_a_slow_but_steady_reader_is_not_cut_off() -> None:
    """A client that keeps taking the response, slower than --timeout-send would allow a
    stalled one, gets all of it."""
    outcome: list[str] = []
    app = big_response_app(outcome, chunks=2)
    with run_server(app, timeout_send=0.3) as server, server.connect(timeout=10) as sock:
        sock.sendall(b"GET /big HTTP/1.1\r\n" + HOST + b"\r\n")
        received = 0
        deadline = time.monotonic() + 30
        while received < 2 << 20 and time.monotonic() < deadline:
            received += len(sock.recv(32 * 1024))
            time.sleep(0.05)  # a slow reader, by design: 2 MiB in about 3 s
    assert outcome == ["sent"] and received >= 2 << 20


# ================================================================ file descriptors
def test_too_few_file_descriptors_lower_the_connection_cap_instead_of_resetting_clients() -> None:
    """Under a hard RLIMIT_NOFILE of 256 the worker caps itself at 192 connections and says so;
    250 silent connections then make it stop accepting (no client is reset for want of a
    descriptor), and once they close a new client is served."""
    prlimit = require_tool("prlimit")
    command = [prlimit, "--nofile=256:256", *devserve_command("--port", "0", "--no-tui")]
    with spawned([*command, "--control", "off", "--timeout-request-header", "30"]) as proc:
        line = proc.read_until(r"serving on (http://\S+)", timeout=20)
        url = re.search(r"serving on (http://\S+)", line)
        assert url is not None, "".join(proc.output)
        host, port = url[1].removeprefix("http://").rsplit(":", 1)
        assert any("using 192" in out for out in proc.output), "".join(proc.output)
        silent = [socket.create_connection((host, int(port)), timeout=10) for _ in range(250)]
        try:
            for sock in silent:
                sock.sendall(b"GET / HTTP/1.1\r\n")  # a head that never ends
            proc.read_until("not accepting until one closes", timeout=10)
        finally:
            for sock in silent:
                sock.close()
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n")
            raw, _closed = read_until_closed(sock, timeout=10)
    assert [r.status for r in parse_responses(raw)] == [200], raw
