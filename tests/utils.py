"""Start real devserve servers for tests: in a thread (any app object) or as a subprocess (CLI).

Both bind 127.0.0.1 port 0 and read the real port back; both stop the server in `finally`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from devserver.config import Config
from devserver.server import Server
from devserver.sockets import bind_all, tls_context

READY = re.compile(r'serving on ([^\s"]+)')


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
    deadline = time.monotonic() + 10
    while not server.started.is_set():
        if failure or not thread.is_alive():
            raise RuntimeError(f"server did not start: {failure!r}")
        if time.monotonic() > deadline:
            raise TimeoutError("server did not start within 10 s")
        time.sleep(0.005)
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

    def wait_for(self, pattern: str, timeout: float = 10.0) -> str:
        """The first line matching `pattern`, waiting for it until `timeout`."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    if regex.search(line):
                        return line
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if self.eof or left <= 0:
                    raise AssertionError(f"no line matching {pattern!r} in:\n{self.text}")
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


def holds_within(predicate: Callable[[], Any], timeout: float = 5.0) -> bool:
    """Poll `predicate` until it is true or `timeout` passes; whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)  # polling a condition under a deadline, not synchronising on time
    return bool(predicate())
