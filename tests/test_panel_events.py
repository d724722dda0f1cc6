"""The events pane's twin rule under a flood: what it keeps to find twins stays bounded, and the
app's own lines, however many, neither count as twins nor push a real twin out."""

from __future__ import annotations

from dashboard.tui.events import RECENT_LIMIT, EventLines


def _log(line: str, t: float, logger: str = "app", source: str = "worker") -> dict[str, object]:
    return {"kind": "log", "source": source, "logger": logger, "level": "INFO", "line": line,
            "t": t}  # fmt: skip


def test_a_flood_of_app_lines_keeps_the_twin_rule_bounded_and_working() -> None:
    """10,000 printed lines between a scale event and devserve's line restating it: the line is
    still recognised as the event's twin, and nothing kept grows past its bound."""
    lines = EventLines()
    assert lines.line({"kind": "scale", "target": 2, "t": 100.0}) is not None
    for n in range(10_000):
        assert lines.line(_log(f"print {n}", 100.0 + n / 10_000)) is not None
    assert len(lines.recent) <= RECENT_LIMIT
    twin = _log("scaling to 2 worker(s)", 101.0, logger="devserve.supervisor", source="devserve")
    assert lines.line(twin) is None  # shown once: the event said it already


def test_devserves_own_lines_are_bounded_too() -> None:
    """A burst of devserve's lines (each could be a twin) keeps at most RECENT_LIMIT of them."""
    lines = EventLines()
    for n in range(1_000):
        lines.line(_log(f"worker {n} exited", 100.0, "devserve.supervisor", "devserve"))
    assert len(lines.recent) == RECENT_LIMIT
