"""`devserve ctl`: operate a running devserve through its control socket, from a shell.

    devserve ctl status            workers and totals as a table (--json: the raw snapshot)
    devserve ctl scale N|+N|-N     set the number of workers
    devserve ctl restart           rolling restart
    devserve ctl reload            rolling restart for new code (replaces one still booting)
    devserve ctl kill PID          kill one worker (it is replaced)
    devserve ctl stop [--fast]     graceful stop (--fast: close connections now)
    devserve ctl trace [-n N] [--pid PID]   log the ASGI messages of the next N requests
    devserve ctl trace-off [--pid PID]      stop tracing

Every command takes --control PATH and --json before or after its name. Exit status 0 when the
server did it, 1 when it refused, nobody listens, or the control socket belongs to another user
(one line on stderr: `devserve ctl` talks only to its own user's devserve, as ssh only to its
own agent), 2 for a command line it cannot use (devserver/cli.py states the rule).
This module only formats; the conversation is control/client.py's.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any, Literal, NoReturn, Unpack, overload

import click
from rich_click import RichArgument, RichGroup

from devserver.control import schema
from devserver.control.client import ControlClient, ControlError, NotRunning
from devserver.control.unix import default_path

EXIT_REFUSED = 1  # the server refused, or none answers
EXIT_USAGE = 2  # the command line is wrong


def _fail(message: str) -> NoReturn:
    click.echo(f"devserve ctl: error: {message}", err=True)
    sys.exit(EXIT_REFUSED)


# each command's result, as the control API documents it (schema.CommandResult)
@overload
def _call(control: str | None, command: Literal["status"]) -> schema.Snapshot: ...
@overload
def _call(
    control: str | None, command: Literal["scale"], *, workers: str
) -> schema.ScaleResult: ...
@overload
def _call(control: str | None, command: Literal["restart"]) -> schema.RestartResult: ...
@overload
def _call(control: str | None, command: Literal["reload"]) -> schema.ReloadResult: ...
@overload
def _call(control: str | None, command: Literal["kill"], *, pid: int) -> schema.KillResult: ...
@overload
def _call(control: str | None, command: Literal["stop"], *, fast: bool) -> schema.StopResult: ...
@overload
def _call(control: str | None, command: Literal["reopen-logs"]) -> schema.ReopenResult: ...
@overload
def _call(
    control: str | None, command: Literal["trace"], **args: Unpack[schema.Arguments]
) -> schema.TraceResult: ...
@overload
def _call(
    control: str | None, command: Literal["trace-off"], **args: Unpack[schema.Arguments]
) -> schema.TraceOffResult: ...
def _call(
    control: str | None, command: str, **args: Unpack[schema.Arguments]
) -> schema.CommandResult:
    path = default_path() if control in (None, "auto") else control
    try:
        return ControlClient(path).request(command, **args)
    except NotRunning:
        _fail(f"no devserve is listening on {path} (is it running? else pass --control PATH)")
    except ControlError as exc:
        _fail(str(exc))


class _Group(RichGroup):
    def add_command(self, cmd: click.Command, *args: Any, **kwargs: Any) -> None:
        # the group's own options work after the command too: `devserve ctl status --json
        # --control PATH` as well as `devserve ctl --json --control PATH status`
        cmd.params += _after_the_command()
        super().add_command(cmd, *args, **kwargs)

    def parse_args(self, context: click.Context, args: list[str]) -> list[str]:
        if not args:  # `devserve ctl` alone: what it can do (a command is missing: status 2)
            click.echo(context.get_help(), err=True)
            context.exit(EXIT_USAGE)
        return super().parse_args(context, args)


CONTROL_HELP = "Control socket of the server [default: the one for this directory]."
JSON_HELP = "Print the server's answer as JSON."


def _after_the_command() -> list[click.Option]:
    """--control and --json for a subcommand: given there, they override the group's."""

    def given(key: str) -> Callable[[click.Context, click.Parameter, Any], None]:
        def keep(context: click.Context, _: click.Parameter, value: Any) -> None:
            if value:
                context.obj[key] = value

        return keep

    return [
        click.Option(
            ["--control"], metavar="PATH", expose_value=False, callback=given("control"),
            help=CONTROL_HELP,
        ),
        click.Option(
            ["--json"], is_flag=True, expose_value=False, callback=given("json"), help=JSON_HELP
        ),
    ]  # fmt: skip


# `devserve ctl` and `devserve top` find the server the same way
control_option = click.option(
    "--control", metavar="PATH", envvar="DEVSERVE_CONTROL", help=CONTROL_HELP
)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@control_option
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_context
def ctl(context: click.Context, control: str | None, as_json: bool) -> None:
    """Operate a running devserve through its control socket."""
    context.obj = {"control": control, "json": as_json}


def _done(context: click.Context, result: Mapping[str, Any], text: str) -> None:
    click.echo(json.dumps(result, indent=2) if context.obj["json"] else text)


@ctl.command()
@click.pass_context
def status(context: click.Context) -> None:
    """Show the server, its workers and totals."""
    snapshot = _call(context.obj["control"], "status")
    _done(context, snapshot, format_status(snapshot))


@ctl.command(context_settings={"ignore_unknown_options": True})  # -1 is a number, not an option
@click.argument("workers", cls=RichArgument, help="N, +N (more) or -N (fewer): 4, +1, -1.")
@click.pass_context
def scale(context: click.Context, workers: str) -> None:
    """Set the number of workers: N, +N or -N."""
    if not re.fullmatch(r"[+-]?[0-9]+", workers):  # an unknown option lands here too
        raise click.BadParameter(f"{workers!r} is not N, +N or -N", param_hint="WORKERS")
    result = _call(context.obj["control"], "scale", workers=workers)
    _done(context, result, f"scaling to {result['target']} worker(s)")


@ctl.command()
@click.pass_context
def restart(context: click.Context) -> None:
    """Rolling restart: a new generation serves before the old one drains."""
    _roll(context, "restart", "restart queued after the one running")


@ctl.command()
@click.pass_context
def reload(context: click.Context) -> None:
    """Roll in new code now, as a file change would (a generation still booting is replaced)."""
    _roll(context, "reload", "reload queued after the first boot")


def _roll(context: click.Context, command: Literal["restart", "reload"], when_queued: str) -> None:
    """restart and reload: started ('restarting', 'reloading') or queued."""
    result = _call(context.obj["control"], command)
    queued = "queued" in result.values()  # {"restart": "queued"} or {"reload": "queued"}
    _done(context, result, when_queued if queued else f"{command}ing")


@ctl.command()
@click.argument("pid", type=int, cls=RichArgument, help="The worker's pid (see ctl status).")
@click.pass_context
def kill(context: click.Context, pid: int) -> None:
    """Kill one worker (SIGKILL); the supervisor replaces it."""
    result = _call(context.obj["control"], "kill", pid=pid)
    _done(context, result, f"killed worker {pid}")


@ctl.command()
@click.option("--fast", is_flag=True, help="Close connections now instead of draining.")
@click.pass_context
def stop(context: click.Context, fast: bool) -> None:
    """Stop the server (graceful unless --fast)."""
    result = _call(context.obj["control"], "stop", fast=fast)
    _done(context, result, f"stopping ({result['stopping']})")


@ctl.command("reopen-logs")
@click.pass_context
def reopen_logs(context: click.Context) -> None:
    """Reopen log files in the supervisor and every worker (after logrotate moved them)."""
    result = _call(context.obj["control"], "reopen-logs")
    _done(context, result, "log files reopened")


@ctl.command()
@click.option("-n", "--requests", type=click.IntRange(min=1), help="Trace this many requests.")
@click.option("--pid", type=int, help="Only this worker.")
@click.pass_context
def trace(context: click.Context, requests: int | None, pid: int | None) -> None:
    """Log the ASGI messages of the next requests in the workers' log (all until trace-off)."""
    args: schema.Arguments = {}
    if requests:
        args["requests"] = requests
    if pid:
        args["pid"] = pid
    result = _call(context.obj["control"], "trace", **args)
    what = f"the next {requests} request(s)" if requests else "every request (until trace-off)"
    _done(context, result, f"tracing {what} in worker(s) {_pids(result['tracing'])}")


@ctl.command("trace-off")
@click.option("--pid", type=int, help="Only this worker.")
@click.pass_context
def trace_off(context: click.Context, pid: int | None) -> None:
    """Stop tracing (this also ends --trace)."""
    args: schema.Arguments = {"pid": pid} if pid else {}
    result = _call(context.obj["control"], "trace-off", **args)
    _done(context, result, f"tracing stopped in worker(s) {_pids(result['stopped'])}")


def _pids(pids: list[int]) -> str:
    return ", ".join(map(str, pids)) or "none"


# --------------------------------------------------------------------------- formatting
_COLUMNS = [
    "SLOT",
    "PID",
    "GEN",
    "STATE",
    "UPTIME",
    "REQUESTS",
    "REQ/S",
    "P50",
    "P99",
    "IN-FLIGHT",
    "CONN",
    "RSS",
    "CPU%",
    "RESTARTS",
]


def format_status(snapshot: schema.Snapshot) -> str:
    """The snapshot as a header and a fixed-width table, like `ps`."""
    server, totals = snapshot["server"], snapshot["totals"]
    lines = [
        f"devserve pid {server['pid']}  {server['app']}  {server['mode']}  {server['state']}  "
        f"generation {server['generation']}  uptime {duration(server['uptime'])}",
        f"workers {totals['workers_ready']}/{server['workers_target']} ready "
        f"(started with {server['workers_configured']})  requests {totals['requests']}  "
        f"in flight {totals['in_flight']}  connections {totals['connections']}  "
        f"RSS {mebibytes(totals['rss'])}  CPU {totals['cpu_percent']:.1f}%  "
        f"restarts {totals['restarts']}",
        _latest(totals),
    ]
    if server.get("dashboard"):  # with its token: the control socket is its owner's alone
        lines.append(f"dashboard {server['dashboard']}")
    if server.get("crash_loop"):
        lines.append(
            "CRASH LOOP: workers keep dying; respawning with a backoff, /readyz failing "
            "(ctl restart or scale retries at once)"
        )
    failure = server.get("failure")
    if failure:
        where = f" ({failure['file']}, line {failure['line']})" if failure.get("file") else ""
        lines.append(f"generation {failure['generation']} failed: {failure['message']}{where}")
    rows = [
        (
            w["slot"],
            w["pid"],
            w["generation"],
            w["state"] + (" (recycling)" if w.get("retiring") else ""),
            duration(w["uptime"]),
            w["requests"],
            *_window_cells(w),
            w["in_flight"],
            w["connections"],
            mebibytes(w["rss"]),
            f"{w['cpu_percent']:.1f}",
            w["restarts"],
        )
        for w in snapshot["workers"]
    ]
    table = [_COLUMNS, *[[str(cell) for cell in row] for row in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(_COLUMNS))]
    lines.append("")
    lines += [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in table
    ]
    return "\n".join(lines)


def _window_cells(numbers: schema.Worker | schema.Totals) -> tuple[str, str, str]:
    """req/s, p50 and p99 of the last 10 seconds."""
    window = numbers.get("windows", {}).get("10s", {})
    return (
        f"{window.get('rps', 0):.1f}",
        milliseconds(window.get("p50")),
        milliseconds(window.get("p99")),
    )


def _latest(totals: schema.Totals) -> str:
    window = totals.get("windows", {}).get("10s", {})
    rps, p50, p99 = _window_cells(totals)
    return (
        f"last 10s: {rps} req/s  p50 {p50}  p99 {p99}  5xx {100 * window.get('error_rate', 0):.1f}%"
    )


def milliseconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}ms" if value >= 100 else f"{value:.1f}ms"


def duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def mebibytes(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MiB"
