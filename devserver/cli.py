"""`devserve [APP]`: argv, env and config file → Config → a running server; the composition root.

The click options are generated from `devserver.config.Config`, so no option is spelled twice.
Every failure a user can cause prints one readable line (plus the app's traceback when its import
raised) and exits with a documented status, the same for `devserve`, `top` and `ctl`:

    0  done: stopped cleanly, or the command did what it was asked
    1  `top`/`ctl`: the server refused, or none answers on the control socket; else a bug
    2  a bad command line or configuration: what devserve was told cannot be used as given
       (an unknown flag or command, a bad value from argv, env or a config file, a malformed
       APP, a file a flag names that cannot be read or used), found before anything starts
    3  devserve could not start: the app (import, factory, lifespan startup), or an address or
       control socket it cannot bind (the message names the flag that asked for it)
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import quote

import click
from rich_click import (
    RichArgument,
    RichCommand,
    RichGroup,
    RichHelpConfiguration,
    RichOption,
    RichOptionPanel,
)

from devserver import __version__
from devserver.config import (
    FIELDS,
    GROUPS,
    OPTIONS,
    Config,
    ConfigError,
    Resolved,
    cli_flag,
    env_var,
    find_config_file,
    load_config,
    metavar,
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


def fail(message: str, status: int, details: str = "", who: str = "devserve") -> NoReturn:
    if details:
        sys.stderr.write(details if details.endswith("\n") else details + "\n")
    click.echo(f"{who}: error: {message}", err=True)
    sys.exit(status)


# --------------------------------------------------------------------------- click, derived
def _click_option(name: str) -> Callable[[Any], Any]:
    spec = OPTIONS[name]
    flag = cli_flag(name)
    shown: dict[str, Any] = {"help": _help_text(name), "cls": RichOption, "panel": spec.group}
    if spec.switch:
        decls = [f"{flag}/--no-{flag[2:]}"] if spec.negatable else [flag]
        return click.option(*decls, name, default=None, is_flag=True, **shown)
    shown_as = metavar(name)
    if spec.bare is not None:  # --flag alone takes the bare value
        return click.option(
            flag, name, default=None, is_flag=False, flag_value=spec.bare, metavar=shown_as, **shown
        )
    return click.option(flag, name, default=None, multiple=spec.multiple, metavar=shown_as, **shown)


def _help_text(name: str) -> str:
    """The option's help, its choices, its default (and --prod's) when it says something, and
    its env var."""
    spec = OPTIONS[name]
    facts = []
    said = spec.help.lower()  # a default the help text explains already is not repeated
    if "default" in said:
        pass
    elif spec.prod is not dataclasses.MISSING and "with --prod" not in said:
        facts.append(f"default: {_shown(spec.default, 'auto')}, {_shown(spec.prod)} with --prod")
    elif spec.default not in (None, "", (), False) and not spec.multiple:
        facts.append(f"default: {_shown(spec.default)}")
    facts.append(f"env: {env_var(name)}")
    listed = spec.choices and metavar(name) != "|".join(spec.choices)  # not in the metavar
    choices = f" One of: {', '.join(spec.choices)}." if listed else ""
    return f"{spec.help}{choices} [{'; '.join(facts)}]"


def _shown(value: Any, none: str = "none") -> str:
    if value is None:
        return none
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _with_config_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options of every Config field but APP, panel by panel in GROUPS' order."""
    names = sorted((n for n in FIELDS if n != "app"), key=lambda n: GROUPS.index(OPTIONS[n].group))
    for name in reversed(names):
        func = _click_option(name)(func)
    return func


class _AppArgument(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.2
    """APP as help shows it (`APP <MODULE:ATTR>`); its form is checked in `main`, whichever of
    the command line, env and config file gave it."""

    name = "module:attr"


HELP_STYLE = RichHelpConfiguration(
    theme="default-slim",
    options_table_column_types=["opt_long_metavar", "opt_short", "help"],  # --port N  -h  help
    options_table_help_sections=["help"],  # whose default and env var _help_text writes
    text_paragraph_linebreaks="\n\n",
    delimiter_slash=" / ",
    max_width=100,  # a wider terminal gets no longer lines: they would not read better
    enable_theme_env_var=False,  # ours to decide, not RICH_CLICK_THEME's
    show_arguments=True,
    commands_before_options=True,
)
INFORMATION = "Information"  # the panel of the options that show something and exit


class _Devserve(RichGroup):
    """`devserve [OPTIONS] [APP]` serves APP; `devserve top` and `devserve ctl` are commands.

    A group for its help page, which lists the commands beside the option panels; `entry` runs
    the commands itself, since APP (an optional positional) and click's command lookup cannot
    share one command line. Their code loads only when run or listed (it costs a few hundred
    milliseconds that serving and `--version` should not pay).
    """

    allow_extra_args = False  # a command's options, not a group's: APP and flags in any order
    allow_interspersed_args = True

    def parse_args(self, context: click.Context, args: list[str]) -> list[str]:
        return click.Command.parse_args(self, context, args)

    def invoke(self, context: click.Context) -> Any:
        return click.Command.invoke(self, context)

    def list_commands(self, context: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, context: click.Context, name: str) -> click.Command | None:
        return COMMANDS[name]() if name in COMMANDS else None

    def collect_usage_pieces(self, context: click.Context) -> list[str]:
        return [*click.Command.collect_usage_pieces(self, context), "| COMMAND ..."]


@click.group(
    cls=_Devserve,
    context_settings={"help_option_names": ["-h", "--help"]},
    invoke_without_command=True,
    # the commands, then a panel per group of options (APP in the first), then the rest
    panels=[
        *(RichOptionPanel(group) for group in GROUPS),
        RichOptionPanel(
            INFORMATION, options=["--print-config", "--print-watch", "--version", "--help"]
        ),
    ],
)
@click.argument(
    "app",
    required=False,
    type=_AppArgument(),
    cls=RichArgument,
    panel="App",
    help="The app: an ASGI or WSGI callable as module:attribute, e.g. main:app.",
)
@_with_config_options
@click.option("--print-config", is_flag=True, help="Show every resolved option and its source.")
@click.option(
    "--print-watch", is_flag=True, help="Show what --reload watches and how many files match."
)
@click.version_option(__version__, "--version", prog_name="devserve")
def main(app: str | None, print_config: bool, print_watch: bool, **options: Any) -> None:
    """Serve APP, an ASGI or WSGI app, with supervised workers, reload on save and a live
    control panel (without APP: the built-in demo app)."""
    given = {name: value for name, value in options.items() if value not in (None, ())}
    if app is not None:
        given["app"] = app
    try:
        resolved = load_config(given)
        _check_app(resolved)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    if print_config:
        show_config(resolved)
        return
    if print_watch:
        show_watch(resolved.config)
        return
    sys.exit(run(resolved.config))


def _check_app(resolved: Resolved) -> None:
    """APP's form, here: a malformed APP is a bad command line (status 2), which the workers,
    the only ones to import it, would report as a failed start."""
    from devserver.app_loader import AppLoadError, split_target  # the app itself is not loaded

    app, source = resolved.config.app, resolved.sources["app"]
    if app in COMMANDS and source == "command line":  # `devserve --control PATH top`
        raise ConfigError(f"{app!r} is a command: it comes first (devserve {app} [OPTIONS])")
    if app is not None:
        try:
            split_target(app)
        except AppLoadError as exc:
            if source == "command line" and app in _ctl().commands:  # `devserve stop`: ctl's
                message = f"{app!r} is not an app (module:attribute): devserve ctl {app}?"
                raise ConfigError(message) from None
            raise ConfigError(f"APP (from {source}): {exc}") from None


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
    from devserver.server import run_loop
    from devserver.supervisor import service

    config = _read_token_file(config)
    _configure_logging(config)
    if config.loop == "uvloop" and not _has_uvloop():
        fail("--loop uvloop: uvloop is not installed on this platform", EXIT_USAGE)
    listeners, admin, dashboard = _bind(config, inherited)
    panel = _panel(config)
    try:
        with _pidfile(config):
            reload = reload_enabled(config, terminal=sys.stdout.isatty())
            if dashboard is not None:
                _show_token(config, *dashboard, panel is not None)
            run_loop(service.serve(config, listeners, admin, reload, panel, dashboard), config.loop)
    except service.StartupError as exc:
        fail(exc.failure.message, EXIT_STARTUP, exc.failure.details)
    if panel is not None:
        _say_stopped()
    return EXIT_OK


@contextlib.contextmanager
def _pidfile(config: Config) -> Iterator[None]:
    """service.pidfile, with a path it cannot write as one line (a flag's file: status 2)."""
    from devserver.supervisor import service  # the server stack: see the top

    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(service.pidfile(config.pidfile))
        except OSError as exc:
            fail(f"--pidfile {config.pidfile}: cannot write it: {exc.strerror or exc}", EXIT_USAGE)
        yield


def _say_stopped() -> None:
    """After the panel: it gave the terminal back as it found it, so the run's last lines (the
    `stopped` among them) went with it. Say how it ended, and where the log is kept, if
    anywhere (a --log-config file)."""
    files = sorted(
        {
            handler.baseFilename
            for name in (
                "",
                "devserve.server",
                "devserve.supervisor",
                "devserve.access",
                "devserve.trace",
            )
            for handler in logging.getLogger(name).handlers
            if isinstance(handler, logging.FileHandler)
        }
    )
    kept = f"; the log is in {', '.join(files)}" if files else ""
    click.echo(f"devserve: stopped{kept}", err=True)


def _configure_logging(config: Config) -> None:
    from devserver import logging as devserve_logging  # the server stack: see the top

    try:
        devserve_logging.configure(config)
    except devserve_logging.LogConfigError as exc:  # says what to do in full already
        fail(str(exc), EXIT_USAGE)
    except Exception as exc:  # json/yaml/configparser/dictConfig each raise their own
        fail(f"--log-config {config.log_config}: {type(exc).__name__}: {exc}", EXIT_USAGE)


def _bind(
    config: Config, inherited: list[int]
) -> tuple[list[Listener], Listener | None, tuple[Listener, Access] | None]:
    """The app's listeners, --admin's and the dashboard's. Unusable TLS files are a bad
    configuration (2); an address that cannot be bound is a failed start (3), named by the flag
    that asked for it."""
    from devserver.sockets import BindError, Listener, TLSError, bind, bind_all, tls_context

    try:
        tls_context(config)  # fail here, once, rather than in every worker
    except TLSError as exc:
        fail(str(exc), EXIT_USAGE)
    try:
        listeners = bind_all(config, inherited)
        admin = None
        if config.admin:
            admin = Listener(bind(config.admin, config.backlog, "--admin"), config.admin)
        return listeners, admin, _bind_dashboard(config, listeners, admin)
    except BindError as exc:
        fail(str(exc), EXIT_STARTUP)


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
        sock = bind(address, config.backlog, "--dashboard")
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

    @click.command(cls=RichCommand, context_settings={"help_option_names": ["-h", "--help"]})
    @control_option
    def top(control: str | None) -> None:
        """Open the control panel on a running devserve (a --prod one, say)."""
        from devserver.control.client import ControlClient, ControlError, NotRunning  # as ctl
        from devserver.control.unix import default_path

        path = default_path() if control in (None, "auto") else control
        try:
            ControlClient(path).request("status")  # a clear line now, not a panel that waits
        except NotRunning as exc:  # as `devserve ctl` says it, with the same status
            hint = "is devserve running?"
            if control in (None, "auto"):
                hint += " else pass --control PATH"
            fail(f"{exc} ({hint})", EXIT_ERROR, who="devserve top")
        except ControlError as exc:  # another user's socket, or a server that broke off
            fail(str(exc), EXIT_ERROR, who="devserve top")
        # here only (import-linter allows cli.py this one lazy import): the server never
        # imports the UI
        import dashboard.tui

        dashboard.tui.run(path)
        # the panel's screen is gone: say what became of the server it showed
        try:
            ControlClient(path).request("status")
            click.echo(f"devserve top: left; devserve still serves (control: {path})", err=True)
        except ControlError:
            click.echo("devserve top: left; devserve has stopped", err=True)

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


def _ctl() -> click.Group:
    from devserver.ctl import ctl  # the control client: see _top

    return ctl


# `devserve NAME ...`: each made when run or listed
COMMANDS: dict[str, Callable[[], click.Command]] = {"top": _top, "ctl": _ctl}


def entry(argv: Sequence[str] | None = None) -> None:
    """`devserve` and `python -m devserver`: serve, or run the command named first."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] and args[0] in COMMANDS:
        name = f"devserve {args[0]}"
        sys.exit(_run(COMMANDS[args[0]](), args[1:], name))
    sys.exit(_run(main, args, "devserve"))


def _run(command: click.Command, args: list[str], name: str) -> int:
    """Run `command`; a usage error is one line (not click's usage block) and status 2."""
    try:
        status = command.main(
            args=args, prog_name=name, standalone_mode=False, rich_help_config=HELP_STYLE
        )
    except click.Abort:  # Ctrl-C at a prompt
        return EXIT_ERROR
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else name  # `devserve ctl scale`: its own help
        fail(f"{exc.format_message()} (see {where} --help)", EXIT_USAGE, who=name)
    # what click returns without standalone mode: an exit status (--help, --version), or
    # the command's own value
    return status if isinstance(status, int) else EXIT_OK
