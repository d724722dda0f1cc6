#!/usr/bin/env python3
"""Print each server's req/s and p99 as ratios to the baseline, from a bench.py JSON report.

Usage: python ratios.py results/<run>.json [more.json ...]

Ratios are computed per round (server / baseline measured in the same round), then the median
over rounds is shown with (min-max). req/s ratio > 1 means faster than the baseline; p99 ratio
< 1 means a lower (better) tail latency. "srv CPU us/req" is the server's CPU time per request
(its CPU % over the window / req/s): on a shared machine, where the server does not always get
its whole core, it moves less than req/s does. A suite with "compare" (the h2-* suites: devserve
over HTTP/2 vs its own HTTP/1.1) also gets those per-round ratios. Stdlib only.
"""

from __future__ import annotations

import json
import statistics
import sys


def _ratios(trials: list[dict], server: str, base: str, key: str) -> list[float]:
    out = []
    for t in trials:
        if t["server"] != server or t.get("error") or not t.get(key):
            continue
        b = next(
            (
                x
                for x in trials
                if x["server"] == base
                and x["round"] == t["round"]
                and not x.get("error")
                and x.get(key)
            ),
            None,
        )
        if b:
            out.append(t[key] / b[key])
    return out


def _fmt(xs: list[float], prec: int = 2) -> str:
    if not xs:
        return "n/a"
    m = statistics.median(xs)
    s = f"{m:.{prec}f}"
    if len(xs) > 1 and min(xs) != max(xs):
        s += f" ({min(xs):.{prec}f}-{max(xs):.{prec}f})"
    return s


def _med(d: dict | None, prec: int = 0) -> str:
    if not d or d.get("median") is None:
        return "n/a"
    return f"{d['median']:,.{prec}f}"


def report(path: str) -> str:
    with open(path) as f:
        data = json.load(f)
    lines = []
    for entry in data["suites"]:
        suite, summ, trials = entry["suite"], entry["summary"], entry["trials"]
        base = suite["baseline"]
        for t in trials:  # server CPU per request, us (older reports lack it: derived here)
            if t.get("rps") and t.get("server_cpu_pct"):
                t["cpu_us_per_req"] = t["server_cpu_pct"] * 1e4 / t["rps"]
        rounds = max((t["round"] for t in trials), default=0)
        lines.append(
            f"suite {suite['name']} ({suite['app']}), {rounds} rounds, "
            f"{suite['duration']}s each, baseline {base}"
        )
        hdr = [
            "server",
            "req/s",
            f"req/s x {base}",
            "p99 ms",
            f"p99 x {base}",
            "RSS idle MiB",
            "RSS after MiB",
            "srv CPU %",
            "srv CPU us/req",
            f"CPU/req x {base}",
            "failed req",
            "ok",
        ]
        lines.append("| " + " | ".join(hdr) + " |")
        lines.append("|" + "---|" * len(hdr))
        for name, v in summ.items():
            ok = f"{v['ok_rounds']}/{v['ok_rounds'] + v['failed_rounds']}"
            if not v["verified"]:
                ok += " UNVERIFIED"
            if v.get("noisy_rounds"):
                ok += f" ({v['noisy_rounds']} noisy)"
            mine = [
                t["cpu_us_per_req"]
                for t in trials
                if t["server"] == name and not t.get("error") and t.get("cpu_us_per_req")
            ]
            row = [
                name,
                _med(v["rps"]),
                _fmt(_ratios(trials, name, base, "rps")),
                _med(v["p99_ms"], 2),
                _fmt(_ratios(trials, name, base, "p99_ms")),
                _med(v["rss_idle_mib"], 1),
                _med(v["rss_after_mib"], 1),
                _med(v["server_cpu_pct"]),
                f"{statistics.median(mine):.1f}" if mine else "n/a",
                _fmt(_ratios(trials, name, base, "cpu_us_per_req")),
                str(v.get("load_errors_total", "n/a")),
                ok,
            ]
            lines.append("| " + " | ".join(row) + " |")
        for name, others in (suite.get("compare") or {}).items():
            for other in others:
                if name in summ and other in summ:
                    lines.append(
                        f"\n{name} / {other}, per round: req/s "
                        f"{_fmt(_ratios(trials, name, other, 'rps'))}; requests per server "
                        f"CPU-second {_fmt(_ratios(trials, other, name, 'cpu_us_per_req'))}"
                    )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    for path in argv:
        print(report(path))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
