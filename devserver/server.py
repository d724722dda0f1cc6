"""One serving event loop: lifespan startup, listeners → HTTP protocols, the tick, graceful stop.

`Server.serve()` runs until `request_stop()`; then it stops accepting, lets in-flight requests
finish within --timeout-graceful-shutdown, closes idle keep-alive connections, runs lifespan
shutdown and returns. It does not bind sockets (sockets.py) nor import the app (app_loader.py).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import time
from collections.abc import Coroutine
from typing import Any

from devserver.asgi import ASGIApp
from devserver.config import Config
from devserver.lifespan import Lifespan
from devserver.logging import make_access_logger
from devserver.protocols.http import LATE_CONNECTION_GRACE, HTTPProtocol, make_room
from devserver.protocols.state import HTTPSettings, ServerState
from devserver.redaction import Redactor
from devserver.sockets import Listener
from devserver.stats import WorkerStats
from devserver.tracing import Tracer

logger = logging.getLogger("devserve.server")


class Server:
    """Serves `app` on already-bound listeners until asked to stop."""

    def __init__(
        self,
        config: Config,
        app: ASGIApp,
        listeners: list[Listener],
        tls: ssl.SSLContext | None = None,
        hold: bool = False,
        quiet: bool = False,
    ) -> None:
        self.config = config
        self.listeners = listeners
        self.tls = tls
        self.quiet = quiet  # the supervisor's admin servers: their drain is not news
        settings = HTTPSettings.from_config(config)
        slow = config.slow_request / 1000
        redactor = Redactor(config.redact_names if config.redact else ())
        self.state = ServerState(
            app,
            settings,
            make_access_logger(config.access_log_format, redact=redactor),
            WorkerStats(slow, redactor) if config.metrics else None,
            Tracer(config.trace, redactor),
        )
        self.prepared = asyncio.Event()  # lifespan startup is done
        self.started = asyncio.Event()  # the listeners accept
        self.drained = asyncio.Event()  # stopped accepting, idle connections closed
        self._accept = asyncio.Event()  # with hold=True, set by accept()
        if not hold:
            self._accept.set()
        self._stop = asyncio.Event()
        self._force = False
        self._keep_idle = 0.0
        self._closed: asyncio.Future[None] | None = None
        self._servers: list[asyncio.Server] = []
        self._listening = 0  # bumped by every pause and resume: a stale _listen() backs out
        self._resuming: asyncio.Task[None] | None = None
        self.state.pause_accepting = self._pause_accepting
        self.state.resume_accepting = self._resume_accepting

    # ------------------------------------------------------------------ control
    def request_stop(self, force: bool = False, keep_idle: float = 0.0) -> None:
        """Ask for a graceful stop (a second call, or force=True, skips the grace period).

        `keep_idle`: seconds idle keep-alive connections stay open for one more request (used
        when other workers take over, so busy keep-alive clients are not cut mid-send).
        """
        self._keep_idle = keep_idle
        if self._stop.is_set() or force:
            self._force = True
            if self._closed is not None and not self._closed.done():
                self._closed.set_result(None)
        self._stop.set()

    def accept(self) -> None:
        """Start accepting: a Server made with hold=True waits for this once it is prepared."""
        self._accept.set()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.handle_stop_signal, signum)

    def handle_stop_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self._stop.is_set():
            logger.warning("%s again: stopping now", name)
        else:
            logger.info("%s: finishing in-flight requests, then stopping", name)
        self.request_stop()

    # ------------------------------------------------------------------ life
    async def serve(self) -> None:
        """Start up, serve until stopped, shut down. Raises LifespanFailed if startup fails."""
        loop = asyncio.get_running_loop()
        lifespan = Lifespan(
            self.state.app, self.config.lifespan, self.state.lifespan_state, self.state.tracer
        )
        await lifespan.startup()
        self.prepared.set()
        await _first_of(self._accept, self._stop)
        await self._listen(self._listening)
        ticker = loop.create_task(self._tick())
        self.started.set()
        try:
            await self._stop.wait()
        finally:
            ticker.cancel()
            await self._drain()
            await lifespan.shutdown()
        logger.debug("stopped")

    def _protocol(self) -> HTTPProtocol:
        return HTTPProtocol(self.state)

    # ------------------------------------------------------------------ accepting
    async def _listen(self, generation: int) -> None:
        """Accept on every listener, each through a duplicate of its socket.

        An asyncio server cannot pause: pausing closes the duplicates while the listening
        sockets stay open, so clients wait in the backlog (or go to other workers).
        """
        loop = asyncio.get_running_loop()
        servers = []
        for listener in self.listeners:
            if self._stop.is_set() or generation != self._listening:
                break
            sock = listener.sock.dup()
            try:
                servers.append(
                    await loop.create_server(
                        self._protocol,
                        sock=sock,
                        ssl=self.tls,
                        backlog=self.config.backlog,
                        start_serving=False,
                    )
                )
            except BaseException:
                sock.close()
                raise
        if self._stop.is_set() or generation != self._listening:  # paused or stopped meanwhile
            for server in servers:
                server.close()
            return
        self._servers = servers
        for server in servers:
            await server.start_serving()

    def _pause_accepting(self) -> None:
        """At --limit-connections with no idle connection to close: stop accepting."""
        state = self.state
        if state.accept_paused or self._stop.is_set():
            return
        state.accept_paused = True
        self._listening += 1
        logger.warning(
            "%d connections open (--limit-connections): not accepting until one closes",
            len(state.connections),
        )
        for server in self._servers:
            server.close()
        self._servers = []

    def _resume_accepting(self) -> None:
        state = self.state
        if not state.accept_paused or self._stop.is_set():
            return
        state.accept_paused = False
        self._listening += 1
        logger.info("%d connections open: accepting again", len(state.connections))
        self._resuming = asyncio.get_running_loop().create_task(self._listen(self._listening))

    async def _tick(self) -> None:
        """Advance the shared tick, refresh the Date header, expire idle connections."""
        state = self.state
        second = int(time.time())
        while True:
            await asyncio.sleep(state.tick_interval)
            state.ticks += 1
            now = int(time.time())
            if now != second:
                second = now
                state.refresh_default_headers()
            for conn in list(state.connections):
                try:
                    conn.on_tick()
                except Exception:  # one connection's fault must not stop every timer
                    logger.exception("a connection's timers failed; closing it")
                    conn.transport.abort()
            if state.accept_paused:
                make_room(state)  # a busy connection may have gone idle since

    async def _drain(self) -> None:
        state = self.state
        loop = asyncio.get_running_loop()
        self._listening += 1
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()
        for listener in self.listeners:
            listener.sock.close()  # the servers closed only duplicates; the Server owns these
        await _settle()  # connections accepted just before close() get connection_made now
        keep_idle = 0.0 if self._force else self._keep_idle
        fresh_grace = 0.0 if self._force else LATE_CONNECTION_GRACE
        for conn in list(state.connections):
            conn.shutdown(keep_idle, fresh_grace)
        state.begin_shutdown(keep_idle)
        self.drained.set()
        grace = 0.0 if self._force else self.config.timeout_graceful_shutdown
        deadline = loop.time() + grace
        if not state.idle.is_set() and not self.quiet:
            logger.info(
                "waiting up to %gs for %d connection(s), %d request(s) in flight",
                grace,
                len(state.connections),
                state.in_flight,
            )
        self._closed = loop.create_future()
        while not self._closed.done():
            if state.idle.is_set():
                await _settle()  # a late accept clears `idle` again (asyncio accepts in a task)
                if state.idle.is_set():
                    break
            if loop.time() >= deadline:
                break
            idle = asyncio.ensure_future(state.idle.wait())
            waiting: set[asyncio.Future[Any]] = {idle, self._closed}
            await asyncio.wait(
                waiting, timeout=deadline - loop.time(), return_when=asyncio.FIRST_COMPLETED
            )
            idle.cancel()
        if not state.idle.is_set():
            logger.warning(
                "graceful shutdown timed out: closing %d connection(s)", len(state.connections)
            )
            for conn in list(state.connections):
                conn.transport.abort()
            await self._cancel_requests()
        for server in servers:
            await server.wait_closed()

    async def _cancel_requests(self) -> None:
        """Cancel every request and WebSocket task still running; wait a moment for them."""
        tasks = [task for task in self.state.tasks if not task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1)


async def _settle() -> None:
    """Let callbacks already scheduled run (a few loop passes), e.g. connection_made."""
    for _ in range(3):
        await asyncio.sleep(0)


async def _first_of(*events: asyncio.Event) -> None:
    if any(event.is_set() for event in events):
        return
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    _done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()


def run_loop(main: Coroutine[Any, Any, Any], loop: str) -> Any:
    """Run `main` to completion on uvloop (auto: when installed) or asyncio's own loop."""
    if loop != "asyncio":
        try:  # imported here: optional (not on every platform), and --loop asyncio skips it
            import uvloop
        except ImportError:
            if loop == "uvloop":
                raise
        else:
            return uvloop.run(main)
    return asyncio.run(main)
