"""Serve a WSGI (PEP 3333) app as an ASGI 3 app, running its requests on a bounded thread pool.

The loop side never blocks: it hands each request to a pool thread and relays what the thread
produces to ASGI `send`. The thread side never touches the connection: it reads the body through
ASGI `receive` (run on the loop) only as the app asks for it, and hands the response back through
a bounded queue, so a slow client stalls the app's iterable instead of filling memory.

Requests waiting for a free thread are bounded too (--wsgi-queue): past the bound a request is
answered 503 at once, without waiting. While a request waits, the loop watches its connection,
and a request whose client left before a thread took it up is dropped unseen by the app.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import queue
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any
from urllib.parse import unquote_to_bytes

from devserver.asgi import (
    HTTPOutgoing,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    HTTPResponseZeroCopySendEvent,
    HTTPScope,
    Incoming,
    Receive,
    Scope,
    Send,
)

logger = logging.getLogger("devserve.server")
errors_logger = logging.getLogger("devserve.server.wsgi")  # what apps write to wsgi.errors

RESPONSE_DEPTH = 8  # body chunks a thread may hand over before it waits for the client
JOIN_TIMEOUT = 1.0  # seconds a stopping pool waits for threads to finish what they run
QUEUE = 1000  # requests that may wait for a thread (--wsgi-queue); more are answered 503
RETRY_AFTER = b"1"  # seconds a client turned away by a full queue is told to wait
BUSY_BODY = b"Service Unavailable: every WSGI thread is busy\n"
_BUSY_HEADERS = [(b"content-type", b"text/plain; charset=utf-8"), (b"retry-after", RETRY_AFTER)]

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Disconnected(OSError):
    """The client went away, or the server stopped sending this response (PEP 3333 leaves the
    exception to the server; an OSError is what a socket write would raise)."""


# --------------------------------------------------------------------------- the environ
_HEADER_KEYS = {b"content-type": "CONTENT_TYPE", b"content-length": "CONTENT_LENGTH"}
_HEADER_KEYS_LIMIT = 512  # names are client-chosen: cache the common ones only


def _header_key(name: bytes) -> str | None:
    """`x-forwarded-for` → `HTTP_X_FORWARDED_FOR`; None for names with `_`, which would be
    indistinguishable from their `-` twins (a header spoofing trick, dropped as nginx does)."""
    key = _HEADER_KEYS.get(name)
    if key is None:
        if b"_" in name:
            return None
        key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
        if len(_HEADER_KEYS) < _HEADER_KEYS_LIMIT:
            _HEADER_KEYS[name] = key
    return key


def path_info(scope: HTTPScope) -> str:
    """PATH_INFO: the raw path percent-decoded, root_path stripped, as a WSGI latin-1 string."""
    root = scope.get("root_path", "").encode("utf-8")
    raw: bytes | None = scope.get("raw_path")
    decoded = raw is None
    if raw is None:  # optional in ASGI: fall back on the decoded path
        raw = scope["path"].encode("utf-8", "surrogateescape")
    if root and raw.startswith(root):  # stripped first: the mount point is never %-encoded
        raw = raw[len(root) :]
    if not decoded and b"%" in raw:
        raw = unquote_to_bytes(raw)
    return raw.decode("latin-1")


def _server_address(scope: HTTPScope, environ: dict[str, Any]) -> tuple[str, str]:
    server = scope.get("server")
    if server and server[1] is not None:
        return str(server[0]), str(server[1])
    # A Unix socket has no port: take the client's view of the address from Host.
    default = "443" if scope.get("scheme") == "https" else "80"
    host: str = environ.get("HTTP_HOST", "localhost")
    name, colon, port = host.rpartition(":")
    if not colon or "]" in port:  # no port, or the tail of an IPv6 literal
        return host, default
    return name, port


def build_environ(scope: HTTPScope) -> dict[str, Any]:
    """The PEP 3333 environ for an ASGI HTTP scope, without `wsgi.input` (see `has_body`)."""
    environ = _BASE_ENVIRON.copy()
    for name, value in scope["headers"]:
        key = _header_key(name)
        if key is None:
            continue
        text = value.decode("latin-1")
        if key in environ:  # a repeated field: one value, as RFC 9110 allows (cookies: "; ")
            text = environ[key] + ("; " if key == "HTTP_COOKIE" else ",") + text
        environ[key] = text
    environ["REQUEST_METHOD"] = scope["method"]
    environ["SCRIPT_NAME"] = scope.get("root_path", "").encode("utf-8").decode("latin-1")
    environ["PATH_INFO"] = path_info(scope)
    environ["QUERY_STRING"] = scope.get("query_string", b"").decode("latin-1")
    environ["SERVER_PROTOCOL"] = "HTTP/" + scope.get("http_version", "1.1")
    environ["SERVER_NAME"], environ["SERVER_PORT"] = _server_address(scope, environ)
    environ["wsgi.url_scheme"] = scope.get("scheme", "http")
    client = scope.get("client")
    if client:
        environ["REMOTE_ADDR"] = client[0]
        environ["REMOTE_PORT"] = str(client[1])
    return environ


def has_body(environ: dict[str, Any]) -> bool:
    """Whether the request carries a body at all (else wsgi.input never waits on the client)."""
    return environ.get("CONTENT_LENGTH", "0") != "0" or "HTTP_TRANSFER_ENCODING" in environ


# --------------------------------------------------------------------------- wsgi.* objects
class ErrorStream:
    """wsgi.errors: text the app writes becomes log records of `devserve.server.wsgi`, one per
    completed write (a partial line waits for its newline, per thread)."""

    def __init__(self) -> None:
        self._pending = threading.local()

    def write(self, text: str) -> int:
        done, newline, rest = (getattr(self._pending, "text", "") + text).rpartition("\n")
        if newline:
            errors_logger.error("%s", done)
        self._pending.text = rest
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        text = getattr(self._pending, "text", "")
        if text:
            errors_logger.error("%s", text)
            self._pending.text = ""


class WSGIInput:
    """wsgi.input: the request body, fetched from the connection only as the app reads it.

    It holds one received chunk at a time and the connection stops reading while the app lags,
    so memory stays bounded whatever the body's size. Runs on a pool thread; each fetch blocks
    that thread on the loop's `receive`.
    """

    __slots__ = ("_receive", "_loop", "_chunk", "_pos", "_more")

    def __init__(self, receive: Receive | None, loop: asyncio.AbstractEventLoop | None) -> None:
        self._receive = receive
        self._loop = loop
        self._chunk = b""
        self._pos = 0
        self._more = receive is not None

    def _fill(self) -> bool:
        """Fetch the next non-empty chunk (the current one is used up); False at the end."""
        while self._more:
            assert self._receive is not None and self._loop is not None
            message = asyncio.run_coroutine_threadsafe(_awaited(self._receive), self._loop).result()
            if message["type"] != "http.request":
                self._more = False
                raise Disconnected("the client went away before it sent the whole body")
            self._more = message.get("more_body", False)
            if message.get("body"):
                self._chunk, self._pos = message["body"], 0
                return True
        return False

    def _take(self, limit: int, newline: bool = False) -> tuple[bytes, bool]:
        """Up to `limit` buffered bytes (up to a newline when asked); and whether it ended one."""
        if self._pos >= len(self._chunk) and not self._fill():
            return b"", True
        chunk, start = self._chunk, self._pos
        end = min(len(chunk), start + limit)
        found = chunk.find(b"\n", start, end) if newline else -1
        if found >= 0:
            end = found + 1
        self._pos = end
        return chunk[start:end], found >= 0

    def read(self, size: int | None = -1) -> bytes:
        left = sys.maxsize if size is None or size < 0 else size
        parts = []
        while left > 0:
            piece, _ = self._take(left)
            if not piece:
                break
            parts.append(piece)
            left -= len(piece)
        return b"".join(parts)

    def readline(self, size: int | None = -1) -> bytes:
        left = sys.maxsize if size is None or size < 0 else size
        parts = []
        while left > 0:
            piece, ended = self._take(left, newline=True)
            parts.append(piece)
            left -= len(piece)
            if ended:
                break
        return b"".join(parts)

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


async def _awaited(receive: Receive) -> Incoming:
    return await receive()  # run_coroutine_threadsafe wants a coroutine; receive gives an awaitable


NO_BODY = WSGIInput(None, None)  # never fetches and never changes: shared by bodiless requests


class FileWrapper:
    """wsgi.file_wrapper: a file-like as a response iterable. The adapter sends a regular file
    with sendfile (the ASGI Zero Copy Send extension); anything else is read in blocks."""

    def __init__(self, filelike: Any, block_size: int = 8192) -> None:
        self.filelike = filelike
        self.block_size = block_size

    def __iter__(self) -> Iterator[bytes]:
        read, size = self.filelike.read, self.block_size
        while chunk := read(size):
            yield chunk

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()

    def sendable(self) -> bool:
        """Whether the file-like is a regular file on disk, which sendfile can read."""
        try:
            return stat.S_ISREG(os.fstat(self.filelike.fileno()).st_mode)
        except (AttributeError, OSError, ValueError):
            return False


_BASE_ENVIRON: dict[str, Any] = {
    "wsgi.version": (1, 0),
    "wsgi.errors": ErrorStream(),
    "wsgi.multithread": True,
    "wsgi.multiprocess": True,
    "wsgi.run_once": False,
    "wsgi.input_terminated": True,
    "wsgi.file_wrapper": FileWrapper,
}


# --------------------------------------------------------------------------- threads
class ThreadPool:
    """`size` threads running jobs in order: started on first use, stopped by `stop()`.

    Daemon threads, so an app stuck in a request never keeps the worker from exiting once the
    graceful shutdown has given up on that request.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        # One token per thread waiting for a job: deque appends and pops are atomic, a shared
        # counter would need a lock on every job.
        self._idle: collections.deque[None] = collections.deque()
        self._threads: list[threading.Thread] = []

    def waiting(self) -> int:
        """How many submitted jobs no thread has taken up yet."""
        return self._jobs.qsize()

    def idle(self) -> int:
        """How many threads run no job (a moment's view: threads come and go meanwhile); all of
        them before the first job starts the pool."""
        return len(self._idle) if self._threads else self.size

    def submit(self, job: Callable[[], None]) -> None:
        """Run `job` (which must not raise) on a pool thread; never blocks."""
        if not self._threads:
            self._start()
        self._jobs.put(job)

    def _start(self) -> None:
        # every new thread is free from the start, not only once it first waits for a job: the
        # first requests after a (re)start must not look as if they waited for a thread
        self._idle.extend([None] * self.size)
        for number in range(self.size):
            thread = threading.Thread(
                target=_work,
                args=(self._jobs, self._idle),
                name=f"devserve-wsgi-{number}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    async def stop(self, timeout: float = JOIN_TIMEOUT) -> None:
        """Let the threads exit after the jobs already queued; wait up to `timeout` for them.
        A later `submit` starts a fresh set."""
        threads, self._threads = self._threads, []
        jobs, self._jobs = self._jobs, queue.SimpleQueue()
        self._idle = collections.deque()
        for _ in threads:
            jobs.put(None)
        if threads:
            busy = await asyncio.to_thread(_join, threads, timeout)
            if busy:
                logger.warning("%d WSGI thread(s) still running a request: left behind", busy)


def _work(
    jobs: queue.SimpleQueue[Callable[[], None] | None], idle: collections.deque[None]
) -> None:
    while True:  # a token in `idle` per thread not running a job (see ThreadPool._start)
        job = jobs.get()
        idle.pop()
        if job is None:
            return
        job()
        idle.append(None)


def _join(threads: list[threading.Thread], timeout: float) -> int:
    """Join `threads` within `timeout` in all; how many are still alive."""
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return sum(thread.is_alive() for thread in threads)


# --------------------------------------------------------------------------- one request
_STATUS_CODES: dict[str, int] = {}  # status lines already checked (apps use a handful)


def _status_code(status: Any) -> int:
    """'200 OK' → 200; anything that is not a three-digit code and a reason is refused."""
    code = _STATUS_CODES.get(status) if type(status) is str else None
    if code is not None:
        return code
    if (
        type(status) is not str
        or not status[:3].isdigit()
        or not status[:3].isascii()
        or status[3:4] not in ("", " ")
        or "\n" in status
        or "\r" in status
    ):
        raise ValueError(f"invalid WSGI status {status!r}: expected a string like '200 OK'")
    code = int(status[:3])
    if len(_STATUS_CODES) < _HEADER_KEYS_LIMIT:
        _STATUS_CODES[status] = code
    return code


def _encode_headers(headers: Any) -> list[tuple[bytes, bytes]]:
    try:
        return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
    except (AttributeError, TypeError, ValueError, UnicodeError):
        raise TypeError(
            f"invalid WSGI response headers {headers!r}: expected a list of (str, str) tuples"
            " holding latin-1 text"
        ) from None


class _Exchange:
    """One request handed from the loop to a pool thread, and its response handed back.

    The thread side (`run`, `start_response`, `write`) posts batches of ASGI messages, or the
    app's exception, to the loop with call_soon_threadsafe; the loop side (`relay`) sends them.
    Each body chunk takes a slot in `room` until the loop has sent it: with RESPONSE_DEPTH
    chunks in flight the thread waits, and `send` waits for the client. `gone` is set by the
    loop when it stops relaying, or when the client left while the request waited for a thread;
    the thread's next hand-over then raises Disconnected, and a job not yet started never starts.
    """

    __slots__ = (
        "app",
        "scope",
        "receive",
        "loop",
        "start",
        "started",
        "inbox",
        "waiter",
        "room",
        "flushed",
        "gone",
        "watched",
        "watcher",
        "ahead",
    )

    def __init__(
        self, app: WSGIApp, scope: HTTPScope, receive: Receive, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.app = app
        self.scope = scope
        self.receive = receive
        self.loop = loop
        self.start: HTTPResponseStartEvent | None = None  # once the app called start_response
        self.started = False  # it was handed over: the headers count as sent (PEP 3333)
        self.inbox: list[HTTPOutgoing | BaseException] = []
        self.waiter: asyncio.Future[None] | None = None
        self.room: threading.Semaphore | None = None  # made by the first streamed chunk
        self.flushed: threading.Event | None = None  # made for a file: set once it is sent
        self.gone = False
        self.watched = False  # the loop watched the client while the request waited (`watch`)
        self.watcher: asyncio.Task[None] | None = None
        self.ahead: Incoming | None = None  # the first body message, taken by the watcher

    # ------------------------------------------------------------------ on the pool thread
    def run(self) -> None:
        """The pool job: call the app and hand its response (or its exception) to the loop."""
        if self.gone:  # cancelled while queued (a graceful shutdown ran out of time)
            return
        try:
            self._call_app()
        except BaseException as exc:
            if not self.gone:
                with contextlib.suppress(Disconnected):  # the loop stopped meanwhile
                    self._post(exc)
            elif not isinstance(exc, OSError):
                logger.error("Exception in WSGI application after its response ended", exc_info=exc)

    def _call_app(self) -> None:
        environ = build_environ(self.scope)
        receive = self._receive_ahead if self.watched else self.receive
        environ["wsgi.input"] = WSGIInput(receive, self.loop) if has_body(environ) else NO_BODY
        result = self.app(environ, self.start_response)
        try:
            last = self._respond(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if last:
            self._post(*last)

    def _respond(self, result: Iterable[bytes]) -> list[HTTPOutgoing]:
        """Hand over all but the end of the response; return the end (sent after close())."""
        if type(result) is list or type(result) is tuple:  # all in memory: one write
            return self._end(b"".join(result))
        if isinstance(result, FileWrapper) and result.sendable():
            self._send_file(result)
            return []
        for chunk in result:
            if chunk:
                self.write(chunk)
        return self._end(b"")

    def _end(self, body: bytes) -> list[HTTPOutgoing]:
        end: HTTPOutgoing = {"type": "http.response.body", "body": body, "more_body": False}
        return [end] if self.started else [self._head(), end]

    def _head(self) -> HTTPResponseStartEvent:
        if self.start is None:
            raise RuntimeError("the WSGI app returned a body without calling start_response")
        self.started = True
        return self.start

    def _send_file(self, wrapper: FileWrapper) -> None:
        """Hand the file to the loop for sendfile; wait until it is sent (close() shuts it)."""
        self.flushed = threading.Event()
        send: HTTPResponseZeroCopySendEvent = {
            "type": "http.response.zerocopysend",
            "file": wrapper.filelike,
            "more_body": False,
        }
        if self.started:
            self._post(send)
        else:
            self._post(self._head(), send)
        self.flushed.wait()

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], None]:
        """PEP 3333's start_response: may replace the headers (with exc_info) until they are
        sent; after that, exc_info is re-raised."""
        if exc_info is not None:
            if self.started:
                raise exc_info[1].with_traceback(exc_info[2])
        elif self.start is not None:
            raise RuntimeError("start_response called twice without exc_info (PEP 3333)")
        self.start = {
            "type": "http.response.start",
            "status": _status_code(status),
            "headers": _encode_headers(headers),
        }
        return self.write

    def write(self, data: bytes) -> None:
        """PEP 3333's write(), and each chunk of a streamed iterable: hand `data` to the loop,
        waiting while RESPONSE_DEPTH chunks are still on their way to the client."""
        if type(data) is not bytes:
            if not isinstance(data, bytes | bytearray | memoryview):
                raise TypeError(f"a WSGI response body must be bytes, not {type(data).__name__}")
            data = bytes(data)
        if not data:
            return
        room = self.room
        if room is None:
            room = self.room = threading.Semaphore(RESPONSE_DEPTH)
        if self.gone:
            raise Disconnected("the response was abandoned (the client left?)")
        room.acquire()
        chunk: HTTPResponseBodyEvent = {
            "type": "http.response.body",
            "body": data,
            "more_body": True,
        }
        if self.started:
            self._post(chunk)
        else:
            self._post(self._head(), chunk)

    def _post(self, *items: HTTPOutgoing | BaseException) -> None:
        if self.gone:
            raise Disconnected("the response was abandoned (the client left?)")
        try:
            self.loop.call_soon_threadsafe(self._arrive, items)
        except RuntimeError:  # the loop is closed: the server stopped without this request
            self.gone = True
            raise Disconnected("the server stopped") from None

    # ------------------------------------------------------------------ on the event loop
    def watch(self) -> None:
        """For a request that will wait for a thread (call before it is submitted): notice a
        client that leaves meanwhile, so that no thread runs the request for nobody."""
        self.watched = True
        self.watcher = self.loop.create_task(self._watch())

    async def _watch(self) -> None:
        # Noticing a disconnect means calling receive(), which takes the body's first message:
        # it is kept for the thread. With the whole body in, only a disconnect can follow; with
        # more to come, the watch ends, since reading on would buffer the body here.
        message = await self.receive()
        if message["type"] == "http.request":
            self.ahead = message
            if message.get("more_body", False):
                return
            message = await self.receive()
        if message["type"] == "http.disconnect":
            self.gone = True  # `run` returns at once, and `relay` ends
            self._arrive(())

    async def _receive_ahead(self) -> Incoming:
        """The thread's receive for a watched request: the watch ends, its message comes first."""
        watcher, self.watcher = self.watcher, None
        if watcher is not None and not watcher.done():
            watcher.cancel()
            await asyncio.wait([watcher])  # its receive() must be over before ours begins
        ahead, self.ahead = self.ahead, None
        return ahead if ahead is not None else await self.receive()

    def _arrive(self, items: tuple[HTTPOutgoing | BaseException, ...]) -> None:
        self.inbox.extend(items)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def relay(self, send: Send) -> None:
        """Send what the thread hands over until the response ends; raise what the app raised."""
        try:
            while True:
                while not self.inbox:
                    if self.gone:  # the client left before a thread took the request up
                        return
                    self.waiter = self.loop.create_future()
                    await self.waiter
                items, self.inbox = self.inbox, []
                for item in items:
                    if isinstance(item, BaseException):
                        raise item
                    await send(item)
                    if item.get("more_body"):
                        assert self.room is not None
                        self.room.release()
                    elif item["type"] != "http.response.start":
                        return
        finally:
            self._stop_relaying()

    def _stop_relaying(self) -> None:
        """The response ended or failed: the thread's next hand-over raises instead of waiting
        for room, and a thread waiting for its file to be sent goes on to close()."""
        self.gone = True
        self.waiter = None
        if self.watcher is not None:
            self.watcher.cancel()
            self.watcher = None
        if self.room is not None:
            self.room.release(RESPONSE_DEPTH)
        if self.flushed is not None:
            self.flushed.set()


def _expects_continue(scope: HTTPScope) -> bool:
    """Whether the client waits for 100 Continue, which the first receive() sends: left to the
    app's first read, not sent by a watch while the request still waits for a thread."""
    return any(
        name == b"expect" and value.strip().lower() == b"100-continue"
        for name, value in scope["headers"]
    )


# --------------------------------------------------------------------------- the ASGI app
class WSGIAdapter:
    """An ASGI 3 app serving the WSGI app `app` on `threads` threads, with at most `queue_limit`
    requests waiting for one (--wsgi-queue; one adapter per worker).

    HTTP requests run on the pool; lifespan is answered here (a WSGI app has none) and stops
    the pool at shutdown; a WebSocket is refused (closed before accept: the client gets 403).
    """

    def __init__(self, app: WSGIApp, threads: int, queue_limit: int = QUEUE) -> None:
        self.app = app
        self.pool = ThreadPool(threads)
        self.queue_limit = queue_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            pool = self.pool
            waiting = pool.waiting()
            if waiting >= self.queue_limit:
                await self._busy(scope, send)
                return
            exchange = _Exchange(self.app, scope, receive, asyncio.get_running_loop())
            if waiting >= pool.idle() and not _expects_continue(scope):
                exchange.watch()  # no thread free: it waits, and the client may leave meanwhile
            pool.submit(exchange.run)
            await exchange.relay(send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.close"})
        else:
            raise ValueError(f"a WSGI app cannot serve {scope['type']!r} connections")

    async def _busy(self, scope: HTTPScope, send: Send) -> None:
        """503 for a request that would wait behind --wsgi-queue others; the connection stays
        open (the server reads past an unread body as after any response)."""
        logger.warning(
            "503 for %s %s: %d WSGI requests already wait for a thread",
            scope["method"],
            scope["path"],
            self.queue_limit,
        )
        await send({"type": "http.response.start", "status": 503, "headers": _BUSY_HEADERS})
        await send({"type": "http.response.body", "body": BUSY_BODY})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.pool.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return
