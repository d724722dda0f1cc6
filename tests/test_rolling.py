"""Workers come and go under steady load: rolling restarts, a failed restart, kill -9, scaling,
recycling.

Real processes, signals and sockets: the `devserve` CLI with several workers on 127.0.0.1 port 0,
tests/load.py's clients hammering it (half on keep-alive connections, half on a new connection per
request) while the supervisor replaces workers. A request the load has to count as failed is a
request a real client would have lost.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from devserver.control.client import ControlClient
from tests.load import Load
from tests.utils import Process, run_devserve, until

APP = '''\
"""Answers every request with "ok" and the pid of the worker that served it (x-pid)."""
import os

VERSION = {version!r}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({{"type": "lifespan.startup.complete"}})
            else:
                await send({{"type": "lifespan.shutdown.complete"}})
                return
    headers = [(b"content-length", b"2"), (b"x-pid", str(os.getpid()).encode())]
    await send({{"type": "http.response.start", "status": 200, "headers": headers}})
    await send({{"type": "http.response.body", "body": b"ok"}})
'''
BROKEN = 'raise RuntimeError("this version is broken on purpose")\n'
READY_LINE = re.compile(r"worker \d+ \(pid (\d+), generation (\d+)\) ready in")

Status = dict[str, Any]


@contextlib.contextmanager
def serve(tmp_path: Path, *args: str) -> Iterator[tuple[Process, ControlClient]]:
    """devserve with the pid app from `tmp_path`, its own control socket and no access log."""
    module = tmp_path / "rolling_app.py"
    if not module.exists():
        module.write_text(APP.format(version=1))
    control = str(tmp_path / "ctl.sock")
    with run_devserve(
        "--control",
        control,
        "--no-access-log",
        "--app-dir",
        str(tmp_path),
        *args,
        "rolling_app:app",
        env={"PYTHONDONTWRITEBYTECODE": "1"},  # each worker compiles the module as it is now
    ) as server:
        yield server, ControlClient(control)


def converge(
    control: ControlClient, predicate: Callable[[Status], bool], what: str, timeout: float = 5.0
) -> Status:
    """Poll `status` until `predicate` holds; AssertionError with the last status past `timeout`."""
    status: Status = until(lambda: control.request("status"), what, timeout, accept=predicate)
    return status


def ready_pids(status: Status) -> set[int]:
    return {w["pid"] for w in status["workers"] if w["state"] == "ready"}


def only_ready(count: int) -> Callable[[Status], bool]:
    """Exactly `count` workers alive, all of them ready (nothing left starting or draining)."""

    def check(status: Status) -> bool:
        states = [w["state"] for w in status["workers"]]
        return states == ["ready"] * count and status["totals"]["workers_ready"] == count

    return check


def served(load: Load) -> set[int]:
    return {int(pid) for pid in load.served_by}


def report(load: Load, output: str) -> str:
    """What a failed assertion shows: the load's counts and failures, then devserve's log."""
    return f"{load.summary()}\n{load.failures}\n--- devserve's log ---\n{output}"


def test_sighup_rolls_ten_generations_without_failing_a_request(tmp_path: Path) -> None:
    """Ten SIGHUP rolling restarts under load lose no request, and every generation serves."""
    with serve(tmp_path, "--workers", "2") as (server, control):
        first = ready_pids(control.request("status"))
        with Load(server.url, threads=4, header="x-pid") as load:
            load.wait_for_more(200)
            for generation in range(2, 12):
                server.proc.send_signal(signal.SIGHUP)
                server.out.wait_for(rf"restart: generation {generation} serving", timeout=10)
                load.wait_for_more(100)
        status = converge(control, only_ready(2), "two ready workers of generation 11")
        output = server.out.stop()
    assert load.failures == [], report(load, output)
    assert {w["generation"] for w in status["workers"]} == {11}
    assert not ready_pids(status) & first
    generations: dict[int, set[int]] = {}
    for pid, generation in READY_LINE.findall(output):
        generations.setdefault(int(generation), set()).add(int(pid))
    assert sorted(generations) == list(range(1, 12))
    for generation, pids in generations.items():
        assert pids & served(load), f"generation {generation} served no request"


def test_a_failed_restart_keeps_the_old_generation_serving(tmp_path: Path) -> None:
    """A restart into an app that no longer imports logs its traceback, the old workers serve
    on, and the restart after the fix replaces them."""
    module = tmp_path / "rolling_app.py"
    with serve(tmp_path, "--workers", "2") as (server, control):
        old = ready_pids(control.request("status"))
        with Load(server.url, threads=4, header="x-pid") as load:
            load.wait_for_more(100)
            module.write_text(BROKEN)
            server.proc.send_signal(signal.SIGHUP)
            failed = server.out.wait_for(
                "restart failed: generation 2 did not start, generation 1 keeps serving"
            )
            load.wait_for_more(300)
            during = converge(control, only_ready(2), "back to the two old workers")
            assert ready_pids(during) == old
            assert during["server"]["generation"] == 1
            # the failed generation replaced nothing: no slot counts a restart
            assert [w["restarts"] for w in during["workers"]] == [0, 0], during["workers"]
            assert served(load) == old
            module.write_text(APP.format(version=3))
            server.proc.send_signal(signal.SIGHUP)
            line = server.out.wait_for(r"restart: generation \d+ serving", timeout=10)
            load.wait_for_more(100)
        after = converge(control, only_ready(2), "two ready workers of the fixed app")
        output = server.out.stop()
    assert load.failures == [], report(load, output)
    assert not ready_pids(after) & old
    assert [w["restarts"] for w in after["workers"]] == [1, 1]  # the fix replaced each once
    assert {w["generation"] for w in after["workers"]} == {after["server"]["generation"]}
    assert f"generation {after['server']['generation']} serving" in line
    assert "RuntimeError: this version is broken on purpose" in failed, output
    logged = output[output.index("received SIGHUP") :]
    assert "Traceback (most recent call last)" in logged, output
    assert 'raise RuntimeError("this version is broken on purpose")' in logged


def test_a_worker_killed_with_sigkill_is_replaced_within_a_second(tmp_path: Path) -> None:
    """After kill -9 of one of two workers a replacement serves within 1 s, and only requests
    the dead worker held can fail.

    The killed worker takes with it whatever its connections held. A keep-alive client retries
    a request its reused connection swallowed (load.py, RFC 9112 §9.3.1), so only a request sent
    on a new connection can fail; each new-connection client has at most one in flight, hence at
    most one failure per such client, each a dropped connection, none after the replacement.
    """
    with serve(tmp_path, "--workers", "2") as (server, control):
        with Load(server.url, threads=4, header="x-pid") as load:
            load.wait_for_more(200)
            victim, survivor = sorted(ready_pids(control.request("status")))
            killed_at = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            status = converge(
                control,
                lambda s: len(ready_pids(s) - {victim, survivor}) == 1 and only_ready(2)(s),
                "a replacement ready",
                timeout=1.0,
            )
            replaced_at = time.monotonic()
            load.wait_for_more(500)
        output = server.out.stop()
    assert replaced_at - killed_at < 1.0
    assert survivor in ready_pids(status)
    assert f"(pid {victim}, generation 1) killed by SIGKILL" in output
    fresh_threads = load.threads - load.keep_alive
    assert len(load.failures) <= fresh_threads, report(load, output)
    assert len({f.thread for f in load.failures}) == len(load.failures), report(load, output)
    for failure in load.failures:
        assert failure.fresh and failure.reason in ("reset", "eof"), report(load, output)
        assert killed_at <= failure.at < replaced_at, report(load, output)


def test_scaling_up_and_down_over_the_control_socket_loses_no_request(tmp_path: Path) -> None:
    """Scaling 1 → 4 → 1 through the control socket under load reaches each count and loses
    no request."""
    with serve(tmp_path, "--workers", "1") as (server, control):
        with Load(server.url, threads=4, header="x-pid") as load:
            load.wait_for_more(200)
            assert control.request("scale", workers="4") == {"target": 4}
            up = converge(control, only_ready(4), "four ready workers")
            load.wait_for_more(300)
            assert control.request("scale", workers="1") == {"target": 1}
            down = converge(control, only_ready(1), "one ready worker")
            load.wait_for_more(300)
        output = server.out.stop()
    assert load.failures == [], report(load, output)
    assert up["server"]["workers_target"] == 4 and up["totals"]["workers_ready"] == 4
    assert down["server"]["workers_target"] == 1 and down["totals"]["workers_ready"] == 1
    assert ready_pids(down) < ready_pids(up)


def test_max_requests_recycles_workers_without_failing_a_request(tmp_path: Path) -> None:
    """With --max-requests 50 and jitter 10, busy workers are replaced one by one and no
    request fails."""
    args = ("--workers", "2", "--max-requests", "50", "--max-requests-jitter", "10")
    with serve(tmp_path, *args) as (server, control):
        first = ready_pids(control.request("status"))
        with Load(server.url, threads=4, header="x-pid") as load:
            server.out.wait_for("recycling worker", count=4)
            load.wait_for_more(200)
        status = converge(control, only_ready(2), "two ready workers")
        output = server.out.stop()
    assert load.failures == [], report(load, output)
    recycled = re.findall(r"recycling worker \d+ \(pid (\d+), generation 1\): served (\d+)", output)
    assert len(recycled) >= 4, output
    assert all(int(requests) >= 50 for _, requests in recycled)
    assert {int(pid) for pid, _ in recycled} & first
    assert len(served(load) - first) >= 3
    assert len(ready_pids(status)) == 2


def test_max_worker_lifetime_recycles_one_worker_at_a_time(tmp_path: Path) -> None:
    """--max-worker-lifetime replaces old workers, one at a time, without failing a request."""
    with serve(tmp_path, "--workers", "2", "--max-worker-lifetime", "0.5") as (server, control):
        first = ready_pids(control.request("status"))
        with Load(server.url, threads=4, header="x-pid") as load:
            server.out.wait_for(r"recycling worker .* older than 0.5s", count=3)
        converge(control, only_ready(2), "two ready workers")
        output = server.out.stop()
    assert load.failures == [], report(load, output)
    assert first - served(load) or len(served(load) - first) >= 2
    # staggered: a worker is recycled only after the previous one was drained
    events = re.findall(r"(recycling|draining) worker \d+ \(pid (\d+), [^)]*\): older than", output)
    kinds = "".join(kind[0] for kind, _ in events)
    assert re.fullmatch(r"(rd)+r?", kinds), output
    assert [pid for kind, pid in events if kind == "recycling"][: kinds.count("d")] == [
        pid for kind, pid in events if kind == "draining"
    ]
