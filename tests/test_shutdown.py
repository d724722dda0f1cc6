"""Graceful shutdown: in-flight requests finish, new connections are refused, idle ones closed."""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
import time
from pathlib import Path
from typing import Any

from tests.utils import Running, is_closed, read_response, run_devserve, run_server, until

APPS = str(Path(__file__).parent / "cli_apps")


class GatedApp:
    """/slow waits until the test opens the gate; every other path answers at once."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.cancelled = threading.Event()
        self.gate: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def open_gate(self) -> None:
        assert self.loop is not None and self.gate is not None
        self.loop.call_soon_threadsafe(self.gate.set)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/slow":
            self.loop = asyncio.get_running_loop()
            self.gate = asyncio.Event()
            self.started.set()
            try:
                await self.gate.wait()
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"finished " + scope["path"].encode()})


def kept_alive(server: Running) -> socket.socket:
    """A connection that has completed one request and stays open (keep-alive)."""
    conn = server.connect()
    conn.sendall(b"GET /quick HTTP/1.1\r\nHost: x\r\n\r\n")
    head, body = read_response(conn)
    assert body == b"finished /quick" and b"connection: close" not in head.lower()
    return conn


def refuses_connections(server: Running) -> bool:
    try:
        with socket.create_connection((server.host, server.port), timeout=1):
            return False
    except OSError:
        return True


def stopped(server: Running) -> bool:
    return server.loop.is_closed()


def draining(server: Running) -> bool:
    """The listeners are closed and every open connection has been told to finish."""
    return server.server.drained.is_set() and refuses_connections(server)


def test_in_flight_request_completes_and_new_connections_are_refused() -> None:
    """After stop, an in-flight request still gets its full response; new connects are refused."""
    app = GatedApp()
    with run_server(app, timeout_graceful_shutdown=10) as server:
        slow = server.connect()
        slow.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        assert app.started.wait(5)
        server.stop()
        until(lambda: draining(server), "the listener closed and the connections told")
        assert not stopped(server), "the server waits for the in-flight request"
        app.open_gate()
        head, body = read_response(slow)
        assert head.startswith(b"HTTP/1.1 200")
        assert b"connection: close" in head.lower()
        assert body == b"finished /slow"
        assert is_closed(slow), "the connection closes after the last response"
        slow.close()
        until(lambda: stopped(server), "the server to stop")
    assert not app.cancelled.is_set()


def test_idle_keep_alive_connections_are_closed_on_stop() -> None:
    """A keep-alive connection with no request in progress is closed as soon as stop begins."""
    app = GatedApp()
    with run_server(app, timeout_keep_alive=60) as server:
        idle = kept_alive(server)
        server.stop()
        assert is_closed(idle, timeout=3)
        idle.close()
        until(lambda: stopped(server), "the server to stop", 3)


def test_rolling_drain_answers_one_more_request_on_an_idle_connection() -> None:
    """With keep_idle, an idle keep-alive connection still gets an answer, with close."""
    app = GatedApp()
    with run_server(app, timeout_keep_alive=60) as server:
        busy = kept_alive(server)
        server.loop.call_soon_threadsafe(lambda: server.server.request_stop(keep_idle=5))
        until(lambda: refuses_connections(server), "the listener to close")
        busy.sendall(b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body = read_response(busy)
        assert body == b"finished /second"
        assert b"connection: close" in head.lower()
        assert is_closed(busy, timeout=3)
        busy.close()
        until(lambda: stopped(server), "the server to stop", 3)


def test_rolling_drain_closes_a_connection_that_stays_idle() -> None:
    """With keep_idle, a connection that sends nothing is closed once it was idle that long."""
    app = GatedApp()
    with run_server(app, timeout_keep_alive=60) as server:
        idle = kept_alive(server)
        began = time.monotonic()
        server.loop.call_soon_threadsafe(lambda: server.server.request_stop(keep_idle=0.3))
        assert is_closed(idle, timeout=3)
        assert time.monotonic() - began >= 0.25, "kept open for the keep_idle period first"
        idle.close()
        until(lambda: stopped(server), "the server to stop", 3)


def test_request_outliving_the_grace_period_is_cut_off() -> None:
    """With a short timeout_graceful_shutdown a request that never ends is cancelled and cut."""
    app = GatedApp()
    with run_server(app, timeout_graceful_shutdown=0.2) as server:
        slow = server.connect()
        slow.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        assert app.started.wait(5)
        server.stop()
        assert is_closed(slow, timeout=3), "the connection is aborted"
        slow.close()
        until(lambda: stopped(server), "the server to stop", 3)
    assert app.cancelled.is_set(), "the app's request task was cancelled"


def test_second_stop_request_skips_the_grace_period() -> None:
    """A second stop (like a second Ctrl+C) stops at once, without waiting the grace period."""
    app = GatedApp()
    with run_server(app, timeout_graceful_shutdown=30) as server:
        slow = server.connect()
        slow.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        assert app.started.wait(5)
        server.stop()
        until(lambda: refuses_connections(server), "the listener to close")
        server.stop()
        assert is_closed(slow, timeout=3)
        slow.close()
        until(lambda: stopped(server), "the server to stop", 3)
    assert app.cancelled.is_set()


def test_pipelined_requests_behind_the_in_flight_one_are_dropped_on_stop() -> None:
    """On stop, the response in progress completes and the connection closes after it."""
    app = GatedApp()
    with run_server(app, timeout_graceful_shutdown=10) as server:
        conn = server.connect()
        conn.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n")
        assert app.started.wait(5)
        server.stop()
        until(lambda: draining(server), "the listener closed and the connections told")
        app.open_gate()
        _, body = read_response(conn)
        assert body == b"finished /slow"
        assert is_closed(conn), "the queued request is not served during shutdown"
        conn.close()


def test_cli_sigterm_waits_for_in_flight_request(tmp_path: Path) -> None:
    """Under the real CLI (uvloop), SIGTERM lets the in-flight request finish, then exits 0."""
    release = tmp_path / "release"
    with run_devserve(
        "--timeout-graceful-shutdown", "10", "--app-dir", APPS, "slow_app:app"
    ) as proc:
        output = proc.out
        slow = socket.create_connection(("127.0.0.1", proc.port), timeout=5)
        slow.sendall(f"GET /slow?{release} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        output.wait_for("slow_app: started")
        proc.proc.terminate()
        output.wait_for(r"waiting up to 10s for 1 connection\(s\), 1 request\(s\) in flight")

        def refused() -> bool:
            try:
                socket.create_connection(("127.0.0.1", proc.port), timeout=1).close()
            except OSError:
                return True
            return False

        until(refused, "the listener to close")
        assert proc.proc.poll() is None
        release.touch()
        head, body = read_response(slow)
        slow.close()
        assert head.startswith(b"HTTP/1.1 200") and body == b"done"
        assert proc.proc.wait(timeout=10) == 0
        output.wait_for(r"\bstopped\b")
    assert "timed out" not in output.text


class OrphanWaiter:
    """Waits on a future that nothing but its own task references, noting how the wait ends."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.cancelled = threading.Event()
        self.destroyed = threading.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.started.set()
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        except GeneratorExit:  # the task was garbage-collected while it was pending
            self.destroyed.set()
            raise


def test_forced_stop_cancels_an_app_task_only_the_server_holds() -> None:
    """The server holds every request task: one whose app waits on an orphan future survives
    garbage collection and is cancelled (not destroyed) by a forced stop."""
    app = OrphanWaiter()
    with run_server(app, timeout_graceful_shutdown=30) as server:
        conn = server.connect()
        conn.sendall(b"GET /orphan HTTP/1.1\r\nHost: x\r\n\r\n")
        assert app.started.wait(5)
        assert len(server.server.state.tasks) == 1
        gc.collect()
        server.stop(force=True)
        assert is_closed(conn, timeout=3)
        conn.close()
        until(lambda: stopped(server), "the server to stop", 3)
    assert app.cancelled.is_set(), "the request task was cancelled"
    assert not app.destroyed.is_set()


def test_finished_request_tasks_are_released() -> None:
    """Once a request is answered its task leaves the server's set (nothing accumulates)."""
    app = GatedApp()
    with run_server(app) as server:
        conn = kept_alive(server)
        until(lambda: not server.server.state.tasks, "the task set to empty")
        conn.close()
