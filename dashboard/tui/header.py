"""The panel's two header lines: what is serving where, and the totals. Each line is built from
parts ranked by how much an operator needs them; a narrow terminal drops the least needed parts
whole, so the app, its URL, the dashboard's URL and the totals stay readable at 80 columns
rather than all of them being cut at the edge.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from dashboard.tui import format as fmt

Part = tuple[int, Text]  # (rank: 0 is kept longest, the highest goes first, text)
WIDE_GAP, NARROW_GAP = 3, 2  # spaces between the totals


def fit(parts: list[Part], width: int, separator: str) -> Text:
    """The parts in their order, joined by `separator`, without those of the highest ranks that
    would not fit in `width`; what still does not fit ends in "…"."""
    kept = list(parts)

    def length() -> int:
        return sum(len(text) for _, text in kept) + len(separator) * (len(kept) - 1)

    while length() > width and len(kept) > 1 and max(rank for rank, _ in kept) > 0:
        kept.remove(max(kept, key=lambda part: part[0]))
    line = Text(separator).join(text for _, text in kept)
    line.no_wrap, line.overflow = True, "ellipsis"
    line.truncate(width, overflow="ellipsis")
    return line


def connecting(path: str, problem: str | None) -> Text:
    line = Text("devserve", style="bold")
    line.append(f"  connecting to {path} …", style="dim")
    if problem:
        line.append(f"  {problem}", style="yellow")
    return line


def header(snapshot: dict[str, Any], problem: str | None, width: int) -> Text:
    """Both lines for `snapshot`; `problem` is why the stream is down, None while it is up."""
    server, totals = snapshot["server"], snapshot["totals"]
    first = fit(_where(server, problem), width, " ─ ")
    gap = " " * WIDE_GAP
    second = fit(_totals(server, totals), width, gap)
    if len(second) >= width:  # cut: tighter spacing may keep a part more
        second = fit(_totals(server, totals), width, " " * NARROW_GAP)
    return Text("\n").join([first, second])


def _where(server: dict[str, Any], problem: str | None) -> list[Part]:
    parts: list[Part] = [(2, Text("devserve", style="bold")), (0, Text(server["app"]))]
    for url in server.get("urls", []):
        linked = f"underline link {url}" if url.startswith("http") else ""
        parts.append((0, Text(url, style=linked)))
    dashboard = server.get("dashboard")
    if dashboard:  # shown without its token, which the link still carries
        shown = Text("dashboard ")
        shown.append(dashboard.split("?", 1)[0], style=f"underline link {dashboard}")
        parts.append((1, shown))
    reload = "on" if server["reload"] else "off"
    parts.append((4, Text(f"{server['mode']} · reload {reload}")))
    parts.append((3, Text(f"gen {server['generation']}")))
    parts.append((5, Text(f"up {fmt.uptime(server['uptime'])}")))
    if server.get("tracing"):
        parts.append((1, Text("tracing", style="bold magenta")))
    if problem is not None:
        parts.append((0, Text(f"disconnected: {problem or '…'}", style="bold yellow")))
    return parts


def _totals(server: dict[str, Any], totals: dict[str, Any]) -> list[Part]:
    second, recent = fmt.window(totals, "1s"), fmt.window(totals, "10s")
    errors = recent.get("error_rate")
    shown_errors = fmt.percent(errors * 100 if errors is not None else None, 1)
    ready, target = totals["workers_ready"], server["workers_target"]
    return [
        (0, Text(f"{fmt.count(second.get('rps'))} req/s", style="bold")),
        (0, Text(f"p50 {fmt.millis(recent.get('p50'))}")),
        (0, Text(f"p99 {fmt.millis(recent.get('p99'))}")),
        (0, Text(f"errors {shown_errors}", style="red" if errors else "")),
        (0, Text(f"workers {ready}/{target} ready", style="" if ready >= target else "yellow")),
        (1, Text(f"RSS {fmt.memory(totals['rss'])}")),
        (2, Text(f"CPU {fmt.percent(totals['cpu_percent'])}")),
        (3, Text(f"in flight {totals['in_flight']}")),
        (4, Text(f"requests {fmt.count(totals.get('requests'))}")),
    ]
