"""The panel's pop-up screens: the request inspector, help, and the kill confirmation."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from dashboard.tui import format as fmt
from dashboard.tui.events import is_access_line
from dashboard.tui.keys import TRACE_NEXT

SCOPE_FIELDS = ("type", "protocol", "scheme", "method", "path", "query", "client")
LOGGED_WITHIN = 1.0  # seconds after a request ended that its worker's log of it may arrive


def describe_event(event: dict[str, Any]) -> Text:
    """One line of a traced request's timeline: time, direction, message type, its fields."""
    arrow = "→" if event["call"] == "receive" else "←"
    line = Text(f"+{event['t']:.3f} ms  ", style="dim")
    line.append(f"{event['call']:<7} {arrow} ", style="cyan" if arrow == "→" else "magenta")
    line.append(f"{event['type']:<26}", style="bold")
    for key in event.get("keys", []):
        value = event.get(key)
        if key in ("body", "bytes", "text") and isinstance(value, int):
            shown = fmt.size(value)
        elif key == "headers" and isinstance(value, list):
            shown = str(len(value))
        else:
            shown = str(value)
        line.append(f" {key}={shown}")
    return line


def exception_of(
    record: dict[str, Any], events: Iterable[dict[str, Any]]
) -> tuple[str, str] | None:
    """What the app raised while serving `record`, as (where it comes from, the traceback), or
    None: the record's own `exception`; else, for a 5xx, what its worker logged while the
    request ran. That is one log event with the traceback in `details` where devserve forwards
    a worker's errors (`devserve top`), and the lines the worker wrote, the traceback among
    them, where devserve's own panel captures its output."""
    if record.get("exception"):
        return "", str(record["exception"])
    if record["status"] < 500:
        return None
    said = list(_written_while(record, events))
    logged = [event for event in said if event.get("details")]
    if logged:
        at, line = fmt.clock(logged[0]["t"]), logged[0].get("line")
        return f"logged by worker {record['pid']} at {at}: {line}", str(logged[0]["details"])
    if said:
        text = "\n".join(str(event.get("line")) for event in said)
        return f"worker {record['pid']} wrote this while the request ran", text
    return None


def _written_while(
    record: dict[str, Any], events: Iterable[dict[str, Any]]
) -> Iterator[dict[str, Any]]:
    """The log lines of the record's worker from its start until LOGGED_WITHIN after its end
    (the access log's lines aside)."""
    start = record["start"]
    end = start + record["duration"] / 1000 + LOGGED_WITHIN
    for event in events:
        at = event.get("t")
        if (
            event.get("kind") == "log"
            and event.get("pid") == record["pid"]
            and isinstance(at, int | float)
            and start <= at <= end
            and not is_access_line(event)
        ):
            yield event


def inspect(record: dict[str, Any], events: Iterable[dict[str, Any]] = ()) -> list[Any]:
    """The inspector's content for one request record (rich renderables, top to bottom);
    `events` are where an exception the record does not carry may be found."""
    query = f"?{record['query']}" if record.get("query") else ""
    title = Text()
    title.append(f"{record['method']} {record['path']}{query}", style="bold")
    title.append(" → ")
    title.append(str(record["status"]), style=fmt.status_style(record["status"]))
    title.append(f" in {fmt.millis(record['duration'])} on worker {record['pid']}")
    title.append(f" at {fmt.clock(record['start'])}", style="dim")
    scope = Table.grid(padding=(0, 2))
    scope.add_column(style="dim")
    scope.add_column()
    # Text, never str: a str cell is read as markup, and "[redacted]" would vanish
    for field in SCOPE_FIELDS:
        value = fmt.protocol(record) if field == "protocol" else record.get(field)
        if value not in (None, ""):
            scope.add_row(field, Text(str(value)))
    scope.add_row(
        "bytes", f"in {fmt.size(record['bytes_in'])}, out {fmt.size(record['bytes_out'])}"
    )
    headers = Table.grid(padding=(0, 2))
    headers.add_column(style="cyan")
    headers.add_column()
    for name, value in record.get("headers", []):
        headers.add_row(Text(name), Text(value))
    parts: list[Any] = [title, Text()]
    raised = exception_of(record, events)
    if raised is not None:  # first: it is why a 500 is opened
        where, traceback = raised
        parts.append(Text("exception", style="bold underline"))
        if where:
            parts.append(Text(where, style="dim"))
        parts += [Text(traceback.rstrip(), style="red"), Text()]
    parts += [Text("scope", style="bold underline"), scope, Text()]
    parts += [Text("headers", style="bold underline"), headers, Text()]
    parts.append(Text("ASGI messages", style="bold underline"))
    if record.get("trace"):
        parts += [describe_event(event) for event in record["trace"]]
    else:
        hint = f"not traced: press t to trace the next {TRACE_NEXT} requests of each worker"
        parts.append(Text(f"{hint}, then send this one again", "dim"))
    return parts


class InspectorScreen(ModalScreen[None]):
    """One request: its scope, headers (secrets redacted by the server) and ASGI timeline."""

    BINDINGS = [Binding("escape,q,enter", "dismiss", "close")]

    def __init__(self, record: dict[str, Any], events: Iterable[dict[str, Any]] = ()) -> None:
        super().__init__()
        self.record = record
        self.events = list(events)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="inspector"):
            for part in inspect(self.record, self.events):
                yield Static(part)

    def action_dismiss(self, result: None = None) -> None:  # type: ignore[override]
        self.dismiss(result)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "close")]

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 3))
        table.add_column(style="bold cyan", justify="right")
        table.add_column()
        for key, description in self.keys:
            table.add_row(key, description)
        with VerticalScroll(id="help"):
            yield Static(Text("devserve control panel — keys", style="bold"))
            yield Static(table)
            yield Static(
                Text(
                    "\nThe filter's words must all match. Ctrl+P opens the command palette "
                    "(every action, and the themes). Mouse: click a row to select it, click a "
                    "request to inspect it.",
                    style="dim",
                )
            )

    def action_dismiss(self, result: None = None) -> None:  # type: ignore[override]
        self.dismiss(result)


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question (y/enter, n/escape)."""

    BINDINGS = [
        Binding("y,enter", "answer(True)", "yes"),
        Binding("n,escape", "answer(False)", "no"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        yield Static(Text(f"{self.question}  [y/n]", style="bold"), id="confirm")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
