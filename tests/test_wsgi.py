"""WSGI apps through devserver.wsgi: the environ, a streamed wsgi.input, start_response and
write(), streamed responses paced by the client, close(), file_wrapper over sendfile, errors,
the thread bound, interface detection, lifespan and shutdown.

Servers are real (in a thread with `run_server`, or the CLI in a subprocess), on 127.0.0.1 port 0;
the client side is raw sockets. Synchronisation is by events and polls under deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import logging
import os
import re
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devserver.app_loader import detect_interface, load_app
from devserver.wsgi import (
    FileWrapper,
    WSGIAdapter,
    WSGIInput,
    build_environ,
    has_body,
    path_info,
)
from tests.utils import Running, run_devserve, run_server, until, waiting_to_drain
from tests.wire_apps import Response, parse_responses, read_responses, read_until_closed

ROOT = str(Path(__file__).resolve().parent.parent)
HOST = b"Host: test\r\n"
StartResponse = Callable[..., Any]
Environ = dict[str, Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


# --------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def serve(app: WSGIApp, threads: int = 4, **options: Any) -> Iterator[Running]:
    with run_server(WSGIAdapter(app, threads), **options) as server:
        yield server


def exchange(server: Running, data: bytes, bodiless: bool = False) -> Response:
    """Send one request that asks to close; return its response."""
    with server.connect() as sock:
        sock.sendall(data)
        raw, closed = read_until_closed(sock, timeout=10)
    assert closed, raw[:300]
    [response] = parse_responses(raw, [bodiless])
    return response


def get(server: Running, target: str = "/", *headers: bytes, method: bytes = b"GET") -> Response:
    head = b"%b %b HTTP/1.1\r\n" % (method, target.encode()) + HOST
    head += b"".join(h + b"\r\n" for h in headers) + b"Connection: close\r\n\r\n"
    return exchange(server, head, bodiless=method == b"HEAD")


def post(server: Running, body: bytes, *headers: bytes) -> Response:
    head = b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: %d\r\n" % len(body)
    head += b"".join(h + b"\r\n" for h in headers) + b"Connection: close\r\n\r\n"
    return exchange(server, head + body)


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%b\r\n" % (len(part), part) for part in parts if part)


def tracebacks(records: list[logging.LogRecord]) -> list[BaseException]:
    """The exceptions logged with their traceback at ERROR level."""
    return [
        r.exc_info[1]
        for r in records
        if r.levelno >= logging.ERROR and r.exc_info and r.exc_info[1]
    ]


def text(body: bytes = b"", status: str = "200 OK") -> WSGIApp:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response(status, [("Content-Type", "text/plain")])
        return [body]

    return app


class Closing:
    """A response iterable that records close() and can raise after `fail_after` chunks."""

    def __init__(self, chunks: list[bytes], fail_after: int | None = None) -> None:
        self.chunks = chunks
        self.fail_after = fail_after
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        for number, chunk in enumerate(self.chunks):
            if number == self.fail_after:
                raise ValueError("the iterable broke")
            yield chunk
        if self.fail_after == len(self.chunks):
            raise ValueError("the iterable broke")

    def close(self) -> None:
        self.closed.set()


# =========================================================================== the environ
def echo_environ(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Answers with the environ's plain values as JSON, and what the wsgi.* objects offer."""
    plain = {k: v for k, v in environ.items() if isinstance(v, str | int | bool | tuple)}
    plain["body"] = environ["wsgi.input"].read().decode("latin-1")
    plain["errors_api"] = all(
        callable(getattr(environ["wsgi.errors"], m, None)) for m in ("write", "writelines", "flush")
    )
    plain["file_wrapper"] = callable(environ.get("wsgi.file_wrapper"))
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(plain).encode()]


def test_environ_holds_every_pep_3333_field() -> None:
    """The environ has the CGI fields, the headers as HTTP_*, and the wsgi.* keys, all correct."""
    with serve(echo_environ) as server, server.connect() as sock:
        sock.sendall(
            b"POST /a/b?x=1&y=%20 HTTP/1.1\r\n" + HOST + b"Content-Type: text/plain\r\n"
            b"Content-Length: 5\r\nX-Multi: one\r\nX-Multi: two\r\nCookie: a=1\r\n"
            b"Cookie: b=2\r\nX_Sneaky: dropped\r\nConnection: close\r\n\r\nhello"
        )
        client_port = sock.getsockname()[1]
        raw, _ = read_until_closed(sock, timeout=10)
    environ = json.loads(parse_responses(raw)[0].body)
    expected = {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/a/b",
        "QUERY_STRING": "x=1&y=%20",
        "CONTENT_TYPE": "text/plain",
        "CONTENT_LENGTH": "5",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": str(server.port),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": str(client_port),
        "HTTP_HOST": "test",
        "HTTP_X_MULTI": "one,two",
        "HTTP_COOKIE": "a=1; b=2",
        "HTTP_CONNECTION": "close",
        "wsgi.version": [1, 0],
        "wsgi.url_scheme": "http",
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "body": "hello",
        "errors_api": True,
        "file_wrapper": True,
    }
    assert {k: environ.get(k) for k in expected} == expected
    assert "HTTP_CONTENT_TYPE" not in environ and "HTTP_CONTENT_LENGTH" not in environ
    assert not any("SNEAKY" in key for key in environ), "a header with '_' got into the environ"


def test_root_path_becomes_script_name() -> None:
    """With --root-path, SCRIPT_NAME is the mount point and PATH_INFO the rest of the path."""
    with serve(echo_environ, root_path="/mount") as server:
        environ = json.loads(get(server, "/x/y%3F").body)
    assert environ["SCRIPT_NAME"] == "/mount"
    assert environ["PATH_INFO"] == "/x/y?"


def test_path_info_is_the_percent_decoded_bytes_as_latin_1() -> None:
    """PATH_INFO holds the decoded bytes one char each (WSGI's latin-1 strings): UTF-8 and a
    non-UTF-8 byte survive and the app can decode them itself."""
    with serve(echo_environ, root_path="/mount") as server:
        environ = json.loads(get(server, "/caf%C3%A9/%E9%2Fx").body)
    assert environ["PATH_INFO"] == b"/caf\xc3\xa9/\xe9/x".decode("latin-1")
    assert environ["PATH_INFO"].encode("latin-1")[:7].decode("utf-8") == "/café/"


def test_a_request_without_body_reads_empty_without_waiting() -> None:
    """A GET has an empty wsgi.input that answers at once (nothing is asked of the client)."""
    with serve(echo_environ) as server:
        environ = json.loads(get(server).body)
    assert environ["body"] == ""
    assert "CONTENT_LENGTH" not in environ


def scope(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "http_version": "1.1",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"example.com")],
        "client": ("10.0.0.1", 4711),
        "server": ("10.0.0.2", 8000),
    }
    base.update(overrides)
    return base


def test_build_environ_without_a_port_takes_the_host_header() -> None:
    """A Unix socket (no port): SERVER_NAME/PORT come from Host, or the scheme's default port."""
    environ = build_environ(scope(server=("/run/app.sock", None), headers=[(b"host", b"h:81")]))
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("h", "81")
    environ = build_environ(scope(server=None, scheme="https", headers=[(b"host", b"[::1]")]))
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("[::1]", "443")
    assert environ["wsgi.url_scheme"] == "https"
    environ = build_environ(scope(server=None, headers=[], client=None))
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("localhost", "80")
    assert "REMOTE_ADDR" not in environ


def test_path_info_without_raw_path_uses_the_decoded_path() -> None:
    """raw_path is optional in ASGI: PATH_INFO then comes from `path`, root_path stripped."""
    expected = b"/caf\xc3\xa9".decode("latin-1")
    assert path_info(scope(raw_path=None, path="/r/café", root_path="/r")) == expected


def test_has_body_follows_the_framing_headers() -> None:
    """Only a Content-Length above zero or a Transfer-Encoding means a body to stream."""
    assert not has_body(build_environ(scope()))
    assert not has_body(build_environ(scope(headers=[(b"content-length", b"0")])))
    assert has_body(build_environ(scope(headers=[(b"content-length", b"3")])))
    assert has_body(build_environ(scope(headers=[(b"transfer-encoding", b"chunked")])))


def test_wsgi_errors_go_to_the_log(server_log: list[logging.LogRecord]) -> None:
    """Text written to wsgi.errors becomes log records, a partial line once it is flushed."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        errors = environ["wsgi.errors"]
        errors.write("something odd\n")
        errors.write("half a line")
        errors.flush()
        start_response("200 OK", [])
        return [b""]

    with serve(app) as server:
        assert get(server).status == 200
    messages = [r.getMessage() for r in server_log if r.name == "devserve.server.wsgi"]
    assert messages == ["something odd", "half a line"]


# =========================================================================== wsgi.input
def test_upload_is_streamed_to_the_app_as_it_reads() -> None:
    """A 64 MiB chunked upload read in 1 MiB slices: the app has its first slice before the
    client sent the rest, every slice is full, and the bytes arrive intact."""
    first_slice = threading.Event()
    size, mib = 64 << 20, 1 << 20

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        digest, sizes = hashlib.sha256(), []
        while piece := environ["wsgi.input"].read(mib):
            digest.update(piece)
            sizes.append(len(piece))
            first_slice.set()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"sha256": digest.hexdigest(), "sizes": sizes}).encode()]

    body = os.urandom(size)
    with serve(app) as server, server.connect(timeout=30) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\nConnection: close\r\n"
            b"\r\n" + chunked(body[: 2 * mib])
        )
        assert first_slice.wait(10), "the app got nothing before the whole body was sent"
        for start in range(2 * mib, size, 4 * mib):
            sock.sendall(chunked(body[start : start + 4 * mib]))
        sock.sendall(b"0\r\n\r\n")
        raw, _ = read_until_closed(sock, timeout=30)
    result = json.loads(parse_responses(raw)[0].body)
    assert result["sha256"] == hashlib.sha256(body).hexdigest()
    assert result["sizes"] == [mib] * 64


def test_readline_readlines_and_iteration() -> None:
    """readline (with and without a size), read, readlines and iteration split lines right."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        body = environ["wsgi.input"]
        result = {
            "line": body.readline().decode(),
            "short": body.readline(3).decode(),
            "rest": body.readline().decode(),
            "two": body.read(2).decode(),
            "lines": [line.decode() for line in body.readlines(1)],
            "iterated": [line.decode() for line in body],
            "after": body.read().decode(),
        }
        start_response("200 OK", [])
        return [json.dumps(result).encode()]

    with serve(app) as server:
        response = post(server, b"first\nsecond\nthird\nfourth\nfifth\nsixth")
    assert json.loads(response.body) == {
        "line": "first\n",
        "short": "sec",
        "rest": "ond\n",
        "two": "th",
        "lines": ["ird\n"],
        "iterated": ["fourth\n", "fifth\n", "sixth"],
        "after": "",
    }


@pytest.fixture
def loop_thread() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running on its own thread, the way the server's loop serves pool threads."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def fake_receive(*bodies: bytes) -> Callable[[], Any]:
    messages = [
        {"type": "http.request", "body": body, "more_body": n < len(bodies) - 1}
        for n, body in enumerate(bodies)
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    return receive


def test_input_lines_cross_chunk_boundaries(loop_thread: asyncio.AbstractEventLoop) -> None:
    """Lines and reads that span received chunks (and empty chunks) come out whole."""
    body = WSGIInput(fake_receive(b"ab", b"", b"c\nde", b"f\n\ng", b"hij"), loop_thread)
    assert body.readline() == b"abc\n"
    assert body.read(4) == b"def\n"
    assert list(body) == [b"\n", b"ghij"]
    assert body.read() == b"" and body.readline() == b""


def test_input_read_sizes_are_bounded(loop_thread: asyncio.AbstractEventLoop) -> None:
    """read(n) never returns more than n, and readline(n) stops at n without a newline."""
    body = WSGIInput(fake_receive(b"x" * 100, b"y" * 100), loop_thread)
    assert body.read(30) == b"x" * 30
    assert body.readline(80) == b"x" * 70 + b"y" * 10
    assert body.read(1000) == b"y" * 90


def test_input_raises_when_the_client_leaves(loop_thread: asyncio.AbstractEventLoop) -> None:
    """A body cut short by a disconnect raises an OSError instead of looking complete."""

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    with pytest.raises(OSError):
        WSGIInput(receive, loop_thread).read()


# =========================================================================== the response
def test_a_one_item_list_leaves_in_one_write() -> None:
    """The hello-world path: head and body in a single segment, framed by Content-Length."""
    with serve(text(b"Hello, world!")) as server, server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n" + HOST + b"\r\n")
        sock.settimeout(5)
        first = sock.recv(65536)
        sock.sendall(b"GET / HTTP/1.1\r\n" + HOST + b"\r\n")  # kept alive: a second one works
        [response] = read_responses(sock, 1)
    assert first.endswith(b"\r\n\r\nHello, world!")
    assert b"content-length: 13\r\n" in first.lower()
    assert response.body == b"Hello, world!"


def test_write_callable_sends_before_the_iterable() -> None:
    """Bytes given to write() come first, then the returned iterable's."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"hello ")
        write(b"")
        write(bytearray(b"big "))
        return [b"world"]

    with serve(app) as server:
        response = get(server)
    assert response.body == b"hello big world"
    assert response.header("transfer-encoding") == "chunked"


def test_empty_chunks_do_not_send_the_headers_early() -> None:
    """Empty strings from the iterable are skipped: an error after them is still a clean 500."""

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b""
        raise RuntimeError("broke before any body")

    with serve(app) as server:
        assert get(server).status == 500


def test_head_request_gets_the_head_only() -> None:
    """HEAD: the app's headers, no body bytes."""
    with serve(text(b"twelve bytes")) as server:
        response = get(server, method=b"HEAD")
    assert response.status == 200 and response.body == b""


def test_streamed_response_is_paced_by_the_client() -> None:
    """A generator is not run far ahead of a client that stops reading; reading resumes it; a
    client that goes away mid-stream gets the iterable closed."""
    chunk = b"z" * 65536
    produced = [0]
    stream_closed = threading.Event()

    class Endless:
        def __iter__(self) -> Iterator[bytes]:
            for _ in range(4096):  # 256 MiB: far more than any buffer on the way
                produced[0] += 1
                yield chunk

        def close(self) -> None:
            stream_closed.set()

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return Endless()

    bound = kernel_send_buffer_max() + (4 << 20)  # + the client's buffer, the adapter's queue
    with serve(app) as server:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.connect((server.host, server.port))
        with sock:
            sock.sendall(b"GET / HTTP/1.1\r\n" + HOST + b"\r\n")
            received = read_at_least(sock, 1 << 20)
            until(
                lambda: server.call(lambda: waiting_to_drain(server.server)),
                "the response to wait for the client",
            )
            assert produced[0] * len(chunk) <= received + bound
            before = produced[0]
            received += read_at_least(sock, 8 << 20)
            until(lambda: produced[0] > before + 64, "the generator to go on")
        assert stream_closed.wait(10), "close() was not called after the client left"
    assert produced[0] < 4096


def kernel_send_buffer_max() -> int:
    """How large the server's socket send buffer may grow (Linux autotuning's ceiling)."""
    try:
        return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, IndexError, ValueError):
        return 16 << 20


def read_at_least(sock: socket.socket, size: int) -> int:
    sock.settimeout(10)
    got = 0
    while got < size:
        data = sock.recv(65536)
        assert data, "closed early"
        got += len(data)
    return got


def test_close_is_called_after_a_complete_response() -> None:
    """close() of the iterable runs once the response is done."""
    iterable = Closing([b"a", b"b"])

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])
        return iterable

    with serve(app) as server:
        assert get(server).body == b"ab"
        assert iterable.closed.wait(5)


def test_exception_mid_stream_closes_the_connection_and_the_iterable(
    server_log: list[logging.LogRecord],
) -> None:
    """An iterable that raises after sending some body: connection closed, close() called, the
    traceback logged."""
    iterable = Closing([b"first", b"second"], fail_after=1)

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])
        return iterable

    with serve(app) as server, server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n" + HOST + b"\r\n")
        raw, closed = read_until_closed(sock, timeout=5)
        assert iterable.closed.wait(5)
    assert closed and b"first" in raw and not raw.endswith(b"0\r\n\r\n")
    assert any(isinstance(exc, ValueError) for exc in tracebacks(server_log))


def test_exception_before_any_body_is_500(server_log: list[logging.LogRecord]) -> None:
    """An app that raises (in the call or in its first chunk) gets a 500; close() still runs."""
    iterable = Closing([b"never"], fail_after=0)

    def raising(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        raise KeyError("boom")

    def late(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])
        return iterable

    with serve(raising) as server:
        assert get(server).status == 500
    with serve(late) as server:
        assert get(server).status == 500
    assert iterable.closed.wait(5)
    assert [type(exc) for exc in tracebacks(server_log)] == [KeyError, ValueError]


def test_no_start_response_is_500(server_log: list[logging.LogRecord]) -> None:
    """Returning a body without calling start_response is an app error: 500."""
    with serve(lambda environ, start_response: [b"body"]) as server:
        assert get(server).status == 500
    assert "start_response" in str(tracebacks(server_log)[0])


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        ("200", [("Content-Type", "text/plain")]),  # fine: the reason phrase may be empty
        ("2000 OK", []),
        ("OK 200", []),
        (b"200 OK", []),
        ("200 OK", [(b"Content-Type", b"text/plain")]),
        ("200 OK", [("X-Bad", "é€")]),
        ("200 OK", [("X-Split", "a\r\nInjected: 1")]),
    ],
)
def test_status_and_headers_are_checked(status: Any, headers: Any) -> None:
    """Only a '200 OK'-style str status and (str, str) latin-1 headers are sent; else 500."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response(status, headers)
        return [b"body"]

    with serve(app) as server:
        response = get(server)
    assert response.status == (200 if status == "200" else 500)
    assert response.header("injected") is None


# =========================================================================== exc_info
def test_exc_info_before_the_headers_are_sent_replaces_them() -> None:
    """start_response with exc_info before any body: the new status and headers win."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("X-First", "1")])
        try:
            raise ValueError("handled")
        except ValueError:
            start_response("503 Service Unavailable", [("X-Second", "2")], sys.exc_info())
        return [b"sorry"]

    with serve(app) as server:
        response = get(server)
    assert (response.status, response.body) == (503, b"sorry")
    assert response.header("x-second") == "2" and response.header("x-first") is None


def test_exc_info_after_the_headers_are_sent_re_raises(server_log: list[logging.LogRecord]) -> None:
    """start_response with exc_info after body was sent re-raises the app's own exception."""
    seen: list[BaseException] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"partial"
        try:
            raise LookupError("late failure")
        except LookupError:
            try:
                start_response("500 Internal Server Error", [], sys.exc_info())
            except BaseException as exc:
                seen.append(exc)
                raise

    with serve(app) as server, server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n" + HOST + b"\r\n")
        raw, closed = read_until_closed(sock, timeout=5)
    assert closed and b"partial" in raw and b"500" not in raw
    assert [type(exc) for exc in seen] == [LookupError]
    assert any(isinstance(exc, LookupError) for exc in tracebacks(server_log))


def test_second_start_response_without_exc_info_is_an_error() -> None:
    """Calling start_response twice without exc_info raises in the app: 500."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])
        start_response("201 Created", [])
        return [b"never"]

    with serve(app) as server:
        assert get(server).status == 500


# =========================================================================== file_wrapper
@pytest.fixture
def data_file(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom((3 << 20) + 17)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    return path, data


@pytest.fixture
def sendfile_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many bytes each os.sendfile call sent (the real call, spied on)."""
    calls: list[int] = []
    real = os.sendfile

    def spy(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        sent = real(out_fd, in_fd, offset, count)
        calls.append(sent)
        return sent

    monkeypatch.setattr(os, "sendfile", spy)
    return calls


def file_app(path: Path, seek: int = 0, headers: list[tuple[str, str]] | None = None) -> Any:
    opened: list[io.BufferedReader] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        file = path.open("rb")
        file.seek(seek)
        opened.append(file)
        start_response("200 OK", [("Content-Type", "application/octet-stream"), *(headers or [])])
        wrapper: Iterable[bytes] = environ["wsgi.file_wrapper"](file, 32768)
        return wrapper

    app.opened = opened  # type: ignore[attr-defined]
    return app


def test_file_wrapper_sends_the_file_with_sendfile(
    data_file: tuple[Path, bytes], sendfile_calls: list[int]
) -> None:
    """A real file goes out through sendfile, framed by its size, and is closed afterwards."""
    path, data = data_file
    app = file_app(path)
    with serve(app) as server:
        response = get(server)
        assert response.body == data
        assert response.header("content-length") == str(len(data))
        until(lambda: app.opened[0].closed, "the file to be closed")
    assert sum(sendfile_calls) == len(data)


def test_file_wrapper_honours_the_apps_content_length(data_file: tuple[Path, bytes]) -> None:
    """With its own Content-Length the app gets exactly that many bytes of the file sent."""
    path, data = data_file
    with serve(file_app(path, headers=[("Content-Length", "1000")])) as server:
        response = get(server)
    assert response.body == data[:1000]
    assert response.header("content-length") == "1000"


def test_file_wrapper_starts_at_the_files_position(data_file: tuple[Path, bytes]) -> None:
    """A file the app has already seeked into is sent from there on."""
    path, data = data_file
    with serve(file_app(path, seek=12345)) as server:
        response = get(server)
    assert response.body == data[12345:]
    assert response.header("content-length") == str(len(data) - 12345)


def test_file_wrapper_head_request(data_file: tuple[Path, bytes]) -> None:
    """HEAD of a file: its size as Content-Length and no body."""
    path, data = data_file
    with serve(file_app(path)) as server:
        response = get(server, method=b"HEAD")
    assert response.header("content-length") == str(len(data)) and response.body == b""


def test_file_wrapper_reads_other_file_likes_in_blocks(sendfile_calls: list[int]) -> None:
    """A file-like without a real file behind it is read block by block, then closed."""
    source = io.BytesIO(b"0123456789" * 10000)

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])
        wrapper: Iterable[bytes] = environ["wsgi.file_wrapper"](source, 4096)
        return wrapper

    with serve(app) as server:
        assert get(server).body == b"0123456789" * 10000
        until(lambda: source.closed, "the source to be closed")
    assert sendfile_calls == []
    assert list(FileWrapper(io.BytesIO(b"abcde"), 2)) == [b"ab", b"cd", b"e"]


def zerocopy_app(path: Path, *messages: dict[str, Any]) -> Any:
    """An ASGI app that sends `messages` (zerocopysend ones get the open file) after a 200."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        with path.open("rb") as file:
            for message in messages:
                if message["type"] == "http.response.zerocopysend":
                    message = {**message, "file": file}
                await send(message)

    return app


def test_zerocopysend_parts_with_offset_and_count_are_chunked(
    data_file: tuple[Path, bytes],
) -> None:
    """The ASGI Zero Copy Send message itself: ranges of the file, then more body, chunked."""
    path, data = data_file
    app = zerocopy_app(
        path,
        {"type": "http.response.zerocopysend", "offset": 0, "count": 100, "more_body": True},
        {"type": "http.response.zerocopysend", "offset": 5000, "count": 7, "more_body": True},
        {"type": "http.response.body", "body": b"tail"},
    )
    with run_server(app) as server:
        response = get(server)
    assert response.header("transfer-encoding") == "chunked"
    assert response.body == data[:100] + data[5000:5007] + b"tail"


def test_zerocopysend_of_a_file_shorter_than_its_count_closes(
    data_file: tuple[Path, bytes], server_log: list[logging.LogRecord]
) -> None:
    """A count past the end of the file cannot be framed: the connection is closed."""
    path, data = data_file
    app = zerocopy_app(path, {"type": "http.response.zerocopysend", "count": len(data) + 10})
    with run_server(app) as server, server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n" + HOST + b"\r\n")
        raw, closed = read_until_closed(sock, timeout=10)
    assert closed and b"content-length: %d" % (len(data) + 10) in raw.lower()
    assert len(raw.partition(b"\r\n\r\n")[2]) == len(data)
    assert any("ended 10 bytes early" in str(exc) for exc in tracebacks(server_log))


# =========================================================================== threads and CLI
_active = 0
_active_lock = threading.Lock()


def gated_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Says how many requests run at once, then waits for the client to send its body."""
    global _active
    with _active_lock:
        _active += 1
        running = _active
    try:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"started %d\n" % running)
        environ["wsgi.input"].read()
        return [b"done\n"]
    finally:
        with _active_lock:
            _active -= 1


GATED_POST = b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 1\r\nConnection: close\r\n\r\n"


def readable(socks: list[socket.socket], timeout: float) -> list[socket.socket]:
    ready, _, _ = select.select(socks, [], [], timeout)
    return ready


def wait_started(sock: socket.socket) -> int:
    """The number the gated app wrote when this request started."""
    sock.settimeout(10)
    data = b""
    while not (match := re.search(rb"started (\d+)", data)):
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    return int(match.group(1))


def test_threads_bound_how_many_requests_run_at_once() -> None:
    """With --threads 2 (and a plain WSGI function detected by --interface auto), a third
    concurrent request waits until one of the first two is done."""
    with run_devserve("--threads", "2", "--app-dir", ROOT, "tests.test_wsgi:gated_app") as proc:
        host, port = proc.url.removeprefix("http://").rsplit(":", 1)
        socks = [socket.create_connection((host, int(port)), timeout=10) for _ in range(3)]
        try:
            for sock in socks:
                sock.sendall(GATED_POST)
            running: list[socket.socket] = []
            deadline = time.monotonic() + 10
            while len(running) < 2 and time.monotonic() < deadline:
                running += readable([s for s in socks if s not in running], 0.1)
            assert len(running) == 2, "two requests did not start"
            assert sorted(wait_started(s) for s in running) == [1, 2]
            [waiting] = [s for s in socks if s not in running]
            assert readable([waiting], 0.5) == [], "a third request ran beside two"
            running[0].sendall(b"x")
            assert b"done" in read_until_closed(running[0], 10)[0]
            assert wait_started(waiting) == 2
            for sock in (running[1], waiting):
                sock.sendall(b"x")
                assert b"done" in read_until_closed(sock, 10)[0]
        finally:
            for sock in socks:
                sock.close()


def test_stop_lets_an_in_flight_request_finish_then_exits() -> None:
    """SIGTERM while a WSGI request runs: it finishes, then the process exits with 0."""
    with run_devserve("--app-dir", ROOT, "tests.test_wsgi:gated_app") as proc:
        host, port = proc.url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(GATED_POST)
            assert wait_started(sock) == 1
            proc.proc.send_signal(signal.SIGTERM)
            proc.read_until("waiting up to")
            sock.sendall(b"x")
            raw, closed = read_until_closed(sock, 10)
        assert b"done" in raw and closed
        assert proc.proc.wait(timeout=15) == 0


def stuck_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Starts a response, then never finishes (a thread the server cannot take back)."""
    start_response("200 OK", [])(b"started 1\n")
    threading.Event().wait()
    return []


def test_a_stuck_request_does_not_keep_the_server_from_exiting() -> None:
    """A WSGI request that never ends is given up after the graceful timeout; no hang."""
    with run_devserve(
        "--timeout-graceful-shutdown", "0.5", "--app-dir", ROOT, "tests.test_wsgi:stuck_app"
    ) as proc:
        host, port = proc.url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\n" + HOST + b"\r\n")
            assert wait_started(sock) == 1
            started = time.monotonic()
            output = proc.out.stop(signal.SIGTERM, timeout=15)
        assert time.monotonic() - started < 10
        assert "1 WSGI thread(s) still running a request" in output


def plain_wsgi(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [])
    return [b"plain"]


def wsgi_with_extra(
    environ: Environ, start_response: StartResponse, extra: Any = None
) -> Iterable[bytes]:
    start_response("200 OK", [])
    return [b"forced"]


def test_auto_detects_wsgi_callables_of_the_frameworks() -> None:
    """Functions and Flask/Django WSGI objects are wsgi; Starlette, FastAPI, Django ASGI asgi3."""
    import django.core.handlers.asgi
    import django.core.handlers.wsgi
    import fastapi
    import flask
    import starlette.applications

    # Django's handlers need settings to be built; detection only looks at __call__.
    wsgi_handler = object.__new__(django.core.handlers.wsgi.WSGIHandler)
    asgi_handler = object.__new__(django.core.handlers.asgi.ASGIHandler)
    assert detect_interface(plain_wsgi) == "wsgi"
    assert detect_interface(flask.Flask("t")) == "wsgi"
    assert detect_interface(wsgi_handler) == "wsgi"
    assert detect_interface(asgi_handler) == "asgi3"
    assert detect_interface(starlette.applications.Starlette()) == "asgi3"
    assert detect_interface(fastapi.FastAPI()) == "asgi3"


def test_load_app_wraps_wsgi_apps() -> None:
    """load_app wraps what auto-detection or --interface wsgi says is WSGI, with the threads."""
    app = load_app(
        "tests.test_wsgi:plain_wsgi", factory=False, interface="auto", app_dir=ROOT, threads=3
    )
    assert isinstance(app, WSGIAdapter) and app.pool.size == 3
    app = load_app(
        "tests.test_wsgi:wsgi_with_extra", factory=False, interface="auto", app_dir=ROOT, threads=3
    )
    assert app is wsgi_with_extra  # three parameters look like ASGI 3 ...
    app = load_app(
        "tests.test_wsgi:wsgi_with_extra", factory=False, interface="wsgi", app_dir=ROOT, threads=3
    )
    assert isinstance(app, WSGIAdapter)  # ... unless --interface wsgi says otherwise
    with serve(app.app) as server:
        assert get(server).body == b"forced"


# =========================================================================== lifespan, WebSocket
def wsgi_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("devserve-wsgi-")]


def test_lifespan_is_answered_and_shutdown_stops_the_threads(
    server_log: list[logging.LogRecord],
) -> None:
    """--lifespan on works with a WSGI app (nothing logged); on stop its threads exit."""
    with serve(text(b"ok"), threads=3, lifespan="on") as server:
        assert get(server).body == b"ok"
        assert len(wsgi_threads()) >= 3
    until(lambda: not wsgi_threads(), "the WSGI threads to end")
    assert [r.getMessage() for r in server_log if r.levelno >= logging.WARNING] == []


def test_a_websocket_is_refused_before_accept() -> None:
    """A WebSocket scope is closed before it is accepted (the server answers 403)."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(WSGIAdapter(plain_wsgi, 1)({"type": "websocket"}, receive, send))
    assert [m["type"] for m in sent] == ["websocket.close"]
