"""The apps in docs/examples, unchanged, served by the `devserve` CLI over real sockets.

One devserve subprocess per app (per entry point for Django), shared by that app's tests; httpx
and the websockets client speak to it the way a user's client would.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.utils import Process, run_devserve

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


@contextlib.contextmanager
def serve_example(
    directory: Path, app: str, *args: str, env: dict[str, str] | None = None
) -> Iterator[Process]:
    """devserve serving `app` from docs/examples, with its control socket in `directory`."""
    with run_devserve(
        "--app-dir",
        str(EXAMPLES),
        "--control",
        str(directory / "ctl.sock"),
        "--no-access-log",
        *args,
        app,
        env={"PYTHONDONTWRITEBYTECODE": "1", **(env or {})},  # keep docs/examples clean
    ) as server:
        yield server


def websocket(server: Process, path: str) -> ClientConnection:
    url = server.url.replace("http://", "ws://") + path
    return connect(url, open_timeout=5, close_timeout=5)


def closed_by_server(ws: ClientConnection) -> ConnectionClosed:
    """The ConnectionClosed the next recv() raises: the server closed without sending more."""
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=5)
    return closed.value


def http_client(server: Process) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=5)


# --- FastAPI ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fastapi_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    with serve_example(tmp_path_factory.mktemp("fastapi"), "fastapi_app:app") as server:
        yield server


@pytest.fixture
def fastapi_http(fastapi_server: Process) -> Iterator[httpx.Client]:
    with http_client(fastapi_server) as client:
        yield client


def test_fastapi_json_get_and_post(fastapi_http: httpx.Client) -> None:
    """A POSTed pydantic model is stored and read back as JSON; an unknown id is a 404."""
    item = {"name": "teapot", "price": 24.5, "tags": ["kitchen"]}
    created = fastapi_http.post("/items", json=item)
    assert created.status_code == 201
    assert created.json() == {"id": created.json()["id"], **item}
    read = fastapi_http.get(f"/items/{created.json()['id']}")
    assert read.status_code == 200
    assert read.headers["content-type"] == "application/json"
    assert read.json() == item
    missing = fastapi_http.get("/items/999999")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "no item 999999"}


def test_fastapi_rejects_an_invalid_body_with_422(fastapi_http: httpx.Client) -> None:
    """A body that does not fit the model, or is no JSON at all, gets 422 naming the fields."""
    response = fastapi_http.post("/items", json={"name": "", "price": -1})
    assert response.status_code == 422
    assert {tuple(error["loc"]) for error in response.json()["detail"]} == {
        ("body", "name"),
        ("body", "price"),
    }
    garbled = fastapi_http.post(
        "/items", content=b'{"name": "te', headers={"content-type": "application/json"}
    )
    assert garbled.status_code == 422
    assert fastapi_http.get("/items/not-a-number").status_code == 422


def test_fastapi_multipart_upload(fastapi_http: httpx.Client) -> None:
    """A multipart form with a 1 MiB file arrives whole: the app reports its size and SHA-256."""
    data = os.urandom(1024 * 1024)
    response = fastapi_http.post(
        "/upload",
        files={"file": ("random.bin", data, "application/octet-stream")},
        data={"description": "random bytes"},
    )
    assert response.status_code == 200
    assert response.json() == {
        "filename": "random.bin",
        "description": "random bytes",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def test_fastapi_streaming_response_arrives_event_by_event(fastapi_http: httpx.Client) -> None:
    """Each server-sent event reaches the client before the next one is even published."""
    with fastapi_http.stream("GET", "/announcements/stream", params={"limit": 3}) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.headers["transfer-encoding"] == "chunked"
        lines = (line for line in stream.iter_lines() if line)
        assert next(lines) == ": listening"
        for text in ("first", "second", "third"):
            published = fastapi_http.post("/announcements", json={"text": text})
            assert published.json() == {"listeners": 1}
            assert next(lines) == f"data: {text}"
        assert list(lines) == [], "the stream ends after `limit` events"
    assert fastapi_http.post("/announcements", json={"text": "late"}).json() == {"listeners": 0}


def test_fastapi_websocket_echo_and_server_close(fastapi_server: Process) -> None:
    """Messages echo back; the app's close code and reason reach the client."""
    with websocket(fastapi_server, "/ws") as ws:
        for text in ("hello", "ünïcode ✓", "x" * 100_000):
            ws.send(text)
            assert ws.recv(timeout=5) == f"echo: {text}"
        ws.send("bye")
        closed = closed_by_server(ws)
    assert closed.rcvd is not None
    assert (closed.rcvd.code, closed.rcvd.reason) == (4000, "goodbye from fastapi")


def test_fastapi_websocket_client_close_code_reaches_the_app(fastapi_server: Process) -> None:
    """When the client closes, the app's WebSocketDisconnect carries the client's code."""
    with websocket(fastapi_server, "/ws") as ws:
        ws.send("ping")
        assert ws.recv(timeout=5) == "echo: ping"
        ws.close(code=4001, reason="client is done")
    fastapi_server.out.wait_for(r"websocket: client left with code 4001", timeout=5)


def test_fastapi_lifespan_startup_and_shutdown(tmp_path: Path) -> None:
    """Startup runs before the first request (its state is in every request); shutdown on stop."""
    with serve_example(tmp_path, "fastapi_app:app") as server:
        assert re.search(r"startup: database ready.*serving on", server.out.text, re.DOTALL)
        assert httpx.get(f"{server.url}/", timeout=5).json() == {"app": "fastapi", "items": 0}
        assert "database closed" not in server.out.text
        output = server.out.stop()
    assert "shutdown: database closed" in output
    assert re.search(r"worker 1 .* exited normally", output), output


# --- Starlette ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def starlette_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    with serve_example(tmp_path_factory.mktemp("starlette"), "starlette_app:app") as server:
        yield server


@pytest.fixture
def starlette_http(starlette_server: Process) -> Iterator[httpx.Client]:
    with http_client(starlette_server) as client:
        yield client


def test_starlette_routes_json_and_lifespan_state(starlette_http: httpx.Client) -> None:
    """Routes answer JSON built from path parameters, bodies and the lifespan's state."""
    home = starlette_http.get("/")
    assert home.status_code == 200
    assert home.json()["app"] == "starlette"
    assert 0 <= home.json()["uptime"] < 600, "started_at comes from lifespan startup"
    assert starlette_http.get("/hello/Ada").json() == {"message": "Hello, Ada!"}
    payload = {"list": [1, 2, 3], "text": "ü" * 50_000}
    echoed = starlette_http.post("/echo", json=payload)
    assert (echoed.status_code, echoed.json()) == (201, {"received": payload})
    assert starlette_http.get("/no/such/route").status_code == 404
    assert starlette_http.get("/echo").status_code == 405


def test_starlette_websocket_route_sees_lifespan_state(starlette_server: Process) -> None:
    """A WebSocketEndpoint answers each JSON message, greeting with the lifespan's state."""
    with websocket(starlette_server, "/ws") as ws:
        for name in ("Ada", "Grace"):
            ws.send(json.dumps({"name": name}))
            assert json.loads(ws.recv(timeout=5)) == {"message": f"Hello, {name}!"}
        ws.close()
    assert ws.close_code == 1000


# --- Django: the same project through asgi.py and wsgi.py ---------------------------------------

DJANGO_ENTRY_POINTS = {
    "asgi": ("django_project.asgi:application",),
    "wsgi-auto": ("django_project.wsgi:application",),
    "wsgi": ("django_project.wsgi:application", "--interface", "wsgi"),
}


@pytest.fixture(scope="module", params=list(DJANGO_ENTRY_POINTS))
def django_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Process]]:
    app, *args = DJANGO_ENTRY_POINTS[request.param]
    with serve_example(tmp_path_factory.mktemp("django"), app, *args) as server:
        yield request.param.split("-")[0], server


@pytest.fixture
def django(django_server: tuple[str, Process]) -> Iterator[tuple[str, httpx.Client]]:
    handler, server = django_server
    with http_client(server) as client:
        yield handler, client


def test_django_json_view(django: tuple[str, httpx.Client]) -> None:
    """A JsonResponse view answers, served by the entry point the server was started with."""
    handler, client = django
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"framework": "django", "handler": handler}
    assert response.headers["x-content-type-options"] == "nosniff", "middleware ran"


def test_django_post_form(django: tuple[str, httpx.Client]) -> None:
    """A urlencoded POST is validated by a Django form: 201 when valid, 400 with the errors."""
    _, client = django
    fields = {"name": "Zoë", "email": "zoe@example.com", "message": "hi " * 200}
    accepted = client.post("/contact/", data=fields)
    assert (accepted.status_code, accepted.json()) == (201, {"thanks": "Zoë"})
    rejected = client.post("/contact/", data={"name": "Zoë", "email": "not an address"})
    assert rejected.status_code == 400
    assert set(rejected.json()["errors"]) == {"email", "message"}
    assert client.get("/contact/").status_code == 405


def test_django_not_found_and_disallowed_host(django: tuple[str, httpx.Client]) -> None:
    """With DEBUG off an unknown URL is a plain 404 page, and a foreign Host header is a 400."""
    _, client = django
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    assert "Not Found" in response.text
    assert "urlpatterns" not in response.text and "Traceback" not in response.text
    assert client.get("/", headers={"host": "evil.example"}).status_code == 400


def test_django_streaming_http_response(django: tuple[str, httpx.Client]) -> None:
    """A StreamingHttpResponse is sent chunked, without Content-Length, every line in order."""
    _, client = django
    with client.stream("GET", "/countdown/5/") as response:
        assert response.status_code == 200
        assert "content-length" not in response.headers
        assert response.headers["transfer-encoding"] == "chunked"
        body = response.read()
    assert body == b"5\n4\n3\n2\n1\nliftoff\n"


# --- Flask (WSGI) -------------------------------------------------------------------------------

DOWNLOAD = os.urandom(3 * 1024 * 1024 + 17)


@pytest.fixture(scope="module")
def flask_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    directory = tmp_path_factory.mktemp("flask")
    (directory / "downloads").mkdir()
    (directory / "downloads" / "random.bin").write_bytes(DOWNLOAD)
    env = {"FLASK_DOWNLOADS": str(directory / "downloads")}
    with serve_example(directory, "flask_app:app", env=env) as server:
        yield server


@pytest.fixture
def flask_http(flask_server: Process) -> Iterator[httpx.Client]:
    with http_client(flask_server) as client:
        yield client


def test_flask_json(flask_http: httpx.Client) -> None:
    """A view returning a dict answers JSON."""
    response = flask_http.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["app"] == "flask"
    assert "/download/<path:name>" in response.json()["endpoints"]


def test_flask_form_post(flask_http: httpx.Client) -> None:
    """Form fields reach request.form (UTF-8 intact); a form without the name is a 400."""
    greeted = flask_http.post("/greet", data={"name": "Zoë", "language": "fr"})
    assert greeted.status_code == 200
    assert greeted.json() == {"message": "Hello, Zoë!", "language": "fr"}
    assert flask_http.post("/greet", data={"language": "fr"}).status_code == 400


def test_flask_streamed_generator(flask_http: httpx.Client) -> None:
    """A generator response is sent chunked, without Content-Length, with every line."""
    with flask_http.stream("GET", "/numbers", params={"count": 5000}) as response:
        assert response.status_code == 200
        assert "content-length" not in response.headers
        assert response.headers["transfer-encoding"] == "chunked"
        lines = list(response.iter_lines())
    assert lines == [str(n) for n in range(1, 5001)]


def test_flask_send_file_download(flask_http: httpx.Client) -> None:
    """send_from_directory sends the file's exact bytes with its Content-Length, or the range
    asked for; a missing file is a 404."""
    response = flask_http.get("/download/random.bin")
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(DOWNLOAD))
    assert response.headers["content-disposition"] == "attachment; filename=random.bin"
    assert response.content == DOWNLOAD
    part = flask_http.get("/download/random.bin", headers={"range": "bytes=1000000-1000099"})
    assert (part.status_code, part.headers["content-length"]) == (206, "100")
    assert part.content == DOWNLOAD[1_000_000:1_000_100]
    assert flask_http.get("/download/missing.bin").status_code == 404
