"""The ASGI lifespan protocol: startup before serving, shutdown on stop, state, the three modes."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import httpx
import pytest

from devserver.lifespan import LifespanFailed
from tests.utils import run_server


class LifespanApp:
    """Records every scope type and lifespan event; startup puts a counter into the state."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.scope_types: list[str] = []
        self.shutdown_done = threading.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scope_types.append(scope["type"])
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                self.events.append(message["type"])
                if message["type"] == "lifespan.startup":
                    scope["state"]["greeting"] = "hello from startup"
                    scope["state"]["shared"] = {"requests": 0}
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    self.shutdown_done.set()
                    return
        state = scope.get("state", {})
        seen = {"greeting": state.get("greeting"), "leak": state.get("leak")}
        state["leak"] = scope["path"]  # must not be visible to the next request
        if "shared" in state:
            state["shared"]["requests"] += 1
            seen["requests"] = state["shared"]["requests"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": json.dumps(seen).encode()})


def test_startup_runs_before_serving_and_shutdown_on_stop() -> None:
    """Startup completes before the first request; shutdown runs when the server stops."""
    app = LifespanApp()
    with run_server(app) as server:
        assert app.events == ["lifespan.startup"]
        assert httpx.get(server.url + "/").status_code == 200
        assert not app.shutdown_done.is_set()
    assert app.shutdown_done.is_set()
    assert app.events == ["lifespan.startup", "lifespan.shutdown"]


def test_state_from_startup_is_in_every_request_scope_as_a_copy() -> None:
    """Keys set in startup appear in scope['state']; a key a request adds does not leak on."""
    app = LifespanApp()
    with run_server(app) as server:
        first = httpx.get(server.url + "/first").json()
        second = httpx.get(server.url + "/second").json()
    assert first["greeting"] == second["greeting"] == "hello from startup"
    assert first["leak"] is None
    assert second["leak"] is None, "a request's change to scope['state'] leaked to the next"
    assert (first["requests"], second["requests"]) == (1, 2), "the copy is shallow"


async def failing_startup(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})
        return


async def raising_startup(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        raise RuntimeError("startup exploded")


def run_serve_expecting_failure(app: Any, **options: Any) -> BaseException:
    with (
        pytest.raises(RuntimeError, match="server did not start") as info,
        run_server(app, **options),
    ):
        pass
    assert "LifespanFailed" in str(info.value)
    return info.value


def test_startup_failed_with_lifespan_on_fails_the_start() -> None:
    """With lifespan 'on', lifespan.startup.failed stops the server from starting."""
    error = run_serve_expecting_failure(failing_startup, lifespan="on")
    assert "no database" in str(error)


def test_startup_failed_in_auto_mode_also_fails_the_start() -> None:
    """In 'auto' mode an app that explicitly reports startup failure still fails the start."""
    run_serve_expecting_failure(failing_startup, lifespan="auto")


def test_startup_exception_with_lifespan_on_fails_the_start() -> None:
    """With lifespan 'on', an exception during startup fails the start with its message."""
    error = run_serve_expecting_failure(raising_startup, lifespan="on")
    assert "startup exploded" in str(error)


async def no_lifespan_raises(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        raise ValueError(f"unsupported scope type {scope['type']!r}")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def no_lifespan_returns(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.mark.parametrize("app", [no_lifespan_raises, no_lifespan_returns])
def test_app_without_lifespan_support_serves_in_auto_mode(app: Any) -> None:
    """In 'auto' mode an app that raises on or ignores the lifespan scope serves normally."""
    with run_server(app, lifespan="auto") as server:
        assert httpx.get(server.url + "/").text == "ok"


def test_app_without_lifespan_support_fails_with_lifespan_on() -> None:
    """With lifespan 'on', an app that raises on the lifespan scope fails the start."""
    run_serve_expecting_failure(no_lifespan_raises, lifespan="on")


def test_lifespan_off_never_sends_the_lifespan_scope() -> None:
    """With lifespan 'off' the app only ever sees http scopes, and state starts empty."""
    app = LifespanApp()
    with run_server(app, lifespan="off") as server:
        data = httpx.get(server.url + "/").json()
    assert app.scope_types == ["http"]
    assert app.events == []
    assert data["greeting"] is None


def test_shutdown_failure_is_logged_and_the_server_still_stops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """lifespan.shutdown.failed is logged as an error; the server stops anyway."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.failed", "message": "could not flush"})

    with run_server(app) as server:
        pass
    assert server.loop.is_closed()
    assert any("could not flush" in r.getMessage() for r in caplog.records)


def test_lifespan_failed_exception_carries_the_message() -> None:
    """LifespanFailed is what Server.serve raises; its text is the app's message."""
    assert str(LifespanFailed("no database")) == "no database"


async def shutdown_raises(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        raise RuntimeError("flush failed")
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body"})


@pytest.mark.parametrize(
    "mode",
    [
        "auto",
        "on",
    ],
)
def test_exception_during_shutdown_is_logged_as_an_error(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception raised by the app's lifespan shutdown is logged at ERROR with its traceback."""
    caplog.set_level(logging.INFO, logger="devserve.server")
    with run_server(shutdown_raises, lifespan=mode) as server:
        assert httpx.get(server.url + "/").status_code == 204
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(r.exc_info and "flush failed" in str(r.exc_info[1]) for r in errors)
    assert not any("does not support the lifespan" in r.getMessage() for r in caplog.records)
