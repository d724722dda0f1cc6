"""What all connections of one server process share: settings, the clock tick, counters, and
running the app for each request or WebSocket session.

The server's ticker advances `ticks` and refreshes the Date header; connections read both instead
of asking the clock on every request, and the ticker closes connections whose timers ran out.
`ServerState.start` is the one place an app's call begins (or is refused with a 503 at
--limit-concurrency), is counted in flight, fails and ends, for HTTP and WebSocket alike.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from devserver.asgi import ASGIApp, Incoming, Outgoing, WWWScope
from devserver.net import TrustedPeers
from devserver.protocols import wire
from devserver.stats import Exchange, WorkerStats
from devserver.tracing import Trace, Tracer

if TYPE_CHECKING:
    from devserver.config import Config

logger = logging.getLogger("devserve.server")


class Connection(Protocol):
    """What the server asks of every open connection (HTTP or WebSocket)."""

    transport: asyncio.Transport

    def on_tick(self) -> None: ...

    def shutdown(self, keep_idle: float = 0.0, fresh_grace: float = 0.0) -> None: ...


class Session(Protocol):
    """One HTTP request (protocols/cycle.py's RequestCycle) or WebSocket session
    (protocols/websocket.py's WebSocketProtocol), as running its app needs it."""

    trace: Trace | None
    failure: BaseException | None  # what the app raised, for its request record

    @property
    def scope(self) -> WWWScope: ...

    async def receive(self) -> Incoming: ...

    async def send(self, message: Outgoing) -> None: ...

    def describe(self) -> str:
        """How log lines name it: `GET /path`, `WebSocket /path`."""
        ...

    def client_left(self) -> bool:
        """Whether its client is gone (an OSError or a cancellation is then the app noticing)."""
        ...

    def answer_busy(self) -> None:
        """Answer 503 instead of running the app: --limit-concurrency is reached."""
        ...

    def app_ended(self, failed: bool) -> None:
        """The app returned, or raised (`failed`, already logged): end what it left open."""
        ...


@dataclass(frozen=True)
class HTTPSettings:
    """The part of the config the HTTP protocol reads on every connection."""

    root_path: str = ""
    proxy_headers: bool = True
    trusted_peers: TrustedPeers = field(default_factory=lambda: TrustedPeers.from_text("127.0.0.1"))
    forwarded_headers: str = "x-forwarded"
    forwarded_host: bool = False
    limit_concurrency: int | None = None
    limit_connections: int = 2048
    limit_request_line: int = 8190
    limit_request_fields: int = 100
    limit_request_field_size: int = 8190
    max_header_size: int = 65536
    timeout_request_body: float = 30.0
    timeout_send: float = 30.0
    timeout_keep_alive: float = 5.0
    timeout_request_header: float = 10.0
    server_header: bool = True
    date_header: bool = True
    extra_headers: tuple[tuple[str, str], ...] = ()
    access_log: bool = True
    websocket: bool = True
    ws_max_size: int = 16 * 1024 * 1024
    ws_max_queue: int = 32
    ws_ping_interval: float = 20.0
    ws_ping_timeout: float = 20.0
    ws_per_message_deflate: bool = True
    http1: bool = True  # --http auto or 1
    http2: bool = True  # --http auto or 2
    h2_max_concurrent_streams: int = 100
    h2_max_frame_size: int = 16384
    h2_stream_window: int = 65535
    h2_connection_window: int = 262144
    h2_ping_interval: float = 20.0
    h2_ping_timeout: float = 20.0

    @classmethod
    def from_config(cls, config: Config) -> HTTPSettings:
        access = config.access_log and logging.getLogger("devserve.access").isEnabledFor(
            logging.INFO
        )
        return cls(
            root_path=config.root_path,
            proxy_headers=config.proxy_headers,
            trusted_peers=TrustedPeers.from_text(config.forwarded_allow_ips),
            forwarded_headers=config.forwarded_headers,
            forwarded_host=config.forwarded_host,
            limit_concurrency=config.limit_concurrency,
            limit_connections=fd_connections(config.limit_connections),
            limit_request_line=config.limit_request_line,
            limit_request_fields=config.limit_request_fields,
            limit_request_field_size=config.limit_request_field_size,
            max_header_size=config.max_header_size,
            timeout_request_body=config.timeout_request_body,
            timeout_send=config.timeout_send,
            timeout_keep_alive=config.timeout_keep_alive,
            timeout_request_header=config.timeout_request_header,
            server_header=config.server_header,
            date_header=config.date_header,
            extra_headers=config.header,
            access_log=access,
            websocket=config.ws != "none",
            ws_max_size=config.ws_max_size,
            ws_max_queue=config.ws_max_queue,
            ws_ping_interval=config.ws_ping_interval,
            ws_ping_timeout=config.ws_ping_timeout,
            ws_per_message_deflate=config.ws_per_message_deflate,
            http1=config.http != "2",
            http2=config.http != "1",
            h2_max_concurrent_streams=config.h2_max_concurrent_streams,
            h2_max_frame_size=config.h2_max_frame_size,
            h2_stream_window=config.h2_stream_window,
            h2_connection_window=config.h2_connection_window,
            h2_ping_interval=config.h2_ping_interval,
            h2_ping_timeout=config.h2_ping_timeout,
        )


class ServerState:
    """Mutable state shared by every connection of one server (one event loop)."""

    def __init__(
        self,
        app: ASGIApp,
        settings: HTTPSettings,
        access_logger: Callable[[Any, Exchange], None] | None = None,
        stats: WorkerStats | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.access_logger = access_logger if settings.access_log else None
        self.stats = stats  # None with --no-metrics
        # Bound once, called for every HTTP response (protocols/http.py's response_complete).
        self.request_done = stats.request_done if stats is not None else None
        self.tracer = tracer or Tracer()
        self.timed = self.access_logger is not None or stats is not None  # clock each request
        self.lifespan_state: dict[str, Any] = {}
        self.connections: set[Connection] = set()
        self.websockets = 0  # of `connections`, how many are WebSockets
        self.in_flight = 0
        # Every request's and WebSocket session's app task: asyncio itself keeps only weak
        # references to tasks, and a forced stop cancels exactly these.
        self.tasks: set[asyncio.Task[None]] = set()
        # --limit-connections: the server hooks these to stop and restart accepting.
        self.accept_paused = False
        self.pause_accepting: Callable[[], None] = _nothing
        self.resume_accepting: Callable[[], None] = _nothing
        self.requests = 0  # responses completed, for the supervisor's heartbeat
        self.ticks = 0
        self.tick_interval = tick_interval(settings)
        self.shutting_down = False
        self.keep_idle = 0.0  # while shutting down: how long idle connections may wait
        self.idle = asyncio.Event()  # set once shutting down and nothing is left to finish
        self.default_headers = b""
        self.default_fields: list[tuple[bytes, bytes]] = []  # the same, for HTTP/2's HEADERS
        self.refresh_default_headers()

    def refresh_default_headers(self) -> None:
        """Rebuild the header block every response starts with (called once per tick)."""
        fields = []
        if self.settings.server_header:
            fields.append((b"server", b"devserve"))
        if self.settings.date_header:
            fields.append((b"date", wire.http_date()))
        for name, value in self.settings.extra_headers:
            fields.append((name.lower().encode("latin-1"), value.encode("latin-1")))
        self.default_fields = fields
        self.default_headers = b"".join(b"%b: %b\r\n" % field for field in fields)

    def start(self, session: Session) -> None:
        """Run the app for `session` as a task the server holds, or answer 503 at
        --limit-concurrency.

        It counts in flight now, not when the task first runs: requests started in one loop
        pass must each see the others, or they would all pass the limit. `_run` ends the count.
        """
        limit = self.settings.limit_concurrency
        if limit is not None and self.in_flight >= limit:
            logger.warning("503 for %s: %d requests in flight", session.describe(), self.in_flight)
            session.answer_busy()
            return
        self.in_flight += 1
        task = asyncio.get_running_loop().create_task(self._run(session))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, session: Session) -> None:
        """The app's call for one session; the session turns a failure into a 500 or a close."""
        try:
            tracer = self.tracer
            if tracer.remaining:  # each message is noted on its way
                trace = session.trace = tracer.start(session.scope)
                await self.app(session.scope, *trace.wrap(session.receive, session.send))
            else:
                await self.app(session.scope, session.receive, session.send)
        except BaseException as exc:
            failed = report_failure(session, exc)
            if failed:
                session.failure = exc
            session.app_ended(failed)
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
        else:
            session.app_ended(False)
        finally:
            self.in_flight -= 1
            if self.shutting_down:
                self.check_idle()

    def log_access(self, conn: Any, exchange: Exchange) -> None:
        """The access-log line of an answered request or WebSocket handshake; a failing
        --access-log-format is logged, never raised at the protocol."""
        access_logger = self.access_logger
        if access_logger is None:
            return
        try:
            access_logger(conn, exchange)
        except Exception:
            logger.exception(
                "the access log failed for %s %s", exchange.method, exchange.scope["path"]
            )

    def count_rejected(self) -> None:
        """A malformed or timed-out request the server answered itself (for the metrics)."""
        if self.stats is not None:
            self.stats.rejected += 1

    def forget(self, conn: Connection) -> None:
        """A connection closed: one more fits under --limit-connections."""
        self.connections.discard(conn)
        if self.accept_paused and len(self.connections) < self.settings.limit_connections:
            self.resume_accepting()

    def begin_shutdown(self, keep_idle: float = 0.0) -> None:
        self.shutting_down = True
        self.keep_idle = keep_idle
        self.check_idle()

    def check_idle(self) -> None:
        """While shutting down: note when the last connection and request are gone."""
        if not self.connections and not self.in_flight:
            self.idle.set()

    def timed_out(self, since_tick: int, timeout: float) -> bool:
        return timeout > 0 and (self.ticks - since_tick) * self.tick_interval >= timeout


def report_failure(session: Session, exc: BaseException) -> bool:
    """Log what the app raised; False when it only noticed that its client left (an OSError
    from `send()`, a cancellation): nothing to log and nothing to answer then."""
    if session.client_left() and isinstance(exc, OSError | asyncio.CancelledError):
        return False
    if isinstance(exc, asyncio.CancelledError):
        logger.warning("%s cancelled", session.describe())
    elif session.scope["type"] == "http":  # its 500 follows in the access log, which names it
        logger.error("Exception in ASGI application", exc_info=exc)
    else:
        logger.error("Exception in ASGI application (%s)", session.describe(), exc_info=exc)
    return True


FD_RESERVE = 64  # descriptors kept for listeners, the channel, the app's files and threads


def fd_connections(wanted: int) -> int:
    """`wanted` (--limit-connections), or fewer when the soft RLIMIT_NOFILE leaves less room: at
    the cap the worker stops accepting, where running out of descriptors would reset clients."""
    try:
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ValueError, OSError):
        return wanted
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - FD_RESERVE))


def _nothing() -> None:
    pass


def tick_interval(settings: HTTPSettings) -> float:
    """One second (the Date header's resolution), finer when a timeout or ping interval is short."""
    timers = [
        settings.timeout_keep_alive,
        settings.timeout_request_header,
        settings.timeout_request_body,
        settings.timeout_send,
    ]
    if settings.websocket:
        timers += [settings.ws_ping_interval, settings.ws_ping_timeout]
    if settings.http2:
        timers += [settings.h2_ping_interval, settings.h2_ping_timeout]
    timeouts = [t for t in timers if t > 0]
    return max(0.01, min([1.0, *(t / 4 for t in timeouts)]))
