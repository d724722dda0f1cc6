"""The control panel: a Textual app that shows what the feed knows and sends the operator's
commands, through the control API only.

Redrawing is driven by a 4 Hz timer, not by the stream: the timer draws only when the feed's
version moved, so a burst of messages costs one redraw, and a newer snapshot simply replaces one
that was never drawn.

The panes get the terminal's lines by priority (`_allot`): the requests first, then the events
and the workers; at 80x24 every pane keeps its place, smaller, and none leaves a blank band.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from rich.text import Text
from textual import events, on
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.geometry import Size
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, RichLog, Static

from dashboard.tui import header
from dashboard.tui.charts import Charts
from dashboard.tui.events import EventLines, describe
from dashboard.tui.feed import Feed, RequestFilter
from dashboard.tui.keys import KEYS, QUIT_ATTACHED, QUIT_OWNED, TRACE_HINT, TRACE_NEXT
from dashboard.tui.screens import ConfirmScreen, HelpScreen, InspectorScreen
from dashboard.tui.tables import (
    REQUEST_COLUMNS,
    WORKER_COLUMNS,
    FittedTable,
    request_cells,
    worker_cells,
)
from devserver.control.client import ControlError

REFRESH_SECONDS = 0.25
REQUEST_ROWS = 300  # rows kept in the requests table (the feed keeps more, for filters)
ROWS_PER_DRAW = 25  # new rows a redraw adds at most
# a DataTable redraws every visible cell when a row is added (~50 ms for a full pane): with this
# many new records in a redraw, the requests table moves once a second instead of four times
BUSY_RECORDS = 8
BUSY_INTERVAL = 1.0
NARROW = 110  # columns below which the charts fold to one line under the workers
# lines: the header and the footer; a pane's border; the least the requests and events keep
FIXED_LINES, BORDER, LEAST_REQUESTS, LEAST_EVENTS, MOST_EVENTS = 3, 2, 3, 2, 10
TOAST_SECONDS = 4.0

__all__ = ["Panel", "describe"]  # describe: the events pane's lines, for the trust tests


class Panel(App[None]):
    """devserve's control panel, attached to a server through its control socket."""

    CSS_PATH = "app.tcss"
    TITLE = "devserve"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("plus", "scale(1)", "scale", key_display="+/-"),
        Binding("minus", "scale(-1)", "scale down", show=False),
        Binding("r", "restart", "restart"),
        Binding("R", "reload", "reload"),
        Binding("k", "kill", "kill"),
        Binding("t", "trace", "trace"),
        Binding("a", "access_log", "access log"),
        Binding("slash", "filter", "filter", key_display="/", show=False),  # in the pane's title
        Binding("p", "pause", "pause", show=False),  # in the pane's title
        Binding("question_mark", "help", "help", key_display="?"),
        Binding("q", "quit", "quit"),
        Binding("escape", "clear_filter", "clear filter", show=False),
    ]

    def __init__(self, feed: Feed, owns_server: bool = False) -> None:
        super().__init__()
        self.feed = feed
        self.owns_server = owns_server  # started by `devserve` itself: q stops the server
        self.stopping = False
        self.filter = RequestFilter()
        self.paused = False
        self.event_lines = EventLines()
        self.drawn = -1
        self.drawn_snapshot: dict[str, Any] | None = None
        self.drawn_connected = False
        self.worker_rows: list[tuple[str, Any]] = []  # as last drawn: unchanged rows are kept
        self.records_shown = 0  # feed.records_seen when the table was last appended to
        self.requests_due = 0.0  # when a busy stream may move the requests table again
        self.events_shown = 0
        self.records_by_id: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Static(id="summary")
        with Horizontal(id="top"):
            yield FittedTable(WORKER_COLUMNS, id="workers")
            yield Charts(id="charts")
        with Vertical(id="requests-pane"):
            yield FittedTable(REQUEST_COLUMNS, id="requests")
            yield Input(placeholder="5xx  404  GET  slow  >100ms  /path …", id="filter")
        yield Static(id="banner")
        yield RichLog(id="events", max_lines=500, wrap=True, min_width=20)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#workers").border_title = "Workers"
        self.query_one("#charts").border_title = "Last 5 minutes"
        self._title_requests()
        self._title_events()
        self.run_worker(self._follow(), name="feed", exit_on_error=False)
        self.set_interval(REFRESH_SECONDS, self.redraw)
        self.query_one("#workers").focus()

    async def _follow(self) -> None:
        await self.feed.run()
        if self.owns_server:  # the stream ended: the server has stopped
            self.exit()

    def on_resize(self, event: events.Resize) -> None:
        # event.size: this runs before App's own handler has taken the new size
        self.screen.set_class(event.size.width < NARROW, "narrow")
        self._allot(event.size)
        if self.feed.snapshot is not None:
            self._draw_summary(event.size.width - 2)

    def _allot(self, size: Size | None = None) -> None:
        """Lines for the workers and events panes; the requests pane takes the rest. The events
        keep LEAST_EVENTS lines and get a third of what the others leave (up to MOST_EVENTS);
        the workers get a line each, and the charts their lines, up to half of the rest."""
        height, narrow = (size or self.size).height, self.screen.has_class("narrow")
        workers = len((self.feed.snapshot or {}).get("workers", [])) or 1
        wanted = workers + 1 + BORDER + (1 if narrow else 0)  # rows, the header, border, strip
        if not narrow:
            wanted = max(wanted, self.query_one(Charts).lines(workers) + BORDER)
        requests = BORDER + 1 + LEAST_REQUESTS
        share = (height - FIXED_LINES - wanted - requests) // 3
        events = BORDER + max(LEAST_EVENTS, min(MOST_EVENTS, share))
        top = min(wanted, max(BORDER + 2, (height - FIXED_LINES - events) // 2))
        self.query_one("#top").styles.height = top
        self.query_one("#events").styles.height = events

    # ------------------------------------------------------------------ drawing
    def redraw(self) -> None:
        """The interval's tick: draw what the feed has that is new."""
        try:
            self._redraw()
        except NoMatches:  # the panel is closing: the timer outlived its screen's widgets
            return

    def _redraw(self) -> None:
        feed = self.feed
        if feed.version == self.drawn:
            return
        self.drawn = feed.version
        if feed.snapshot is not self.drawn_snapshot or feed.connected != self.drawn_connected:
            # once a second: the records and events between snapshots leave these alone
            self.drawn_snapshot, self.drawn_connected = feed.snapshot, feed.connected
            self._draw_summary()
            if feed.snapshot is not None:
                self._draw_workers(feed.snapshot["workers"])
                self._draw_banner(feed.snapshot["server"])
                self.query_one(Charts).show(list(feed.history), feed.snapshot["workers"])
        self._draw_events()
        if self.paused:
            self.records_shown = feed.records_seen
            return
        fresh = feed.new_records(self.records_shown)
        now = time.monotonic()
        if len(fresh) >= BUSY_RECORDS and now < self.requests_due:
            return  # busy: the table moves once a second (each move redraws all of it)
        self.requests_due = now + BUSY_INTERVAL
        self._append_requests(fresh)
        self.records_shown = feed.records_seen

    def _draw_summary(self, width: int | None = None) -> None:
        """The header, for `width` columns (its own, by default: a resize gives the new)."""
        snapshot, summary = self.feed.snapshot, self.query_one("#summary", Static)
        if snapshot is None:
            summary.update(header.connecting(self.feed.path, self.feed.problem))
            return
        problem = None if self.feed.connected else (self.feed.problem or "")
        width = width or summary.content_region.width or self.size.width - 2
        summary.update(header.header(snapshot, problem, width))

    def _draw_workers(self, workers: list[dict[str, Any]]) -> None:
        rows = [(str(worker["pid"]), worker_cells(worker)) for worker in workers]
        if rows == self.worker_rows:
            return
        if len(rows) != len(self.worker_rows):
            self._allot()
        self.worker_rows = rows
        self.query_one("#workers", FittedTable).fill(rows)

    def _draw_banner(self, server: dict[str, Any]) -> None:
        banner = self.query_one("#banner", Static)
        failure = server.get("failure")
        banner.set_class(failure is not None, "shown")
        if failure is None:
            return
        where = f" ({failure['file']}, line {failure['line']})" if failure.get("file") else ""
        text = Text(f"generation {failure['generation']} failed{where}: ", style="bold")
        text.append(failure["message"])
        if server["state"] != "failed":
            text.append(" — the previous generation keeps serving", style="italic")
        banner.update(text)

    def _draw_events(self) -> None:
        log = self.query_one("#events", RichLog)
        for event in self.feed.new_events(self.events_shown):
            line = self.event_lines.line(event)
            if line is not None:
                log.write(line)
        self.events_shown = self.feed.events_seen

    def _redraw_events(self) -> None:
        """Every event the feed still keeps, anew (the access log was switched)."""
        self.query_one("#events", RichLog).clear()
        self.event_lines = EventLines(self.event_lines.access_log)
        self.events_shown = self.feed.events_seen - len(self.feed.events)
        self._draw_events()

    def _append_requests(self, records: list[dict[str, Any]]) -> None:
        """Add the new records that pass the filter. A busy server sends more than anyone can
        read: a redraw adds at most ROWS_PER_DRAW (the newest; the feed keeps the rest for
        filters and pauses), and the table is cut back in one go, not a row at a time."""
        if self.filter:
            records = [record for record in records if self.filter.matches(record)]
        if not records:
            return
        records = sorted(records, key=lambda record: record["start"])[-ROWS_PER_DRAW:]
        table = self.query_one("#requests", FittedTable)
        if table.row_count + len(records) > REQUEST_ROWS + ROWS_PER_DRAW * 4:
            kept = [self.records_by_id[key] for key in table.cells]
            self._fill_requests(kept[-(REQUEST_ROWS - len(records)) :] + records)
            return
        follow = table.cursor_row >= table.row_count - 1  # at the bottom: keep following
        for record in records:
            self.records_by_id[record["id"]] = record
            table.append(record["id"], request_cells(record))
        if follow:
            self._follow_tail(table)

    def _fill_requests(self, records: list[dict[str, Any]]) -> None:
        table = self.query_one("#requests", FittedTable)
        self.records_by_id = {record["id"]: record for record in records}
        table.fill((record["id"], request_cells(record)) for record in records)
        if table.row_count:
            self._follow_tail(table)

    def _follow_tail(self, table: DataTable[Any]) -> None:
        """Cursor on the newest request, and the view on it: the cursor's own scrolling is
        lost when the rows came before the table was measured, so scroll to the end as well,
        once the table knows its new size."""
        table.move_cursor(row=table.row_count - 1, animate=False, scroll=False)
        table.call_after_refresh(table.scroll_end, animate=False)

    def _rebuild_requests(self) -> None:
        records = list(self.feed.records)
        if self.filter:
            records = [record for record in records if self.filter.matches(record)]
        self._fill_requests(sorted(records, key=lambda record: record["start"])[-REQUEST_ROWS:])
        self.records_shown = self.feed.records_seen
        self._title_requests()

    def _title_requests(self) -> None:
        title = "Requests (live · / filter · p pause · enter inspect)"
        if self.paused:
            title = "Requests (PAUSED · p resumes)"
        if self.filter:
            title += f" · filter: {self.filter.text}"
        self.query_one("#requests-pane").border_title = title

    def _title_events(self) -> None:
        shown = "shown · a hides it" if self.event_lines.access_log else "hidden · a shows it"
        self.query_one("#events").border_title = f"Events & logs (access log {shown})"

    def _selected_pid(self) -> int | None:
        key = self.query_one("#workers", FittedTable).selected_key()
        return int(key) if key else None

    def _say(self, line: str, style: str = "") -> None:
        """A line of the panel's own in the events pane."""
        self.query_one("#events", RichLog).write(Text(f"{'panel':>8} {line}", style=style))

    # ------------------------------------------------------------------ actions
    async def _send(self, command: str, **args: Any) -> dict[str, Any] | None:
        """The server's answer, or None after saying why it refused. Success says nothing here:
        the server's own event (scale, restart, a worker's exit...) tells what happened."""
        try:
            return dict(await self.feed.command(command, **args))
        except ControlError as exc:
            self._say(f"{command}: {exc}", style="red")
            self.notify(str(exc), title=command, severity="error", markup=False)
            return None

    def action_scale(self, step: int) -> None:
        self.run_worker(self._send("scale", workers=f"{step:+d}"), group="commands")

    def action_restart(self) -> None:
        self.run_worker(self._send("restart"), group="commands")

    def action_reload(self) -> None:
        self.run_worker(self._send("reload"), group="commands")

    def action_trace(self) -> None:
        async def trace() -> None:
            if await self._send("trace", requests=TRACE_NEXT) is not None:
                self._say(f"tracing: {TRACE_HINT} (enter on one shows its ASGI messages)")

        self.run_worker(trace(), group="commands")

    def action_kill(self) -> None:
        """Kill the worker selected in the workers pane, after asking. From another pane, k
        only moves there: which worker it would kill is not on the screen's mind."""
        workers = self.query_one("#workers", FittedTable)
        pid = self._selected_pid()
        if self.focused is not workers or pid is None:
            workers.focus()
            self.notify(
                "k kills the worker selected in the Workers pane: pick one (↑ ↓), then k again",
                title="kill: which worker?",
                severity="warning",
                timeout=TOAST_SECONDS * 2,
            )
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_worker(self._send("kill", pid=pid), group="commands")

        self.push_screen(ConfirmScreen(f"Kill worker {pid}? It is replaced at once."), answered)

    def action_access_log(self) -> None:
        self.event_lines.access_log = not self.event_lines.access_log
        self._title_events()
        self._redraw_events()

    def action_filter(self) -> None:
        field = self.query_one("#filter", Input)
        field.add_class("shown")
        field.value = self.filter.text
        field.focus()

    @on(Input.Submitted, "#filter")
    def filter_submitted(self, event: Input.Submitted) -> None:
        self.filter = RequestFilter(event.value)
        event.input.remove_class("shown")
        self.query_one("#requests", DataTable).focus()
        self._rebuild_requests()

    def action_clear_filter(self) -> None:
        field = self.query_one("#filter", Input)
        field.remove_class("shown")
        if self.filter:
            self.filter = RequestFilter()
            self._rebuild_requests()
        self.query_one("#requests", DataTable).focus()

    def action_pause(self) -> None:
        self.paused = not self.paused
        if not self.paused:
            self._rebuild_requests()  # what came meanwhile is in the feed
        self._title_requests()

    async def action_quit(self) -> None:
        """Attached (`devserve top`): leave, the server runs on. Started by devserve: stop it
        gracefully (the panel shows the drain and closes when it is done); again: stop now."""
        if not self.owns_server:
            self.exit()
            return
        fast = self.stopping
        self.stopping = True
        if not fast:
            self.notify("finishing in-flight requests; q again stops now", title="stopping")
        await self._send("stop", fast=fast)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.keys()))

    def keys(self) -> list[tuple[str, str]]:
        """The help screen's table: every key and what it does here."""
        quits = QUIT_OWNED if self.owns_server else QUIT_ATTACHED
        return [(key.key, key.description or quits) for key in KEYS]

    @on(DataTable.RowSelected, "#requests")
    def inspect_request(self, event: DataTable.RowSelected) -> None:
        record = self.records_by_id.get(event.row_key.value or "")
        if record is not None:
            self.push_screen(InspectorScreen(record, self.feed.events))

    def get_system_commands(self, screen: Screen[Any]) -> Any:
        """The command palette (ctrl+p): every key's action, then Textual's own commands but
        its Keys and Quit, which would stand beside ours and quit at once, skipping the
        graceful stop."""
        quits = QUIT_OWNED if self.owns_server else QUIT_ATTACHED
        for key in KEYS:
            if key.title:
                action = key.action
                yield SystemCommand(
                    key.title,
                    key.description or quits,
                    lambda action=action: self.run_action(action),
                )
        for command in super().get_system_commands(screen):
            if command.title not in ("Keys", "Quit"):
                yield command
