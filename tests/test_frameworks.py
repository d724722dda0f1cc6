"""Starlette and FastAPI apps end to end over a real socket, spoken to with httpx."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import BackgroundTasks, FastAPI, HTTPException
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from tests.utils import run_server


class Harness:
    """What the apps share with the tests: events set by background tasks and lifespan."""

    def __init__(self) -> None:
        self.background_ran = threading.Event()
        self.shutdown_ran = threading.Event()


async def chunks() -> AsyncIterator[bytes]:
    for n in range(5):
        yield f"chunk {n}\n".encode()


def starlette_app(harness: Harness) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        yield {"db": "connected by startup"}
        harness.shutdown_ran.set()

    async def index(request: Request) -> JSONResponse:
        return JSONResponse({"framework": "starlette", "db": request.state.db})

    async def item(request: Request) -> JSONResponse:
        return JSONResponse({"item_id": int(request.path_params["item_id"])})

    async def create(request: Request) -> JSONResponse:
        data = await request.json()
        return JSONResponse({"received": data}, status_code=201)

    async def stream(request: Request) -> StreamingResponse:
        return StreamingResponse(chunks(), media_type="text/plain")

    async def background(request: Request) -> JSONResponse:
        return JSONResponse({"queued": True}, background=BackgroundTask(harness.background_ran.set))

    async def missing(request: Request) -> JSONResponse:
        raise StarletteHTTPException(status_code=404, detail="no such thing")

    async def crash(request: Request) -> JSONResponse:
        raise RuntimeError("the handler failed")

    return Starlette(
        routes=[
            Route("/", index),
            Route("/items/{item_id:int}", item),
            Route("/items", create, methods=["POST"]),
            Route("/stream", stream),
            Route("/background", background),
            Route("/missing", missing),
            Route("/crash", crash),
        ],
        lifespan=lifespan,
    )


def fastapi_app(harness: Harness) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        yield {"db": "connected by startup"}
        harness.shutdown_ran.set()

    app = FastAPI(lifespan=lifespan)

    @app.get("/")
    async def index(request: Request) -> dict[str, Any]:
        return {"framework": "fastapi", "db": request.state.db}

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, Any]:
        return {"item_id": item_id}

    @app.post("/items", status_code=201)
    async def create(data: dict[str, Any]) -> dict[str, Any]:
        return {"received": data}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/background")
    async def background(tasks: BackgroundTasks) -> dict[str, Any]:
        tasks.add_task(harness.background_ran.set)
        return {"queued": True}

    @app.get("/missing")
    async def missing() -> None:
        raise HTTPException(status_code=404, detail="no such thing")

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("the handler failed")

    return app


@pytest.fixture(params=["starlette", "fastapi"])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[str, Harness, httpx.Client]]:
    harness = Harness()
    app = starlette_app(harness) if request.param == "starlette" else fastapi_app(harness)
    with run_server(app) as server, httpx.Client(base_url=server.url, timeout=5) as client:
        yield request.param, harness, client
    assert harness.shutdown_ran.is_set(), "lifespan shutdown ran when the server stopped"


def test_json_route_with_state_from_lifespan(served: tuple[str, Harness, httpx.Client]) -> None:
    """A JSON route answers, and sees the state its lifespan startup yielded."""
    name, _, client = served
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"framework": name, "db": "connected by startup"}


def test_path_parameters(served: tuple[str, Harness, httpx.Client]) -> None:
    """A typed path parameter is parsed from the URL."""
    _, _, client = served
    assert client.get("/items/42").json() == {"item_id": 42}


def test_post_json_body(served: tuple[str, Harness, httpx.Client]) -> None:
    """A POSTed JSON body reaches the handler intact."""
    _, _, client = served
    payload = {"name": "widget", "tags": ["a", "b"], "size": 3, "text": "x" * 100_000}
    response = client.post("/items", json=payload)
    assert response.status_code == 201
    assert response.json() == {"received": payload}


def test_streaming_response(served: tuple[str, Harness, httpx.Client]) -> None:
    """A StreamingResponse arrives chunked, all chunks in order."""
    _, _, client = served
    with client.stream("GET", "/stream") as response:
        assert response.headers["transfer-encoding"] == "chunked"
        body = b"".join(response.iter_bytes())
    assert body == b"".join(f"chunk {n}\n".encode() for n in range(5))


def test_background_task_runs(served: tuple[str, Harness, httpx.Client]) -> None:
    """A background task runs after the response is sent."""
    _, harness, client = served
    assert client.get("/background").json() == {"queued": True}
    assert harness.background_ran.wait(timeout=5)


def test_http_exception_404(served: tuple[str, Harness, httpx.Client]) -> None:
    """An HTTPException(404) becomes a 404 response with its detail."""
    _, _, client = served
    response = client.get("/missing")
    assert response.status_code == 404
    assert "no such thing" in response.text
    assert client.get("/no/route/here").status_code == 404


def test_unhandled_exception_is_a_500(
    served: tuple[str, Harness, httpx.Client], caplog: pytest.LogCaptureFixture
) -> None:
    """An exception in a handler is answered with 500 and the server keeps serving."""
    _, _, client = served
    response = client.get("/crash")
    assert response.status_code == 500
    assert client.get("/items/1").json() == {"item_id": 1}
    assert any("the handler failed" in str(r.exc_info[1]) for r in caplog.records if r.exc_info), (
        "the exception is logged"
    )
