"""The supervisor's numbers: worker ticks added up per worker, per slot and in total.

Workers send what changed every tick (devserver/stats.py). Counters here are cumulative and
belong to the supervisor: the total and each slot's (what Prometheus reads) keep counting across
worker restarts. For live views, each worker and the total keep one bin per second for the last
minute; the 1, 10 and 60 s windows add up the latest completed bins, and percentiles come from
the merged histogram buckets. A worker's rate divides its requests by the time its ticks
covered (`Tick.elapsed`), so it does not jump when a tick lands on either side of a second;
the total rate is the sum of the workers' rates. One point per second goes into a history ring
(15 minutes) for charts, and the latest sampled request records into a ring for the stream.
"""

from __future__ import annotations

import collections
import itertools
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from devserver import stats
from devserver.channel import Tick

if TYPE_CHECKING:
    from devserver.supervisor.workers import Worker

WINDOWS = (1, 10, 60)
HISTORY = 900  # seconds of one-per-second points
RECORDS = 1000  # latest request records kept for new subscribers and slow ones
# ...and at most this many bytes of them (as JSON), whatever workers send: the ring is bounded by
# bytes, so records made large by clients (or an app writing into its channel) cannot grow it
RECORD_BYTES = 4 * 1024 * 1024
RECORD_MAX = 64 * 1024  # one record past this (a worker's own bounds make ~12 KiB) is cut down
BATCH_BYTES = 256 * 1024  # a `requests` message of the control API carries at most this much
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
_COUNTERS = ("bytes_in", "bytes_out", "rejected", "ws_opened", "ws_received", "ws_sent")


@dataclass
class Counters:
    """Cumulative counts since the supervisor started (of one slot, or of everything)."""

    requests: int = 0
    statuses: list[int] = field(default_factory=lambda: [0] * 5)
    protocols: list[int] = field(default_factory=lambda: [0] * len(stats.PROTOCOLS))
    buckets: dict[int, int] = field(default_factory=dict)
    duration_sum: float = 0.0  # seconds
    bytes_in: int = 0
    bytes_out: int = 0
    rejected: int = 0
    ws_opened: int = 0
    ws_received: int = 0
    ws_sent: int = 0
    records_dropped: int = 0
    cpu_seconds: float = 0.0

    def add(self, requests: int, cpu: float, deltas: dict[str, Any] | None) -> None:
        self.requests += requests
        self.cpu_seconds += cpu
        if deltas is None:
            return
        for index, count in enumerate(deltas["statuses"]):
            self.statuses[index] += count
        for index, count in enumerate(deltas["protocols"]):
            self.protocols[index] += count
        stats.merge(self.buckets, deltas["buckets"])
        self.duration_sum += deltas["duration_sum"]
        for name in _COUNTERS:
            setattr(self, name, getattr(self, name) + deltas[name])
        self.records_dropped += deltas["records_dropped"]

    def view(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "statuses": dict(zip(STATUS_CLASSES, self.statuses, strict=True)),
            "protocols": dict(zip(stats.PROTOCOLS, self.protocols, strict=True)),
            **{name: getattr(self, name) for name in _COUNTERS},
            "records_dropped": self.records_dropped,
        }


@dataclass
class Bin:
    """One second of one worker (or of the total)."""

    requests: int = 0
    elapsed: float = 0.0  # seconds the worker's ticks covered
    errors: int = 0  # 5xx responses
    buckets: dict[int, int] = field(default_factory=dict)
    duration_max: float = 0.0
    cpu: float = 0.0
    lag: float = 0.0  # the largest event-loop lag seen

    def add(self, requests: int, tick: Tick, cpu: float) -> None:
        self.requests += requests
        self.elapsed += tick.elapsed
        self.cpu += cpu
        self.lag = max(self.lag, tick.loop_lag)
        deltas = tick.stats
        if deltas is not None:
            self.errors += deltas["statuses"][4]
            stats.merge(self.buckets, deltas["buckets"])
            self.duration_max = max(self.duration_max, deltas["duration_max"])


class Series:
    """The last minute of per-second bins."""

    def __init__(self) -> None:
        self.bins: collections.deque[tuple[int, Bin]] = collections.deque(maxlen=max(WINDOWS) + 1)

    def bin(self, second: int) -> Bin:
        if not self.bins or self.bins[-1][0] != second:
            self.bins.append((second, Bin()))
        return self.bins[-1][1]

    def completed(self, seconds: int, now: int) -> list[Bin]:
        """The bins of the `seconds` whole seconds before second `now`."""
        return [b for s, b in self.bins if now - seconds <= s < now]


def rate(bins: Iterable[Bin]) -> float:
    """Requests per second of one worker over `bins`, by the time its ticks covered."""
    bins = list(bins)
    elapsed = sum(b.elapsed for b in bins)
    return sum(b.requests for b in bins) / elapsed if elapsed > 0 else 0.0


def latency(bins: Iterable[Bin]) -> dict[str, Any]:
    """Request count, percentiles and max (ms) and the 5xx share of merged bins."""
    merged: dict[int, int] = {}
    requests = errors = 0
    longest = 0.0
    for b in bins:
        requests += b.requests
        errors += b.errors
        longest = max(longest, b.duration_max)
        for index, count in b.buckets.items():
            merged[index] = merged.get(index, 0) + count
    view: dict[str, Any] = {"requests": requests}
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        value = stats.quantile(merged, q, longest)
        view[name] = None if value is None else round(value * 1000, 3)
    view["max"] = round(longest * 1000, 3) if merged else None
    view["error_rate"] = round(errors / requests, 4) if requests else 0.0
    return view


@dataclass
class WorkerMeter:
    """What the supervisor knows of one live worker's numbers."""

    slot: int
    series: Series = field(default_factory=Series)
    counters: Counters = field(default_factory=Counters)
    last: Tick | None = None

    def window(self, seconds: int, now: int) -> dict[str, Any]:
        bins = self.series.completed(seconds, now)
        return {"rps": round(rate(bins), 2), **latency(bins)}

    def cpu_percent(self, now: int) -> float:
        bins = self.series.completed(1, now)
        elapsed = sum(b.elapsed for b in bins)
        return round(100 * sum(b.cpu for b in bins) / elapsed, 1) if elapsed > 0 else 0.0


class Metrics:
    """Adds up worker ticks; the supervisor feeds it, the control API and /metrics read it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.started = clock()
        self.wall_started = time.time()
        self.second = 0  # the second now filling (seconds since start)
        self.total = Counters()
        self.total_series = Series()
        self.slots: dict[int, Counters] = {}
        self.workers: dict[int, WorkerMeter] = {}
        self.history: collections.deque[dict[str, Any]] = collections.deque(maxlen=HISTORY)
        self.records: collections.deque[dict[str, Any]] = collections.deque()
        self.record_sizes: collections.deque[int] = collections.deque()  # in step with records
        self.record_bytes = 0
        self.record_count = 0  # records ever stored: a subscriber's cursor

    # ------------------------------------------------------------------ feeding
    def on_tick(self, worker: Worker, tick: Tick) -> None:
        now = self.advance()
        meter = self.workers.get(worker.pid)
        if meter is None:
            meter = self.workers[worker.pid] = WorkerMeter(worker.slot)
        previous = meter.last
        requests = tick.requests - (previous.requests if previous else 0)
        cpu = tick.cpu_time - previous.cpu_time if previous else 0.0
        meter.last = tick
        slot = self.slots.setdefault(worker.slot, Counters())
        for counters in (meter.counters, slot, self.total):
            counters.add(requests, cpu, tick.stats)
        meter.series.bin(now).add(requests, tick, cpu)
        self.total_series.bin(now).add(requests, tick, cpu)
        if tick.stats is not None:
            self._keep_records(worker, tick.stats["records"])

    def forget(self, pid: int) -> None:
        """A worker exited: its numbers stay in the totals and its slot, not in live views."""
        self.workers.pop(pid, None)

    def _keep_records(self, worker: Worker, records: list[dict[str, Any]]) -> None:
        for record in records:
            record["id"] = f"{worker.pid}-{record.get('seq')}"
            record["pid"] = worker.pid
            record["slot"] = worker.slot
            size = len(json.dumps(record))
            if size > RECORD_MAX:
                size = len(json.dumps(_cut_down(record)))
            self.records.append(record)
            self.record_sizes.append(size)
            self.record_bytes += size
            while len(self.records) > RECORDS or self.record_bytes > RECORD_BYTES:
                self.records.popleft()
                self.record_bytes -= self.record_sizes.popleft()
        self.record_count += len(records)

    def advance(self) -> int:
        """The current second; closing a second writes its history point."""
        now = int(self.clock() - self.started)
        while self.second < now:
            self.history.append(self._point(self.second))
            self.second += 1
        return now

    def _point(self, second: int) -> dict[str, Any]:
        live = self.workers.values()
        workers = {
            str(pid): {
                "rps": round(rate(m.series.completed(1, second + 1)), 2),
                "rss": m.last.rss if m.last else 0,
                "cpu_percent": m.cpu_percent(second + 1),
            }
            for pid, m in self.workers.items()
        }
        return {
            "t": round(self.wall_started + second + 1, 3),
            "rps": round(sum(w["rps"] for w in workers.values()), 2),
            **latency(self.total_series.completed(1, second + 1)),
            "in_flight": sum(m.last.in_flight for m in live if m.last),
            "connections": sum(m.last.connections for m in live if m.last),
            "rss": sum(w["rss"] for w in workers.values()),
            "cpu_percent": round(sum(w["cpu_percent"] for w in workers.values()), 1),
            "workers": workers,
        }

    # ------------------------------------------------------------------ reading
    def worker_view(self, pid: int) -> dict[str, Any]:
        """The live numbers of one worker for the snapshot (zeros before its first tick)."""
        now = self.advance()
        meter = self.workers.get(pid)
        if meter is None or meter.last is None:
            meter = WorkerMeter(0)
            last = Tick(0, 0, 0)
        else:
            last = meter.last
        lag = max((b.lag for b in meter.series.completed(1, now)), default=0.0)
        return {
            "requests": last.requests,
            "in_flight": last.in_flight,
            "connections": last.connections,
            "websockets": last.websockets,
            "rss": last.rss,
            "cpu_percent": meter.cpu_percent(now),
            "loop_lag": round(lag * 1000, 3),
            "windows": {f"{n}s": meter.window(n, now) for n in WINDOWS},
            **{k: v for k, v in meter.counters.view().items() if k != "requests"},
        }

    def totals_view(self) -> dict[str, Any]:
        now = self.advance()
        live = [m for m in self.workers.values() if m.last is not None]
        windows = {}
        for n in WINDOWS:
            bins = self.total_series.completed(n, now)
            rps = sum(rate(m.series.completed(n, now)) for m in live)
            windows[f"{n}s"] = {"rps": round(rps, 2), **latency(bins)}
        return {
            **self.total.view(),
            "websockets": sum(m.last.websockets for m in live if m.last),
            "windows": windows,
        }

    def history_since(self, t: float) -> list[dict[str, Any]]:
        """History points after time `t` (0: all of them)."""
        self.advance()
        return list(itertools.dropwhile(lambda point: point["t"] <= t, self.history))

    def batches_since(self, cursor: int) -> tuple[list[list[dict[str, Any]]], int]:
        """Records stored after `cursor` (a record_count seen before) in batches of at most
        BATCH_BYTES, and the new cursor; a subscriber too slow for the ring skips ahead."""
        fresh = max(0, min(self.record_count - cursor, len(self.records)))
        batches: list[list[dict[str, Any]]] = []
        size = BATCH_BYTES
        start = len(self.records) - fresh
        for record, record_size in zip(
            itertools.islice(self.records, start, None),
            itertools.islice(self.record_sizes, start, None),
            strict=True,
        ):
            if size + record_size > BATCH_BYTES:
                batches.append([])
                size = 0
            batches[-1].append(record)
            size += record_size
        return batches, self.record_count


def _cut_down(record: dict[str, Any]) -> dict[str, Any]:
    """A record too large to keep, without what made it so (its headers, trace, long texts)."""
    cut = [key for key in ("headers", "trace") if record.pop(key, None) is not None]
    for key in ("path", "query", "method", "client"):
        value = record.get(key)
        if isinstance(value, str) and len(value) > stats.RECORD_TEXT:
            record[key] = stats.shorten(value)
            cut.append(key)
    record["headers"] = []
    record["cut"] = cut
    for key in list(record):  # anything else a tampered record carries that is not small
        if len(json.dumps(record[key])) > stats.RECORD_TEXT:
            record[key] = None
    return record
