"""A load generator for tests: threads that send GET requests to a server for a `with` block.

It counts what a careful HTTP/1.1 client would see: successes, failures with their reason, and
retries. It never decides whether a test passes; tests assert on its counts.

Retries (RFC 9112 §9.3.1): a server may close an idle keep-alive connection at any moment, so a
request written onto a *reused* connection can meet EOF or a reset before any byte of its
response: the server closed the connection as the request crossed it. A client may then retry an
idempotent request once, on a new connection. The load does exactly that and counts it in
`retried`, not as a failure; if the retry fails too, that is a failure. On a *fresh* connection
the same symptom is a failure: that request reached the server and was dropped.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import re
import socket
import threading
import time
from types import TracebackType
from urllib.parse import urlsplit

_CONTENT_LENGTH = re.compile(rb"(?im)^content-length:[ \t]*(\d+)[ \t]*\r?$")
_CONNECTION_CLOSE = re.compile(rb"(?im)^connection:.*\bclose\b")
_STATUS = re.compile(rb"^HTTP/1\.[01] (\d{3})")


@dataclasses.dataclass(frozen=True)
class Failure:
    """One failed request: why, when (time.monotonic()), on which thread, on what connection."""

    reason: str  # refused, reset, eof, timeout, truncated, status NNN, error: ...
    at: float
    thread: str
    fresh: bool  # True: the request went out on a connection opened for it
    port: int  # the client's local port, to find the connection in a server's logs


class Dropped(Exception):
    """The connection ended (EOF, reset, broken pipe) before any byte of the response."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Failed(Exception):
    """The request failed for a reason a retry would not excuse (timeout, truncated, non-2xx)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass
class Response:
    status: int
    head: bytes
    body: bytes
    close: bool  # the server said `Connection: close`, or the connection ended with the body


class Load:
    """Run `threads` clients against `url` while the `with` block runs; counts are thread-safe.

    `keep_alive` of them reuse one connection for request after request (opening a new one only
    when the server asks to close, or after a dropped request); the rest open a new connection per
    request. `pause` is a pacing gap between a thread's requests, so a small machine keeps CPU for
    the server. `header`, when given, names a response header whose values are counted in
    `served_by` (a test app can send its worker's pid in it).
    """

    def __init__(
        self,
        url: str,
        threads: int = 4,
        keep_alive: int | None = None,
        path: str = "/",
        timeout: float = 5.0,
        pause: float = 0.0,
        header: str | None = None,
    ) -> None:
        parts = urlsplit(url)
        assert parts.scheme == "http" and parts.hostname and parts.port, url
        self.address = (parts.hostname, parts.port)
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\n"
            "User-Agent: devserve-tests-load\r\n\r\n"
        ).encode("ascii")
        self.threads = threads
        self.keep_alive = threads // 2 if keep_alive is None else keep_alive
        assert 0 <= self.keep_alive <= threads
        self.timeout = timeout
        self.pause = pause
        self._header = re.compile(
            rb"(?im)^" + re.escape(header.encode()) + rb":[ \t]*(\S+)" if header else rb"(?!)"
        )
        self.succeeded = 0
        self.retried = 0
        self.failures: list[Failure] = []
        self.served_by: collections.Counter[str] = collections.Counter()
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._errors: list[BaseException] = []

    # ------------------------------------------------------------------ counts
    @property
    def failed(self) -> int:
        with self._changed:
            return len(self.failures)

    def reasons(self) -> list[str]:
        """Every failure's reason, in the order they happened."""
        with self._changed:
            return [failure.reason for failure in self.failures]

    def wait_for_successes(self, total: int, timeout: float = 10.0) -> None:
        """Block until `total` requests succeeded since the start; AssertionError past `timeout`."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.succeeded < total:
                left = deadline - time.monotonic()
                if left <= 0 or self._errors:
                    raise AssertionError(
                        f"{self.succeeded} of {total} requests succeeded within {timeout}s; "
                        f"{len(self.failures)} failed: {self._summary()}; errors: {self._errors}"
                    )
                self._changed.wait(left)

    def wait_for_more(self, count: int, timeout: float = 10.0) -> None:
        """Block until `count` more requests than now succeeded."""
        with self._changed:
            total = self.succeeded + count
        self.wait_for_successes(total, timeout)

    def summary(self) -> str:
        with self._changed:
            return (
                f"{self.succeeded} succeeded, {self.retried} retried, "
                f"{len(self.failures)} failed: {self._summary()}"
            )

    def _summary(self) -> str:
        return str(dict(collections.Counter(failure.reason for failure in self.failures)))

    # ------------------------------------------------------------------ life
    def __enter__(self) -> Load:
        for number in range(self.threads):
            reuse = number < self.keep_alive
            name = f"load-{'keepalive' if reuse else 'fresh'}-{number}"
            thread = threading.Thread(target=self._run, args=(reuse,), name=name, daemon=True)
            self._workers.append(thread)
            thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Let every thread finish its current request, then return; re-raises a thread's bug."""
        self._stop.set()
        for thread in self._workers:
            thread.join(self.timeout + 5)
            assert not thread.is_alive(), f"{thread.name} did not stop"
        if self._errors:
            raise self._errors[0]

    # ------------------------------------------------------------------ one client thread
    def _run(self, reuse: bool) -> None:
        sock: socket.socket | None = None
        try:
            while not self._stop.is_set():
                sock = self._one(sock if reuse else None)
                if not reuse and sock is not None:
                    sock.close()
                    sock = None
                if self.pause:
                    self._stop.wait(self.pause)
        except BaseException as exc:  # a bug in this module: surfaced by stop()
            with self._changed:
                self._errors.append(exc)
                self._changed.notify_all()
        finally:
            if sock is not None:
                sock.close()

    def _one(self, sock: socket.socket | None) -> socket.socket | None:
        """One request, on `sock` when given (reused) else on a new connection.

        Returns the connection to reuse, or None when it is closed.
        """
        if sock is not None:
            try:
                response = self._exchange(sock)
            except Dropped:
                sock.close()
                with self._changed:
                    self.retried += 1
                sock = None  # once, on a fresh connection, below
            except Failed as exc:
                self._fail(exc.reason, sock, fresh=False)
                return None
            else:
                return self._done(sock, response, fresh=False)
        try:
            sock = socket.create_connection(self.address, timeout=self.timeout)
        except ConnectionRefusedError:
            self._fail("refused", None, fresh=True)
            return None
        except TimeoutError:
            self._fail("timeout", None, fresh=True)
            return None
        except OSError as exc:
            self._fail(f"error: {exc}", None, fresh=True)
            return None
        try:
            response = self._exchange(sock)
        except (Dropped, Failed) as exc:
            self._fail(exc.reason, sock, fresh=True)
            return None
        return self._done(sock, response, fresh=True)

    def _done(self, sock: socket.socket, response: Response, fresh: bool) -> socket.socket | None:
        if not 200 <= response.status < 300:
            self._fail(f"status {response.status}", sock, fresh)
            return None
        match = self._header.search(response.head)
        with self._changed:
            self.succeeded += 1
            if match:
                self.served_by[match.group(1).decode("latin-1")] += 1
            self._changed.notify_all()
        if response.close:
            sock.close()
            return None
        return sock

    def _fail(self, reason: str, sock: socket.socket | None, fresh: bool) -> None:
        """Count a failure; closes `sock`, the connection it happened on (if one was open)."""
        port = 0
        if sock is not None:
            with contextlib.suppress(OSError):
                port = sock.getsockname()[1]
            sock.close()
        thread = threading.current_thread().name
        failure = Failure(reason, time.monotonic(), thread, fresh, port)
        with self._changed:
            self.failures.append(failure)
            self._changed.notify_all()

    def _exchange(self, sock: socket.socket) -> Response:
        """Send the request and read one response (Content-Length framed, or up to EOF)."""
        buffer = b""
        try:
            sock.sendall(self.request)
            while b"\r\n\r\n" not in buffer:
                chunk = sock.recv(65536)
                if not chunk:
                    if buffer:
                        raise Failed("truncated")
                    raise Dropped("eof")
                buffer += chunk
        except TimeoutError:
            raise Failed("timeout") from None
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
            if buffer:
                raise Failed("truncated") from None
            raise Dropped("reset") from None
        head, _, body = buffer.partition(b"\r\n\r\n")
        status = _STATUS.match(head)
        if status is None:
            raise Failed(f"not HTTP: {head[:40]!r}")
        length = _CONTENT_LENGTH.search(head)
        close = bool(_CONNECTION_CLOSE.search(head))
        try:
            body = self._body(sock, body, int(length.group(1)) if length else None)
        except TimeoutError:
            raise Failed("timeout") from None
        except (ConnectionResetError, ConnectionAbortedError):
            raise Failed("truncated") from None
        return Response(int(status.group(1)), head, body, close or length is None)

    @staticmethod
    def _body(sock: socket.socket, body: bytes, length: int | None) -> bytes:
        while length is None or len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                if length is None:
                    return body
                raise Failed("truncated")
            body += chunk
        return body[:length]
