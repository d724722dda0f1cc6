"""The numbers' building blocks in isolation: the log-bucket histogram, record sampling, a
worker's counters, and the supervisor's windows, rates and history (with a clock of our own)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from devserver import stats
from devserver.channel import Tick, decode, encode
from devserver.supervisor.metrics import Metrics

ONE_BUCKET = 2 ** (1 / 8)


# --------------------------------------------------------------------------- the histogram
@pytest.mark.parametrize("seconds", [60e-6, 0.000123, 0.0009, 0.01, 0.25, 1.0, 3.7, 42.0])
def test_a_duration_lands_in_the_bucket_whose_bounds_hold_it(seconds: float) -> None:
    index = stats.bucket_of(seconds)
    assert stats.upper_bound(index - 1) < seconds <= stats.upper_bound(index)
    assert stats.upper_bound(index) / stats.upper_bound(index - 1) == pytest.approx(ONE_BUCKET)


def test_the_buckets_cover_50_microseconds_to_60_seconds_and_clamp_outside() -> None:
    assert stats.upper_bound(stats.LOWEST) == pytest.approx(50e-6, rel=0.1)
    assert stats.upper_bound(stats.HIGHEST) >= 60.0
    assert stats.bucket_of(0.0) == stats.bucket_of(1e-9) == stats.LOWEST
    assert stats.bucket_of(3600.0) == stats.HIGHEST


def test_quantiles_are_within_one_bucket_for_a_known_distribution() -> None:
    """Random durations: every percentile read from the buckets is within one bucket."""
    rng = random.Random(7)
    values = sorted(rng.lognormvariate(-5, 1.5) for _ in range(5000))
    buckets: dict[int, int] = {}
    for value in values:
        index = stats.bucket_of(value)
        buckets[index] = buckets.get(index, 0) + 1
    for q in (0.5, 0.9, 0.99, 0.999):
        true = values[int(q * len(values)) - 1]
        found = stats.quantile(buckets, q, values[-1])
        assert found is not None
        assert true / ONE_BUCKET <= found <= true * ONE_BUCKET, q
    assert stats.quantile({}, 0.5) is None


def test_a_tick_of_durations_buckets_as_each_one_would() -> None:
    """`histogram` (sort + bisect, once per tick) agrees with `bucket_of` on every duration,
    bucket bounds and values outside the range included."""
    rng = random.Random(3)
    values = [rng.lognormvariate(-6, 2.5) for _ in range(3000)]
    values += [stats.upper_bound(i) for i in range(stats.LOWEST - 2, stats.HIGHEST + 2)]
    values += [0.0, 1e-9, 59.0, 61.0, 3600.0]
    expected: dict[int, int] = {}
    for value in values:
        expected[stats.bucket_of(value)] = expected.get(stats.bucket_of(value), 0) + 1
    pairs = stats.histogram(sorted(values))
    assert dict(pairs) == expected
    assert [index for index, _ in pairs] == sorted(expected)
    assert stats.histogram([]) == []


def test_histograms_merge_by_adding_counts() -> None:
    merged: dict[int, int] = {3: 1}
    stats.merge(merged, [[3, 2], [5, 1]])
    stats.merge(merged, [[5, 4]])
    assert merged == {3: 3, 5: 5}


# --------------------------------------------------------------------------- records
@dataclass
class Exchange:
    status: int = 200
    trace: Any = None
    failure: BaseException | None = None
    stream_id: int | None = None  # set (with http_version "2") for an HTTP/2 request
    method: str = "GET"
    bytes_sent: int = 2
    bytes_received: int = 0
    started_at: float = 0.0
    scope: dict[str, Any] = field(
        default_factory=lambda: {
            "type": "http",
            "path": "/p",
            "query_string": b"a=1",
            "http_version": "1.1",
            "scheme": "http",
            "client": ("127.0.0.1", 5000),
            "headers": [(b"host", b"x"), (b"authorization", b"Bearer t"), (b"Cookie", b"c=1")],
        }
    )


def _over_h2(stream_id: int, **fields: Any) -> Exchange:
    """A request that came on HTTP/2 stream `stream_id`."""
    exchange = Exchange(stream_id=stream_id, started_at=time.perf_counter(), **fields)
    exchange.scope["http_version"] = "2"
    return exchange


def test_requests_are_counted_by_protocol_and_records_name_their_stream() -> None:
    """A tick counts its HTTP requests as h1 (HTTP/1.0, 1.1) and h2; a WebSocket session is in
    neither. Each record has its http_version and `stream`: the stream id over HTTP/2, None over
    HTTP/1.1, across the channel too."""
    worker = stats.WorkerStats(slow=9.0)
    worker.request_done(Exchange(started_at=time.perf_counter()))
    worker.request_done(_over_h2(1))
    old = Exchange(started_at=time.perf_counter())
    old.scope["http_version"] = "1.0"
    worker.request_done(old)
    worker.request_done(_over_h2(3, status=404))
    worker.request_done(_over_h2(5))
    session = _over_h2(7, status=101)
    session.scope["type"] = "websocket"
    worker.websocket_done(session)
    tick = decode(encode(Tick(5, 0, 0, elapsed=0.25, stats=worker.take()))[4:])
    assert isinstance(tick, Tick) and tick.stats is not None
    assert tick.stats["protocols"] == [2, 3]
    shown = [(r["type"], r["http_version"], r["stream"]) for r in tick.stats["records"]]
    assert shown == [
        ("http", "1.1", None),
        ("http", "2", 1),
        ("http", "1.0", None),
        ("http", "2", 3),
        ("http", "2", 5),
        ("websocket", "2", 7),
    ]
    assert worker.take()["protocols"] == [0, 0]  # taken: counting starts over


def test_the_supervisor_adds_up_protocols_per_worker_slot_and_total() -> None:
    """Ticks' protocol counts add up in the worker's snapshot view, its slot (what /metrics
    reads) and the totals, and stay in the totals and the slot after the worker exits."""
    metrics = Metrics(Clock())
    first, second = Worker(10, 1), Worker(11, 2)
    for worker, protocols in ((first, [3, 1]), (second, [0, 4]), (first, [1, 2])):
        deltas = _deltas(sum(protocols), 0.004) | {"protocols": protocols}
        metrics.on_tick(worker, Tick(0, 0, 0, stats=deltas))  # type: ignore[arg-type]
    assert metrics.worker_view(10)["protocols"] == {"h1": 4, "h2": 3}
    assert metrics.worker_view(11)["protocols"] == {"h1": 0, "h2": 4}
    metrics.forget(10)
    assert metrics.totals_view()["protocols"] == {"h1": 4, "h2": 7}
    assert metrics.slots[1].protocols == [4, 3]


def test_sampling_keeps_a_bounded_uniform_sample_and_every_notable_request() -> None:
    worker = stats.WorkerStats(slow=0.5, limit=10)
    for _ in range(1000):
        worker.request_done(Exchange(started_at=time.perf_counter()))
    worker.request_done(Exchange(status=502, started_at=time.perf_counter()))
    worker.request_done(Exchange(started_at=time.perf_counter() - 0.9))  # slow
    worker.request_done(
        Exchange(trace=SimpleNamespace(events=[], size=0), started_at=time.perf_counter())
    )
    worker.websocket_done(Exchange(started_at=time.perf_counter() - 5))
    deltas = worker.take()
    records = deltas["records"]
    assert len(records) == 14 and deltas["records_dropped"] == 990
    assert [r["seq"] for r in records] == sorted(r["seq"] for r in records)
    assert {1001, 1002, 1003, 1004} <= {r["seq"] for r in records}
    assert records[-1]["duration"] >= 5000  # the session
    assert [r["status"] for r in records if r["seq"] > 1000] == [502, 200, 200, 200]
    again = worker.take()
    assert again["records"] == [] and again["records_dropped"] == 0
    worker.request_done(Exchange(status=503, started_at=time.perf_counter()))
    assert [r["seq"] for r in worker.take()["records"]] == [1005]  # ids go on across ticks


def test_a_record_redacts_secrets_unless_told_not_to() -> None:
    redacted = stats.make_record(Exchange(), 1, 0.002, redact=True)
    assert redacted["headers"] == [
        ["host", "x"],
        ["authorization", "[redacted]"],
        ["Cookie", "[redacted]"],
    ]
    assert redacted["duration"] == 2.0 and redacted["query"] == "a=1"
    shown = stats.make_record(Exchange(), 1, 0.002, redact=False)
    assert shown["headers"][1] == ["authorization", "Bearer t"]


def test_worker_stats_hand_over_deltas_that_survive_the_channel() -> None:
    worker = stats.WorkerStats(slow=0.5)
    worker.request_done(Exchange(status=404, bytes_sent=7, bytes_received=3))
    worker.ws_sent += 2
    tick = Tick(1, 0, 0, elapsed=0.25, stats=worker.take())
    again = decode(encode(tick)[4:])
    assert again == tick
    assert again.stats is not None
    assert again.stats["statuses"] == [0, 0, 0, 1, 0]
    assert again.stats["bytes_out"] == 7 and again.stats["bytes_in"] == 3
    assert sum(n for _, n in again.stats["buckets"]) == 1
    assert len(again.stats["records"]) == 1
    assert worker.take()["statuses"] == [0, 0, 0, 0, 0]  # taken: counting starts over


# --------------------------------------------------------------------------- the supervisor's sums
@dataclass(frozen=True)
class Worker:
    pid: int
    slot: int


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _deltas(requests: int, seconds: float, errors: int = 0) -> dict[str, Any]:
    return {
        "statuses": [0, requests - errors, 0, 0, errors],
        "protocols": [requests, 0],
        "buckets": [[stats.bucket_of(seconds), requests]] if requests else [],
        "duration_sum": seconds * requests,
        "duration_max": seconds if requests else 0.0,
        "bytes_in": 0,
        "bytes_out": 10 * requests,
        "rejected": 0,
        "ws_opened": 0,
        "ws_received": 0,
        "ws_sent": 0,
        "records": [],
        "records_dropped": 0,
    }


def _feed(metrics: Metrics, clock: Clock, load: dict[Worker, int], seconds: int) -> None:
    """`seconds` seconds of ticks 250 ms apart; each worker serves its `load` requests a tick."""
    for _ in range(seconds * 4):
        clock.now += 0.25
        for worker, per_tick in load.items():
            _tick(metrics, worker, per_tick)


def _tick(metrics: Metrics, worker: Worker, requests: int) -> None:
    meter = metrics.workers.get(worker.pid)
    total = (meter.last.requests if meter and meter.last else 0) + requests
    tick = Tick(total, 0, 1, elapsed=0.25, rss=1000, stats=_deltas(requests, 0.004))
    metrics.on_tick(worker, tick)  # type: ignore[arg-type]


def test_rates_follow_the_ticks_own_clock_not_their_arrival() -> None:
    """Five ticks can land in one second (one ran late); the rate is still requests per second
    of the worker's time, not per second of arrival."""
    clock = Clock()
    metrics = Metrics(clock)
    worker = Worker(10, 1)
    for at in (0.05, 0.30, 0.55, 0.80, 0.99):
        clock.now = 1000 + at
        _tick(metrics, worker, 25)
    clock.now = 1001.5
    view = metrics.worker_view(10)
    assert view["windows"]["1s"]["requests"] == 125
    assert view["windows"]["1s"]["rps"] == 100.0


def test_windows_add_up_whole_seconds_and_totals_outlive_workers() -> None:
    clock = Clock()
    metrics = Metrics(clock)
    first, second = Worker(10, 1), Worker(11, 2)
    _feed(metrics, clock, {first: 10, second: 5}, 12)
    clock.now += 0.1
    totals = metrics.totals_view()
    assert totals["windows"]["10s"]["requests"] == 10 * 60
    assert totals["windows"]["10s"]["rps"] == 60.0
    assert totals["windows"]["1s"]["p50"] == pytest.approx(4.0, rel=ONE_BUCKET - 1)
    assert totals["requests"] == 12 * 60
    metrics.forget(10)  # the first worker exits; a replacement takes its slot
    _feed(metrics, clock, {Worker(12, 1): 1, second: 0}, 2)
    totals = metrics.totals_view()
    assert totals["requests"] == 12 * 60 + 8
    assert metrics.slots[1].requests == 12 * 40 + 8
    assert len(metrics.history) >= 13
    point = metrics.history[-1]
    assert set(point["workers"]) == {"11", "12"}
    assert [p["t"] for p in metrics.history_since(metrics.history[-3]["t"])] == [
        p["t"] for p in list(metrics.history)[-2:]
    ]


def test_a_subscriber_reads_each_record_once_and_a_slow_one_skips_ahead() -> None:
    metrics = Metrics(Clock())
    worker = Worker(10, 1)
    deltas = _deltas(0, 0.0) | {"records": [{"seq": n} for n in range(1, 4)]}
    metrics.on_tick(worker, Tick(3, 0, 0, stats=deltas))  # type: ignore[arg-type]
    batches, cursor = metrics.batches_since(0)
    assert [r["id"] for batch in batches for r in batch] == ["10-1", "10-2", "10-3"]
    assert metrics.batches_since(cursor) == ([], cursor)
    many = _deltas(0, 0.0) | {"records": [{"seq": n} for n in range(4, 2004)]}
    metrics.on_tick(worker, Tick(3, 0, 0, stats=many))  # type: ignore[arg-type]
    batches, _ = metrics.batches_since(cursor)
    records = [record for batch in batches for record in batch]
    assert len(records) == 1000 and records[-1]["seq"] == 2003


def test_a_quiet_tick_after_a_busy_one_records_every_request() -> None:
    """The gap between picks follows the rate: after a busy tick and an empty one, each of a
    few requests is recorded again (a manual request after a load test is not sampled away)."""
    worker = stats.WorkerStats(slow=9.0, limit=10)
    for _ in range(5000):
        worker.request_done(Exchange(started_at=time.perf_counter()))
    assert len(worker.take()["records"]) == 10
    assert worker.take()["records"] == []
    for _ in range(3):
        worker.request_done(Exchange(started_at=time.perf_counter()))
    assert [record["seq"] for record in worker.take()["records"]] == [5001, 5002, 5003]


def test_the_sample_is_spread_over_the_tick() -> None:
    """Every part of a tick's requests is as likely to be sampled (not just the first ones),
    once the previous tick has told the sampler how busy the worker is."""
    state = random.getstate()
    random.seed(11)
    try:
        per_decile = [0] * 10
        worker = stats.WorkerStats(slow=9.0, limit=10)
        exchange = Exchange(started_at=time.perf_counter())
        for _ in range(1000):  # the first tick: picks the first 10, learns the rate
            worker.request_done(exchange)
        assert [record["seq"] for record in worker.take()["records"]] == list(range(1, 11))
        for tick in range(1, 301):
            exchange = Exchange(started_at=time.perf_counter())  # fast: never kept as slow
            for _ in range(1000):
                worker.request_done(exchange)
            records = worker.take()["records"]
            assert len(records) <= 10
            for record in records:
                per_decile[(record["seq"] - 1 - tick * 1000) // 100] += 1
    finally:
        random.setstate(state)
    assert sum(per_decile) >= 2000  # about 4/5 of the limit a tick
    assert all(0.8 <= count * 10 / sum(per_decile) <= 1.2 for count in per_decile), per_decile
