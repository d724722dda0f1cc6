"""A small Starlette app: routes, JSON, lifespan state and a WebSocket route.

Run it from the repository root:

    devserve starlette_app:app --app-dir docs/examples
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.endpoints import WebSocketEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    # Each request gets a copy of this dict as request.state (WebSockets too).
    yield {"greeting": "Hello", "started_at": time.time()}


async def homepage(request: Request) -> JSONResponse:
    return JSONResponse({"app": "starlette", "uptime": time.time() - request.state.started_at})


async def hello(request: Request) -> JSONResponse:
    name = request.path_params["name"]
    return JSONResponse({"message": f"{request.state.greeting}, {name}!"})


async def echo(request: Request) -> JSONResponse:
    return JSONResponse({"received": await request.json()}, status_code=201)


class Greeter(WebSocketEndpoint):
    """Answers each JSON message {"name": ...} with a greeting, until the client leaves."""

    encoding = "json"

    async def on_receive(self, websocket: WebSocket, data: Any) -> None:
        greeting = websocket.state.greeting
        await websocket.send_json({"message": f"{greeting}, {data['name']}!"})


app = Starlette(
    routes=[
        Route("/", homepage),
        Route("/hello/{name}", hello),
        Route("/echo", echo, methods=["POST"]),
        WebSocketRoute("/ws", Greeter),
    ],
    lifespan=lifespan,
)
