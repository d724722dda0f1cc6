"""The charts pane: requests a second, p99 and p50 over the last five minutes, and each worker's
memory, one labelled sparkline a line. On a wide screen it stands beside the workers; on a
narrow one it folds to a single line under them (throughput and p99 only), so it never leaves
a blank band where its lines would be.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Sparkline, Static

from dashboard.tui import format as fmt

POINTS = 300  # the last 5 minutes of one-second points
RSS_CHARTS = 4  # workers whose memory gets a chart line
# one line each: what the point holds, its label, how its latest value reads
SERIES: dict[str, tuple[str, Callable[[float | None], str]]] = {
    "rps": ("req/s", fmt.count),
    "p99": ("p99", fmt.millis),
    "p50": ("p50", fmt.millis),
}


def columns(values: Sequence[float], width: int) -> list[float]:
    """`values` as `width` columns, each the mean of its points. Sparkline would summarise the
    points itself but scale the summaries by the range of the points, which puts every mean in
    the middle band: a flat line. Means scaled by their own range show the trend."""
    if width <= 0 or len(values) <= width:
        return list(values)
    step = len(values) / width
    return [
        statistics.fmean(values[int(step * column) : int(step * (column + 1))])
        for column in range(width)
    ]


class Chart(Horizontal):
    """A label, a sparkline and the latest value, on one line."""

    def __init__(self, label: str, id: str, classes: str = "") -> None:
        super().__init__(id=id, classes=f"chart {classes}")
        self.label = label
        self.values: list[float] = []
        self.latest = fmt.DASH

    def compose(self) -> ComposeResult:
        yield Static(self.label, classes="chart-label")
        yield Sparkline([])  # given a point a column: see `columns`
        yield Static(classes="chart-value")

    def on_mount(self) -> None:
        self._draw()  # what it was given before it was mounted

    def on_resize(self) -> None:
        self.call_after_refresh(self._draw)  # once the sparkline has its new width

    def show(self, values: Sequence[float], latest: str) -> None:
        self.values, self.latest = list(values), latest
        if self.is_mounted:
            self._draw()

    def _draw(self) -> None:
        line = self.query_one(Sparkline)
        line.data = columns(self.values, line.size.width)
        self.query_one(".chart-value", Static).update(self.latest)


class Charts(Vertical):
    def compose(self) -> ComposeResult:
        for name, (label, _) in SERIES.items():
            yield Chart(label, id=f"{name}-chart", classes="latency" if name == "p50" else "")
        yield Vertical(id="rss-charts")  # a line per worker, made as workers come

    def show(self, points: list[dict[str, Any]], workers: list[dict[str, Any]]) -> None:
        points = points[-POINTS:]
        last = points[-1] if points else {}
        for name, (_, formatted) in SERIES.items():
            values = [point.get(name) or 0.0 for point in points]
            self.query_one(f"#{name}-chart", Chart).show(values, formatted(last.get(name)))
        self._show_memory(points, workers[:RSS_CHARTS])

    def _show_memory(self, points: list[dict[str, Any]], workers: list[dict[str, Any]]) -> None:
        """RSS over time, a line per live worker."""
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
            chart = found.first(Chart) if found else Chart(f"RSS {pid}", id=chart_id)
            chart.show(values, fmt.memory(worker["rss"]))  # a new worker's line starts empty
            if not found:
                charts.mount(chart)

    def lines(self, workers: int) -> int:
        """The lines it wants on a wide screen: a chart each, and the memory of `workers`."""
        return len(SERIES) + min(workers, RSS_CHARTS)
