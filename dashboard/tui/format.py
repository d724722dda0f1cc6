"""Numbers as the panel shows them: short, fixed-width friendly, a dash for "nothing yet"."""

from __future__ import annotations

import time
from typing import Any

DASH = "\u2013"  # an en dash: "nothing yet"
STATE_STYLES = {
    "spawning": "dim",
    "booting": "yellow",
    "ready": "green",
    "draining": "magenta",
    "failed": "bold red",
}
STATUS_STYLES = {1: "cyan", 2: "green", 3: "blue", 4: "yellow", 5: "bold red"}


def count(value: float | None) -> str:
    """1234 → 1.2k, 81200 → 81.2k, 2_500_000 → 2.5M; 533.3 → 533, 12.5 → 12.5 (a rate's
    decimal only where it is a fair part of the number)."""
    if value is None:
        return DASH
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.1f}{suffix}"
    if float(value).is_integer() or abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}"


def millis(value: float | None) -> str:
    """Milliseconds with about two significant digits: 0.31 ms, 4.8 ms, 120 ms, 2.3 s."""
    if value is None:
        return DASH
    if value >= 1000:
        return f"{value / 1000:.1f} s"
    if value >= 100:
        return f"{value:.0f} ms"
    if value >= 10:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def size(value: float | None) -> str:
    """Bytes: 312 B, 2.1 kB, 34 MiB (memory is binary, bodies decimal, as tools show them)."""
    if value is None:
        return DASH
    if value < 1000:
        return f"{value:.0f} B"
    if value < 1e6:
        return f"{value / 1e3:.1f} kB"
    return f"{value / 1e6:.1f} MB"


def memory(value: float | None) -> str:
    if not value:
        return DASH
    return f"{value / 2**20:.0f}M"


def uptime(seconds: float | None) -> str:
    """12m04s, 3h05m, 2d04h."""
    if seconds is None:
        return DASH
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s"


def percent(value: float | None, digits: int = 0) -> str:
    """42.0 → 42%; a share too small to show in `digits` is "<0.1%", never a red 0.0%."""
    if value is None:
        return DASH
    least = 10**-digits
    if 0 < value < least:
        return f"<{least:.{digits}f}%"
    return f"{value:.{digits}f}%"


def share(part: int, whole: int) -> str:
    """`part` of `whole` in percent: 0%, "<1%", 41%, ">99%", 100%; a dash when `whole` is 0
    (a share rounded to 0% or 100% would hide the few that are not)."""
    if not whole:
        return DASH
    if 0 < whole - part < whole / 100:
        return ">99%"
    return percent(100 * part / whole)


def protocol(record: dict[str, Any]) -> str:
    """A record's protocol as people write it: "HTTP/1.1", "HTTP/2, stream 3"."""
    text = f"HTTP/{record.get('http_version')}"
    stream = record.get("stream")
    return text if stream is None else f"{text}, stream {stream}"


def clock(unix: float) -> str:
    """Local wall-clock time with milliseconds: 12:04:11.203."""
    local = time.localtime(unix)
    return time.strftime("%H:%M:%S", local) + f".{int(unix % 1 * 1000):03d}"


def status_style(status: int) -> str:
    return STATUS_STYLES.get(status // 100, "")


def window(item: dict[str, Any], name: str = "10s") -> dict[str, Any]:
    """A snapshot entry's window (`1s`, `10s`, `60s`), empty when absent (--no-metrics)."""
    windows: dict[str, dict[str, Any]] = item.get("windows") or {}
    return windows.get(name) or {}


def cut(text: str, width: int) -> str:
    """`text` in at most `width` characters, ending in "…" when it had to be shortened."""
    return text if len(text) <= width else text[: width - 1] + "…"
