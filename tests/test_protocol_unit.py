"""HTTPProtocol bytes-in/bytes-out on a fake transport: no sockets, one asyncio loop per test.

The fake transport records what is written, whether reading is paused and whether it was closed
(closing calls `connection_lost` on the next loop iteration, as asyncio does). Timers are driven
by advancing the shared tick counter and calling `on_tick()` by hand, as the server's ticker does.
"""

from __future__ import annotations

import asyncio
from typing import Any

from devserver.protocols.http import HTTPProtocol
from devserver.stats import WorkerStats
from tests import apps
from tests.protocol_fakes import FakeTransport, connect, run, settle
from tests.wire_apps import parse_responses

HELLO = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 13\r\n\r\nHello, world!"


def test_get_writes_the_exact_response_and_keeps_the_connection() -> None:
    """A GET produces exactly the app's response bytes; the connection stays open and readable."""

    async def main() -> None:
        protocol, transport, state = connect(apps.hello)
        protocol.data_received(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        await settle()
        assert transport.take() == HELLO
        assert not transport.closed
        assert transport.reading
        assert protocol.cycle is None and state.in_flight == 0

    run(main)


def test_request_split_byte_by_byte_is_parsed() -> None:
    """A request fed one byte per read gives the same response as one fed whole."""

    async def main() -> None:
        protocol, transport, _ = connect(apps.echo)
        for byte in b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc":
            protocol.data_received(bytes([byte]))
            await asyncio.sleep(0)
        await settle()
        [response] = parse_responses(transport.take())
        assert response.header("x-path") == "/x"
        assert response.body == b"abc"

    run(main)


def test_malformed_request_gets_400_and_close_without_calling_the_app() -> None:
    """A malformed request line is answered 400 and closed; the app is never called."""
    calls: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        calls.append(scope)

    async def main() -> None:
        protocol, transport, _ = connect(app)
        protocol.data_received(b"NOT A REQUEST\r\n\r\n")
        await settle()
        data = transport.take()
        assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert b"connection: close\r\n" in data
        assert transport.closed
        assert not transport.reading

    run(main)
    assert calls == []


def test_pipelined_requests_pause_reading_and_answer_in_order() -> None:
    """Requests queued behind a busy one pause reading; once it ends all are answered in order."""

    async def main() -> None:
        release = asyncio.Event()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["path"] == "/slow":
                await release.wait()
            body = scope["path"].encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})

        protocol, transport, _ = connect(app)
        protocol.data_received(
            b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"
            b"GET /2 HTTP/1.1\r\nHost: t\r\n\r\n"
            b"GET /3 HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        await asyncio.sleep(0)
        assert transport.written == b""
        assert not transport.reading  # queued requests: stop reading more
        release.set()
        await settle()
        responses = parse_responses(transport.take())
        assert [r.body for r in responses] == [b"/slow", b"/2", b"/3"]
        assert transport.reading
        assert not transport.closed

    run(main)


def test_expect_100_is_written_only_when_the_app_receives() -> None:
    """'100 Continue' is written at the app's first receive(), not when the head arrives."""

    async def main() -> None:
        ready = asyncio.Event()
        bodies: list[bytes] = []

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await ready.wait()
            message = await receive()
            bodies.append(message["body"])
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        protocol, transport, _ = connect(app)
        protocol.data_received(
            b"PUT / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        await asyncio.sleep(0)
        assert transport.written == b""
        ready.set()
        for _ in range(5):
            await asyncio.sleep(0)
        assert transport.take() == b"HTTP/1.1 100 Continue\r\n\r\n"
        protocol.data_received(b"data")
        await settle()
        assert transport.take() == b"HTTP/1.1 204 No Content\r\n\r\n"
        assert bodies == [b"data"]
        assert not transport.closed

    run(main)


def test_idle_connection_is_closed_by_the_tick_after_keep_alive_timeout() -> None:
    """on_tick closes an idle connection only once timeout_keep_alive worth of ticks passed."""

    async def main() -> None:
        protocol, transport, state = connect(apps.hello, timeout_keep_alive=1.0)
        protocol.data_received(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        await settle()
        assert transport.take() == HELLO
        ticks_needed = round(1.0 / state.tick_interval)
        state.ticks += ticks_needed - 1
        protocol.on_tick()
        assert not transport.closed
        state.ticks += 1
        protocol.on_tick()
        assert transport.closed
        assert transport.written == b""  # an idle close says nothing

    run(main)


def test_slow_head_gets_408_from_the_tick() -> None:
    """A head still incomplete after timeout_request_header is answered 408 and closed."""

    async def main() -> None:
        protocol, transport, state = connect(apps.hello, timeout_request_header=0.5)
        protocol.data_received(b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        state.ticks += round(0.5 / state.tick_interval)
        protocol.on_tick()
        data = transport.take()
        assert data.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert transport.closed

    run(main)


def test_head_spread_over_many_reads_is_bounded_with_431() -> None:
    """An unterminated header fed in small reads is cut off with 431 before it grows unbounded."""

    async def main() -> None:
        protocol, transport, state = connect(apps.hello, max_header_size=256, limit_request_line=64)
        protocol.data_received(b"GET / HTTP/1.1\r\nX-Endless: ")
        fed = 0
        while not transport.closed and fed < 10_000:
            protocol.data_received(b"v" * 16)
            fed += 16
        assert transport.take().startswith(b"HTTP/1.1 431 ")
        bound = 2 * state.settings.max_header_size + state.settings.limit_request_line
        assert fed <= bound + 16

    run(main)


def test_connection_lost_tells_the_waiting_app_it_disconnected() -> None:
    """An app waiting for body gets http.disconnect when the connection is lost."""

    async def main() -> None:
        messages: list[dict[str, Any]] = []

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            messages.append(await receive())
            messages.append(await receive())

        protocol, transport, state = connect(app)
        protocol.data_received(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n12345")
        await asyncio.sleep(0)
        protocol.connection_lost(None)
        await settle()
        assert messages == [
            {"type": "http.request", "body": b"12345", "more_body": True},
            {"type": "http.disconnect"},
        ]
        assert state.in_flight == 0
        assert transport.written == b""

    run(main)


def test_head_request_writes_no_body_bytes() -> None:
    """HEAD gets the status line and headers of the GET response, then nothing."""

    async def main() -> None:
        protocol, transport, _ = connect(apps.hello)
        protocol.data_received(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
        await settle()
        assert transport.take() == HELLO[: HELLO.index(b"\r\n\r\n") + 4]

    run(main)


async def fails(scope: dict[str, Any], receive: Any, send: Any) -> None:
    raise RuntimeError("the app broke")


async def fails_with_a_clients_bytes(scope: dict[str, Any], receive: Any, send: Any) -> None:
    raise RuntimeError("the app broke \x1b[2J")


async def left_open(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})


def test_every_response_is_counted_by_the_workers_stats() -> None:
    """The server counts each answered request in its WorkerStats (statuses, bytes in and out),
    and a failed request (a 500) always has its record, with the exception's traceback."""
    stats = WorkerStats(slow=9.0, limit=1)
    app_for = {b"/fail": fails_with_a_clients_bytes}

    async def route(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await app_for.get(scope["raw_path"], apps.echo)(scope, receive, send)

    async def main() -> None:
        protocol, transport, _ = connect(route, stats=stats)
        body = b"POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
        for _ in range(3):
            protocol.data_received(body)
            await settle()
        protocol.data_received(b"GET /fail HTTP/1.1\r\nHost: t\r\n\r\n")
        await settle()
        assert [r.status for r in parse_responses(transport.take())] == [200, 200, 200, 500]

    run(main)
    deltas = stats.take()
    assert deltas["statuses"] == [0, 3, 0, 0, 1]
    assert deltas["bytes_in"] == 9 and deltas["bytes_out"] >= 9
    assert sum(count for _, count in deltas["buckets"]) == 4
    records = deltas["records"]
    assert [(r["path"], r["status"]) for r in records] == [("/a", 200), ("/fail", 500)]
    assert deltas["records_dropped"] == 2
    assert "exception" not in records[0]
    failure = records[1]["exception"]
    assert failure.startswith("Traceback (most recent call last):")
    # the message is escaped: it may carry what a client sent
    assert failure.endswith("RuntimeError: the app broke \\x1b[2J")


def test_requests_past_the_concurrency_limit_get_503_and_the_count_ends() -> None:
    """At --limit-concurrency a request is answered 503 without running the app, and every
    request the app ran, finished or failed, leaves the in-flight count."""
    release = asyncio.Event()

    async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await release.wait()
        await apps.hello(scope, receive, send)

    async def main() -> None:
        first, first_transport, state = connect(slow, limit_concurrency=1)
        second = HTTPProtocol(state)
        second_transport = FakeTransport()
        second_transport.protocol = second
        second.connection_made(second_transport)  # type: ignore[arg-type]
        first.data_received(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        second.data_received(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        await asyncio.sleep(0)
        assert second_transport.take().startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        assert state.in_flight == 1
        release.set()
        await settle()
        assert first_transport.take() == HELLO
        assert state.in_flight == 0

    run(main)


def test_an_app_that_fails_or_leaves_its_response_open_gets_a_500() -> None:
    """An app that raises before it responds, or returns without finishing its response,
    is answered 500 on its behalf and the connection closes."""

    async def main() -> None:
        for app in (fails, left_open):
            protocol, transport, state = connect(app)
            protocol.data_received(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            await settle()
            assert transport.take().startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
            assert transport.closed and state.in_flight == 0

    run(main)
