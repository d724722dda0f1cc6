"""The supervisor process from start to exit: listeners in, workers up, control surfaces, cleanup.

`serve(config)` binds nothing and imports no app: the CLI has bound the listeners and started the
fork server. Around the Supervisor it runs the control socket, the admin endpoint (--admin),
the pidfile and systemd notifications, and it tears them down in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from devserver import systemd
from devserver.channel import Failed
from devserver.config import Config, find_config_file, worker_count
from devserver.control import prometheus
from devserver.control.access import Access
from devserver.control.hub import Hub
from devserver.control.local import LocalClient
from devserver.control.unix import ControlServer, ControlSocketError, resolve_path
from devserver.control.web import Dashboard, admin_app
from devserver.logging import configure as configure_logging
from devserver.logging import logs_to_events
from devserver.server import Server
from devserver.sockets import Listener, tls_context
from devserver.supervisor import signals
from devserver.supervisor.errors import CommandError
from devserver.supervisor.reload import Reloader, WatchSet
from devserver.supervisor.supervisor import Supervisor

logger = logging.getLogger("devserve.supervisor")

# the in-process control panel: given a control client (control/local.py), runs until the user
# quits or the client's stream ends
Panel = Callable[[Any], Awaitable[None]]
PANEL_CLOSE_SECONDS = 3.0
ADMIN_GRACE = 1.0  # seconds a health check or dashboard call may take to finish at the end


class StartupError(Exception):
    """devserve could not start; `failure` has the one-line reason and the traceback, if any."""

    def __init__(self, failure: Failed) -> None:
        super().__init__(failure.message)
        self.failure = failure


async def serve(
    config: Config,
    listeners: list[Listener],
    admin: Listener | None = None,
    reload: bool = False,
    panel: Panel | None = None,
    dashboard: tuple[Listener, Access] | None = None,
) -> None:
    """Supervise until stopped. Raises StartupError when the first workers cannot start (with
    `reload` they can: devserve then shows the failure and waits for a change).

    With `panel` (the in-process control panel, which owns the terminal), devserve's logs and
    the workers' output become `log` events, and the panel runs beside the supervisor: quitting
    it stops the server, and the server stopping closes it. `dashboard` is the web dashboard's
    listener and who may use it (it may be `admin` itself: then one server has both).
    """
    hub = Hub()
    supervisor = Supervisor(
        config,
        listeners,
        worker_count(config),
        publish=hub.publish,
        notify=systemd.notify,
        reloading=reload,
        capture_output=panel is not None,
    )
    hub.attach(supervisor)
    supervisor.watch.watchdog = systemd.watchdog_interval()
    supervisor.install_signal_handlers()
    control = await _start_control(config, hub)
    admin_servers = _start_admin(config, admin, dashboard, supervisor, hub)
    if dashboard is not None and panel is None:
        # the page's events pane shows devserve's own lines; the workers' output is captured
        # only for the in-process panel (capturing it here would route every access-log line
        # through this process): without it, workers send their warnings and errors
        # (log_forwarding.py)
        logs_to_events(hub.publish, also_terminal=True)
    reloader = _start_reloader(config, supervisor) if reload else None
    client = LocalClient(hub) if panel is not None else None
    panel_task = _start_panel(panel, client, supervisor) if panel and client else None
    try:
        if not await supervisor.run():
            raise StartupError(supervisor.startup_failure or Failed("the workers did not start"))
    finally:
        if reloader is not None:
            reloader.close()
        await _stop_admin(admin_servers)
        if control is not None:
            await control.close()
        # last: with its terminal gone, the panel may never close and a timer ends the process
        if panel_task is not None and client is not None:
            client.close()
            await _close_panel(panel_task)


def _start_panel(panel: Panel, client: LocalClient, supervisor: Supervisor) -> asyncio.Task[None]:
    logs_to_events(client.hub.publish)
    signals.hangup_stops(supervisor)

    async def run() -> None:
        try:
            await panel(client)
        finally:
            client.close()
            configure_logging(supervisor.config)  # the terminal is back: log there again
            if not supervisor.stopping:
                supervisor.stop()

    task = asyncio.get_running_loop().create_task(run(), name="the control panel")
    task.add_done_callback(_log_failure)
    return task


async def _close_panel(task: asyncio.Task[None]) -> None:
    """The server stopped: the panel's stream ends and it closes; a panel that does not is
    cancelled after a moment, so the terminal is given back either way.

    When the terminal is gone (its window closed), Textual's shutdown can block this thread
    for good on output nobody reads; the server has stopped by then, so a timer ends the
    process instead of leaving it behind.
    """
    stuck = threading.Timer(PANEL_CLOSE_SECONDS * 3, os._exit, args=(1,))
    stuck.daemon = True
    stuck.start()
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        await asyncio.wait_for(asyncio.shield(task), PANEL_CLOSE_SECONDS)
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _start_reloader(config: Config, supervisor: Supervisor) -> Reloader:
    found = find_config_file(Path.cwd())  # the file load_config read, if any
    watch_set = WatchSet.from_config(config, str(found[0]) if found else None)

    def changed(paths: list[str], seen_at: float) -> None:
        with contextlib.suppress(CommandError):  # stopping: nothing to reload
            supervisor.reload(paths, seen_at)

    reloader = Reloader(watch_set, config.reload_delay, changed)
    task = asyncio.get_running_loop().create_task(reloader.run(), name="the file watcher")
    task.add_done_callback(_log_failure)
    return reloader


async def _start_control(config: Config, hub: Hub) -> ControlServer | None:
    path = resolve_path(config.control)
    if path is None:
        return None
    control = ControlServer(hub, path)
    try:
        await control.start()
    except ControlSocketError as exc:
        if config.control != "auto":
            raise StartupError(Failed(str(exc))) from None
        logger.warning("%s; running without one (pass --control PATH)", exc)
        return None
    logger.debug("control socket: %s", path)
    return control


def _start_admin(
    config: Config,
    admin: Listener | None,
    dashboard: tuple[Listener, Access] | None,
    supervisor: Supervisor,
    hub: Hub,
) -> dict[Server, asyncio.Task[None]]:
    """The admin endpoint and the web dashboard: one server each, or one for both when they
    share an address."""

    def status() -> dict[str, Any]:
        ready = sum(1 for w in supervisor.workers.values() if w.serving)
        return {
            "ready": supervisor.ready,
            "workers_ready": ready,
            "crash_loop": supervisor.crash_loop,
        }

    def metrics(accept: str) -> tuple[bytes, str]:
        return prometheus.render(supervisor, accept)

    settings = dataclasses.replace(
        config,
        lifespan="off",
        access_log=False,
        limit_concurrency=None,
        header=(),
        metrics=False,
        trace=False,
        root_path="",
        proxy_headers=False,
        ws="websockets",
        timeout_graceful_shutdown=ADMIN_GRACE,
    )
    servers: dict[Server, asyncio.Task[None]] = {}

    def start(listener: Listener, pages: Dashboard | None, name: str, tls: bool = False) -> None:
        app = admin_app(status, metrics, pages)
        context = tls_context(config) if tls else None
        server = Server(settings, app, [listener], context, quiet=True)
        task = asyncio.get_running_loop().create_task(server.serve(), name=name)
        task.add_done_callback(_log_failure)
        servers[server] = task

    if dashboard is not None:
        listener, access = dashboard
        # with the app's certificate when it has one: the token must not cross a network bare
        start(listener, Dashboard(hub, access), "the web dashboard", tls=access.secure)
        url = listener.url(access.secure) + "/"
        token = quote(access.token, safe="")
        supervisor.dashboard_url = f"{url}?token={token}" if access.token else url
        # a token the user gave, or any in --prod (where logs go to collectors), is not logged:
        # `devserve ctl status` shows the full URL to the socket's owner
        secret = config.dashboard_token is not None or (config.prod and config.control != "off")
        # where the reader finds the token: the control socket, when there is one
        where = "devserve ctl status" if config.control != "off" else "the one you gave"
        shown = f"{url} (its token: {where})" if secret and access.token else url
        if not secret:
            shown = supervisor.dashboard_url
        read_only = " (read-only)" if access.read_only else ""
        supervisor.also_serving.append(f"dashboard{read_only}: {shown}")
    if admin is not None:
        if dashboard is None or admin is not dashboard[0]:
            start(admin, None, "the admin endpoint")
        tls = dashboard is not None and admin is dashboard[0] and dashboard[1].secure
        logger.info("health endpoints on %s/livez and /readyz, metrics on /metrics", admin.url(tls))
    return servers


async def _stop_admin(servers: dict[Server, asyncio.Task[None]]) -> None:
    """Stop gracefully: open dashboard pages get a WebSocket close (1012, restarting), so they
    know to reconnect, rather than a cut connection."""
    for server in servers:
        server.request_stop()
    if servers:
        _done, late = await asyncio.wait(servers.values(), timeout=ADMIN_GRACE * 2)
        for server, task in servers.items():
            if task in late:  # a client that does not close: cut it
                server.request_stop(force=True)
        if late:
            await asyncio.wait(late, timeout=ADMIN_GRACE)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("%s failed: %s", task.get_name(), task.exception())


@contextlib.contextmanager
def pidfile(path: str | None) -> Any:
    """Write our pid to `path` for the run's duration (removed on exit, if still ours)."""
    if path is None:
        yield
        return
    with open(path, "w", encoding="ascii") as file:
        file.write(f"{os.getpid()}\n")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            with open(path, encoding="ascii") as file:
                mine = file.read().strip() == str(os.getpid())
            if mine:
                os.unlink(path)
