"""The "ASGI from the wire up" chapters (docs/learn/) are true: every app in docs/examples/learn
is served by the real `devserve` CLI and answers as its chapter says, and the `--trace`
excerpts quoted in the chapters are what devserve logs for those requests.

The raw-socket tests send the very bytes the chapters tell the reader to type.
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.utils import Process, clean_env, devserve_command, run_devserve

ROOT = Path(__file__).resolve().parent.parent
LEARN = ROOT / "docs" / "examples" / "learn"
CHAPTERS = ROOT / "docs" / "learn"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"learn_{name}", LEARN / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # keep docs/examples clean
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = saved
    return module


rawclient = _load("rawclient")


@contextlib.contextmanager
def serve(app: str, *args: str) -> Iterator[Process]:
    """devserve --trace serving `app` from docs/examples/learn, as the chapters run it."""
    with run_devserve(
        "--app-dir",
        str(LEARN),
        "--dashboard",
        "off",
        "--trace",
        *args,
        app,
        env={"PYTHONDONTWRITEBYTECODE": "1"},  # keep docs/examples clean
    ) as server:
        yield server


def raw(server: Process, data: bytes) -> bytes:
    """What the chapters' rawclient.py prints for `data` (it reads until the server closes)."""
    answer: bytes = rawclient.exchange(server.port, data)
    return answer


def head_and_body(response: bytes) -> tuple[list[str], bytes]:
    """The status line and header lines (date dropped: it changes), and the body."""
    head, _, body = response.partition(b"\r\n\r\n")
    lines = [line for line in head.decode().split("\r\n") if not line.startswith("date: ")]
    return lines, body


# --- the chapters' --trace excerpts -------------------------------------------------------------

TRACE_LINE = re.compile(r"\btrace (\d+:(?:\d+|lifespan)) (.*)$")


def normalized(text: str) -> dict[str, list[str]]:
    """Trace lines grouped by label, without what differs between runs (times, client ports,
    pids); each group starts with its label's number (or `lifespan`), then its scope line."""
    groups: dict[str, list[str]] = {}
    for line in text.splitlines():
        match = TRACE_LINE.search(line)
        if match is None:
            continue
        label, rest = match.groups()
        rest = re.sub(r"^\+[\d.]+ ms ", "", rest)
        rest = re.sub(r"from 127\.0\.0\.1:\d+", "from 127.0.0.1:PORT", rest)
        groups.setdefault(label, [label.split(":")[1]]).append(" ".join(rest.split()))
    return groups


def quoted_traces(chapter: str) -> list[list[str]]:
    """Every traced request quoted in a chapter's code blocks, normalized, in order."""
    inside, lines = False, []
    for line in (CHAPTERS / chapter).read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("```"):
            inside = not inside
        elif inside:
            lines.append(line)
    return list(normalized("\n".join(lines)).values())


def real_traces(app: str, interactions: list[Callable[[Process], object]]) -> list[list[str]]:
    """Serve `app`, run `interactions` one after another, stop; the traces it logged."""
    with serve(app) as server:
        for interact in interactions:
            interact(server)
        output = server.out.stop()
    return list(normalized(output).values())


def check_quoted(chapter: str, app: str, scripts: dict[str, Callable[[Process], object]]) -> None:
    """Each trace quoted in `chapter` (keyed by its scope line) equals the one devserve logs
    when the matching script of `scripts` is run against `app`."""
    quoted = quoted_traces(chapter)
    assert quoted, f"no --trace excerpt found in {chapter}"
    keys = [group[1] for group in quoted]
    assert sorted(keys) == sorted(scripts), "every quoted trace needs a script, and no more"
    # run in the order of the quoted labels' numbers, so the numbers are checked too
    in_order = sorted(quoted, key=lambda group: int(group[0]) if group[0].isdigit() else 0)
    ran = real_traces(app, [scripts[group[1]] for group in in_order])
    real = {group[1]: group for group in ran}
    for group in quoted:
        assert real.get(group[1]) == group


# --- HTTP (docs/learn/http.md) ------------------------------------------------------------------

GET_HELLO = b"GET /hello?name=ada HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
POST_UPLOAD = (
    b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nConnection: close\r\n"
    b"\r\nhello"
)
PIPELINED = (
    b"GET /first HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\nConnection: close"
    b"\r\n\r\n"
)


@pytest.fixture(scope="module")
def hello() -> Iterator[Process]:
    with serve("hello:app") as server:
        yield server


def test_hello_answers_a_typed_get_with_the_headers_the_chapter_shows(hello: Process) -> None:
    """The chapter's GET gets 200, the app's two headers, a length, close, and its body."""
    lines, body = head_and_body(raw(hello, GET_HELLO))
    assert lines == [
        "HTTP/1.1 200 OK",
        "server: devserve",
        "content-type: text/plain",
        "x-example: hello",
        "content-length: 22",
        "connection: close",
    ]
    assert body == b"hello from GET /hello\n"


def test_hello_counts_a_posted_body(hello: Process) -> None:
    """A 5-byte POST that arrives in one write is one http.request message."""
    lines, body = head_and_body(raw(hello, POST_UPLOAD))
    assert lines[0] == "HTTP/1.1 200 OK" and "content-length: 28" in lines
    assert body == b"got 5 bytes in 1 message(s)\n"


def test_a_request_without_host_is_refused_before_the_app(hello: Process) -> None:
    """HTTP/1.1 without Host: 400 Bad Request from the server, and the warning naming why."""
    lines, body = head_and_body(raw(hello, b"GET / HTTP/1.1\r\n\r\n"))
    assert lines == [
        "HTTP/1.1 400 Bad Request",
        "server: devserve",
        "content-type: text/plain; charset=utf-8",
        "content-length: 12",
        "connection: close",
    ]
    assert body == b"Bad Request\n"
    hello.out.wait_for(r"400 Bad Request from .*: 0 Host headers \(HTTP/1.1 needs exactly one\)")


def test_pipelined_requests_are_answered_in_order_on_one_connection(hello: Process) -> None:
    """Exercise 2: both answers, in order; only the second says connection: close."""
    response = raw(hello, PIPELINED)
    first, _, second = response.partition(b"hello from GET /first\n")
    assert first.startswith(b"HTTP/1.1 200 OK\r\n") and b"connection:" not in first
    assert second.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"connection: close\r\n" in second
    assert second.endswith(b"\r\n\r\nhello from GET /second\n")


def test_rawclient_prints_what_the_server_answers(hello: Process) -> None:
    """The chapter's `printf ... | python3 rawclient.py PORT` works as written."""
    done = subprocess.run(
        [sys.executable, str(LEARN / "rawclient.py"), str(hello.port)],
        input=GET_HELLO,
        capture_output=True,
        timeout=10,
        check=True,
    )
    assert done.stdout.startswith(b"HTTP/1.1 200 OK\r\n")
    assert done.stdout.endswith(b"\r\n\r\nhello from GET /hello\n")


def test_stream_is_chunked_on_http11_and_closed_on_http10() -> None:
    """Exercise 1: chunked framing for 1.1; no length and connection: close for 1.0."""
    with serve("stream:app") as server:
        lines, body = head_and_body(
            raw(server, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        )
        assert "transfer-encoding: chunked" in lines and "connection: close" in lines
        assert body == b"4\r\none\n\r\n4\r\ntwo\n\r\n6\r\nthree\n\r\n0\r\n\r\n"
        lines, body = head_and_body(raw(server, b"GET / HTTP/1.0\r\n\r\n"))
        assert lines == [
            "HTTP/1.1 200 OK",
            "server: devserve",
            "content-type: text/plain",
            "connection: close",
        ]
        assert body == b"one\ntwo\nthree\n"
        server.out.wait_for(r'"GET / HTTP/1.0" 200 14B')  # the access log: after its trace
        sizes = re.findall(
            r"send\s+http\.response\.body body=(\d)B more_body=True", server.out.text
        )
        assert sizes == ["4", "4", "6"] * 2  # as the exercise says
        assert server.out.count(r"send\s+http\.response\.body body=0B more_body=False") == 2


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/", "'http.response.body' while waiting for http.response.start"),
        ("/twice", "'http.response.start' while sending the body"),
    ],
)
def test_broken_app_gets_a_500_and_the_protocol_error(path: str, error: str) -> None:
    """Exercise 3: the refused message is traced, the error logged, and the client gets 500."""
    with serve("broken:app") as server:
        request = f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        lines, body = head_and_body(raw(server, request))
        assert lines[0] == "HTTP/1.1 500 Internal Server Error"
        assert "connection: close" in lines
        assert body == b"Internal Server Error"
        server.out.wait_for(re.escape(f"ASGIProtocolError: unexpected ASGI message {error}"))
        refused = server.out.wait_for(r"trace \d+:1 \+[\d.]+ ms refused .*")
        assert f"error=ASGIProtocolError: unexpected ASGI message {error}" in refused


def test_http_chapter_trace_excerpts_are_what_devserve_logs() -> None:
    """The GET and POST traces quoted in http.md, message by message."""
    check_quoted(
        "http.md",
        "hello:app",
        {
            "scope http GET /hello?name=ada HTTP/1.1 from 127.0.0.1:PORT, 2 headers": lambda s: raw(
                s, GET_HELLO
            ),
            "scope http POST /upload HTTP/1.1 from 127.0.0.1:PORT, 3 headers": lambda s: raw(
                s, POST_UPLOAD
            ),
        },
    )


# --- WebSocket (docs/learn/websocket.md) --------------------------------------------------------

HANDSHAKE = (
    b"GET /chat HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
TEXT_HI = b"\x81\x82\x00\x00\x00\x00hi"  # FIN+text, masked, 2 bytes, a zero mask, "hi"
CLOSE_1000 = b"\x88\x82\x00\x00\x00\x00\x03\xe8"  # FIN+close, masked, 2 bytes: code 1000
SWITCHING = [
    "HTTP/1.1 101 Switching Protocols",
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
    "Server: devserve",
]


def ws_head_and_frames(response: bytes) -> tuple[list[str], bytes]:
    lines, frames = head_and_body(response)
    return [line for line in lines if not line.startswith("Date: ")], frames


def ws_session(server: Process) -> None:
    """Step 3 of the chapter, with the websockets client."""
    with ws_connect(server, "/chat") as ws:
        ws.send("hello")
        assert ws.recv(timeout=5) == "echo: hello"
        ws.send(b"\x01\x02")
        assert ws.recv(timeout=5) == b"\x01\x02"
        ws.send("bye")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4000, "see you")


def ws_denied(server: Process) -> None:
    with pytest.raises(InvalidStatus) as denied:
        ws_connect(server, "/private")
    assert denied.value.response.status_code == 403
    assert denied.value.response.body == b"Forbidden\n"


def raw_denied(server: Process) -> None:
    """The typed handshake on /private: 403, the body Forbidden, and the connection closed."""
    lines, body = head_and_body(raw(server, HANDSHAKE.replace(b"/chat", b"/private")))
    assert lines[0] == "HTTP/1.1 403 Forbidden" and "connection: close" in lines
    assert body == b"Forbidden\n"


def ws_connect(server: Process, path: str) -> ClientConnection:
    return connect(server.url.replace("http://", "ws://") + path, open_timeout=5, close_timeout=5)


@pytest.fixture(scope="module")
def ws_echo() -> Iterator[Process]:
    with serve("ws_echo:app") as server:
        yield server


def test_typed_handshake_and_frame_get_101_and_the_echo_frame(ws_echo: Process) -> None:
    """Step 2: the 101 with RFC 6455's accept value, then an unmasked text frame."""
    with rawclient_socket(ws_echo) as sock:
        sock.sendall(HANDSHAKE + TEXT_HI)
        answer = b""
        while not answer.endswith(b"\x81\x08echo: hi"):
            chunk = sock.recv(65536)
            assert chunk, answer
            answer += chunk
    lines, frames = ws_head_and_frames(answer)
    assert lines == SWITCHING and frames == b"\x81\x08echo: hi"
    ws_echo.out.wait_for(r"ws_echo: client closed with code 1006")


@contextlib.contextmanager
def rawclient_socket(server: Process) -> Iterator[socket.socket]:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        yield sock


def test_close_frame_is_echoed_and_reaches_the_app(ws_echo: Process) -> None:
    """Exercise 1: the server answers a 1000 close with its own and the app sees code 1000."""
    lines, frames = ws_head_and_frames(raw(ws_echo, HANDSHAKE + CLOSE_1000))
    assert lines == SWITCHING and frames == b"\x88\x02\x03\xe8"
    ws_echo.out.wait_for(r"ws_echo: client closed with code 1000")


def test_message_and_close_in_one_read_get_no_echo(ws_echo: Process) -> None:
    """Exercise 2: the echo is traced but never sent; only the close frame comes back."""
    lines, frames = ws_head_and_frames(raw(ws_echo, HANDSHAKE + TEXT_HI + CLOSE_1000))
    assert lines == SWITCHING and frames == b"\x88\x02\x03\xe8"


def test_websocket_session_and_denial(ws_echo: Process) -> None:
    """Exercise 3: /private is a 403 (typed or from a client); `bye` closes with 4000."""
    raw_denied(ws_echo)
    ws_denied(ws_echo)
    ws_session(ws_echo)


def test_websocket_chapter_trace_excerpts_are_what_devserve_logs() -> None:
    check_quoted(
        "websocket.md",
        "ws_echo:app",
        {
            "scope websocket /chat HTTP/1.1 from 127.0.0.1:PORT, 7 headers": ws_session,
            "scope websocket /private HTTP/1.1 from 127.0.0.1:PORT, 5 headers": raw_denied,
        },
    )


# --- Lifespan (docs/learn/lifespan.md) ----------------------------------------------------------


def http_get(server: Process, path: str) -> tuple[list[str], bytes]:
    request = f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()
    return head_and_body(raw(server, request))


def test_lifespan_startup_before_serving_state_in_requests_shutdown_at_stop() -> None:
    """Startup runs before `serving on`, its state reaches requests, shutdown runs at stop."""
    with serve("lifespan_app:app") as server:
        assert re.search(r"got lifespan\.startup\n.*serving on", server.out.text, re.DOTALL)
        assert http_get(server, "/")[1] == b"hello from startup\n"
        assert "lifespan.shutdown" not in server.out.text
        output = server.out.stop()
    assert re.search(r"draining worker .*got lifespan\.shutdown\n.*stopped", output, re.DOTALL)


def test_lifespan_chapter_trace_excerpt_is_what_devserve_logs() -> None:
    """The lifespan session quoted in lifespan.md: startup at start, shutdown at stop."""
    check_quoted("lifespan.md", "lifespan_app:app", {"scope lifespan": lambda server: None})


def test_lifespan_off_never_calls_the_app_with_a_lifespan_scope() -> None:
    """Exercise 2: with --lifespan off nothing is printed and the state stays empty."""
    with serve("lifespan_app:app", "--lifespan", "off") as server:
        assert http_get(server, "/")[1] == b"no lifespan ran\n"
        output = server.out.stop()
    assert "lifespan_app: got" not in output


def test_failed_startup_exits_3_without_serving() -> None:
    """Exercise 1: LIFESPAN_FAIL=1 is a failed startup: the message, exit status 3."""
    done = subprocess.run(
        devserve_command(
            *("--no-tui", "--port", "0", "--control", "off", "--dashboard", "off"),
            *("--app-dir", str(LEARN), "lifespan_app:app"),
        ),
        env={**clean_env(LIFESPAN_FAIL="1"), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 3, output
    assert "lifespan_app: got lifespan.startup" in output
    assert "devserve: error: lifespan startup failed: no database" in output
    assert "serving on" not in output and "lifespan.shutdown" not in output


# --- WSGI (docs/learn/wsgi.md) ------------------------------------------------------------------


def meet_twice(server: Process) -> list[bytes]:
    """Two /meet requests on two connections at once; their bodies (the second may take 4 s)."""
    request = b"GET /meet HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as first,
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as second,
    ):
        first.sendall(request)
        second.sendall(request)
        return [head_and_body(read_to_close(sock))[1] for sock in (first, second)]


def read_to_close(sock: socket.socket) -> bytes:
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    return answer


def test_wsgi_request_runs_on_a_pool_thread_with_a_decoded_path_info() -> None:
    """Step 1 and exercise 2: the app's own headers, a pool thread, PATH_INFO decoded."""
    with serve("wsgi_app:app") as server:
        lines, body = http_get(server, "/hello%20world")
        assert lines == [
            "HTTP/1.1 200 OK",
            "server: devserve",
            "Content-Type: text/plain",
            "Content-Length: 43",
            "connection: close",
        ]
        assert re.fullmatch(rb"GET /hello world on thread devserve-wsgi-\d\n", body)
        assert re.fullmatch(
            rb"GET /a/b on thread devserve-wsgi-\d+\n", http_get(server, "/a%2Fb")[1]
        )
        server.out.wait_for(r'"GET /a%2Fb HTTP/1.1" 200')


def test_two_blocking_requests_meet_only_with_two_threads() -> None:
    """Exercise 1: with the default pool both answer "met"; with --threads 1, "alone"."""
    with serve("wsgi_app:app") as server:
        assert meet_twice(server) == [b"met\n", b"met\n"]
    with serve("wsgi_app:app", "--threads", "1") as server:
        assert meet_twice(server) == [b"alone\n", b"alone\n"]


def curl_hello_world(server: Process) -> None:
    """The chapter's `curl -i .../hello%20world` (its three headers typed if curl is missing)."""
    if shutil.which("curl"):
        command = ["curl", "-s", "-i", f"{server.url}/hello%20world"]
        subprocess.run(command, capture_output=True, check=True, timeout=10)
    else:
        raw(
            server,
            b"GET /hello%20world HTTP/1.1\r\nHost: x\r\nUser-Agent: curl\r\nAccept: */*\r\n\r\n",
        )


def test_wsgi_chapter_trace_excerpt_is_what_devserve_logs() -> None:
    check_quoted(
        "wsgi.md",
        "wsgi_app:app",
        {"scope http GET /hello world HTTP/1.1 from 127.0.0.1:PORT, 3 headers": curl_hello_world},
    )
