"""Prometheus /metrics on --admin, scraped from a real devserve over real sockets.

Each test starts the `devserve` CLI with `--admin 127.0.0.1:0` (the port is read back from its
log line), sends an exact number of requests, and scrapes /metrics until the workers' ticks
(every 250 ms) have carried the counts over, under a deadline. The expositions are read with
prometheus_client's own parsers, as a scraper would read them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from devserver.channel import Tick
from devserver.control import prometheus
from devserver.control.client import ControlClient
from devserver.stats import WorkerStats
from devserver.supervisor.metrics import Metrics
from tests.utils import Process, devserve_command, spawned, until

APPS = str(Path(__file__).parent / "cli_apps")
HEALTH = re.compile(r"health endpoints on (http://\S+)/livez")
SERVING = re.compile(r"serving on (http://\S+)")
OPENMETRICS_2 = "application/openmetrics-text; version=2.0.0"
DEADLINE = 15.0  # for the workers' ticks to reach the supervisor on a busy machine
LATENCY = "devserve_request_duration_seconds"


@dataclasses.dataclass
class Devserve:
    process: Process
    url: str  # where the workers serve
    admin: str  # where /metrics is
    control: ControlClient


@contextlib.contextmanager
def devserve(tmp_path: Path, *args: str) -> Iterator[Devserve]:
    """The devserve CLI with --admin and a control socket, once its first generation serves.

    Without an APP among `args` it serves the built-in demo app."""
    control = tmp_path / "ctl.sock"
    command = devserve_command(
        "--no-tui", "--port", "0", "--admin", "127.0.0.1:0", "--control", str(control), *args
    )
    with spawned(command, cwd=str(tmp_path)) as process:
        admin = HEALTH.search(process.out.wait_for(HEALTH.pattern, timeout=20))
        serving = SERVING.search(process.out.wait_for(SERVING.pattern, timeout=20))
        assert admin is not None and serving is not None
        yield Devserve(process, serving.group(1), admin.group(1), ControlClient(str(control)))


# --------------------------------------------------------------------------- scraping
def scrape(admin: str) -> list[Metric]:
    """GET /metrics in the classic text format, parsed."""
    response = httpx.get(f"{admin}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return list(text_string_to_metric_families(response.text))


def samples_of(families: Iterable[Metric]) -> list[Sample]:
    return [sample for family in families for sample in family.samples]


def total(families: Iterable[Metric], name: str, **labels: str) -> float:
    """The sum of sample `name`'s values over the samples that carry `labels`."""
    return sum(
        sample.value
        for sample in samples_of(families)
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def by_worker(families: Iterable[Metric], name: str) -> dict[str, float]:
    """Sample `name` summed per `worker` label."""
    values: dict[str, float] = {}
    for sample in samples_of(families):
        if sample.name == name:
            worker = sample.labels["worker"]
            values[worker] = values.get(worker, 0.0) + sample.value
    return values


def scrape_until(
    admin: str, reached: Callable[[list[Metric]], bool], what: str, timeout: float = DEADLINE
) -> list[Metric]:
    """Scrape until `reached(families)` holds (the workers' ticks have arrived); the families."""
    families: list[Metric] = until(
        lambda: scrape(admin),
        f"/metrics to show {what}",
        timeout,
        accept=reached,
        interval=0.05,  # each look is a scrape: a request and a parse
    )
    return families


def requests_seen(families: Iterable[Metric]) -> float:
    return total(families, "devserve_requests_total")


def both_workers_and(requests: int) -> Callable[[list[Metric]], bool]:
    """Both workers have ticked (their series exist) and `requests` have been counted."""

    def reached(families: list[Metric]) -> bool:
        workers = set(by_worker(families, "devserve_requests_total"))
        return workers == {"1", "2"} and requests_seen(families) >= requests

    return reached


def family(families: Iterable[Metric], name: str) -> Metric:
    found = [f for f in families if f.name == name]
    assert len(found) == 1, f"{name} in {[f.name for f in families]}"
    return found[0]


def check_classic_histogram(latency: Metric, worker: str) -> float:
    """Buckets of one worker are cumulative, in increasing `le`, ending in +Inf == _count;
    returns that count."""
    buckets = [
        s for s in latency.samples if s.name == f"{LATENCY}_bucket" and s.labels["worker"] == worker
    ]
    bounds = [float(s.labels["le"]) for s in buckets]
    counts = [s.value for s in buckets]
    (count,) = [
        s.value
        for s in latency.samples
        if s.name == f"{LATENCY}_count" and s.labels["worker"] == worker
    ]
    (duration_sum,) = [
        s.value
        for s in latency.samples
        if s.name == f"{LATENCY}_sum" and s.labels["worker"] == worker
    ]
    assert len(buckets) > 2
    assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds)
    assert math.isinf(bounds[-1]) and buckets[-1].labels["le"] == "+Inf"
    assert all(a <= b for a, b in itertools.pairwise(counts)), counts
    assert counts[-1] == count
    assert (duration_sum > 0) == (count > 0)
    return count


# --------------------------------------------------------------------------- the tests
def test_requests_by_status_and_the_latency_histogram_match_the_requests_sent(
    tmp_path: Path,
) -> None:
    """Classic /metrics parses; devserve_requests_total summed over both workers counts exactly
    the responses sent by status class, and devserve_request_duration_seconds is a histogram
    whose cumulative buckets end in +Inf with a _count equal to each worker's requests."""
    sent = [
        ("GET", "/", 200),
        ("GET", "/nope", 404),
        ("POST", "/echo", 200),
        ("GET", "/error", 500),
        ("GET", "/", 200),
        ("GET", "/nope", 404),
        ("GET", "/", 200),
        ("GET", "/error", 500),
        ("GET", "/", 200),
    ]
    with devserve(tmp_path, "--workers", "2") as server:
        before = scrape(server.admin)
        with httpx.Client(base_url=server.url, timeout=10) as client:
            statuses = [
                client.request(
                    method, path, content=b"x" * 3 if method == "POST" else None
                ).status_code
                for method, path, _ in sent
            ]
        families = scrape_until(
            server.admin, both_workers_and(len(sent)), f"{len(sent)} requests, both workers"
        )
    assert statuses == [status for _, _, status in sent]
    assert requests_seen(before) == 0
    expected = Counter(f"{status // 100}xx" for _, _, status in sent)
    assert (
        {
            name: total(families, "devserve_requests_total", status=name)
            for name in ("1xx", "2xx", "3xx", "4xx", "5xx")
        }
        == {"1xx": 0, "2xx": 5, "3xx": 0, "4xx": 2, "5xx": 2}
        == {"1xx": 0, "3xx": 0, **expected}
    )
    assert family(families, "devserve_requests").type == "counter"
    assert total(families, "devserve_requests_by_protocol_total", protocol="h1") == len(sent)
    assert total(families, "devserve_requests_by_protocol_total", protocol="h2") == 0
    latency = family(families, LATENCY)
    assert latency.type == "histogram"
    per_worker = by_worker(families, "devserve_requests_total")
    assert set(per_worker) == {"1", "2"}
    counts = {worker: check_classic_histogram(latency, worker) for worker in per_worker}
    assert counts == per_worker
    assert sum(counts.values()) == len(sent)


def _exchange(stream_id: int | None) -> SimpleNamespace:
    """A finished request as a worker's stats read it; over HTTP/2 when it has a stream id."""
    scope = {
        "type": "http",
        "path": "/",
        "query_string": b"",
        "http_version": "1.1" if stream_id is None else "2",
        "scheme": "http",
        "client": None,
        "headers": [],
    }
    return SimpleNamespace(
        scope=scope,
        method="GET",
        status=200,
        bytes_sent=0,
        bytes_received=0,
        started_at=time.perf_counter(),
        trace=None,
        failure=None,
        stream_id=stream_id,
    )


def test_requests_by_protocol_are_labelled_h1_and_h2_under_each_slot() -> None:
    """Requests a worker's stats counted over HTTP/1.1 and HTTP/2 reach
    devserve_requests_by_protocol_total{protocol="h1"|"h2"} under the worker's slot, through the
    supervisor's sums; a slot that served only one protocol shows 0 for the other."""
    metrics = Metrics()
    served = {(41, 1): [None, 1, None, 3, 5], (42, 2): [1, 3], (43, 1): [None]}
    for (pid, slot), streams in served.items():
        worker = WorkerStats()
        for stream_id in streams:
            worker.request_done(_exchange(stream_id))  # type: ignore[arg-type]
        tick = Tick(len(streams), 0, 0, stats=worker.take())
        metrics.on_tick(SimpleNamespace(pid=pid, slot=slot), tick)  # type: ignore[arg-type]
    supervisor = SimpleNamespace(
        metrics=metrics, workers={}, slot_restarts={}, target=2, generation=1, ready=True
    )
    text, _ = prometheus.render(supervisor, "")  # type: ignore[arg-type]
    families = list(text_string_to_metric_families(text.decode()))
    assert family(families, "devserve_requests_by_protocol").type == "counter"
    counted = {
        (sample.labels["worker"], sample.labels["protocol"]): sample.value
        for sample in samples_of(families)
        if sample.name == "devserve_requests_by_protocol_total"
    }
    assert counted == {("1", "h1"): 3, ("1", "h2"): 3, ("2", "h1"): 0, ("2", "h2"): 2}


def test_http2_requests_are_told_apart_in_records_metrics_status_and_the_access_log(
    tmp_path: Path,
) -> None:
    """A real devserve serves 3 requests over HTTP/2 (cleartext, prior knowledge: one connection,
    streams 1, 3, 5) and 2 over HTTP/1.1: their records say http_version "2" with the stream id
    (HTTP/1.1's: "1.1", null), /metrics counts them as h2 and h1, the status snapshot's
    `protocols` too, and the access log writes HTTP/2."""
    with devserve(tmp_path) as server:
        stream = server.control.subscribe()
        with httpx.Client(base_url=server.url, http1=False, http2=True, timeout=10) as client:
            answers = [client.get(f"/?over=h2-{n}") for n in range(3)]
        with httpx.Client(base_url=server.url, timeout=10) as client:
            answers += [client.get(f"/?over=h1-{n}") for n in range(2)]
        records: dict[str, tuple[str, int | None]] = {}
        deadline = time.monotonic() + DEADLINE
        for message in stream:
            if message["type"] == "requests":
                found = message["requests"]
                records |= {r["query"]: (r["http_version"], r["stream"]) for r in found}
            if len(records) >= 5 or time.monotonic() > deadline:
                break
        stream.close()
        families = scrape_until(server.admin, lambda f: requests_seen(f) >= 5, "5 requests")
        protocols = server.control.request("status")["totals"]["protocols"]
        server.process.out.wait_for(r'"GET /\?over=h1-1 HTTP/1\.1" 200')
        logged = server.process.out.text
    assert [(a.http_version, a.status_code) for a in answers] == [("HTTP/2", 200)] * 3 + [
        ("HTTP/1.1", 200)
    ] * 2
    assert records == {
        "over=h2-0": ("2", 1),
        "over=h2-1": ("2", 3),
        "over=h2-2": ("2", 5),
        "over=h1-0": ("1.1", None),
        "over=h1-1": ("1.1", None),
    }
    assert total(families, "devserve_requests_by_protocol_total", protocol="h2") == 3
    assert total(families, "devserve_requests_by_protocol_total", protocol="h1") == 2
    assert protocols == {"h1": 2, "h2": 3}
    for n in range(3):
        assert f'"GET /?over=h2-{n} HTTP/2" 200' in logged


def test_body_byte_counters_match_the_bodies_sent_and_received(tmp_path: Path) -> None:
    """devserve_request_body_bytes_total and devserve_response_body_bytes_total add up exactly
    the request bodies posted and the response bodies the client read (bodies only, not heads),
    a large streamed body included."""
    posted = [b"a", b"hello, world", b"0123456789" * 30_000]  # the last arrives in many chunks
    with devserve(tmp_path, "--workers", "2") as server:
        received = []
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for body in posted:
                echoed = client.post("/echo", content=body)
                assert (echoed.status_code, echoed.content) == (200, body)
                received.append(echoed.content)
            for path, status in (("/", 200), ("/nope", 404), ("/", 200)):
                answer = client.get(path)
                assert answer.status_code == status
                assert answer.headers.get("content-encoding") is None
                received.append(answer.content)
        requests = len(posted) + 3
        families = scrape_until(
            server.admin, lambda f: requests_seen(f) >= requests, f"{requests} requests"
        )
    assert requests_seen(families) == requests
    assert total(families, "devserve_request_body_bytes_total") == sum(map(len, posted))
    assert total(families, "devserve_response_body_bytes_total") == sum(map(len, received))


def test_openmetrics_2_exposition_carries_a_native_histogram_per_worker(tmp_path: Path) -> None:
    """Asked for OpenMetrics 2.0, /metrics answers in it, prometheus_client's OpenMetrics parser
    reads it, and each worker's latency series has a schema-3 native histogram whose count (and
    zero bucket plus buckets) equals the classic _count of the same worker; the classic text
    format carries no native histogram."""
    with devserve(tmp_path, "--workers", "2") as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for path in ("/", "/nope", "/", "/error", "/nope", "/"):
                client.get(path)
        scrape_until(server.admin, both_workers_and(6), "6 requests, both workers")
        answer = httpx.get(f"{server.admin}/metrics", headers={"accept": OPENMETRICS_2}, timeout=5)
        classic = httpx.get(f"{server.admin}/metrics", timeout=5)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith(OPENMETRICS_2)
    assert answer.text.rstrip().endswith("# EOF")
    families = list(openmetrics_families(answer.text))  # type: ignore[no-untyped-call]
    latency = family(families, LATENCY)
    assert latency.type == "histogram"
    classic_counts = {
        s.labels["worker"]: s.value for s in latency.samples if s.name == f"{LATENCY}_count"
    }
    classic_sums = {
        s.labels["worker"]: s.value for s in latency.samples if s.name == f"{LATENCY}_sum"
    }
    natives = {
        s.labels["worker"]: s.native_histogram
        for s in latency.samples
        if s.native_histogram is not None
    }
    assert set(natives) == set(classic_counts) == {"1", "2"}
    assert sum(classic_counts.values()) == 6
    for worker, native in natives.items():
        assert native.schema == 3
        assert native.count_value == classic_counts[worker]
        assert native.sum_value == pytest.approx(classic_sums[worker])
        running, in_buckets = 0, 0
        for delta in native.pos_deltas or ():
            running += delta
            assert running >= 0
            in_buckets += running
        assert native.zero_count + in_buckets == native.count_value
        # prometheus_client's parser drops spans with a negative offset (durations under 1 s
        # have negative bucket indexes), so the spans are read from the text itself
        line = re.search(rf'^{LATENCY}{{worker="{worker}"}} {{(.*)}}$', answer.text, re.MULTILINE)
        assert line is not None
        spans = re.search(r"positive_spans:\[(-?\d+):(\d+)\]", line.group(1))
        if in_buckets == 0:  # a worker the requests all missed
            assert spans is None and not native.pos_deltas
            continue
        assert spans is not None and int(spans.group(2)) == len(native.pos_deltas or ())
        assert 2 ** (int(spans.group(1)) / 8) <= 1.0  # the fastest bucket: under a second
    assert "schema:" not in classic.text and "{count:" not in classic.text


def test_counters_survive_a_worker_restart_under_the_slot_label(tmp_path: Path) -> None:
    """Requests counted before a worker is killed (control socket `kill`) stay counted: after the
    replacement serves more, devserve_requests_total{worker="1"} is the sum of both workers',
    the histogram's _count too, and devserve_worker_restarts_total{worker="1"} is 1."""
    first, second = 3, 2
    with devserve(tmp_path, "--workers", "1") as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for _ in range(first):
                assert client.get("/").status_code == 200
        # the kill loses what the worker has not reported yet: wait until it has
        scrape_until(server.admin, lambda f: requests_seen(f) >= first, f"{first} requests")
        (old,) = [w["pid"] for w in server.control.request("status")["workers"]]
        assert server.control.request("kill", pid=old) == {"killed": old}

        def replaced() -> bool:
            workers = server.control.request("status")["workers"]
            return any(w["pid"] != old and w["state"] == "ready" for w in workers)

        until(replaced, "a new worker", DEADLINE, detail=lambda: server.process.out.text)
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for _ in range(second):
                assert client.get("/nope").status_code == 404
        families = scrape_until(
            server.admin,
            lambda f: requests_seen(f) >= first + second,
            f"{first + second} requests",
        )
        (new,) = server.control.request("status")["workers"]
    assert new["pid"] != old and new["slot"] == 1
    assert by_worker(families, "devserve_requests_total") == {"1": first + second}
    assert total(families, "devserve_requests_total", worker="1", status="2xx") == first
    assert total(families, "devserve_requests_total", worker="1", status="4xx") == second
    assert by_worker(families, f"{LATENCY}_count") == {"1": first + second}
    assert by_worker(families, "devserve_worker_restarts_total") == {"1": 1}


def test_gauges_per_worker_and_the_ready_workers(tmp_path: Path) -> None:
    """Each live worker has in-flight, connection, WebSocket, RSS (> 0) and loop-lag gauges under
    its slot; devserve_workers{state="ready"} is the number of workers; a request held open by
    the app shows as 1 in flight on its worker's slot, and 0 again once it is answered."""
    release = tmp_path / "release"
    with (
        ThreadPoolExecutor(1) as pool,
        devserve(tmp_path, "--workers", "2", "--app-dir", APPS, "supervised_app:app") as server,
    ):
        gauges = (
            "devserve_in_flight_requests",
            "devserve_open_connections_http",
            "devserve_open_websockets",
            "devserve_worker_resident_memory_bytes",
            "devserve_event_loop_lag_seconds",
        )
        idle = scrape_until(
            server.admin,
            lambda f: all(set(by_worker(f, name)) == {"1", "2"} for name in gauges),
            "the gauges of both workers",
        )
        slow = pool.submit(httpx.get, f"{server.url}/slow?{release}", timeout=20)
        line = server.process.out.wait_for(r"supervised_app: slow in pid \d+")
        pid = int(line.split()[-1])
        slots = {w["pid"]: str(w["slot"]) for w in server.control.request("status")["workers"]}
        busy = scrape_until(
            server.admin,
            lambda f: total(f, "devserve_in_flight_requests") >= 1,
            "the request in flight",
        )
        release.touch()
        assert slow.result(timeout=10).text == "done"
        after = scrape_until(
            server.admin,
            lambda f: (
                total(f, "devserve_in_flight_requests") == 0
                and total(f, "devserve_requests_total") == 1
            ),
            "the request answered",
        )
    assert all(value > 0 for value in by_worker(idle, gauges[3]).values())
    assert by_worker(idle, "devserve_in_flight_requests") == {"1": 0, "2": 0}
    assert by_worker(idle, "devserve_open_websockets") == {"1": 0, "2": 0}
    assert total(idle, "devserve_workers", state="ready") == 2
    assert total(idle, "devserve_workers", state="booting") == 0
    assert total(idle, "devserve_workers_target") == 2
    assert total(idle, "devserve_ready") == 1
    assert total(idle, "devserve_supervisor_pid") == server.process.proc.pid
    other = ({"1", "2"} - {slots[pid]}).pop()
    assert by_worker(busy, "devserve_in_flight_requests") == {slots[pid]: 1, other: 0}
    assert by_worker(busy, "devserve_open_connections_http")[slots[pid]] >= 1
    assert by_worker(after, "devserve_requests_total")[slots[pid]] == 1
