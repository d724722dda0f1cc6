"""WebSocket limits over real sockets: a client that sends without reading cannot make the
worker buffer what it writes back (pongs, echoes) without bound, and others are served meanwhile.

Servers are real: in-process (`serving`, asyncio), where the connection's write buffer can be
read, and a devserve subprocess (uvloop, a worker process), whose resident memory psutil reads.
Synchronisation is by socket readiness and polls under a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator

import psutil
import pytest

from devserver.protocols.websocket import WebSocketProtocol
from tests.test_websocket import (
    ECHO_APP,
    OP_PING,
    OP_TEXT,
    RawWS,
    Served,
    client_frame,
    serving,
    unique,
    ws_connect,
)
from tests.utils import Process, run_devserve

MiB = 1 << 20
PING = client_frame(OP_PING, b"p" * 125)  # the largest control frame: a 125-byte pong each
MESSAGE = client_frame(OP_TEXT, b"m" * 1000)  # echoed by the echo app


class Flood:
    """Sends one frame over and over on a non-blocking socket, reading nothing."""

    def __init__(self, sock: socket.socket, frame: bytes) -> None:
        self.sock = sock
        self.batch = frame * 256
        self.pending = b""  # what is left of the batch being sent (maybe half a frame)
        sock.setblocking(False)

    def run(self, grown: Callable[[], bool], seconds: float = 5.0) -> bool:
        """Send until the server stops taking it (a send blocked for half a second), `grown()`
        says the server grew too much, or `seconds` pass. Whether the server stopped taking it."""
        deadline = time.monotonic() + seconds
        checked = 0.0
        while time.monotonic() < deadline:
            if time.monotonic() - checked > 0.1:  # checking costs more than a send: not each time
                if grown():
                    return False
                checked = time.monotonic()
            self.pending = self.pending or self.batch
            try:
                self.pending = self.pending[self.sock.send(self.pending) :]
            except BlockingIOError:
                if not select.select([], [self.sock], [], 0.5)[1]:
                    return True
        return False


def echo_works(port: int) -> bool:
    """A well-behaved client opens a WebSocket and gets its message echoed."""
    with ws_connect(port, unique()) as ws:
        ws.send("still served")
        return ws.recv(timeout=5) == "still served"


# --------------------------------------------------------------------------- asyncio, in-process
def write_buffer_sizes(served: Served) -> list[int]:
    """The write buffer size of each open WebSocket, read on the server's loop."""

    async def read() -> list[int]:
        return [
            conn.transport.get_write_buffer_size()
            for conn in served.server.server.state.connections
            if isinstance(conn, WebSocketProtocol)
        ]

    return asyncio.run_coroutine_threadsafe(read(), served.server.loop).result(5)


def test_a_pinging_client_that_never_reads_cannot_grow_the_write_buffer() -> None:
    """A client sending pings and reading nothing is soon no longer read from: the write buffer
    of its pongs stays under 1 MiB, and another client is served. (Messages to echo were bounded
    already: the app's send() waits for the client, and reading pauses at --ws-max-queue.)"""
    with serving() as served:
        _, raw = RawWS.open(served.port, unique())
        with contextlib.closing(raw):
            largest = [0]

            def grown() -> bool:
                largest[0] = max([largest[0], *write_buffer_sizes(served)])
                return largest[0] >= MiB

            stopped = Flood(raw.sock, PING).run(grown)
            assert stopped, f"still read from: {largest[0]} bytes buffered"
            assert not grown(), f"{largest[0]} bytes buffered for a client that reads nothing"
            assert echo_works(served.port)


# --------------------------------------------------------------------------- uvloop, a worker
@pytest.fixture(scope="module")
def cli_echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    folder = tmp_path_factory.mktemp("ws_limits_app")
    (folder / "ws_limits_echo.py").write_text(ECHO_APP)
    with run_devserve("--loop", "uvloop", "--app-dir", str(folder), "ws_limits_echo:app") as proc:
        yield proc


def serving_process(proc: Process, client: socket.socket) -> psutil.Process:
    """The worker process holding the server end of `client`'s connection."""
    peer = client.getsockname()
    for child in psutil.Process(proc.proc.pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if any(conn.raddr == peer for conn in child.net_connections("tcp")):
                return child
    raise AssertionError(f"no process of devserve holds the connection from {peer}")


def test_a_pinging_client_that_never_reads_does_not_grow_the_worker(cli_echo: Process) -> None:
    """In a real worker (uvloop), a client flooding pings without reading leaves the worker's
    resident memory within 10 MiB of where it started; another client is served meanwhile."""
    _, raw = RawWS.open(cli_echo.port, unique())
    with contextlib.closing(raw):
        worker = serving_process(cli_echo, raw.sock)
        before = worker.memory_info().rss

        def growth() -> int:
            return int(worker.memory_info().rss - before)

        stopped = Flood(raw.sock, PING).run(lambda: growth() >= 10 * MiB)
        assert stopped, f"the worker still reads: grew {growth() / MiB:.1f} MiB"
        assert echo_works(cli_echo.port)
        assert growth() < 10 * MiB, f"the worker grew {growth() / MiB:.1f} MiB"


def test_reading_resumes_once_the_client_reads(cli_echo: Process) -> None:
    """Once a flooding client that was no longer read from reads, it gets its pongs and its
    next message echoed: the pause lasts only while the client takes nothing."""
    _, raw = RawWS.open(cli_echo.port, unique())
    with contextlib.closing(raw):
        flooding = Flood(raw.sock, PING)
        assert flooding.run(lambda: False)
        echo = b"m" * 1000
        found = threading.Event()

        def read_until_echo() -> None:
            tail = b""
            with contextlib.suppress(OSError):
                while chunk := raw.sock.recv(MiB):
                    if echo in tail + chunk:
                        found.set()
                        return
                    tail = chunk[-len(echo) :]

        reader = threading.Thread(target=read_until_echo, daemon=True)
        raw.sock.settimeout(15)
        reader.start()
        raw.sock.sendall(flooding.pending + MESSAGE)
        assert found.wait(15), "no echo after the pongs"
