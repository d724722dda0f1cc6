"""What all connections of one server process share: settings, the clock tick, counters.

The server's ticker advances `ticks` and refreshes the Date header; connections read both instead
of asking the clock on every request, and the ticker closes connections whose timers ran out.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from devserver.net import TrustedPeers
from devserver.protocols import wire
from devserver.stats import WorkerStats
from devserver.tracing import Tracer

if TYPE_CHECKING:
    from devserver.config import Config

ASGIApp = Callable[..., Awaitable[None]]


class Connection(Protocol):
    """What the server asks of every open connection (HTTP or WebSocket)."""

    transport: asyncio.Transport

    def on_tick(self) -> None: ...

    def shutdown(self, keep_idle: float = 0.0, fresh_grace: float = 0.0) -> None: ...


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
        )


class ServerState:
    """Mutable state shared by every connection of one server (one event loop)."""

    def __init__(
        self,
        app: ASGIApp,
        settings: HTTPSettings,
        access_logger: Callable[..., None] | None = None,
        stats: WorkerStats | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.access_logger = access_logger if settings.access_log else None
        self.stats = stats  # None with --no-metrics
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
        self.refresh_default_headers()

    def refresh_default_headers(self) -> None:
        """Rebuild the header block every response starts with (called once per tick)."""
        parts = []
        if self.settings.server_header:
            parts.append(b"server: devserve\r\n")
        if self.settings.date_header:
            parts.append(b"date: " + wire.http_date() + b"\r\n")
        for name, value in self.settings.extra_headers:
            parts.append(f"{name}: {value}\r\n".encode("latin-1"))
        self.default_headers = b"".join(parts)

    def spawn(self, app_call: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run one request's (or WebSocket session's) app call as a task the server holds, and
        count it in flight now, not when the task first runs: requests started in one loop pass
        must each see the others, or they would all pass --limit-concurrency. The app call ends
        the count."""
        self.in_flight += 1
        task = asyncio.get_running_loop().create_task(app_call)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

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
    timeouts = [t for t in timers if t > 0]
    return max(0.01, min([1.0, *(t / 4 for t in timeouts)]))
