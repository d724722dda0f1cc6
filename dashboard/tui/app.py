"""The control panel: a Textual app that shows what the feed knows and sends the operator's
commands, through the control API only.

Redrawing is driven by a 4 Hz timer, not by the stream: the timer draws only when the feed's
version moved, so a burst of messages costs one redraw, and a newer snapshot simply replaces one
that was never drawn.
"""

from __future__ import annotations

import reprlib
import statistics
import time
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.coordinate import Coordinate
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, RichLog, Sparkline, Static

from dashboard.tui import format as fmt
from dashboard.tui.feed import Feed, RequestFilter
from dashboard.tui.screens import ConfirmScreen, HelpScreen, InspectorScreen
from devserver.control.client import ControlError

REFRESH_SECONDS = 0.25
REQUEST_ROWS = 300  # rows kept in the requests table (the feed keeps more, for filters)
ROWS_PER_DRAW = 25  # new rows a redraw adds at most
# a DataTable redraws every visible cell when a row is added (~50 ms for a full pane): with this
# many new records in a redraw, the requests table moves once a second instead of four times
BUSY_RECORDS = 8
BUSY_INTERVAL = 1.0
CHART_POINTS = 300  # the charts show the last 5 minutes of one-second points
RSS_CHARTS = 4  # workers whose memory gets a chart line
TRACE_NEXT = 10  # `t` traces this many requests of each worker
NARROW = 110  # columns below which the charts give their room to the tables
SHORT = 30  # lines below which the events pane shrinks

# label → width, for both tables: fixed, so no row waits to be measured (Textual caches lines
# drawn before their columns were measured, and can keep showing them at the old widths)
WORKER_COLUMNS: dict[str, int] = {"PID": 7, "GEN": 3, "STATE": 8, "UP": 6, "REQS": 6, "RPS": 5}
WORKER_COLUMNS |= {"INFL": 4, "P50": 7, "P99": 7, "RSS": 5, "CPU": 4, "RST": 3}
LOG_STYLES = {"warning": "yellow", "error": "bold red", "critical": "bold red"}
REQUEST_COLUMNS = {"TIME": 12, "WORKER": 7, "METHOD": 7, "PATH": 48, "STATUS": 6}
REQUEST_COLUMNS |= {"DURATION": 8, "BYTES": 8}  # a longer path ends in "…": enter shows it


class Panel(App[None]):
    """devserve's control panel, attached to a server through its control socket."""

    CSS_PATH = "app.tcss"
    TITLE = "devserve"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("plus", "scale(1)", "scale up", key_display="+"),
        Binding("minus", "scale(-1)", "scale down", key_display="-"),
        Binding("r", "restart", "restart"),
        Binding("R", "reload", "reload"),
        Binding("k", "kill", "kill"),
        Binding("t", "trace", "trace"),
        Binding("slash", "filter", "filter", key_display="/"),
        Binding("p", "pause", "pause"),
        Binding("question_mark", "help", "help", key_display="?"),
        Binding("q", "quit", "quit"),
        Binding("escape", "clear_filter", "clear filter", show=False),
    ]
    KEYS = [
        ("+ / -", "scale up / down by one worker"),
        ("r", "rolling restart: new workers first, then the old ones drain"),
        ("R", "reload now (a restart for new code)"),
        ("k", "kill the selected worker (asks first); it is replaced at once"),
        ("t", f"trace the next {TRACE_NEXT} requests of each worker (ASGI messages)"),
        ("/", "filter the requests; escape clears the filter"),
        ("p", "pause / resume the request stream"),
        ("enter", "inspect the selected request: scope, headers, ASGI messages"),
        ("tab", "move between the panes"),
        ("?", "this help"),
        ("q", "quit: `devserve top` leaves the server running; in `devserve` it stops it"),
    ]

    def __init__(self, feed: Feed, owns_server: bool = False) -> None:
        super().__init__()
        self.feed = feed
        self.owns_server = owns_server  # started by `devserve` itself: q stops the server
        self.stopping = False
        self.filter = RequestFilter()
        self.paused = False
        self.drawn = -1
        self.drawn_snapshot: dict[str, Any] | None = None
        self.drawn_connected = False
        self.worker_rows: list[tuple[Any, ...]] = []  # as last drawn: unchanged rows are kept
        self.records_shown = 0  # feed.records_seen when the table was last appended to
        self.requests_due = 0.0  # when a busy stream may move the requests table again
        self.events_shown = 0
        self.records_by_id: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Static(id="summary")
        with Horizontal(id="top"):
            yield DataTable(id="workers", cursor_type="row")
            with Vertical(id="charts"):
                for name in ("rps", "p99", "p50"):
                    yield Static(classes="chart-label", id=f"{name}-label")
                    # a column averages its seconds: the max of each would draw a flat top
                    yield Sparkline([], id=f"{name}-chart", summary_function=statistics.fmean)
                yield Static(classes="chart-label", id="rss-label")
                yield Vertical(id="rss-charts")  # a line per worker, made as workers come
        with Vertical(id="requests-pane"):
            yield DataTable(id="requests", cursor_type="row")
            yield Input(placeholder="5xx  404  GET  slow  >100ms  /path …", id="filter")
        yield Static(id="banner")
        yield RichLog(id="events", max_lines=500, wrap=False)
        yield Footer()

    def on_mount(self) -> None:
        workers = self.query_one("#workers", DataTable)
        for label, width in WORKER_COLUMNS.items():
            workers.add_column(label, width=width)
        workers.border_title = "Workers"
        self.query_one("#charts").border_title = "Throughput · latency · memory (last 5 min)"
        requests = self.query_one("#requests", DataTable)
        for label, width in REQUEST_COLUMNS.items():
            requests.add_column(label, width=width)
        self._title_requests()
        self.query_one("#events", RichLog).border_title = "Events & logs"
        self.run_worker(self._follow(), name="feed", exit_on_error=False)
        self.set_interval(REFRESH_SECONDS, self.redraw)
        self.on_resize()
        workers.focus()

    async def _follow(self) -> None:
        await self.feed.run()
        if self.owns_server:  # the stream ended: the server has stopped
            self.exit()

    def on_resize(self, event: object = None) -> None:
        self.screen.set_class(self.size.width < NARROW, "narrow")
        self.screen.set_class(self.size.height < SHORT, "short")

    # ------------------------------------------------------------------ drawing
    def redraw(self) -> None:
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
            self._draw_charts()
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

    def _draw_summary(self) -> None:
        snapshot = self.feed.snapshot
        line = Text()
        line.append("devserve", style="bold")
        if snapshot is None:
            line.append(f"  connecting to {self.feed.path} …", style="dim")
            if self.feed.problem:
                line.append(f"  {self.feed.problem}", style="yellow")
            self.query_one("#summary", Static).update(line)
            return
        server, totals = snapshot["server"], snapshot["totals"]
        line.append(f" ─ {server['app']}")
        for url in server.get("urls", []):
            line.append(" ─ ")
            line.append(url, style=f"underline link {url}" if url.startswith("http") else "")
        dashboard = server.get("dashboard")
        if dashboard:  # shown without its token, which the link still carries
            line.append(" ─ dashboard ")
            line.append(dashboard.split("?", 1)[0], style=f"underline link {dashboard}")
        line.append(f" ─ {server['mode']}")
        line.append(f" · reload {'on' if server['reload'] else 'off'}")
        line.append(f" ─ gen {server['generation']} ─ up {fmt.uptime(server['uptime'])}")
        if server.get("tracing"):
            line.append("  tracing", style="bold magenta")
        if not self.feed.connected:
            line.append(f"  disconnected: {self.feed.problem or '…'}", style="bold yellow")
        second, recent = fmt.window(totals, "1s"), fmt.window(totals, "10s")
        numbers = Text()
        numbers.append(f"{fmt.count(second.get('rps'))} req/s", style="bold")
        numbers.append(f"   p50 {fmt.millis(recent.get('p50'))}")
        numbers.append(f"   p99 {fmt.millis(recent.get('p99'))}")
        errors = recent.get("error_rate")
        numbers.append(
            f"   errors {fmt.percent(errors * 100 if errors is not None else None, 1)}",
            style="red" if errors else "",
        )
        ready, target = totals["workers_ready"], server["workers_target"]
        numbers.append(
            f"   workers {ready}/{target} ready", style="" if ready >= target else "yellow"
        )
        numbers.append(
            f"   RSS {fmt.memory(totals['rss'])}   CPU {fmt.percent(totals['cpu_percent'])}"
        )
        numbers.append(
            f"   in flight {totals['in_flight']}   requests {fmt.count(totals.get('requests'))}"
        )
        for part in (line, numbers):  # one line each, cut at the edge: never wrap and hide
            part.no_wrap, part.overflow = True, "ellipsis"
        self.query_one("#summary", Static).update(Text("\n").join([line, numbers]))

    def _draw_workers(self, workers: list[dict[str, Any]]) -> None:
        rows = [worker_row(worker) for worker in workers]
        if rows == self.worker_rows:
            return
        self.worker_rows = rows
        table = self.query_one("#workers", DataTable)
        selected = self._selected_pid()
        table.clear()
        for row in rows:
            table.add_row(*row, key=str(row[0]))
        if selected is not None and str(selected) in table.rows:
            table.move_cursor(row=table.get_row_index(str(selected)), animate=False)

    def _draw_charts(self) -> None:
        points = list(self.feed.history)[-CHART_POINTS:]
        series = {
            "rps": [p.get("rps") or 0.0 for p in points],
            "p99": [p.get("p99") or 0.0 for p in points],
            "p50": [p.get("p50") or 0.0 for p in points],
        }
        last = points[-1] if points else {}
        labels = {
            "rps": f"req/s  {fmt.count(last.get('rps'))}",
            "p99": f"p99    {fmt.millis(last.get('p99'))}",
            "p50": f"p50    {fmt.millis(last.get('p50'))}",
        }
        for name, values in series.items():
            self.query_one(f"#{name}-chart", Sparkline).data = values
            self.query_one(f"#{name}-label", Static).update(labels[name])
        self._draw_memory(points)

    def _draw_memory(self, points: list[dict[str, Any]]) -> None:
        """RSS over time, a sparkline per live worker (the first RSS_CHARTS of them)."""
        workers = (self.feed.snapshot or {}).get("workers", [])[:RSS_CHARTS]
        charts = self.query_one("#rss-charts", Vertical)
        wanted = {f"rss-{worker['pid']}": worker for worker in workers}
        for chart in list(charts.children):
            if chart.id not in wanted:
                chart.remove()
        for chart_id, worker in wanted.items():
            pid = str(worker["pid"])
            values = [
                float(point["workers"][pid]["rss"])
                for point in points
                if pid in point.get("workers", {})
            ]
            found = charts.query(f"#{chart_id}")
            chart = (
                found.first(Sparkline)
                if found
                else Sparkline([], id=chart_id, summary_function=statistics.fmean)
            )
            chart.data = values or [float(worker["rss"])]
            if not found:
                charts.mount(chart)
        sizes = " ".join(fmt.memory(worker["rss"]) for worker in workers)
        self.query_one("#rss-label", Static).update(f"RSS per worker  {sizes}")

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
            log.write(describe(event))
        self.events_shown = self.feed.events_seen

    def _append_requests(self, records: list[dict[str, Any]]) -> None:
        """Add the new records that pass the filter. A busy server sends more than anyone can
        read: a redraw adds at most ROWS_PER_DRAW (the newest; the feed keeps the rest for
        filters and pauses), and the table is cut back in one go, not a row at a time."""
        if self.filter:
            records = [record for record in records if self.filter.matches(record)]
        if not records:
            return
        records = sorted(records, key=lambda record: record["start"])[-ROWS_PER_DRAW:]
        table = self.query_one("#requests", DataTable)
        if table.row_count + len(records) > REQUEST_ROWS + ROWS_PER_DRAW * 4:
            kept = [self.records_by_id[key.value] for key in table.rows if key.value]
            self._fill_requests(kept[-(REQUEST_ROWS - len(records)) :] + records)
            return
        follow = table.cursor_row >= table.row_count - 1  # at the bottom: keep following
        for record in records:
            self.records_by_id[record["id"]] = record
            table.add_row(*request_row(record), key=record["id"])
        if follow:
            self._follow_tail(table)

    def _fill_requests(self, records: list[dict[str, Any]]) -> None:
        table = self.query_one("#requests", DataTable)
        table.clear()
        self.records_by_id = {record["id"]: record for record in records}
        for record in records:
            table.add_row(*request_row(record), key=record["id"])
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
        pane = self.query_one("#requests-pane")
        title = "Requests (live · / filter · p pause · enter inspect)"
        if self.paused:
            title = "Requests (PAUSED · p resumes)"
        if self.filter:
            title += f" · filter: {self.filter.text}"
        pane.border_title = title

    def _selected_pid(self) -> int | None:
        table = self.query_one("#workers", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        return int(key) if key else None

    # ------------------------------------------------------------------ actions
    async def _send(self, command: str, **args: Any) -> None:
        try:
            result = await self.feed.command(command, **args)
        except ControlError as exc:
            self.notify(str(exc), title=command, severity="error")
            self.query_one("#events", RichLog).write(Text(f"{command}: {exc}", style="red"))
            return
        self.notify(", ".join(f"{k} {v}" for k, v in result.items()), title=command)

    def action_scale(self, step: int) -> None:
        self.run_worker(self._send("scale", workers=f"{step:+d}"), group="commands")

    def action_restart(self) -> None:
        self.run_worker(self._send("restart"), group="commands")

    def action_reload(self) -> None:
        self.run_worker(self._send("reload"), group="commands")

    def action_trace(self) -> None:
        self.run_worker(self._send("trace", requests=TRACE_NEXT), group="commands")

    def action_kill(self) -> None:
        pid = self._selected_pid()
        if pid is None:
            self.notify("no worker selected", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_worker(self._send("kill", pid=pid), group="commands")

        self.push_screen(ConfirmScreen(f"Kill worker {pid}? It is replaced at once."), answered)

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
        self.push_screen(HelpScreen(self.KEYS))

    @on(DataTable.RowSelected, "#requests")
    def inspect_request(self, event: DataTable.RowSelected) -> None:
        record = self.records_by_id.get(event.row_key.value or "")
        if record is not None:
            self.push_screen(InspectorScreen(record))

    def get_system_commands(self, screen: Screen[Any]) -> Any:
        """Every key's action in the command palette too (ctrl+p), after Textual's own."""
        yield from super().get_system_commands(screen)
        commands = [
            ("Scale up", "one more worker", lambda: self.action_scale(1)),
            ("Scale down", "one worker fewer", lambda: self.action_scale(-1)),
            ("Restart", "rolling restart: new workers first", self.action_restart),
            ("Reload", "a restart for new code", self.action_reload),
            ("Kill worker", "kill the selected worker (asks first)", self.action_kill),
            ("Trace", f"trace the next {TRACE_NEXT} requests of each worker", self.action_trace),
            (
                "Filter requests",
                "5xx, 404, GET, slow, >100ms or part of the path",
                self.action_filter,
            ),
            ("Pause requests", "pause / resume the request stream", self.action_pause),
            ("Keys", "the help screen", self.action_help),
        ]
        for title, description, action in commands:
            yield SystemCommand(title, description, action)


def worker_row(worker: dict[str, Any]) -> tuple[Any, ...]:
    recent = fmt.window(worker, "10s")
    state = worker["state"]
    return (
        str(worker["pid"]),
        str(worker["generation"]),
        Text(state, style=fmt.STATE_STYLES.get(state, "")),
        fmt.uptime(worker["uptime"]),
        fmt.count(worker["requests"]),
        fmt.count(fmt.window(worker, "1s").get("rps")),
        str(worker["in_flight"]),
        fmt.millis(recent.get("p50")),
        fmt.millis(recent.get("p99")),
        fmt.memory(worker["rss"]),
        fmt.percent(worker["cpu_percent"]),
        str(worker["restarts"]),
    )


def request_row(record: dict[str, Any]) -> tuple[Any, ...]:
    query = f"?{record['query']}" if record.get("query") else ""
    status = record["status"]
    duration = fmt.millis(record["duration"])
    return (  # the client's words as Text, never as markup
        fmt.clock(record["start"]),
        str(record["pid"]),
        Text(record["method"]),
        Text(fmt.cut(record["path"] + query, REQUEST_COLUMNS["PATH"])),
        Text(str(status), style=fmt.status_style(status)),
        Text(duration, style="bold yellow" if record["duration"] >= 500 else ""),
        fmt.size(record["bytes_out"]),
    )


def describe(event: dict[str, Any]) -> Text:
    """One line of the events pane for a control-API event; one that lacks what its kind
    should carry is shown raw, dim, rather than taking the panel down."""
    try:
        return _describe(event)
    except (KeyError, TypeError, ValueError, AttributeError):
        # reprlib: a bounded rendering, not all of a (1 MiB) event formatted on every redraw
        return Text(f"malformed event from devserve: {reprlib.repr(event)}", style="dim")


def _describe(event: dict[str, Any]) -> Text:
    kind = event.get("kind")
    if kind == "worker":
        state = event["state"]
        text = Text(f"worker {event['pid']} (slot {event['slot']}, gen {event['generation']}) ")
        text.append(state, style=fmt.STATE_STYLES.get(state, ""))
        if event.get("reason"):
            text.append(f": {event['reason']}", style="dim")
        return text
    if kind in ("reload", "restart"):
        phase = event["phase"]
        text = Text(f"{kind} {phase}: generation {event['generation']}")
        if event.get("changed"):
            text.append(" — " + ", ".join(event["changed"]), style="dim")
        if event.get("seconds") is not None:
            text.append(f" ready in {event['seconds'] * 1000:.0f} ms", style="green")
        if phase == "failed":
            text.stylize("bold red")
            text.append(f"\n{event.get('message', '')}")
            if event.get("details"):
                text.append(f"\n{event['details'].rstrip()}", style="red")
        return text
    if kind == "log":
        sources = {"worker": f"{event.get('pid')}", "client": "panel"}
        source = sources.get(event.get("source", ""), "devserve")
        line = Text(f"{source:>8} ", style="dim")
        level = event.get("level")
        line.append(event["line"], style=LOG_STYLES.get(level or "", ""))
        if event.get("details"):  # a worker's exception, sent without a panel capturing output
            line.append(f"\n{event['details'].rstrip()}", style="red")
        return line
    if kind == "scale":
        return Text(f"scale: target {event['target']} workers")
    if kind == "ready":
        return Text(f"serving: generation {event['generation']} ready", style="green")
    if kind == "crash_loop":
        return Text(f"crash loop: {event['message']}", style="bold red")
    if kind == "stopping":
        return Text(f"stopping{' (fast)' if event.get('fast') else ''}", style="yellow")
    return Text(f"{kind}: {event}", style="dim")
