"""The FastAPI, Starlette and Django apps of docs/examples, unchanged, over HTTP/2.

One devserve subprocess per app (per entry point for Django), spoken to by httpx with prior
knowledge on its cleartext port (http1=False: no HTTP/1.1 first). A WebSocket over HTTP/2 is
an extended CONNECT (RFC 8441), which no client installed here sends: a small h2 client below
does, and frames the messages with websockets' own Frame.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import httpx
import pytest
from websockets.frames import Close, Frame, Opcode
from websockets.streams import StreamReader

from tests.utils import Process, run_devserve

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


@contextlib.contextmanager
def serve_example(app: str, *args: str) -> Iterator[Process]:
    """devserve serving `app` from docs/examples (no bytecode written there)."""
    with run_devserve(
        "--app-dir", str(EXAMPLES), "--no-access-log", *args, app,
        env={"PYTHONDONTWRITEBYTECODE": "1"},
    ) as server:  # fmt: skip
        yield server


@contextlib.contextmanager
def h2_client(server: Process) -> Iterator[httpx.Client]:
    """httpx on HTTP/2 by prior knowledge: every request below must come back as HTTP/2."""
    with httpx.Client(base_url=server.url, http1=False, http2=True, timeout=5) as client:
        yield client


# ------------------------------------------------------------------------------ raw h2
class H2Client:
    """An HTTP/2 client on h2 over a blocking socket, for what httpx cannot send (extended
    CONNECT). Every wait reads until a condition holds; the socket's timeout bounds it."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        self.authority = parts.netloc
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # frames leave at once
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.h2 = h2.connection.H2Connection(config=config)
        self.settings_seen = False
        self.heads: dict[int, dict[str, str]] = {}
        self.data: dict[int, StreamReader] = {}
        self.ended: set[int] = set()
        self.resets: dict[int, int] = {}
        self.h2.initiate_connection()
        self.flush()
        self.until(lambda: self.settings_seen)

    def close(self) -> None:
        self.sock.close()

    def flush(self) -> None:
        self.sock.sendall(self.h2.data_to_send())

    def send_data(self, stream_id: int, data: bytes) -> None:
        """Send `data` in frames the server's window and frame size allow, waiting for its
        WINDOW_UPDATEs."""
        h2 = self.h2
        while data:
            self.until(lambda: h2.local_flow_control_window(stream_id) > 0)
            size = min(len(data), h2.local_flow_control_window(stream_id))
            size = min(size, h2.max_outbound_frame_size)
            h2.send_data(stream_id, data[:size])
            self.flush()
            data = data[size:]

    def until(self, done: Callable[[], bool]) -> None:
        while not done():
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed the connection")
            for event in self.h2.receive_data(data):
                self.handle(event)
            self.flush()

    def handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RemoteSettingsChanged):
            self.settings_seen = True
        elif isinstance(event, h2.events.ResponseReceived):
            self.heads[event.stream_id] = dict(event.headers)  # type: ignore[arg-type]
        elif isinstance(event, h2.events.DataReceived):
            self.data[event.stream_id].feed_data(event.data)
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            self.ended.add(event.stream_id)
        elif isinstance(event, h2.events.StreamReset):
            self.resets[event.stream_id] = event.error_code
        elif isinstance(event, h2.events.ConnectionTerminated):
            raise ConnectionError(f"GOAWAY {event.error_code!r}: {event.additional_data!r}")

    def websocket(self, path: str) -> WebSocketStream:
        """Open a WebSocket on a new stream by extended CONNECT (RFC 8441 section 4); its
        response head must be :status 200."""
        assert self.h2.remote_settings.enable_connect_protocol == 1
        stream_id = self.h2.get_next_available_stream_id()
        self.data[stream_id] = StreamReader()
        head = [
            (":method", "CONNECT"),
            (":protocol", "websocket"),
            (":scheme", "http"),
            (":path", path),
            (":authority", self.authority),
            ("sec-websocket-version", "13"),
        ]
        self.h2.send_headers(stream_id, head)
        self.flush()
        self.until(lambda: stream_id in self.heads or stream_id in self.resets)
        assert stream_id not in self.resets, f"reset with error code {self.resets[stream_id]}"
        assert self.heads[stream_id][":status"] == "200", self.heads[stream_id]
        return WebSocketStream(self, stream_id)


class WebSocketStream:
    """WebSocket frames in one extended CONNECT stream's DATA: masked as a client's are
    (RFC 6455), and no extensions (none were negotiated)."""

    def __init__(self, client: H2Client, stream_id: int) -> None:
        self.client = client
        self.stream_id = stream_id

    def send(self, opcode: Opcode, data: bytes) -> None:
        frame = Frame(opcode, data).serialize(mask=True, extensions=[])
        self.client.send_data(self.stream_id, frame)

    def send_text(self, text: str) -> None:
        self.send(Opcode.TEXT, text.encode())

    def recv(self) -> Frame:
        parser = Frame.parse(self.client.data[self.stream_id].read_exact, mask=False)
        frame: list[Frame] = []

        def parsed() -> bool:
            try:
                next(parser)
            except StopIteration as done:
                frame.append(done.value)
            return bool(frame) or self.ended

        self.client.until(parsed)
        assert frame, "the stream ended before a whole frame"
        return frame[0]

    def recv_text(self) -> str:
        frame = self.recv()
        assert frame.opcode is Opcode.TEXT, frame
        return bytes(frame.data).decode()

    def close(self, code: int = 1000, reason: str = "") -> Close:
        """Send a close frame; the server's close frame in answer, once the stream ended."""
        self.send(Opcode.CLOSE, Close(code, reason).serialize())
        return self._closing_frame()

    def closed_by_server(self) -> Close:
        """The server's close frame, answered with the same (RFC 6455 section 5.5.1), once
        the stream ended."""
        return self._closing_frame(answer=True)

    def _closing_frame(self, answer: bool = False) -> Close:
        frame = self.recv()
        assert frame.opcode is Opcode.CLOSE, frame
        if answer:
            self.send(Opcode.CLOSE, bytes(frame.data))
        self.client.until(lambda: self.ended or self.stream_id in self.client.resets)
        assert self.stream_id not in self.client.resets, self.client.resets
        return Close.parse(frame.data)

    @property
    def ended(self) -> bool:
        return self.stream_id in self.client.ended


@contextlib.contextmanager
def raw_h2(server: Process) -> Iterator[H2Client]:
    client = H2Client(server.url)
    try:
        yield client
    finally:
        client.close()


# ------------------------------------------------------------------------------ FastAPI
@pytest.fixture(scope="module")
def fastapi_server() -> Iterator[Process]:
    with serve_example("fastapi_app:app") as server:
        yield server


@pytest.fixture
def fastapi_http(fastapi_server: Process) -> Iterator[httpx.Client]:
    with h2_client(fastapi_server) as client:
        yield client


def test_fastapi_json_over_h2(fastapi_http: httpx.Client) -> None:
    """A POSTed pydantic model is stored and read back; bad input is FastAPI's 422; all over
    HTTP/2."""
    item = {"name": "teapot", "price": 24.5, "tags": ["kitchen"]}
    created = fastapi_http.post("/items", json=item)
    assert (created.status_code, created.http_version) == (201, "HTTP/2")
    read = fastapi_http.get(f"/items/{created.json()['id']}")
    assert (read.status_code, read.http_version) == (200, "HTTP/2")
    assert read.headers["content-type"] == "application/json"
    assert read.json() == item
    invalid = fastapi_http.post("/items", json={"name": "", "price": -1})
    assert (invalid.status_code, invalid.http_version) == (422, "HTTP/2")


def test_fastapi_multipart_upload_over_h2(fastapi_http: httpx.Client) -> None:
    """A 3 MiB file in a multipart form arrives whole over HTTP/2's flow-controlled DATA."""
    data = os.urandom(3 * 1024 * 1024 + 5)
    response = fastapi_http.post(
        "/upload",
        files={"file": ("random.bin", data, "application/octet-stream")},
        data={"description": "over h2"},
    )
    assert (response.status_code, response.http_version) == (200, "HTTP/2")
    assert response.json() == {
        "filename": "random.bin",
        "description": "over h2",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def test_fastapi_server_sent_events_over_h2(fastapi_http: httpx.Client) -> None:
    """Each event reaches the client as it is published, by POSTs on other streams of the
    same connection; the stream has no chunked framing (HTTP/2 has DATA frames)."""
    with fastapi_http.stream("GET", "/announcements/stream", params={"limit": 3}) as stream:
        assert (stream.status_code, stream.http_version) == (200, "HTTP/2")
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert "transfer-encoding" not in stream.headers
        lines = (line for line in stream.iter_lines() if line)
        assert next(lines) == ": listening"
        for text in ("first", "second", "third"):
            published = fastapi_http.post("/announcements", json={"text": text})
            assert (published.json(), published.http_version) == ({"listeners": 1}, "HTTP/2")
            assert next(lines) == f"data: {text}"
        assert list(lines) == [], "the stream ends after `limit` events"


def test_fastapi_websocket_over_extended_connect(fastapi_server: Process) -> None:
    """An RFC 8441 WebSocket on an HTTP/2 stream: messages echo back, and "bye" brings the
    app's close code and reason, then the stream's end."""
    with raw_h2(fastapi_server) as client:
        ws = client.websocket("/ws")
        for text in ("hello", "ünïcode ✓", "x" * 100_000):
            ws.send_text(text)
            assert ws.recv_text() == f"echo: {text}"
        ws.send_text("bye")
        closed = ws.closed_by_server()
    assert (closed.code, closed.reason) == (4000, "goodbye from fastapi")


def test_fastapi_websocket_client_close_over_extended_connect(fastapi_server: Process) -> None:
    """The client's close code reaches the app's WebSocketDisconnect; the HTTP/2 connection
    carries on serving requests beside the WebSocket's stream."""
    with raw_h2(fastapi_server) as client:
        ws = client.websocket("/ws")
        ws.send_text("ping")
        assert ws.recv_text() == "echo: ping"
        ws.close(4001, "client is done")
        again = client.websocket("/ws")
        again.send_text("still here")
        assert again.recv_text() == "echo: still here"
        again.close()
    fastapi_server.out.wait_for(r"websocket: client left with code 4001", timeout=5)


# ------------------------------------------------------------------------------ Starlette
@pytest.fixture(scope="module")
def starlette_server() -> Iterator[Process]:
    with serve_example("starlette_app:app") as server:
        yield server


def test_starlette_routes_over_h2(starlette_server: Process) -> None:
    """Routes answer JSON from path parameters, bodies and lifespan state; 404 and 405 too."""
    with h2_client(starlette_server) as client:
        home = client.get("/")
        hello = client.get("/hello/Ada")
        payload = {"list": [1, 2, 3], "text": "ü" * 50_000}
        echoed = client.post("/echo", json=payload)
        missing = client.get("/no/such/route")
        wrong_method = client.get("/echo")
    assert {r.http_version for r in (home, hello, echoed, missing, wrong_method)} == {"HTTP/2"}
    assert home.json()["app"] == "starlette"
    assert hello.json() == {"message": "Hello, Ada!"}
    assert (echoed.status_code, echoed.json()) == (201, {"received": payload})
    assert (missing.status_code, wrong_method.status_code) == (404, 405)


def test_starlette_websocket_over_extended_connect(starlette_server: Process) -> None:
    """The WebSocketEndpoint greets each JSON message with the lifespan's greeting; the
    client's close is answered with a close frame."""
    with raw_h2(starlette_server) as client:
        ws = client.websocket("/ws")
        for name in ("Ada", "Grace"):
            ws.send_text(json.dumps({"name": name}))
            assert json.loads(ws.recv_text()) == {"message": f"Hello, {name}!"}
        closed = ws.close()
    assert closed.code == 1000


# ------------------------------------------------------------------------------ Django
DJANGO_ENTRY_POINTS = {
    "asgi": ("django_project.asgi:application",),
    "wsgi": ("django_project.wsgi:application", "--interface", "wsgi"),
}


@pytest.fixture(scope="module", params=list(DJANGO_ENTRY_POINTS))
def django_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, Process]]:
    app, *args = DJANGO_ENTRY_POINTS[request.param]
    with serve_example(app, *args) as server:
        yield request.param, server


@pytest.fixture
def django(django_server: tuple[str, Process]) -> Iterator[tuple[str, httpx.Client]]:
    handler, server = django_server
    with h2_client(server) as client:
        yield handler, client


def test_django_json_view_over_h2(django: tuple[str, httpx.Client]) -> None:
    """The JsonResponse view answers over HTTP/2 through either entry point, middleware run;
    the Host Django checks is the request's :authority."""
    handler, client = django
    response = client.get("/")
    assert (response.status_code, response.http_version) == (200, "HTTP/2")
    assert response.json() == {"framework": "django", "handler": handler}
    assert response.headers["x-content-type-options"] == "nosniff"
    assert client.get("/", headers={"host": "evil.example"}).status_code == 400


def test_django_form_post_over_h2(django: tuple[str, httpx.Client]) -> None:
    """A urlencoded POST body reaches the Django form: 201 when valid, 400 with errors."""
    _, client = django
    fields = {"name": "Zoë", "email": "zoe@example.com", "message": "hi " * 200}
    accepted = client.post("/contact/", data=fields)
    assert (accepted.status_code, accepted.http_version) == (201, "HTTP/2")
    assert accepted.json() == {"thanks": "Zoë"}
    rejected = client.post("/contact/", data={"name": "Zoë", "email": "not an address"})
    assert (rejected.status_code, set(rejected.json()["errors"])) == (400, {"email", "message"})


def test_django_streaming_response_over_h2(django: tuple[str, httpx.Client]) -> None:
    """A StreamingHttpResponse arrives over HTTP/2 without Content-Length, every line in
    order."""
    _, client = django
    with client.stream("GET", "/countdown/5/") as response:
        assert (response.status_code, response.http_version) == (200, "HTTP/2")
        assert "content-length" not in response.headers
        body = response.read()
    assert body == b"5\n4\n3\n2\n1\nliftoff\n"
