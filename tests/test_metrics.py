"""Live metrics end to end: real devserve processes, real requests, the numbers the control API
reports back (counters, windows, percentiles, records, restarts)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import math
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from devserver.control.client import ControlClient
from tests.utils import Process, run_devserve, until

APPS = str(Path(__file__).parent / "cli_apps")
ONE_BUCKET = 2 ** (1 / 8)  # the histogram's bucket width, as a factor


@contextlib.contextmanager
def serving(tmp_path: Path, *args: str) -> Iterator[tuple[Process, ControlClient]]:
    control = tmp_path / "ctl.sock"
    with run_devserve(
        "--control", str(control), "--app-dir", APPS, "--no-access-log", *args
    ) as process:
        yield process, ControlClient(str(control))


def status_when(
    client: ControlClient, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0
) -> dict[str, Any]:
    """The first status snapshot for which `predicate` holds (the workers report every 250 ms)."""
    status: dict[str, Any] = until(
        lambda: client.request("status"), "the status wanted", timeout, accept=predicate
    )
    return status


def records_until(
    client: ControlClient, wanted: Callable[[dict[str, Any]], bool], count: int
) -> list[dict[str, Any]]:
    """Request records from the stream until `count` of them satisfy `wanted`."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    stream = client.subscribe()
    try:
        for message in stream:
            if message["type"] == "requests":
                found += [r for r in message["requests"] if wanted(r)]
            if len(found) >= count:
                return found
            assert time.monotonic() < deadline, found
    finally:
        stream.close()
    raise AssertionError("the stream ended")


def test_counters_match_what_the_clients_sent(tmp_path: Path) -> None:
    """Exact request counts by status class, body bytes both ways, across two workers."""
    plan = (
        [("GET", "/status/200?size=100", b"")] * 30
        + [("GET", "/status/404?size=5", b"")] * 7
        + [("GET", "/status/503?size=0", b"")] * 3
        + [("POST", "/upload", b"u" * 1000)] * 5
        + [("GET", "/boom", b"")] * 2
    )
    with serving(tmp_path, "--workers", "2", "metrics_app:app") as (process, client):

        def send(item: tuple[str, str, bytes]) -> tuple[int, int]:
            method, path, body = item
            response = httpx.request(method, process.url + path, content=body, timeout=10)
            return response.status_code, len(response.content)

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(send, plan))
        assert sorted({status for status, _ in answers}) == [200, 404, 500, 503]
        # windows hold whole seconds: the last requests show there once their second is over
        snapshot = status_when(client, lambda s: s["totals"]["windows"]["60s"]["requests"] == 47)
    totals = snapshot["totals"]
    assert totals["requests"] == 47
    assert totals["statuses"] == {"1xx": 0, "2xx": 35, "3xx": 0, "4xx": 7, "5xx": 5}
    assert totals["bytes_in"] == 5 * 1000
    # devserve's own 500 body counts like an app's
    assert totals["bytes_out"] == sum(size for _, size in answers)
    assert totals["bytes_out"] == 30 * 100 + 7 * 5 + 5 * len(b"1000") + 2 * answers[-1][1]
    assert answers[-1][1] > 0
    minute = totals["windows"]["60s"]
    assert minute["requests"] == 47
    assert minute["error_rate"] == round(5 / 47, 4)
    workers = snapshot["workers"]
    assert len(workers) == 2
    assert sum(w["requests"] for w in workers) == 47
    for key in ("bytes_in", "bytes_out"):
        assert sum(w[key] for w in workers) == totals[key]


def test_percentiles_are_within_one_bucket_of_the_truth(tmp_path: Path) -> None:
    """For known sleeps, p50/p90/p99 lie between what the app measured and what the client
    measured, give or take one bucket; max too."""
    sleeps = [10] * 20 + [40] * 16 + [100] * 4  # ranks: p50 → 10 ms, p90 → 40 ms, p99 → 100 ms
    app_ms: list[float] = []
    client_ms: list[float] = []
    with serving(tmp_path, "metrics_app:app") as (process, client):
        with httpx.Client(base_url=process.url, timeout=10) as http:
            for ms in sleeps:
                began = time.perf_counter()
                response = http.get(f"/sleep?ms={ms}")
                client_ms.append((time.perf_counter() - began) * 1000)
                app_ms.append(float(response.headers["x-app-ms"]))
        # the totals and the worker's own window close their seconds on different heartbeats:
        # wait until both hold every request
        snapshot = status_when(
            client,
            lambda s: (
                s["totals"]["windows"]["60s"]["requests"] == len(sleeps)
                and s["workers"][0]["windows"]["60s"]["requests"] == len(sleeps)
            ),
        )
    window = snapshot["totals"]["windows"]["60s"]
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        low, high = _quantile(app_ms, q), _quantile(client_ms, q)
        assert low / ONE_BUCKET <= window[name] <= high * ONE_BUCKET, (name, low, high, window)
    # the server reads its clock just after the write that the client may already have seen:
    # on a loaded machine it can be descheduled in between, so the client's bound gets 1 ms
    assert max(app_ms) <= window["max"] <= max(client_ms) + 1.0
    worker = snapshot["workers"][0]["windows"]["60s"]
    assert worker == window | {"rps": worker["rps"]}  # one worker: the same numbers


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def test_totals_keep_counting_across_a_rolling_restart(tmp_path: Path) -> None:
    """The supervisor's totals include the workers that are gone; a new worker starts at 0."""
    with serving(tmp_path, "metrics_app:app") as (process, client):
        for _ in range(10):
            assert httpx.get(process.url + "/status/200", timeout=10).status_code == 200
        first = status_when(client, lambda s: s["totals"]["requests"] == 10)
        old_pid = first["workers"][0]["pid"]
        client.request("restart")
        status_when(
            client,
            lambda s: (
                [w["pid"] for w in s["workers"]] not in ([], [old_pid])
                and len(s["workers"]) == 1
                and s["workers"][0]["state"] == "ready"
            ),
            timeout=20,
        )
        for _ in range(5):
            assert httpx.get(process.url + "/status/201", timeout=10).status_code == 201
        after = status_when(client, lambda s: s["totals"]["requests"] == 15)
    assert after["totals"]["statuses"]["2xx"] == 15
    assert after["workers"][0]["requests"] == 5
    assert after["workers"][0]["statuses"]["2xx"] == 5


@pytest.mark.parametrize("redact", [True, False], ids=["redacted", "no-redact"])
def test_request_records_show_the_request_with_secrets_redacted(
    tmp_path: Path, redact: bool
) -> None:
    """A record carries what the panels show; Authorization and Cookie values only with
    --no-redact."""
    flags = () if redact else ("--no-redact",)
    with serving(tmp_path, *flags, "metrics_app:app") as (process, client):
        headers = {"authorization": "Bearer s3cret", "cookie": "session=abc", "x-seen": "yes"}
        response = httpx.post(
            process.url + "/upload?x=1", content=b"12345", headers=headers, timeout=10
        )
        assert response.text == "5"
        (record,) = records_until(client, lambda r: r["path"] == "/upload", 1)
    assert record["method"] == "POST" and record["query"] == "x=1"
    assert record["status"] == 200 and record["bytes_in"] == 5 and record["bytes_out"] == 1
    assert record["duration"] > 0 and record["type"] == "http"
    assert record["id"] == f"{record['pid']}-{record['seq']}" and record["slot"] == 1
    sent = dict(record["headers"])
    assert sent["x-seen"] == "yes"
    if redact:
        assert sent["authorization"] == sent["cookie"] == "[redacted]"
    else:
        assert sent["authorization"] == "Bearer s3cret" and sent["cookie"] == "session=abc"


def test_with_no_metrics_requests_are_counted_but_not_measured(tmp_path: Path) -> None:
    """--no-metrics keeps the heartbeat's request count; no statuses, latency or records."""
    with serving(tmp_path, "--no-metrics", "metrics_app:app") as (process, client):
        for _ in range(3):
            httpx.get(process.url + "/status/200", timeout=10)
        snapshot = status_when(client, lambda s: s["totals"]["requests"] == 3)
    assert snapshot["server"]["metrics"] is False
    assert snapshot["totals"]["statuses"]["2xx"] == 0
    assert snapshot["totals"]["windows"]["60s"]["p50"] is None
    assert snapshot["workers"][0]["rss"] > 0


def test_websockets_are_counted(tmp_path: Path) -> None:
    """Open WebSockets, accepted ones and messages both ways (the demo app echoes)."""
    with serving(tmp_path) as (process, client):
        with connect(process.url.replace("http", "ws") + "/ws") as websocket:
            for text in ("a", "b", "c"):
                websocket.send(text)
                assert websocket.recv(timeout=10) == text
            live = status_when(client, lambda s: s["totals"]["websockets"] == 1)
            assert live["workers"][0]["websockets"] == 1
        done = status_when(
            client, lambda s: s["totals"]["websockets"] == 0 and s["totals"]["ws_sent"] == 3
        )
    assert done["totals"]["ws_opened"] == 1
    assert done["totals"]["ws_received"] == 3


def test_malformed_requests_count_as_rejected(tmp_path: Path) -> None:
    """A request devserve answers itself (400) is counted apart from the app's responses."""
    with serving(tmp_path, "metrics_app:app") as (process, client):
        with socket.create_connection(("127.0.0.1", process.port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 400")
        snapshot = status_when(client, lambda s: s["totals"]["rejected"] == 1)
    assert snapshot["totals"]["requests"] == 0


def test_a_request_finished_while_draining_is_counted(tmp_path: Path) -> None:
    """The worker's last tick, sent as it stops, carries what it served after the one before."""
    with serving(tmp_path, "metrics_app:app") as (process, client):
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            slow = pool.submit(httpx.get, process.url + "/sleep?ms=1500", timeout=20)
            status_when(client, lambda s: s["totals"]["in_flight"] == 1)
            client.request("restart")
            assert slow.result().status_code == 200
        snapshot = status_when(client, lambda s: s["totals"]["requests"] == 1, timeout=20)
    assert snapshot["totals"]["statuses"]["2xx"] == 1
