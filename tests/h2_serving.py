"""A server for the HTTP/2 wire tests (test_http2_limits, test_http2_streams): a Recorder app
(tests/h2_apps.py) on a real server in a thread, and raw h2 clients (tests/h2_client.py) to it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from devserver.protocols.http2 import HTTP2Protocol
from tests.h2_apps import Recorder
from tests.h2_client import H2Client
from tests.utils import Running, run_server, until


@contextlib.contextmanager
def serving(app: Any = None, **options: Any) -> Iterator[tuple[Running, Recorder]]:
    """A server of `app` (a fresh Recorder by default); the Recorder's held requests are let go
    before it stops."""
    recorder = Recorder()
    options.setdefault("timeout_graceful_shutdown", 0.5)
    with run_server(app or recorder, **options) as server:
        try:
            yield server, recorder
        finally:
            with contextlib.suppress(RuntimeError):  # a test may have stopped it already
                server.loop.call_soon_threadsafe(recorder.open)


def connect(server: Running, **options: Any) -> contextlib.AbstractContextManager[H2Client]:
    return H2Client.connect(server.host, server.port, **options)


def calls(server: Running, app: Recorder, count: int) -> list[str]:
    """Wait until the app has been called `count` times; the paths it was called for."""
    return until(
        lambda: server.call(lambda: app.paths if len(app.paths) >= count else None),
        f"{count} call(s) of the app",
    )


def h2_connections(server: Running) -> list[HTTP2Protocol]:
    """The server's HTTP/2 connections (call on its loop)."""
    return [c for c in server.server.state.connections if isinstance(c, HTTP2Protocol)]
