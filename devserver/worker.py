"""A worker process's life: import the app, run lifespan, serve, report to the supervisor, obey it.

`main` runs in a process forked by the fork server (supervisor/spawn.py); this is the only place
where the user's app is imported. The worker reports `Booting`, then `Ready` (app imported,
lifespan started) or `Failed`, then a `Tick` heartbeat about every 250 ms; it accepts connections
once told `Serve`, drains on `Drain` or SIGTERM, stops at once on `Stop` or SIGQUIT, and drains
by itself when the supervisor goes away. It never decides to restart itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import io
import logging
import os
import resource
import signal
import socket
import sys
import time
from dataclasses import dataclass

import psutil

from devserver import channel, log_forwarding, tracebacks
from devserver import logging as devserve_logging
from devserver.app_loader import AppLoadError, load_app
from devserver.config import Config
from devserver.lifespan import LifespanFailed
from devserver.protocols.state import FD_RESERVE, fd_connections
from devserver.server import Server, run_loop
from devserver.sockets import BindError, Listener, tls_context

HEARTBEAT_INTERVAL = 0.25
EXIT_STARTUP = 3  # the same status the CLI uses for a startup failure


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a new worker needs, pickled to the fork server (sockets travel as fds)."""

    config: Config
    listeners: list[Listener]
    channel: socket.socket
    slot: int
    generation: int
    reloading: bool = False  # --reload is on
    output: socket.socket | None = None  # where stdout and stderr go (the in-process panel)
    forward_logs: bool = False  # send warnings and errors to the supervisor too (no panel)


def main(spec: WorkerSpec) -> None:
    """The worker process's entry point; exits with 0 after a clean stop, 3 on a startup failure."""
    # Ctrl-C and a closed terminal's hangup reach the whole process group: the supervisor
    # decides what they mean. A handler that does nothing, not SIG_IGN: an ignored signal
    # would stay ignored in every program the app runs.
    signal.signal(signal.SIGINT, _not_ours)
    signal.signal(signal.SIGHUP, _not_ours)
    if spec.output is not None:
        _redirect_output(spec.output)
    faulthandler.enable()  # SIGABRT from the heartbeat monitor logs every thread's stack
    devserve_logging.configure(spec.config)
    _raise_fd_limit(spec.config.limit_connections)
    if spec.reloading:
        # A save in the same second as the last compile, with the same size, looks unchanged
        # to a .pyc: with none written, every generation compiles the code as it is now.
        sys.dont_write_bytecode = True
    link = spec.channel
    link.setblocking(True)
    channel.send_blocking(link, channel.Booting(os.getpid()))
    server = _boot(spec)
    if server is None:
        sys.exit(EXIT_STARTUP)
    link.setblocking(False)
    sys.exit(run_loop(_serve(server, link, spec.forward_logs), spec.config.loop))


def _raise_fd_limit(connections: int) -> None:
    """Take as many file descriptors as the hard limit allows (systemd's soft limit is 1024,
    below --limit-connections' default), and say so when even that is too few: past it,
    accept() fails and new clients are reset instead of waiting for a free connection."""
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = connections + FD_RESERVE
        if soft != resource.RLIM_INFINITY and soft < wanted:
            target = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if (usable := fd_connections(connections)) < connections:
        logging.getLogger("devserve.server").warning(
            "--limit-connections %d is more than this worker's file descriptors allow: using %d "
            "(raise the hard limit, e.g. LimitNOFILE= in a systemd unit)",
            connections,
            usable,
        )


def _not_ours(signum: int, frame: object) -> None:
    """SIGINT and SIGHUP in a worker: the supervisor got them too, and acts for all."""


def _boot(spec: WorkerSpec) -> Server | None:
    """Import the app; on failure tell the supervisor why and return None."""
    config = spec.config
    try:
        if config.env_file:
            load_env_file(config.env_file)
        app = load_app(
            config.app,
            factory=config.factory,
            interface=config.interface,
            app_dir=config.app_dir,
            threads=config.threads,
            wsgi_queue=config.wsgi_queue,
        )
        tls = tls_context(config)
    except AppLoadError as exc:
        failure = channel.Failed(str(exc), exc.details, exc.file, exc.line)
    except BindError as exc:
        failure = channel.Failed(str(exc))
    except Exception as exc:  # the env file or something else nobody foresaw: still report it
        failure = _failure(f"{type(exc).__name__}: {exc}", exc)
    else:
        return Server(config, app, spec.listeners, tls, hold=True)  # accepts on Serve
    channel.send_blocking(spec.channel, failure)
    return None


async def _serve(server: Server, link: socket.socket, forward_logs: bool) -> int:
    """Report Ready once started up, serve (from `Serve`) until told to stop; the exit status."""
    # No eager task factory here (3.12+): measured under wrk (hello world, one worker, uvloop),
    # it served 0.79x the requests on Python 3.12 and 0.99x on 3.13.
    loop = asyncio.get_running_loop()
    supervisor = await channel.open_channel(
        link,
        on_message=lambda message: _obey(server, message),
        on_lost=lambda: server.request_stop(),  # the supervisor is gone: do not serve orphaned
    )
    loop.add_signal_handler(signal.SIGTERM, server.request_stop)
    loop.add_signal_handler(signal.SIGQUIT, server.request_stop, True)
    loop.add_signal_handler(signal.SIGUSR1, devserve_logging.reopen_files)
    serving = asyncio.ensure_future(server.serve())
    prepared = asyncio.ensure_future(server.prepared.wait())
    await asyncio.wait({serving, prepared}, return_when=asyncio.FIRST_COMPLETED)
    if not prepared.done():
        prepared.cancel()
        return _startup_failed(supervisor, serving)
    supervisor.send(channel.Ready(os.getpid()))
    # from here on: the app and its lifespan have set up their logging by now
    forwarding = log_forwarding.install(supervisor.send) if forward_logs else None
    heartbeat = Heartbeat(server, supervisor)
    beating = asyncio.ensure_future(heartbeat.run())
    drained = asyncio.ensure_future(server.drained.wait())
    drained.add_done_callback(
        lambda done: None if done.cancelled() else supervisor.send(channel.Drained())
    )
    try:
        await serving
    finally:
        drained.cancel()
        if forwarding is not None:
            log_forwarding.uninstall(forwarding)
        beating.cancel()
        heartbeat.send()  # the requests finished while draining count too
        supervisor.send(channel.Stopping("stopped"))
        supervisor.close()
    return 0


def _startup_failed(supervisor: channel.ChannelProtocol, serving: asyncio.Future[None]) -> int:
    exc = serving.exception()
    if isinstance(exc, LifespanFailed):  # the app's own exception, if it raised one, is the cause
        supervisor.send(_failure(f"lifespan startup failed: {exc}", exc.__cause__))
    elif exc is not None:
        supervisor.send(_failure(f"{type(exc).__name__}: {exc}", exc))
    supervisor.close()
    return EXIT_STARTUP


def _failure(message: str, exc: BaseException | None) -> channel.Failed:
    if exc is None:
        return channel.Failed(message)
    return channel.Failed(message, tracebacks.format(exc), *tracebacks.location(exc))


def _obey(server: Server, message: channel.Message) -> None:
    if isinstance(message, channel.Serve):
        server.accept()
    elif isinstance(message, channel.Drain):
        server.request_stop(keep_idle=message.keep_idle)
    elif isinstance(message, channel.Stop):
        server.request_stop(force=True)
    elif isinstance(message, channel.ReopenLogs):
        devserve_logging.reopen_files()
    elif isinstance(message, channel.StartTrace):
        server.state.tracer.enable(message.requests)
    elif isinstance(message, channel.StopTrace):
        server.state.tracer.disable()


class Heartbeat:
    """The stats tick doubles as the heartbeat: a blocked loop stops both."""

    def __init__(self, server: Server, supervisor: channel.ChannelProtocol) -> None:
        self.state = server.state
        self.supervisor = supervisor
        self.process = psutil.Process()
        self.loop = asyncio.get_running_loop()
        self.last = self.loop.time()

    async def run(self) -> None:
        while True:
            self.send()
            await asyncio.sleep(HEARTBEAT_INTERVAL)

    def send(self) -> None:
        """One tick: the counters now and what changed since the last one."""
        state = self.state
        now = self.loop.time()
        elapsed, self.last = now - self.last, now
        self.supervisor.send(
            channel.Tick(
                state.requests,
                state.in_flight,
                len(state.connections),
                websockets=state.websockets,
                elapsed=elapsed,
                loop_lag=max(0.0, elapsed - HEARTBEAT_INTERVAL),
                rss=self.process.memory_info().rss,
                cpu_time=time.process_time(),
                stats=state.stats.take() if state.stats is not None else None,
            )
        )


def _redirect_output(sock: socket.socket) -> None:
    """Put `sock` in place of file descriptors 1 and 2, line-buffered, so that every line the
    app, its libraries and devserve write reaches the supervisor as it is written."""
    sock.setblocking(True)
    for fd in (1, 2):
        os.dup2(sock.fileno(), fd)
    sock.close()
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True)


def load_env_file(path: str) -> None:
    """Put the variables of a .env file into this process's environment (the app reads them)."""
    from dotenv import dotenv_values

    for key, value in dotenv_values(path).items():
        if value is not None:
            os.environ[key] = value
