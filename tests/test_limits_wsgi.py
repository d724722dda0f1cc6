"""WSGI limits over real sockets: the queue in front of the threads is bounded (503 past it, the
connection kept), and a request whose client left while it waited for a thread is never run.

The server is real (in-process, `run_server`, so the test can watch its connection count), the
clients raw sockets; the app blocks until the test releases it. Synchronisation is by events and
polls under deadlines.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devserver.control.client import ControlClient
from devserver.wsgi import WSGIAdapter
from tests.utils import Running, read_response, run_devserve, run_server, until

CLI_APPS = str(Path(__file__).parent / "cli_apps")

REQUEST = b"GET %b HTTP/1.1\r\nHost: test\r\n\r\n"


class BlockingApp:
    """A WSGI app that records each call's path and holds /block until `release` is set."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.release = threading.Event()

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        self.calls.append(path)
        if path.startswith("/block"):
            self.release.wait(10)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ran " + path.encode()]


@contextlib.contextmanager
def serve(threads: int = 1, queue_limit: int = 1000) -> Iterator[tuple[Running, BlockingApp]]:
    app = BlockingApp()
    try:
        with run_server(WSGIAdapter(app, threads, queue_limit)) as server:
            yield server, app
    finally:
        app.release.set()


def send(server: Running, path: bytes, extra: bytes = b"") -> socket.socket:
    sock = server.connect(timeout=10)
    sock.sendall((REQUEST % path)[:-2] + extra + b"\r\n")
    return sock


def in_flight(server: Running) -> int:
    return server.server.state.in_flight


def test_past_the_queue_limit_a_request_gets_503_at_once() -> None:
    """With one thread and --wsgi-queue 2, the thread runs one request and two wait; a fourth
    is answered 503 with Retry-After at once, on a connection that then serves on; released,
    the three others complete."""
    with serve(threads=1, queue_limit=2) as (server, app):
        with contextlib.ExitStack() as stack:
            first = stack.enter_context(send(server, b"/block/1"))
            until(lambda: app.calls == ["/block/1"], "the first request in the app", 5)
            waiting = [stack.enter_context(send(server, b"/block/%d" % n)) for n in (2, 3)]
            until(lambda: in_flight(server) == 3, "3 requests in flight", 5)
            fourth = stack.enter_context(send(server, b"/four"))
            head, body = read_response(fourth, timeout=5)
            assert head.startswith(b"HTTP/1.1 503 "), head
            assert b"\r\nretry-after: 1" in head.lower()
            assert b"busy" in body
            app.release.set()
            for sock, path in [(first, b"/block/1"), (waiting[0], b"/block/2")]:
                assert read_response(sock)[1] == b"ran " + path
            assert read_response(waiting[1])[1] == b"ran /block/3"
            fourth.sendall(REQUEST % b"/four")  # the connection that got 503 serves on
            assert read_response(fourth)[1] == b"ran /four"
        assert "/four" in app.calls and app.calls.count("/four") == 1


@pytest.mark.parametrize("extra", [b"", b"Expect: x\r\n"], ids=["plain", "odd-expect"])
def test_a_request_whose_client_left_while_queued_is_never_run(extra: bytes) -> None:
    """With the one thread busy, a request waits; its client closes the connection; once the
    thread is free, the app is not called for it, and the next request runs. An Expect header
    other than 100-continue does not turn the check off."""
    with serve(threads=1) as (server, app):
        with send(server, b"/block") as first:
            until(lambda: app.calls == ["/block"], "the request in the app", 5)
            with send(server, b"/gone", extra):
                until(lambda: in_flight(server) == 2, "2 requests in flight", 5)
            # The server has seen the close once the connection is gone from its table.
            until(lambda: len(server.server.state.connections) == 1, "one connection left", 5)
            app.release.set()
            assert read_response(first)[1] == b"ran /block"
        with send(server, b"/after") as after:
            assert read_response(after)[1] == b"ran /after"
        assert app.calls == ["/block", "/after"]


@pytest.mark.parametrize("size", [10, 200_000], ids=["whole", "streamed"])
def test_a_queued_request_with_a_body_still_gets_its_body(size: int) -> None:
    """A request that waits for a thread has its body's first message taken while it waits (to
    notice a client that leaves); the app still reads the whole body, small or streamed."""

    def echo(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/block":
            release.wait(10)
        body = environ["wsgi.input"].read()
        start_response("200 OK", [])
        return [body]

    release = threading.Event()
    try:
        with run_server(WSGIAdapter(echo, 1)) as server, send(server, b"/block") as first:
            until(lambda: in_flight(server) == 1, "1 request in flight", 5)
            with server.connect(timeout=10) as second:
                payload = b"x" * size
                head = b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n\r\n"
                second.sendall(head % len(payload) + payload)
                until(lambda: in_flight(server) == 2, "2 requests in flight", 5)
                release.set()
                assert read_response(first)[1] == b""
                assert read_response(second)[1] == payload
    finally:
        release.set()


def test_the_wsgi_queue_flag_reaches_the_workers(tmp_path: Path) -> None:
    """`devserve --threads 1 --wsgi-queue 1`: with the thread busy and one request waiting, the
    next gets 503 at once; the waiting one is served once the thread is free."""
    release = tmp_path / "release"
    with run_devserve(
        "--threads", "1", "--wsgi-queue", "1", "--app-dir", CLI_APPS, "--no-access-log",
        "--control", str(tmp_path / "ctl.sock"), "wsgi_blocking_app:app",
    ) as proc:  # fmt: skip
        port = int(proc.url.rsplit(":", 1)[1])
        blocked = socket.create_connection(("127.0.0.1", port), timeout=10)
        blocked.sendall(REQUEST % f"/block?{release}".encode())
        proc.out.wait_for("wsgi_blocking_app: blocking")
        waiting = socket.create_connection(("127.0.0.1", port), timeout=10)
        waiting.sendall(REQUEST % b"/waiting")
        control = ControlClient(str(tmp_path / "ctl.sock"))
        until(lambda: control.request("status")["totals"]["in_flight"] == 2, "2 in flight", 10)
        more = httpx.get(f"{proc.url}/more", timeout=5)
        release.touch()
        first, second = read_response(blocked), read_response(waiting)
        blocked.close()
        waiting.close()
        proc.out.stop()
    assert more.status_code == 503 and more.headers["retry-after"] == "1"
    assert first[0].startswith(b"HTTP/1.1 200") and second[0].startswith(b"HTTP/1.1 200")
    assert second[1] == b"/waiting"


def test_a_client_that_stops_reading_frees_its_wsgi_thread_after_timeout_send() -> None:
    """With one thread, a client that reads nothing of a large response would hold the thread
    (and so the app) forever; after --timeout-send it is cut off and the next request runs."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        if environ["PATH_INFO"] == "/big":
            return (b"x" * 65536 for _ in range(320))  # 20 MiB
        return [b"small"]

    with run_server(WSGIAdapter(app, 1), timeout_send=0.5) as server:
        hog = socket.socket()
        hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        hog.settimeout(10)
        hog.connect((server.host, server.port))
        with hog, server.connect(timeout=10) as sock:
            hog.sendall(REQUEST % b"/big")
            until(lambda: in_flight(server) == 1, "1 request in flight", 5)
            sock.sendall(REQUEST % b"/small")
            head, body = read_response(sock, timeout=10)
    assert head.startswith(b"HTTP/1.1 200") and body == b"small"
