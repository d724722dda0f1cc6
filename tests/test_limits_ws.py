"""WebSocket limits over real sockets: a client that sends without reading cannot make the
worker buffer what it writes back (echoes) without bound, a ping flood is closed with 1008, and a
flood of tiny frames cannot take the worker's loop from other connections or its timers.

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

from devserver.protocols.websocket import CONTROL_FRAMES_PER_SECOND, WebSocketProtocol
from tests.utils import Process, read_response, run_devserve
from tests.ws_apps import ECHO_APP, Served, serving, unique
from tests.ws_client import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Frame,
    MiB,
    RawWS,
    client_frame,
    ws_connect,
)

PING = client_frame(OP_PING, b"p" * 125)  # the largest control frame: a 125-byte pong each
MESSAGE = client_frame(OP_TEXT, b"m" * 1000)  # echoed by the echo app
# Floods of the smallest frames: each costs websockets a few microseconds to parse.
PINGS = client_frame(OP_PING, b"ping") * 4096
FRAGMENTS = client_frame(OP_CONT, b"", fin=False) * 4096  # after an unfinished text frame


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


def test_a_client_that_never_reads_cannot_grow_the_write_buffer() -> None:
    """A client sending messages to echo and reading nothing is soon no longer read from: the
    write buffer of the echoes stays under 1 MiB, and another client is served."""
    with serving() as served:
        _, raw = RawWS.open(served.port, unique())
        with contextlib.closing(raw):
            largest = [0]

            def grown() -> bool:
                largest[0] = max([largest[0], *write_buffer_sizes(served)])
                return largest[0] >= MiB

            stopped = Flood(raw.sock, MESSAGE).run(grown)
            assert stopped, f"still read from: {largest[0]} bytes buffered"
            assert not grown(), f"{largest[0]} bytes buffered for a client that reads nothing"
            assert echo_works(served.port)


def queued_payload_bytes(served: Served) -> int:
    """The payload bytes waiting for the app on every open WebSocket, read on the server's loop."""

    async def read() -> int:
        return sum(
            len(message.get("bytes") or message.get("text") or b"")
            for conn in served.server.server.state.connections
            if isinstance(conn, WebSocketProtocol)
            for message in conn.messages
        )

    return asyncio.run_coroutine_threadsafe(read(), served.server.loop).result(5)


def test_messages_waiting_for_the_app_are_bounded_in_bytes_not_only_in_number() -> None:
    """An app that does not read: 32 messages of half --ws-max-size each would queue 16 times
    --ws-max-size (and a compressed one costs its sender a thousandth of that); reading pauses
    once --ws-max-size bytes wait."""
    limit = 1 * MiB
    with serving(ws_max_size=limit) as served:
        _, raw = RawWS.open(served.port, unique("/hold"))
        with contextlib.closing(raw):
            half = client_frame(OP_BINARY, b"b" * (limit // 2))
            largest = [0]

            def grown() -> bool:
                largest[0] = max(largest[0], queued_payload_bytes(served))
                return largest[0] > 2 * limit

            stopped = Flood(raw.sock, half).run(grown, seconds=5)
            assert stopped and not grown(), f"{largest[0]} bytes queued for an app not reading"
            assert largest[0] >= limit  # it did fill up to the bound
            assert echo_works(served.port)


# --------------------------------------------------------------------------- uvloop, a worker
@pytest.fixture(scope="module")
def cli_echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    folder = tmp_path_factory.mktemp("ws_limits_app")
    (folder / "ws_limits_echo.py").write_text(ECHO_APP)
    # a short keep-alive timeout: the flood tests watch that timers still fire
    args = ("--loop", "uvloop", "--timeout-keep-alive", "1", "--app-dir", str(folder))
    with run_devserve(*args, "ws_limits_echo:app") as proc:
        yield proc


def serving_process(proc: Process, client: socket.socket) -> psutil.Process:
    """The worker process holding the server end of `client`'s connection."""
    peer = client.getsockname()
    for child in psutil.Process(proc.proc.pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if any(conn.raddr == peer for conn in child.net_connections("tcp")):
                return child
    raise AssertionError(f"no process of devserve holds the connection from {peer}")


def test_a_client_that_never_reads_does_not_grow_the_worker(cli_echo: Process) -> None:
    """In a real worker (uvloop), a client flooding messages without reading leaves the worker's
    resident memory within 10 MiB of where it started; another client is served meanwhile."""
    _, raw = RawWS.open(cli_echo.port, unique())
    with contextlib.closing(raw):
        worker = serving_process(cli_echo, raw.sock)
        before = worker.memory_info().rss

        def growth() -> int:
            return int(worker.memory_info().rss - before)

        stopped = Flood(raw.sock, MESSAGE).run(lambda: growth() >= 10 * MiB)
        assert stopped, f"the worker still reads: grew {growth() / MiB:.1f} MiB"
        assert echo_works(cli_echo.port)
        assert growth() < 10 * MiB, f"the worker grew {growth() / MiB:.1f} MiB"


def test_reading_resumes_once_the_client_reads(cli_echo: Process) -> None:
    """Once a flooding client that was no longer read from reads, it gets the echoes and its
    next message echoed: the pause lasts only while the client takes nothing."""
    _, raw = RawWS.open(cli_echo.port, unique())
    with contextlib.closing(raw):
        flooding = Flood(raw.sock, MESSAGE)
        assert flooding.run(lambda: False)
        echo = b"z" * 1000
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
        raw.sock.sendall(flooding.pending + client_frame(OP_TEXT, echo))
        assert found.wait(15), "no echo of the last message after the others"


# --------------------------------------------------------------------------- control-frame floods
def frames_until_close(raw: RawWS) -> list[Frame]:
    """The frames the server sends, up to and including its close frame."""
    frames = [raw.recv_frame()]
    while frames[-1].opcode != OP_CLOSE:
        frames.append(raw.recv_frame())
    return frames


def test_pings_within_the_limit_are_all_answered() -> None:
    """A burst of pings up to the per-second limit gets a pong each, and the connection stays
    open for the next message."""
    with serving() as served:
        _, raw = RawWS.open(served.port, unique())
        with contextlib.closing(raw):
            raw.sock.sendall(client_frame(OP_PING, b"ok") * CONTROL_FRAMES_PER_SECOND)
            pongs = [raw.recv_frame() for _ in range(CONTROL_FRAMES_PER_SECOND)]
            assert {(frame.opcode, frame.payload) for frame in pongs} == {(OP_PONG, b"ok")}
            raw.send(OP_TEXT, b"after the pings")
            assert raw.recv_frame().payload == b"after the pings"


def test_a_ping_flood_is_closed_with_1008() -> None:
    """More pings in a second than the limit: the server answers at least those within it, then
    closes the connection with 1008 (policy violation) and ends it."""
    with serving() as served:
        _, raw = RawWS.open(served.port, unique())
        with contextlib.closing(raw):
            raw.sock.sendall(client_frame(OP_PING, b"flood") * (2 * CONTROL_FRAMES_PER_SECOND))
            *pongs, close = frames_until_close(raw)
            assert {frame.opcode for frame in pongs} == {OP_PONG}
            assert len(pongs) >= CONTROL_FRAMES_PER_SECOND
            assert close.close == (1008, "too many pings")
            assert raw.at_eof()


# --------------------------------------------------------------------------- fairness, uvloop
class Flooder(threading.Thread):
    """Opens a WebSocket, sends `opening` then `frames` over and over without reading, and opens
    another when the server ends the connection, until `stop`."""

    def __init__(self, port: int, opening: bytes, frames: bytes, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port, self.opening, self.frames, self.stop = port, opening, frames, stop
        self.connections = 0
        self.sent = 0

    def run(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(OSError):
                _, raw = RawWS.open(self.port, unique())
                with contextlib.closing(raw):
                    self.connections += 1
                    self.flood(raw.sock)

    def flood(self, sock: socket.socket) -> None:
        sock.settimeout(0.2)  # the server stops reading us at times: check `stop` meanwhile
        pending = self.opening
        while not self.stop.is_set():
            pending = pending or self.frames
            with contextlib.suppress(TimeoutError):
                sent = sock.send(pending)
                pending = pending[sent:]
                self.sent += sent


@contextlib.contextmanager
def flooding(port: int, opening: bytes, frames: bytes, count: int = 4) -> Iterator[list[Flooder]]:
    stop = threading.Event()
    flooders = [Flooder(port, opening, frames, stop) for _ in range(count)]
    for flooder in flooders:
        flooder.start()
    try:
        yield flooders
    finally:
        stop.set()
        for flooder in flooders:
            flooder.join(5)


def request_times(port: int, seconds: float) -> list[float]:
    """A well-behaved client's GETs on one keep-alive connection for `seconds`: each one's time."""
    times = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.monotonic()
            sock.sendall(b"GET /http HTTP/1.1\r\nHost: test\r\n\r\n")
            assert read_response(sock)[1] == b"plain http"
            times.append(time.monotonic() - started)
            time.sleep(0.02)  # a client pacing its requests, not a synchronisation
    return times


def closed_at(sock: socket.socket, timeout: float) -> float | None:
    """When the server ended the connection (a monotonic time); None if it did not in time."""
    sock.settimeout(timeout)
    try:
        data = sock.recv(1)
    except ConnectionResetError:
        data = b""
    except TimeoutError:
        return None
    return None if data else time.monotonic()


@pytest.mark.parametrize(
    ("opening", "frames"),
    [(b"", PINGS), (client_frame(OP_TEXT, b"", fin=False), FRAGMENTS)],
    ids=["pings", "empty-fragments"],
)
def test_tiny_frame_floods_leave_the_worker_serving_others(
    cli_echo: Process, opening: bytes, frames: bytes
) -> None:
    """Four clients sending the smallest frames as fast as they can, reading nothing (pings are
    closed and reconnect; empty fragments are never closed): meanwhile another client's requests
    each take under 0.5 s, an idle keep-alive connection is still closed on time (1 s), a new
    WebSocket is echoed, and the worker grows less than 10 MiB."""
    with socket.create_connection(("127.0.0.1", cli_echo.port), timeout=5) as idle:
        idle.sendall(b"GET /http HTTP/1.1\r\nHost: test\r\n\r\n")
        read_response(idle)
        worker = serving_process(cli_echo, idle)
        before = worker.memory_info().rss
        ended: list[float | None] = []
        watcher = threading.Thread(target=lambda: ended.append(closed_at(idle, 10)), daemon=True)
        with flooding(cli_echo.port, opening, frames) as flooders:
            flood_began = time.monotonic()
            watcher.start()
            times = request_times(cli_echo.port, 3.0)
            assert echo_works(cli_echo.port)
            growth = worker.memory_info().rss - before
            assert time.monotonic() - flood_began < 4.5, "the echo took too long"
        watcher.join(10)
    assert sum(flooder.sent for flooder in flooders) > 1 * MiB, "the flood did not flood"
    # The times are the behaviour here (fairness): a starved connection would wait for seconds,
    # until the flood ended; the bounds leave a busy machine room.
    assert max(times) < 0.5, f"slowest request {max(times):.2f} s of {len(times)}"
    assert ended and ended[0] is not None and ended[0] - flood_began < 2.5, "keep-alive timer late"
    assert growth < 10 * MiB, f"the worker grew {growth / MiB:.1f} MiB"
