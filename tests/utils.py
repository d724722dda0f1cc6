"""Helpers every test module shares: real devserve servers, waiting with a deadline, and the
tools a test needs.

The servers run in a thread (any app object) or as a subprocess (CLI); both bind 127.0.0.1 port 0
and read the real port back, and both stop the server in `finally`. Fixtures live in conftest.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from types import ModuleType
from typing import Any, NoReturn, TypeVar, cast

import pytest

from devserver.config import Config
from devserver.server import Server
from devserver.sockets import bind_all, tls_context

READY = re.compile(r'serving on ([^\s"]+)')
# How often `until` looks again: often enough that a test waits little past the moment, rarely
# enough that polling a server's control socket costs it nothing noticeable.
POLL_INTERVAL = 0.01
T = TypeVar("T")


@dataclasses.dataclass
class Running:
    server: Server
    loop: asyncio.AbstractEventLoop
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def connect(self, timeout: float = 5.0) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        return sock

    def stop(self, force: bool = False) -> None:
        self.loop.call_soon_threadsafe(self.server.request_stop, force)

    def call(self, function: Callable[[], T], timeout: float = 5.0) -> T:
        """`function()` run on the server's loop, where its state may be read; its result."""

        async def run() -> T:
            return function()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)


def waiting_to_drain(server: Server) -> bool:
    """Whether a send on one of `server`'s connections waits for its client to take what was
    written (the write buffer passed its high-water mark). Call it on the server's loop
    (`Running.call`)."""
    return any(
        getattr(getattr(conn, "flow", None), "draining", False) for conn in server.state.connections
    )


@contextlib.contextmanager
def run_server(app: Any, **options: Any) -> Iterator[Running]:
    """Serve `app` (an ASGI 3 callable) in a background thread with its own event loop."""
    options.setdefault("port", 0)
    options.setdefault("access_log", False)
    config = Config(**options)
    listeners = bind_all(config)
    server = Server(config, app, listeners, tls_context(config))
    loop = asyncio.new_event_loop()
    failure: list[BaseException] = []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.serve())
        except BaseException as exc:  # surfaced to the test below
            failure.append(exc)
        finally:
            loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    # server.started is an asyncio.Event of the server's loop: this thread can only look at it
    until(lambda: server.started.is_set() or not thread.is_alive(), "the server to start")
    if not server.started.is_set():
        raise RuntimeError(f"server did not start: {failure!r}")
    sock = listeners[0].sock
    host, port = sock.getsockname()[:2] if sock.family != socket.AF_UNIX else ("", 0)
    running = Running(server, loop, host, port)
    try:
        yield running
    finally:
        if thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop closed as the test stopped it
                running.stop()
            thread.join(timeout=15)
        if failure and not isinstance(failure[0], asyncio.CancelledError):
            raise failure[0]


@dataclasses.dataclass
class Process:
    proc: subprocess.Popen[str]
    url: str
    output: list[str]
    reader: Output | None = None

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def out(self) -> Output:
        """The process's output, read line by line on a thread (started on first use)."""
        if self.reader is None:
            self.reader = Output(self)
        return self.reader

    def read_until(self, pattern: str, timeout: float = 10.0) -> str:
        """Wait for a line of output matching `pattern`; returns that line."""
        return self.out.wait_for(pattern, timeout)


class Output:
    """Reads a devserve subprocess's merged output on a thread, line by line.

    A blocking reader thread never misses lines that arrive together in one read (select on
    a buffered pipe would).
    """

    def __init__(self, process: Process) -> None:
        self.process = process
        self.lines: list[str] = list(process.output)
        self.eof = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        stream = self.process.proc.stdout
        assert stream is not None
        try:
            for line in stream:
                with self._changed:
                    self.lines.append(line)
                    self.process.output.append(line)
                    self._changed.notify_all()
        except (ValueError, OSError):
            pass  # closed by run_devserve's cleanup
        finally:
            with self._changed:
                self.eof = True
                self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float = 10.0, count: int = 1) -> str:
        """The `count`-th line matching `pattern` (the first by default), waiting for it until
        `timeout`."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = found = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    found += bool(regex.search(line))
                    if found == count:
                        return line
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if self.eof or left <= 0:
                    raise AssertionError(
                        f"{found} of {count} line(s) matching {pattern!r} in:\n{self.text}"
                    )
                self._changed.wait(left)

    def count(self, pattern: str) -> int:
        with self._changed:
            return sum(1 for line in self.lines if re.search(pattern, line))

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 10.0) -> str:
        """Send `signum`, expect exit status 0, and return everything the process printed."""
        self.process.proc.send_signal(signum)
        assert self.process.proc.wait(timeout=timeout) == 0, self.text
        self._thread.join(timeout)
        return self.text


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without any DEVSERVE_* variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVSERVE_")}
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env


def devserve_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "devserver", *args]


@contextlib.contextmanager
def spawned(
    command: list[str], env: dict[str, str] | None = None, **popen: Any
) -> Iterator[Process]:
    """Start `command` with merged output and NO_COLOR; terminate (then kill) it in `finally`."""
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
        **popen,
    )
    try:
        yield Process(proc, "", [])
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout:
            proc.stdout.close()


@contextlib.contextmanager
def run_devserve(
    *args: str, cwd: str | None = None, env: dict[str, str] | None = None
) -> Iterator[Process]:
    """Run the real `devserve` CLI as a subprocess and wait until it serves.

    Without a --control of the test's own, none: the default socket in the working directory
    would be shared with other devserve processes started from there.
    """
    if not any(arg == "--control" or arg.startswith("--control=") for arg in args):
        args = ("--control", "off", *args)
    with spawned(devserve_command("--port", "0", "--no-tui", *args), env, cwd=cwd) as process:
        line = process.read_until(r"serving on |error:", timeout=20)
        match = READY.search(line)
        if match is None:
            process.proc.wait(timeout=10)
            raise AssertionError("devserve did not start:\n" + "".join(process.output))
        process.url = match.group(1)
        yield process


def raw_exchange(sock: socket.socket, data: bytes, timeout: float = 5.0) -> bytes:
    """Send `data`, then read until the server closes the connection (or `timeout`)."""
    sock.settimeout(timeout)
    sock.sendall(data)
    chunks = []
    with contextlib.suppress(ConnectionResetError):
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def read_response(sock: socket.socket, timeout: float = 5.0) -> tuple[bytes, bytes]:
    """Read one response with a Content-Length body from a keep-alive connection."""
    sock.settimeout(timeout)
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a full head: {buffer!r}")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    length = int(match.group(1)) if match else 0
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return head, rest[:length]


def is_closed(sock: socket.socket, timeout: float = 5.0) -> bool:
    """True when the peer closed the connection (EOF or reset) within `timeout`."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@contextlib.contextmanager
def collected_records(name: str) -> Iterator[list[logging.LogRecord]]:
    """Every record of logger `name` and its children while inside (a handler on the logger
    itself, so it works with propagate off), at DEBUG and above."""
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    log = logging.getLogger(name)
    handler = Collect(logging.DEBUG)
    old_level = log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        log.removeHandler(handler)
        log.setLevel(old_level)


def until(
    probe: Callable[[], T | None],
    what: str,
    timeout: float = 10.0,
    *,
    accept: Callable[[T | None], object] = bool,
    detail: Callable[[], object] | None = None,
    interval: float = POLL_INTERVAL,
) -> T:
    """Poll `probe` until `accept` holds for its value (by default: until the value is truthy)
    and return that value; past `timeout` seconds, fail with "timed out after Xs waiting for
    <what>", the last value and `detail()` (a server's output, say). A `probe` that costs a
    process (tmux, a CLI) looks again every `interval` seconds instead of every 10 ms.

    For a state nothing announces. Where the state comes as an event (a log line, a control-API
    event, a threading.Event), wait on that instead."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if accept(value):
            return cast(T, value)  # a probe's None is falsy: accepted only when asked to
        if time.monotonic() >= deadline:
            raise AssertionError(timed_out(what, timeout, value, detail))
        time.sleep(interval)  # the next look under the deadline, not a synchronisation


async def until_async(
    pause: Callable[[float], Awaitable[object]],
    probe: Callable[[], T | None],
    what: str,
    timeout: float = 10.0,
) -> T:
    """`until` for a test that must keep its event loop running while it waits: awaits
    `pause` (a Textual pilot's, which lets the app run) between looks instead of sleeping."""
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() >= deadline:
            raise AssertionError(timed_out(what, timeout, value, None))
        await pause(POLL_INTERVAL)
    return value


def timed_out(what: str, timeout: float, last: object, detail: Callable[[], object] | None) -> str:
    message = f"timed out after {timeout:g}s waiting for {what}"
    if last is not None and last is not False:
        message += f"; last: {last!r}"
    if detail is not None:
        message += f"\n{detail()}"
    return message


def require_tool(*names: str) -> str:
    """The path of the first of `names` found on PATH (alternative names of one tool). Without
    any, the test skips naming the tool, or fails under DEVSERVE_CI=1 (see `missing`)."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    missing(f"needs {' or '.join(names)} on PATH")


def require_module(name: str) -> ModuleType:
    """Import the module `name` (a test-only package such as playwright); without it, as for a
    missing tool."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing(f"needs the Python module {name} ({exc})")


def missing(reason: str) -> NoReturn:
    """Skip the test (or, called at import, its whole module) for `reason`, which the summary
    shows. CI sets DEVSERVE_CI=1 and installs every tool, so there a missing one fails instead:
    a skipped test would pass without having run."""
    if os.environ.get("DEVSERVE_CI") == "1":
        pytest.fail(f"{reason} (required: DEVSERVE_CI=1)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)
