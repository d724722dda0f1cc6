"""The panel's two tables, workers and requests: which columns fit the pane, and what each row
shows. A narrow pane drops its least needed columns whole (a number is never cut, so a 500 never
reads as a 50); the requests' PATH takes the width the others leave and ends in "…" when longer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import events
from textual.coordinate import Coordinate
from textual.widgets import DataTable

from dashboard.tui import format as fmt

Cells = Mapping[str, Text | str]  # column label → what the row shows there
SLOW_MS = 500  # a duration drawn in bold yellow, as `slow` filters
FLEXIBLE_MOST = 80  # a flexible column wider than this would hold the status far from its path


@dataclass(frozen=True)
class Column:
    label: str
    width: int  # fixed, so no row waits to be measured; a flexible column's least width
    drop: int = 0  # 0: always shown; else the columns go highest first as the pane narrows
    flexible: bool = False  # takes the width the others leave


WORKER_COLUMNS = (
    Column("PID", 7),
    Column("GEN", 3, drop=3),
    Column("STATE", 8),
    Column("UP", 6, drop=6),
    Column("REQS", 6),
    Column("RPS", 5),
    Column("H2", 4, drop=8),  # the share of its requests that came over HTTP/2
    Column("INFL", 4, drop=4),
    Column("P50", 7),
    Column("P99", 7),
    Column("RSS", 5, drop=2),
    Column("CPU", 4, drop=5),
    Column("RST", 3, drop=7),
)
REQUEST_COLUMNS = (
    Column("TIME", 12),
    Column("WORKER", 7, drop=2),
    Column("METHOD", 7),
    Column("PATH", 30, flexible=True),
    Column("STATUS", 6),
    Column("DURATION", 8),
    Column("BYTES", 8, drop=1),
)


def fit(columns: Sequence[Column], width: int, padding: int) -> dict[str, int]:
    """The columns shown in `width` cells (label → width, in order): the droppable ones go,
    highest `drop` first, until the rest fit; a flexible column then takes what is left (up to
    FLEXIBLE_MOST)."""
    shown = list(columns)

    def needed() -> int:
        return sum(column.width + 2 * padding for column in shown)

    while needed() > width and any(column.drop for column in shown):
        shown.remove(max(shown, key=lambda column: column.drop))
    spare = max(0, width - needed())
    return {column.label: column.width + (spare if column.flexible else 0) for column in shown}


class FittedTable(DataTable[Text]):
    """A DataTable whose columns follow its width: it keeps every row's cells by column label,
    so a resize that changes the columns redraws the same rows in the new ones."""

    def __init__(self, columns: Sequence[Column], *, id: str) -> None:
        super().__init__(id=id, cursor_type="row")
        self.all_columns = columns
        self.widths: dict[str, int] = {}
        self.cells: dict[str, Cells] = {}  # by row key, in the table's order

    def on_resize(self, event: events.Resize) -> None:
        # one column of room kept for the vertical scrollbar, shown or not, so that its coming
        # and going never moves the columns
        widths = fit(self.all_columns, event.size.width - 1, self.cell_padding)
        if widths != self.widths:
            self.widths = widths
            self.fill(list(self.cells.items()))

    def fill(self, rows: Iterable[tuple[str, Cells]]) -> None:
        """All the rows anew (keeping the cursor on its row, when that row is still there)."""
        selected = self.selected_key()
        self.clear(columns=True)
        for label, width in self.widths.items():
            self.add_column(label, width=width, key=label)
        self.cells = {}
        for key, cells in rows:
            self.append(key, cells)
        if selected in self.cells:
            row = self.get_row_index(selected)
            self.move_cursor(row=row, animate=False, scroll=False)
            # and the view on it, once the new rows are measured (before, the table would
            # scroll by the old sizes)
            self.call_after_refresh(self.move_cursor, row=row, animate=False)

    def append(self, key: str, cells: Cells) -> None:
        self.cells[key] = cells
        self.add_row(*self._shown(cells), key=key)

    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0)).row_key.value

    def _shown(self, cells: Cells) -> list[Text]:
        shown = []
        for label, width in self.widths.items():
            cell = cells.get(label, "")
            text = Text(cell) if isinstance(cell, str) else cell.copy()
            text.truncate(width, overflow="ellipsis")
            shown.append(text)
        return shown


def worker_cells(worker: dict[str, Any]) -> dict[str, Text | str]:
    recent = fmt.window(worker, "10s")
    state = worker["state"]
    return {
        "PID": str(worker["pid"]),
        "GEN": str(worker["generation"]),
        "STATE": Text(state, style=fmt.STATE_STYLES.get(state, "")),
        "UP": fmt.uptime(worker["uptime"]),
        "REQS": fmt.count(worker["requests"]),
        "RPS": fmt.count(fmt.window(worker, "1s").get("rps")),
        "H2": h2_share(worker),
        "INFL": str(worker["in_flight"]),
        "P50": fmt.millis(recent.get("p50")),
        "P99": fmt.millis(recent.get("p99")),
        "RSS": fmt.memory(worker["rss"]),
        "CPU": fmt.percent(worker["cpu_percent"]),
        "RST": str(worker["restarts"]),
    }


def h2_share(worker: dict[str, Any]) -> str:
    """The share of the worker's HTTP requests that came over HTTP/2 (a dash before any)."""
    protocols = worker.get("protocols") or {}
    h1, h2 = protocols.get("h1", 0), protocols.get("h2", 0)
    return fmt.share(h2, h1 + h2)


def request_cells(record: dict[str, Any]) -> dict[str, Text | str]:
    """A request's row; the client's words (method, path) as Text, never read as markup."""
    query = f"?{record['query']}" if record.get("query") else ""
    status = record["status"]
    return {
        "TIME": fmt.clock(record["start"]),
        "WORKER": str(record["pid"]),
        "METHOD": Text(record["method"]),
        "PATH": Text(record["path"] + query),
        "STATUS": Text(str(status), style=fmt.status_style(status)),
        "DURATION": Text(
            fmt.millis(record["duration"]),
            style="bold yellow" if record["duration"] >= SLOW_MS else "",
        ),
        "BYTES": fmt.size(record["bytes_out"]),
    }
