"""`devserve [APP]`: argv, env and config file → Config → a running server; the composition root.

The click options are generated from `devserver.config.Config`, so no option is spelled twice.
Every failure a user can cause prints one readable line (plus the app's traceback when its import
raised) and exits with a documented status:

    0  stopped cleanly          2  bad command line or config value
    1  unexpected error         3  startup failed: app not importable, bind failed, lifespan failed
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import quote

import click

from devserver import __version__
from devserver.config import (
    FIELDS,
    OPTIONS,
    Config,
    ConfigError,
    Resolved,
    cli_flag,
    env_var,
    find_config_file,
    load_config,
    reload_enabled,
)

if TYPE_CHECKING:
    from devserver.control.access import Access
    from devserver.sockets import Listener
    from devserver.supervisor import service

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_STARTUP = 3

# Imports inside functions below: the server stack (asyncio, the supervisor, watchfiles...) costs
# about a second, which `devserve --help`, `--version`, `ctl` and `top` should not pay for.


def fail(message: str, status: int, details: str = "") -> NoReturn:
    if details:
        sys.stderr.write(details if details.endswith("\n") else details + "\n")
    click.echo(f"devserve: error: {message}", err=True)
    sys.exit(status)


# --------------------------------------------------------------------------- click, derived
def _click_option(name: str) -> Callable[[Any], Any]:
    spec = OPTIONS[name]
    flag = cli_flag(name)
    help_text = _help_text(name)
    if spec.switch:
        decls = [f"{flag}/--no-{flag[2:]}"] if spec.negatable else [flag]
        return click.option(*decls, name, default=None, is_flag=True, help=help_text)
    metavar = spec.metavar or name.upper()
    if spec.bare is not None:  # --flag alone takes the bare value
        return click.option(
            flag,
            name,
            default=None,
            is_flag=False,
            flag_value=spec.bare,
            metavar=metavar,
            help=help_text,
        )
    return click.option(
        flag, name, default=None, multiple=spec.multiple, metavar=metavar, help=help_text
    )


def _help_text(name: str) -> str:
    """The option's help, its choices, its defaults (with --prod's) and its env var."""
    spec = OPTIONS[name]
    default = spec.default
    if spec.prod is not dataclasses.MISSING:
        shown = f"{'auto' if default is None else default}; {spec.prod} with --prod"
    elif spec.multiple:
        shown = "none"
    else:
        shown = "none" if default is None else str(default)
    choices = f" One of: {', '.join(spec.choices)}." if spec.choices else ""
    return f"{spec.help}{choices} [default: {shown}; env: {env_var(name)}]"


def _with_config_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for name in reversed([n for n in FIELDS if n != "app"]):
        func = _click_option(name)(func)
    return func


class _Command(click.Command):
    def main(self, *args: Any, **kwargs: Any) -> Any:  # one line for usage errors, not three
        try:
            kwargs["standalone_mode"] = False
            return super().main(*args, **kwargs)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.Abort:
            sys.exit(EXIT_ERROR)
        except click.UsageError as exc:
            fail(f"{exc.format_message()} (see devserve --help)", EXIT_USAGE)


@click.command(
    cls=_Command, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.argument("app", required=False)
@_with_config_options
@click.option("--print-config", is_flag=True, help="Show every resolved option and its source.")
@click.option(
    "--print-watch", is_flag=True, help="Show what --reload watches and how many files match."
)
@click.version_option(__version__, "--version", prog_name="devserve")
def main(app: str | None, print_config: bool, print_watch: bool, **options: Any) -> None:
    """Serve APP (module:attr, ASGI) over HTTP/1.1. Without APP: the built-in demo app.

    A supervisor keeps --workers processes serving. To operate a running server (status, scale,
    restart, kill, stop) see `devserve ctl --help`.
    """
    given = {name: value for name, value in options.items() if value not in (None, ())}
    if app is not None:
        given["app"] = app
    try:
        resolved = load_config(given)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    if print_config:
        show_config(resolved)
        return
    if print_watch:
        show_watch(resolved.config)
        return
    sys.exit(run(resolved.config))


def show_config(resolved: Resolved) -> None:
    width = max(len(name) for name in FIELDS)
    for name in FIELDS:
        value = getattr(resolved.config, name)
        if name in ("ssl_keyfile_password", "dashboard_token") and value:
            value = "********"
        click.echo(f"{name.ljust(width)}  {value!r:<30}  {resolved.sources[name]}")


def show_watch(config: Config) -> None:
    from devserver.supervisor.reload import HUGE, WatchSet  # watchfiles: see the top

    found = find_config_file(Path.cwd())
    watch_set = WatchSet.from_config(config, str(found[0]) if found else None)
    directories = watch_set.directories()
    files = watch_set.matching_files()
    state = "on" if reload_enabled(config, terminal=sys.stdout.isatty()) else "off"
    click.echo(f"reload     {state} (--reload / --no-reload)")
    for root in watch_set.roots:
        click.echo(f"root       {root}")
    for path in sorted(watch_set.files):
        click.echo(f"file       {path}")
    click.echo(f"include    {' '.join(watch_set.include_patterns)}")
    click.echo(f"exclude    {' '.join(watch_set.exclude_patterns)}")
    click.echo(f"delay      {config.reload_delay:g}s")
    click.echo(f"watching   {len(directories)} directories, {len(files)} matching files")
    if len(directories) > HUGE:
        click.echo("warning    that is a lot: narrow it with --reload-dir or --reload-exclude")


# --------------------------------------------------------------------------- running
def run(config: Config) -> int:
    """Bind, start the fork server, supervise the workers until stopped; returns the exit status."""
    from devserver import systemd  # the server stack: see the top
    from devserver.supervisor import spawn

    inherited = systemd.listen_fds()  # ours alone: no process we start may take them
    systemd.forget_listen_fds()
    spawn.start_fork_server()  # early: it boots in parallel, before this process has any thread
    # the server stack, imported while the fork server boots
    from devserver import logging as devserve_logging
    from devserver.server import run_loop
    from devserver.sockets import BindError, Listener, bind, bind_all, tls_context
    from devserver.supervisor import service

    config = _read_token_file(config)
    try:
        devserve_logging.configure(config)
    except devserve_logging.LogConfigError as exc:  # says what to do in full already
        fail(str(exc), EXIT_USAGE)
    except Exception as exc:  # json/yaml/configparser/dictConfig each raise their own
        fail(f"--log-config {config.log_config}: {type(exc).__name__}: {exc}", EXIT_USAGE)
    if config.loop == "uvloop" and not _has_uvloop():
        fail("--loop uvloop: uvloop is not installed on this platform", EXIT_USAGE)
    try:
        tls_context(config)  # fail here, once, rather than in every worker
        listeners = bind_all(config, inherited)
        admin = None
        if config.admin:
            admin = Listener(bind(config.admin, config.backlog), config.admin)
        dashboard = _bind_dashboard(config, listeners, admin)
    except BindError as exc:
        fail(str(exc), EXIT_STARTUP)
    try:
        with service.pidfile(config.pidfile):
            reload = reload_enabled(config, terminal=sys.stdout.isatty())
            panel = _panel(config)
            if dashboard is not None:
                _show_token(config, *dashboard, panel is not None)
            run_loop(service.serve(config, listeners, admin, reload, panel, dashboard), config.loop)
    except service.StartupError as exc:
        fail(exc.failure.message, EXIT_STARTUP, exc.failure.details)
    return EXIT_OK


def _bind_dashboard(
    config: Config, listeners: list[Listener], admin: Listener | None
) -> tuple[Listener, Access] | None:
    """The web dashboard's listener and access rules, or None when it is off.

    Unless given an address, it goes on 127.0.0.1 at the app's port + 1 (a free port when that
    one is taken: the URL is printed either way); a given address must bind, as the app's must.
    """
    # the server stack: see the top
    from devserver.control.access import Access, AccessError, is_loopback, resolve_token
    from devserver.sockets import BindError, Listener, bind

    setting = config.dashboard
    if setting == "off" or (setting == "auto" and config.prod):
        return None
    if setting in ("auto", "on"):
        port = _app_port(listeners)
        address = f"127.0.0.1:{port + 1 if port and port < 65535 else 0}"
        try:
            sock = bind(address, config.backlog)
        except BindError as exc:
            address = "127.0.0.1:0"
            sock = bind(address, config.backlog)
            click.echo(f"devserve: {exc}; the dashboard takes a free port instead", err=True)
    elif admin is not None and setting == config.admin:
        sock, address = admin.sock, setting  # one server answers both
    else:
        address = setting
        sock = bind(address, config.backlog)
    host, port = sock.getsockname()[:2]
    kept = not address.endswith(":0")  # a port picked per run has no token worth keeping
    try:
        # kept for the next run in dev mode only: a production token ends with its process
        token = resolve_token(config.dashboard_token, host, port if kept else 0, not config.prod)
    except AccessError as exc:
        sock.close()
        fail(str(exc), EXIT_USAGE)
    listener = admin if admin is not None and admin.sock is sock else Listener(sock, address)
    secure = config.ssl_certfile is not None
    return listener, Access(token, config.dashboard_read_only, secure, is_loopback(host))


TOKEN_FILE_LIMIT = 4096  # characters read from --dashboard-token-file


def _read_token_file(config: Config) -> Config:
    """--dashboard-token-file's token as --dashboard-token (which then counts as given: never
    printed). A file keeps the token out of argv, which every local user reads in `ps`."""
    if config.dashboard_token_file is None:
        return config
    name = config.dashboard_token_file
    try:
        with open(name, encoding="utf-8") as file:
            token = file.read(TOKEN_FILE_LIMIT + 1).strip()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"--dashboard-token-file {name}: cannot read it: {exc}", EXIT_USAGE)
    if not token:
        fail(f"--dashboard-token-file {name}: the file is empty", EXIT_USAGE)
    if len(token) > TOKEN_FILE_LIMIT:  # /dev/zero, or the wrong file
        fail(f"--dashboard-token-file {name}: longer than a token can be", EXIT_USAGE)
    return dataclasses.replace(config, dashboard_token=token, dashboard_token_file=None)


def _show_token(config: Config, listener: Listener, access: Access, panel: bool) -> None:
    """Keep the dashboard's token out of every log record, and make sure its owner can get it.

    Log lines reach collectors, files, JSON shippers and the control API's `log` events, so
    they show at most `?token=abcd…`. The whole link goes only where its owner looks: the
    panel's header, `devserve ctl status` (the control socket is the owner's alone), and in dev
    mode the terminal devserve was started from, written there directly (not logged). A token
    that would reach nobody is refused: the dashboard would be locked to everyone.
    """
    if not access.token:
        return
    given = config.dashboard_token is not None
    terminal = not config.prod and not panel and sys.stderr.isatty()
    kept = not config.prod and not listener.address.endswith(":0")  # in a file of the owner's
    if not (given or panel or terminal or kept or config.control != "off"):
        nowhere = (
            "its token would be shown nowhere (no terminal, no panel, no control socket): give "
            "one with --dashboard-token-file or DEVSERVE_DASHBOARD_TOKEN, or leave --control on"
        )
        if config.dashboard != "auto":  # asked for: a dashboard nobody can open is an error
            listener.sock.close()
            fail(f"--dashboard: {nowhere}", EXIT_USAGE)
        click.echo(f"devserve: the dashboard is locked: {nowhere}", err=True)
    from devserver import logging as devserve_logging  # the server stack: see the top

    devserve_logging.redact_records(access.redact)
    if terminal and not given:
        url = listener.url(access.secure) + "/?token=" + quote(access.token, safe="")
        click.echo(f"devserve: dashboard: {url} (this link is for this terminal only)", err=True)


def _app_port(listeners: list[Listener]) -> int:
    """The port the first TCP listener was asked for (0: devserve picked one)."""
    for listener in listeners:
        _host, sep, port = listener.address.rpartition(":")
        if sep and port.isdigit() and not listener.address.startswith(("unix:", "fd://")):
            return int(port) and int(listener.sock.getsockname()[1])
    return 0


def _top() -> click.Command:
    from devserver.ctl import control_option  # ctl brings the control client and asyncio

    @click.command(cls=_Command, context_settings={"help_option_names": ["-h", "--help"]})
    @control_option
    def top(control: str | None) -> None:
        """Open the control panel on a running devserve (a --prod one, say)."""
        from devserver.control.client import ControlClient, ControlError, NotRunning  # as ctl
        from devserver.control.unix import default_path

        path = default_path() if control in (None, "auto") else control
        try:
            ControlClient(path).request("status")  # a clear line now, not a panel that waits
        except NotRunning as exc:
            fail(f"{exc} (is devserve running? else pass --control PATH)", EXIT_USAGE)
        except ControlError as exc:  # another user's socket, or a server that broke off
            fail(str(exc), EXIT_USAGE)
        # here only (import-linter allows cli.py this one lazy import): the server never
        # imports the UI
        import dashboard.tui

        dashboard.tui.run(path)

    return top


def _panel(config: Config) -> service.Panel | None:
    """The in-process control panel, in a terminal in dev mode (not --prod, not --no-tui)."""
    if not config.tui or config.prod or not (sys.stdin.isatty() and sys.stdout.isatty()):
        return None
    # here only (import-linter allows cli.py this one lazy import): the server never imports
    # the UI
    import dashboard.tui

    return dashboard.tui.run_in_process


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401  (an optional dependency: is it installed?)
    except ImportError:
        return False
    return True


def entry(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["ctl"]:
        from devserver import ctl  # only `devserve ctl` needs the control client

        ctl.main(args[1:])
        return
    if args[:1] == ["top"]:
        _top().main(args=args[1:], prog_name="devserve top")
        return
    main.main(args=args, prog_name="devserve")
