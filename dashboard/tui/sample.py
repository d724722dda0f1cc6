"""A made-up, fixed control-API stream: the panel in a known state, for the snapshot tests and
the screenshots in screenshots/ (nothing here talks to a server).

`SampleClient` answers like AsyncControlClient: its stream is the messages below, then silence.
Times are fixed (the records' clock shows in UTC when TZ=UTC), so every rendering is the same.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any

Message = dict[str, Any]

START = 1795462517.0  # the records' wall-clock base: 2026-11-23 (a fixed instant)
PIDS = (41207, 41208, 41231, 41233)


def _window(rps: float, p50: float | None, p99: float | None, requests: int) -> Message:
    return {
        "rps": rps,
        "requests": requests,
        "p50": p50,
        "p90": p99,
        "p99": p99,
        "max": p99,
        "error_rate": 0.001 if requests else 0.0,
    }


def _worker(pid: int, slot: int, state: str, uptime: float, requests: int, rps: float) -> Message:
    booting = state != "ready"
    windows = {
        name: _window(
            rps, None if booting else 1.1 + slot / 10, None if booting else 4.2 + slot / 3, requests
        )
        for name in ("1s", "10s", "60s")
    }
    return {
        "pid": pid,
        "slot": slot,
        "generation": 3,
        "state": state,
        "uptime": uptime,
        "retiring": None,
        "restarts": 0,
        "requests": requests,
        "in_flight": 0 if booting else slot % 3,
        "connections": 0 if booting else 4,
        "websockets": 0,
        "rss": (21 if booting else 34 + slot) * 2**20,
        "cpu_percent": 9.0 if booting else 21.0 + slot,
        "loop_lag": 0.2,
        "windows": windows,
        "protocols": {"h1": requests - requests * slot // 5, "h2": requests * slot // 5},
    }


def _point(second: int) -> Message:
    """A second of the last five minutes: traffic that grows, a wave on it, a dip and a p99
    spike where generation 3 took over (13 s ago), memory that creeps up."""
    wave = math.sin(second / 9)
    reload = 1.0 if 280 <= second <= 288 else 0.0
    return {
        "t": START - 300 + second,
        "rps": 700 + 2 * second + 120 * wave - 500 * reload,
        "p50": 1.1 + 0.1 * wave + 0.8 * reload,
        "p99": 4.0 + 0.6 * math.sin(second / 5) + 9 * reload,
        "rss": (130 + second / 25) * 2**20,
        "workers": {
            str(pid): {"rss": (30 + slot + second / 80 + math.sin(second / 20 + slot)) * 2**20}
            for slot, pid in enumerate(PIDS[:3], start=1)
        },
    }


def snapshot(failure: Message | None = None) -> Message:
    workers = [
        _worker(PIDS[0], 1, "ready", 242.0, 81200, 321.0),
        _worker(PIDS[1], 2, "ready", 242.0, 80900, 318.0),
        _worker(PIDS[2], 3, "ready", 70.0, 22400, 330.0),
        _worker(PIDS[3], 4, "booting", 1.0, 0, 0.0),
    ]
    history = [_point(second) for second in range(300)]
    return {
        "server": {
            "pid": 41200,
            "app": "app:app",
            "urls": ["http://127.0.0.1:8000"],
            "dashboard": "http://127.0.0.1:8001/?token=sample-token",
            "mode": "dev",
            "state": "running",
            "generation": 3,
            "workers_target": 4,
            "workers_configured": 1,
            "uptime": 724.0,
            "crash_loop": False,
            "reload": True,
            "failure": failure,
            "metrics": True,
            "tracing": False,
        },
        "workers": workers,
        "totals": {
            "workers_ready": 3,
            "in_flight": 3,
            "connections": 12,
            "rss": 142 * 2**20,
            "cpu_percent": 87.0,
            "restarts": 0,
            "requests": 184500,
            "windows": {name: _window(1284.0, 1.2, 4.8, 12840) for name in ("1s", "10s", "60s")},
        },
        "history": history,
    }


H2_STREAMS = {1: 5, 5: 7}  # the records that came over HTTP/2: their stream ids


def _record(
    seq: int, pid: int, method: str, path: str, status: int, ms: float, size: int
) -> Message:
    path, _, query = path.partition("?")
    record: Message = {
        "id": f"{pid}-{seq}",
        "pid": pid,
        "slot": PIDS.index(pid) + 1,
        "seq": seq,
        "type": "http",
        "start": START + seq * 0.0013,
        "method": method,
        "path": path,
        "query": query,
        "http_version": "2" if seq in H2_STREAMS else "1.1",
        "stream": H2_STREAMS.get(seq),
        "scheme": "http",
        "client": "127.0.0.1:53122",
        "status": status,
        "duration": ms,
        "bytes_in": 13 if method == "POST" else 0,
        "bytes_out": size,
        "headers": [
            ["host", "127.0.0.1:8000"],
            ["accept", "*/*"],
            ["authorization", "[redacted]"],
            ["user-agent", "curl/8.5.0"],
        ],
    }
    if seq == 1:
        record["trace"] = [
            {
                "t": 0.0,
                "call": "receive",
                "type": "http.request",
                "keys": ["body", "more_body"],
                "body": 0,
                "more_body": False,
            },
            {
                "t": 0.94,
                "call": "send",
                "type": "http.response.start",
                "keys": ["status", "headers"],
                "status": 200,
                "headers": [["content-type", "application/json"], ["content-length", "2100"]],
            },
            {
                "t": 1.02,
                "call": "send",
                "type": "http.response.body",
                "keys": ["body"],
                "body": 2100,
            },
        ]
    return record


RECORDS = [
    _record(1, PIDS[0], "GET", "/api/items?page=2", 200, 1.1, 2100),
    _record(2, PIDS[1], "POST", "/api/orders", 201, 8.4, 312),
    _record(3, PIDS[2], "GET", "/static/app.js", 304, 0.3, 0),
    _record(4, PIDS[0], "GET", "/api/report", 500, 12.0, 141),
    _record(5, PIDS[1], "GET", "/api/items?page=3", 200, 1.3, 2080),
    _record(6, PIDS[2], "GET", "/slow/export.csv", 200, 740.0, 48000),
    _record(7, PIDS[0], "DELETE", "/api/orders/17", 404, 0.9, 22),
]

REPORT_TRACEBACK = """Traceback (most recent call last):
  File "/srv/app/app/views.py", line 88, in report
    totals = build_report(request.query)
  File "/srv/app/app/reports.py", line 31, in build_report
    return {name: rows[name] / len(rows) for name in NAMES}
ZeroDivisionError: division by zero"""

EVENTS: list[Message] = [
    {
        "kind": "reload",
        "phase": "started",
        "generation": 3,
        "changed": ["app/models.py"],
        "t": START - 13.2,
    },
    {"kind": "reload", "phase": "succeeded", "generation": 3, "seconds": 0.096, "t": START - 13.1},
    {  # generation 2's last worker, drained once generation 3 served
        "kind": "worker",
        "pid": 41190,
        "slot": 3,
        "generation": 2,
        "state": "exited",
        "reason": "exited normally",
        "t": START - 12.9,
    },
    {"kind": "scale", "target": 4, "t": START - 1.4},
    {
        "kind": "log",
        "source": "worker",
        "pid": PIDS[0],
        "slot": 1,
        "line": "loaded 1,204 items from the cache",
        "t": START - 0.8,
    },
    {  # /api/report's 500 (record 4): the inspector finds it by worker and time
        "kind": "log",
        "source": "worker",
        "pid": PIDS[0],
        "slot": 1,
        "level": "error",
        "logger": "devserve.server",
        "line": "Exception in ASGI application",
        "details": REPORT_TRACEBACK,
        "t": START + 4 * 0.0013 + 0.013,
    },
]

FAILURE: Message = {
    "generation": 4,
    "message": "importing 'app' raised SyntaxError: invalid syntax (models.py, line 42)",
    "details": '  File "app/models.py", line 42\nSyntaxError: invalid syntax',
    "file": "app/models.py",
    "line": 42,
}


class SampleClient:
    path = "sample"

    def __init__(
        self, failed: bool = False, records: int = len(RECORDS), events: int = len(EVENTS)
    ) -> None:
        self.failed = failed
        self.records = RECORDS[:records]  # fewer, for a small terminal where panes would scroll
        self.events = EVENTS[:events]
        self.sent_all = False  # every message is out: a picture taken once drawn is complete
        self.commands: list[tuple[str, dict[str, Any]]] = []  # what the panel asked, in order

    async def request(self, command: str, **args: Any) -> Message:
        self.commands.append((command, args))
        return {"sample": command}

    async def subscribe(self, recent: bool = False) -> AsyncIterator[Message]:
        yield {
            "version": 1,
            "type": "snapshot",
            "snapshot": snapshot(FAILURE if self.failed else None),
        }
        yield {"version": 1, "type": "requests", "requests": self.records}
        for event in self.events:
            yield {"version": 1, "type": "event", "event": event}
        if self.failed:
            failed = {"kind": "reload", "phase": "failed", **FAILURE, "t": START + 0.5}
            yield {"version": 1, "type": "event", "event": failed}
        self.sent_all = True
        await asyncio.Event().wait()  # then nothing: the picture stays still
