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

from tests.utils import Process, clean_env, devserve_command, require_tool, run_devserve

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


def check_quoted(
    chapter: str,
    app: str,
    scripts: dict[str, Callable[[Process], object]],
    elsewhere: frozenset[str] = frozenset(),
) -> None:
    """Each trace quoted in `chapter` (keyed by its scope line) equals the one devserve logs
    when the matching script of `scripts` is run against `app`; the traces keyed in `elsewhere`
    (of another app, or not the same from run to run) are checked by a test of their own."""
    quoted = [group for group in quoted_traces(chapter) if group[1] not in elsewhere]
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


# --- HTTP/2 (docs/learn/http2.md) ---------------------------------------------------------------

h2client_module = _load("h2client")
H2_GET = ("GET", "/hello?name=ada")
H2_TRACE = "scope http GET /hello?name=ada HTTP/2 from 127.0.0.1:PORT, 1 headers"
H1_TRACE = "scope http GET /hello?name=ada HTTP/1.1 from 127.0.0.1:PORT, 2 headers"
UPLOAD_TRACE = "scope http POST /upload HTTP/2 from 127.0.0.1:PORT, 2 headers"
UPGRADE_H2C = (
    b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
    b"HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
)


def h2client(server: Process, *args: str) -> str:
    """What the chapter's `python3 docs/examples/learn/h2client.py PORT ARGS` prints."""
    done = subprocess.run(
        [sys.executable, str(LEARN / "h2client.py"), str(server.port), *args],
        capture_output=True,
        text=True,
        timeout=20,
        env={**clean_env(), "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def frame_lines(output: str, port: int | str = 8000) -> list[str]:
    """The client's frame log without what changes between runs (the date, the port)."""
    lines = [line.rstrip() for line in output.splitlines() if "date: " not in line]
    return [line.replace(f"127.0.0.1:{port}", "127.0.0.1:PORT") for line in lines]


def starting_at(lines: list[str], first: str) -> list[str]:
    return lines[lines.index(first) :]


def quoted_block(chapter: str, containing: str) -> list[str]:
    """The lines of the one code block of `chapter` that holds the line `containing`."""
    blocks = re.findall(
        r"^```[a-z]*\n(.*?)^```", (CHAPTERS / chapter).read_text(encoding="utf-8"), re.M | re.S
    )
    found = [block for block in blocks if containing in block.splitlines()]
    assert len(found) == 1, f"{len(found)} blocks of {chapter} hold {containing!r}"
    return frame_lines(found[0])


@pytest.fixture(scope="module")
def hello_idle() -> Iterator[Process]:
    """hello:app with a keep-alive timeout short enough for a test to wait for its GOAWAY."""
    with serve("hello:app", "--timeout-keep-alive", "0.5") as server:
        yield server


def test_h2client_get_gets_the_frames_the_chapter_shows(hello: Process) -> None:
    """Step 2: the preface, both SETTINGS, the window, the response's HEADERS and DATA."""
    real = frame_lines(h2client(hello, *H2_GET), hello.port)
    quoted = quoted_block("http2.md", "      :path: /hello?name=ada")
    # the client's SETTINGS ACK goes out when the server's SETTINGS come in: where it falls
    # among the frames read in the same recv() varies
    assert real.count("> SETTINGS ACK") == quoted.count("> SETTINGS ACK") == 1
    real.remove("> SETTINGS ACK")
    quoted.remove("> SETTINGS ACK")
    assert real == quoted


def test_frame_bytes_are_as_the_chapter_reads_them(capsys: pytest.CaptureFixture[str]) -> None:
    """Step 2's --hex: the HEADERS frame h2 builds for 127.0.0.1:8000 and a SETTINGS ACK."""
    conn = h2client_module.h2.connection.H2Connection(
        h2client_module.h2.config.H2Configuration(client_side=True)
    )
    conn.initiate_connection()
    head = [(":method", "GET"), (":scheme", "http"), (":authority", "127.0.0.1:8000")]
    conn.send_headers(1, [*head, (":path", "/hello?name=ada")], end_stream=True)
    log = h2client_module.FrameLog(">", preface=True, hexdump=True)
    log.feed(conn.data_to_send())
    h2client_module.FrameLog("<", hexdump=True).feed(b"\x00\x00\x00\x04\x01\x00\x00\x00\x00")
    printed = capsys.readouterr().out.splitlines()
    quoted = quoted_block("http2.md", "      00 00 00 04 01 00 00 00 00")
    assert quoted[0] == "> HEADERS stream=1 END_HEADERS END_STREAM"
    assert quoted[1] == printed[printed.index(quoted[0]) + 1]
    assert quoted[-2:] == printed[-2:] == ["< SETTINGS ACK", "      00 00 00 04 01 00 00 00 00"]


def test_http2_chapter_trace_excerpts_are_what_devserve_logs() -> None:
    """Step 3: the same GET over HTTP/1.1 and over HTTP/2, message by message."""
    check_quoted(
        "http2.md",
        "hello:app",
        {H1_TRACE: lambda server: raw(server, GET_HELLO), H2_TRACE: lambda s: h2client(s, *H2_GET)},
        elsewhere=frozenset({UPLOAD_TRACE}),
    )


def test_an_app_that_waits_stops_the_upload_at_one_window() -> None:
    """Step 5: 65,535 bytes go out, then nothing until the app reads them a second later."""
    with serve("slow:app") as server:
        output = h2client(server, "POST", "/upload", "200000")
        server.out.wait_for(r'"POST /upload HTTP/2" 200')
        lines = server.out.text
    before_window = output.split("< WINDOW_UPDATE stream=1")[0]
    assert sum(map(int, re.findall(r"> DATA stream=1 (\d+) bytes", before_window))) == 65535
    assert re.search(r"got 200000 bytes in \d message\(s\), the first 65535 bytes", output)
    (real,) = [group for group in normalized(lines).values() if group[1] == UPLOAD_TRACE]
    assert real[0] == "1"
    assert real[2] == "receive http.request body=65535B more_body=True"
    assert re.search(r"trace \d+:1 \+1\d{3}\.\d+ ms receive http.request body=65535B", lines)
    (quoted,) = [group for group in quoted_traces("http2.md") if group[1] == UPLOAD_TRACE]
    assert quoted[:3] == real[:3] and quoted[-2:] == real[-2:]
    sizes = [int(size) for size in re.findall(r"body=(\d+)B more_body", " ".join(quoted))]
    assert sum(sizes) == 200000 and quoted[-3].endswith("more_body=False")


def test_a_stop_says_goaway_twice_and_still_answers_the_open_stream() -> None:
    """Step 6: GOAWAY for every stream, PING, GOAWAY for stream 1, its response, the close."""
    with serve("slow:app") as server:
        command = [sys.executable, str(LEARN / "h2client.py"), str(server.port)]
        with subprocess.Popen(
            [*command, "GET", "/?wait=1.5", "--wait"], stdout=subprocess.PIPE, text=True
        ) as client:
            server.out.wait_for(r"scope http GET /\?wait=1.5 HTTP/2")
            server.out.stop()
            output, _ = client.communicate(timeout=10)
    first = "< GOAWAY last_stream_id=2147483647 NO_ERROR"
    quoted = starting_at(quoted_block("http2.md", "< PING b'draining'"), first)
    assert starting_at(frame_lines(output, server.port), first) == quoted


def test_an_idle_connection_gets_the_same_goodbye(hello_idle: Process) -> None:
    """Step 6: after --timeout-keep-alive, the two GOAWAYs (the client answers the PING)."""
    real = frame_lines(h2client(hello_idle, "GET", "/hello", "--wait"), hello_idle.port)
    assert real[-5:] == [
        "< GOAWAY last_stream_id=2147483647 NO_ERROR",
        "< PING b'draining'",
        "> PING ACK b'draining'",
        "< GOAWAY last_stream_id=1 NO_ERROR",
        "(the server closed the connection)",
    ]


def test_rapid_reset_gets_enhance_your_calm_and_runs_no_app(hello_idle: Process) -> None:
    """Step 7: 150 streams opened and reset in one write: no app runs, GOAWAY 0xb, the close."""
    apps = hello_idle.out.count(r"scope http GET / HTTP/2")
    quoted = quoted_block("http2.md", "> RST_STREAM stream=1 CANCEL")
    real = frame_lines(h2client(hello_idle, "--reset", "150"))
    assert starting_at(real, "> HEADERS stream=1 END_HEADERS END_STREAM") == quoted
    hello_idle.out.wait_for(r"more than 100 stream resets in a second")
    assert hello_idle.out.count(r"scope http GET / HTTP/2") == apps


def test_a_65th_frame_of_a_header_block_ends_the_connection(hello_idle: Process) -> None:
    """Step 7: HEADERS and 64 CONTINUATION frames: GOAWAY PROTOCOL_ERROR, the close."""
    quoted = quoted_block("http2.md", "> CONTINUATION stream=1")
    real = frame_lines(h2client(hello_idle, "--continuation", "64"))
    assert starting_at(real, "> HEADERS stream=1 END_STREAM") == quoted
    hello_idle.out.wait_for(r"HTTP/2 connection error from .*: Too many continuation frames")


def test_exercise_2_a_header_block_of_64_frames_is_served(hello_idle: Process) -> None:
    """Exercise 2: HEADERS and 63 CONTINUATION frames are a request like any other."""
    served = h2client(hello_idle, "--continuation", "63")
    assert "      :status: 200" in served and "PROTOCOL_ERROR" not in served


def test_exercise_2_a_hundred_resets_a_second_are_allowed(hello_idle: Process) -> None:
    """Exercise 2: 100 resets get no ENHANCE_YOUR_CALM; the idle close names stream 199."""
    resets = h2client(hello_idle, "--reset", "100").splitlines()
    assert "ENHANCE_YOUR_CALM" not in " ".join(resets)
    assert resets[-2:] == [
        "< GOAWAY last_stream_id=199 NO_ERROR",
        "(the server closed the connection)",
    ]


def test_exercise_1_curl_and_nghttp_are_served_over_http2(hello: Process) -> None:
    """Exercise 1: curl with prior knowledge, and nghttp, whose PRIORITY frames come first."""
    curl = require_tool("curl")
    url = f"{hello.url}/hello"
    served = hello.out.count(r'"GET /hello HTTP/2" 200')
    done = subprocess.run(
        [curl, "-s", "--http2-prior-knowledge", url], capture_output=True, timeout=10
    )
    assert done.stdout == b"hello from GET /hello\n"
    nghttp = subprocess.run(
        [require_tool("nghttp"), "-nv", url], capture_output=True, text=True, timeout=10
    )
    assert "send PRIORITY frame" in nghttp.stdout
    opened = re.search(r"send HEADERS frame <[^>]*stream_id=(\d+)>", nghttp.stdout)
    assert opened is not None and int(opened.group(1)) > 1
    assert "[SETTINGS_ENABLE_CONNECT_PROTOCOL(0x08):1]" in nghttp.stdout
    hello.out.wait_for(r'"GET /hello HTTP/2" 200', count=served + 2)


def test_exercise_3_an_h2c_upgrade_is_served_over_http11_then_closed(hello: Process) -> None:
    """Exercise 3: curl --http2 in cleartext offers h2c; the answer is HTTP/1.1, then close."""
    if shutil.which("curl"):
        command = ["curl", "-si", "--http2", f"{hello.url}/hello"]
        answer = subprocess.run(command, capture_output=True, timeout=10, check=True).stdout
    else:
        answer = raw(hello, UPGRADE_H2C)
    lines, body = head_and_body(answer)
    assert lines[0] == "HTTP/1.1 200 OK" and "connection: close" in lines
    assert body == b"hello from GET /hello\n"


def test_exercise_4_http2_only_answers_http11_with_505() -> None:
    """Exercise 4: --http 2 refuses an HTTP/1.1 request with 505 and serves h2client."""
    with serve("hello:app", "--http", "2") as server:
        lines, body = head_and_body(raw(server, GET_HELLO))
        assert lines[0] == "HTTP/1.1 505 HTTP Version Not Supported"
        assert body == b"HTTP Version Not Supported\n"
        assert "< DATA stream=1 END_STREAM 22 bytes b'hello from GET /hello\\n'" in h2client(
            server, *H2_GET
        )
