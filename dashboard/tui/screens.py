"""The panel's pop-up screens: the request inspector, help, and the kill confirmation."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from dashboard.tui import format as fmt

SCOPE_FIELDS = ("type", "http_version", "scheme", "method", "path", "query", "client")


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


def inspect(record: dict[str, Any]) -> list[Any]:
    """The inspector's content for one request record (rich renderables, top to bottom)."""
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
        if record.get(field) not in (None, ""):
            scope.add_row(field, Text(str(record[field])))
    scope.add_row(
        "bytes", f"in {fmt.size(record['bytes_in'])}, out {fmt.size(record['bytes_out'])}"
    )
    headers = Table.grid(padding=(0, 2))
    headers.add_column(style="cyan")
    headers.add_column()
    for name, value in record.get("headers", []):
        headers.add_row(Text(name), Text(value))
    parts: list[Any] = [title, Text(), Text("scope", style="bold underline"), scope, Text()]
    parts += [Text("headers", style="bold underline"), headers, Text()]
    parts.append(Text("ASGI messages", style="bold underline"))
    if record.get("trace"):
        parts += [describe_event(event) for event in record["trace"]]
    else:
        parts.append(
            Text("not traced: press t to trace the next requests, then send it again", "dim")
        )
    return parts


class InspectorScreen(ModalScreen[None]):
    """One request: its scope, headers (secrets redacted by the server) and ASGI timeline."""

    BINDINGS = [Binding("escape,q,enter", "dismiss", "close")]

    def __init__(self, record: dict[str, Any]) -> None:
        super().__init__()
        self.record = record

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="inspector"):
            for part in inspect(self.record):
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
                    "Filter (/): words that must all match — 5xx, 404, GET, slow, >100ms, "
                    "or part of the path. Ctrl+P opens the command palette. Mouse: click a "
                    "row to select it, click a request to inspect it.",
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
