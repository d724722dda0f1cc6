#!/usr/bin/env python3
"""Run devserve with a control-API subscriber attached, as a dashboard would (bench.py sidecar).

Usage (from a bench.py template; run with the project's .venv Python, which has devserver):

  .venv/bin/python benchmarks/subscriber.py --control PATH [--cpus 0] -- DEVSERVE ARGV...

It starts DEVSERVE ARGV (which must include `--control PATH`) as a child, connects to PATH as
soon as the socket answers, and reads the subscribe stream (`ControlClient(path).subscribe()`:
snapshots once a second, sampled request records every 0.25 s, events) for as long as devserve
runs, decoding every line as `devserve top` would. It forwards SIGTERM/SIGINT/SIGQUIT to
devserve, so bench.py's stop stops devserve, and it exits with devserve's exit status (1 when
the subscriber never got a message or lost the stream before the stop).

This process is the subscriber: bench.py counts its CPU in the server's process tree (the
"srv CPU %" column). With --cpus it moves itself (not devserve) to those CPUs after starting
devserve, e.g. to the client's CPU so that the figure is devserve's own cost of serving a
subscriber; without it, it stays where it was started (beside devserve).

On exit it prints one line `BENCH-SIDECAR {json}` with the monotonic time (CLOCK_MONOTONIC,
the clock bench.py uses too) of every message and what it held; bench.py reads it, counts the
messages inside its measured window and fails the trial when the stream was not alive over
the whole window.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time

from devserver.control.client import ControlClient, ControlError, NotRunning


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--control", required=True, help="devserve's control socket path")
    ap.add_argument("--cpus", help="CPU list to move this process (the subscriber) to, e.g. 0")
    ap.add_argument("--connect-timeout", type=float, default=30.0)
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help="-- devserve argv")
    args = ap.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        ap.error("give the devserve command after --")

    started = time.monotonic()
    server = subprocess.Popen(cmd)  # same session and group: bench.py stops the whole tree
    stopping = threading.Event()

    def forward(signum, _frame):
        stopping.set()
        stats["stop_at"] = stats["stop_at"] or time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            server.send_signal(signum)

    stats: dict = {
        "started_at": started,
        "connected_at": None,
        "stop_at": None,
        "ended_at": None,
        "end": None,
        "messages": 0,
        "kinds": {},
        "records": 0,
        "times": [],
    }
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, forward)
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for part in args.cpus.split(",") for c in _cpu_range(part)})

    client = ControlClient(args.control, timeout=5.0)
    deadline = started + args.connect_timeout
    while not stopping.is_set() and server.poll() is None:
        try:
            stream = client.subscribe()
            first = next(stream)  # the generator connects and sends `subscribe` on first next()
        except NotRunning:
            if time.monotonic() > deadline:
                stats["end"] = "no control socket before the timeout"
                break
            time.sleep(0.002)
            continue
        except (ControlError, OSError, StopIteration) as exc:
            stats["end"] = f"subscribe failed: {type(exc).__name__}: {exc}"
            break
        stats["connected_at"] = time.monotonic()
        try:
            _count(stats, first)
            for message in stream:
                _count(stats, message)
            stats["end"] = "stream closed by devserve"
        except (ControlError, OSError) as exc:
            stats["end"] = f"stream broke: {type(exc).__name__}: {exc}"
        break
    if stats["end"] is None:
        stats["end"] = "devserve stopped before the subscriber connected"
    stats["ended_at"] = time.monotonic()
    rc = server.wait()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    stats["cpu_s"] = round(ru.ru_utime + ru.ru_stime, 3)
    stats["server_rc"] = rc
    stats["times"] = [round(t, 4) for t in stats["times"]]
    # alive until the stop: the stream may end after the stop was asked for, not before
    stats["ok"] = (
        bool(stats["messages"])
        and stats["stop_at"] is not None
        and (stats["ended_at"] >= stats["stop_at"])
    )
    print("BENCH-SIDECAR " + json.dumps(stats), flush=True)
    print(
        f"subscriber: {stats['messages']} messages {stats['kinds']}, {stats['records']} request "
        f"records, CPU {stats['cpu_s']} s; end: {stats['end']}",
        file=sys.stderr,
        flush=True,
    )
    return rc if stats["ok"] else (rc or 1)


def _count(stats: dict, message: dict) -> None:
    stats["times"].append(time.monotonic())
    stats["messages"] += 1
    kind = str(message.get("type", "?"))
    stats["kinds"][kind] = stats["kinds"].get(kind, 0) + 1
    records = message.get("requests")
    if kind == "requests" and isinstance(records, list):
        stats["records"] += len(records)


def _cpu_range(part: str) -> range:
    lo, _, hi = part.partition("-")
    return range(int(lo), int(hi or lo) + 1)


if __name__ == "__main__":
    sys.exit(main())
