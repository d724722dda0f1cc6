"""Prometheus exposition of the supervisor's numbers: what /metrics on --admin answers.

Counters are the supervisor's (supervisor/metrics.py), labelled `worker` with the worker's slot
(1..N): a replacement continues its slot's series, so counters never go back to zero while
devserve runs. Request latency is a histogram. In the classic text format its buckets are every
4th bucket boundary of devserve's own (a factor of √2 apart, from 50 µs to 64 s), which are exact
since the boundaries coincide; a scraper that asks for OpenMetrics 2.0 also gets it as a native
histogram (schema 3, devserve's buckets one to one). Formats are prometheus_client's.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import BucketSpan, NativeHistogram

from devserver import stats
from devserver.supervisor.metrics import STATUS_CLASSES, Counters
from devserver.supervisor.workers import WorkerState

if TYPE_CHECKING:
    from devserver.supervisor.supervisor import Supervisor

ALIVE_STATES = (WorkerState.SPAWNING, WorkerState.BOOTING, WorkerState.READY, WorkerState.DRAINING)
CLASSIC_STEP = 4  # every 4th bucket boundary: a factor of √2
_CLASSIC_BOUNDS = [
    index for index in range(stats.LOWEST, stats.HIGHEST + 1) if index % CLASSIC_STEP == 0
]


def render(supervisor: Supervisor, accept: str) -> tuple[bytes, str]:
    """The exposition in the format `accept` asks for, and its content type."""
    encoder, content_type = choose_encoder(accept)
    native = content_type.startswith("application/openmetrics-text; version=2")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SupervisorCollector(supervisor, native))
    return encoder(registry), content_type


class SupervisorCollector(Collector):
    def __init__(self, supervisor: Supervisor, native: bool) -> None:
        self.supervisor = supervisor
        self.native = native

    def collect(self) -> Iterator[Metric]:
        supervisor = self.supervisor
        slots = sorted(supervisor.metrics.slots.items())
        yield from _counters(slots)
        yield _latency(slots, self.native)
        yield from self._live()
        restarts = CounterMetricFamily(
            "devserve_worker_restarts", "Times a slot's worker was replaced.", labels=["worker"]
        )
        for slot, count in sorted(supervisor.slot_restarts.items()):
            restarts.add_metric([str(slot)], count)
        yield restarts
        workers = GaugeMetricFamily(
            "devserve_workers", "Worker processes by state.", labels=["state"]
        )
        for state in ALIVE_STATES:
            count = sum(1 for w in supervisor.workers.values() if w.state is state)
            workers.add_metric([state.value], count)
        yield workers
        yield GaugeMetricFamily(
            "devserve_workers_target", "Workers devserve keeps serving.", value=supervisor.target
        )
        yield GaugeMetricFamily(
            "devserve_generation", "The generation now serving.", value=supervisor.generation
        )
        yield GaugeMetricFamily(
            "devserve_ready",
            "1 when at least one worker serves and no crash loop is on.",
            value=int(supervisor.ready),
        )
        yield GaugeMetricFamily("devserve_supervisor_pid", "The supervisor's pid.", os.getpid())

    def _live(self) -> Iterator[Metric]:
        """Gauges from the latest heartbeat of each live worker, summed by slot."""
        names = {
            "in_flight": ("devserve_in_flight_requests", "Requests being handled."),
            "http": ("devserve_open_connections_http", "Open HTTP connections."),
            "websockets": ("devserve_open_websockets", "Open WebSocket connections."),
            "rss": ("devserve_worker_resident_memory_bytes", "Worker resident memory (RSS)."),
            "loop_lag": ("devserve_event_loop_lag_seconds", "How late the worker's timer fired."),
        }
        sums: dict[str, dict[int, float]] = {key: {} for key in names}
        for pid, meter in self.supervisor.metrics.workers.items():
            tick = meter.last
            if tick is None or pid not in self.supervisor.workers:
                continue
            values = {
                "in_flight": tick.in_flight,
                "http": tick.connections - tick.websockets,
                "websockets": tick.websockets,
                "rss": tick.rss,
                "loop_lag": tick.loop_lag,
            }
            for key, value in values.items():
                sums[key][meter.slot] = sums[key].get(meter.slot, 0) + value
        for key, (name, documentation) in names.items():
            family = GaugeMetricFamily(name, documentation, labels=["worker"])
            for slot, value in sorted(sums[key].items()):
                family.add_metric([str(slot)], value)
            yield family


def _counters(slots: list[tuple[int, Counters]]) -> Iterator[Metric]:
    requests = CounterMetricFamily(
        "devserve_requests", "HTTP responses sent, by status class.", labels=["worker", "status"]
    )
    for slot, counters in slots:
        for name, count in zip(STATUS_CLASSES, counters.statuses, strict=True):
            requests.add_metric([str(slot), name], count)
    yield requests
    protocols = CounterMetricFamily(
        "devserve_requests_by_protocol",
        "HTTP responses sent, by protocol: h1 (HTTP/1.0 and 1.1) or h2 (HTTP/2).",
        labels=["worker", "protocol"],
    )
    for slot, counters in slots:
        for name, count in zip(stats.PROTOCOLS, counters.protocols, strict=True):
            protocols.add_metric([str(slot), name], count)
    yield protocols
    simple = {
        "bytes_in": ("devserve_request_body_bytes", "Request body bytes received."),
        "bytes_out": ("devserve_response_body_bytes", "Response body bytes sent."),
        "rejected": ("devserve_rejected_requests", "Malformed requests answered by devserve."),
        "ws_opened": ("devserve_websocket_connections", "WebSocket connections accepted."),
        "ws_received": ("devserve_websocket_messages_received", "WebSocket messages received."),
        "ws_sent": ("devserve_websocket_messages_sent", "WebSocket messages sent."),
        "cpu_seconds": ("devserve_worker_cpu_seconds", "CPU time used by workers."),
        "records_dropped": ("devserve_request_records_dropped", "Request records not sampled."),
    }
    for attribute, (name, documentation) in simple.items():
        family = CounterMetricFamily(name, documentation, labels=["worker"])
        for slot, counters in slots:
            family.add_metric([str(slot)], getattr(counters, attribute))
        yield family


def _latency(slots: list[tuple[int, Counters]], native: bool) -> HistogramMetricFamily:
    family = HistogramMetricFamily(
        "devserve_request_duration_seconds",
        "Time from the end of the request head to the last byte of the response.",
        labels=["worker"],
    )
    for slot, counters in slots:
        buckets = counters.buckets
        count = sum(buckets.values())
        cumulative: list[tuple[str, float]] = [
            (repr(stats.upper_bound(bound)), sum(n for i, n in buckets.items() if i <= bound))
            for bound in _CLASSIC_BOUNDS
        ]
        cumulative.append(("+Inf", count))
        family.add_metric([str(slot)], cumulative, counters.duration_sum)
        if native:
            family.add_sample(
                family.name,
                {"worker": str(slot)},
                0.0,
                native_histogram=_native(buckets, count, counters.duration_sum),
            )
    return family


def _native(buckets: dict[int, int], count: int, total: float) -> NativeHistogram:
    """devserve's buckets as a schema-3 native histogram (the lowest one is the zero bucket)."""
    zero = buckets.get(stats.LOWEST, 0)
    indexes = [index for index in buckets if index != stats.LOWEST]
    spans: list[BucketSpan] = []
    deltas: list[int] = []
    if indexes:
        first, last = min(indexes), max(indexes)
        spans.append(BucketSpan(first, last - first + 1))
        previous = 0
        for index in range(first, last + 1):
            current = buckets.get(index, 0)
            deltas.append(current - previous)
            previous = current
    return NativeHistogram(
        count_value=count,
        sum_value=total,
        schema=stats.SCHEMA,
        zero_threshold=stats.upper_bound(stats.LOWEST),
        zero_count=zero,
        pos_spans=spans,
        pos_deltas=deltas,
    )
