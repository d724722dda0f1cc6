"""The supervisor as an operator meets it: real processes, real signals, real sockets.

Each test starts `python -m devserver` with workers forked from the fork server, drives it with
signals and the control socket, and reads what it logs. The app (cli_apps/supervised_app.py)
misbehaves on demand: a slow request, a blocked event loop, a worker that dies mid-request.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from devserver.control.client import ControlClient, ControlError
from tests.utils import Process, devserve_command, run_devserve, spawned, until

APPS = str(Path(__file__).parent / "cli_apps")
APP = "supervised_app:app"

Workers = list[dict[str, Any]]


@contextlib.contextmanager
def serve(tmp_path: Path, *args: str, workers: int = 2) -> Iterator[Process]:
    """devserve serving the supervised app, with its own control socket under tmp_path."""
    with run_devserve(
        "--workers", str(workers), "--control", str(tmp_path / "ctl.sock"), "--app-dir", APPS,
        *args, APP,
    ) as proc:  # fmt: skip
        yield proc


def control(tmp_path: Path) -> ControlClient:
    return ControlClient(str(tmp_path / "ctl.sock"), timeout=5)


def wait_for_workers(
    client: ControlClient, predicate: Callable[[Workers], bool], timeout: float = 10.0
) -> Workers:
    """Poll `status` until its worker rows satisfy `predicate`; those rows."""
    workers: Workers = until(
        lambda: client.request("status")["workers"], "the workers", timeout, accept=predicate
    )
    return workers


def ready(count: int) -> Callable[[Workers], bool]:
    """Exactly `count` workers, every one of them ready."""
    return lambda workers: len(workers) == count and all(w["state"] == "ready" for w in workers)


def fresh(count: int, dead: set[int]) -> Callable[[Workers], bool]:
    """`count` ready workers, none of them one of the `dead` pids."""
    return lambda workers: ready(count)(workers) and not pids(workers) & dead


def pids(workers: Workers) -> set[int]:
    return {w["pid"] for w in workers}


def slow_request(pool: ThreadPoolExecutor, proc: Process, release: Path) -> tuple[Future[Any], int]:
    """Start GET /slow on a thread; returns its future and the pid of the worker serving it."""
    future = pool.submit(httpx.get, f"{proc.url}/slow?{release}", timeout=20)
    line = proc.out.wait_for(r"supervised_app: slow in pid \d+")
    return future, int(line.split()[-1])


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for its parent counts as gone)."""
    try:
        status: str = psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return True
    return bool(status == psutil.STATUS_ZOMBIE)


def wait_gone(pid: int, timeout: float = 5.0) -> None:
    until(lambda: gone(pid), f"process {pid} to go (it outlived devserve)", timeout)


def wait_refused(port: int, timeout: float = 5.0) -> None:
    """Until connecting to `port` is refused: nobody listens any more."""
    until(lambda: refused(port), f"port {port} to refuse connections", timeout)


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False  # still in a backlog that is about to close
    except ConnectionRefusedError:
        return True


def readyz(admin: str) -> tuple[int, str]:
    answer = httpx.get(f"{admin}/readyz", timeout=5)
    return answer.status_code, answer.text


def server_state(client: ControlClient) -> str | None:
    """The server's state, None while the control socket does not answer yet."""
    try:
        state: str = client.request("status")["server"]["state"]
    except ControlError:
        return None
    return state


def wait_exit(proc: Process, timeout: float) -> tuple[int, float]:
    """The exit status and how long it took to come."""
    began = time.monotonic()
    status = proc.proc.wait(timeout=timeout)
    return status, time.monotonic() - began


# --------------------------------------------------------------------------- stopping
def test_graceful_stop_lets_an_in_flight_request_finish(tmp_path: Path) -> None:
    """On SIGINT two workers drain: new connections are refused, a slow request still finishes."""
    release = tmp_path / "release"
    with (
        ThreadPoolExecutor(1) as pool,
        serve(tmp_path, "--timeout-graceful-shutdown", "10") as proc,
    ):
        slow, busy = slow_request(pool, proc, release)
        proc.proc.send_signal(signal.SIGINT)
        # the idle worker goes at once; the busy one waits for its request
        proc.out.wait_for(rf"worker \d \(pid (?!{busy}\b)\d+, generation 1\) exited normally")
        wait_refused(proc.port)
        assert proc.proc.poll() is None and not slow.done()
        release.touch()
        response = slow.result(timeout=10)
        status, _ = wait_exit(proc, timeout=10)
        text = proc.out.text
    assert (response.status_code, response.text) == (200, "done")
    assert status == 0, text
    assert re.search(rf"worker \d \(pid {busy}, generation 1\) exited normally", text)
    assert re.search(r"INFO: +stopped$", text, re.MULTILINE)


@pytest.mark.parametrize(
    ("signals", "said"),
    [
        ((signal.SIGINT, signal.SIGINT), "stopping now, without waiting for in-flight requests"),
        ((signal.SIGQUIT,), "received SIGQUIT"),
    ],
    ids=["second-sigint", "sigquit"],
)
def test_fast_stop_cuts_an_in_flight_request(
    tmp_path: Path, signals: tuple[signal.Signals, ...], said: str
) -> None:
    """A second SIGINT during the drain, or SIGQUIT, cuts a slow request off and exits 0 at once."""
    with (
        ThreadPoolExecutor(1) as pool,
        serve(tmp_path, "--timeout-graceful-shutdown", "30") as proc,
    ):
        slow, busy = slow_request(pool, proc, tmp_path / "never")
        for n, signum in enumerate(signals):
            proc.proc.send_signal(signum)
            if n < len(signals) - 1:
                proc.out.wait_for("finishing in-flight requests, then stopping")
                assert proc.proc.poll() is None
        status, seconds = wait_exit(proc, timeout=15)
        text = proc.out.text
        with pytest.raises(httpx.HTTPError):
            slow.result(timeout=5)
    assert status == 0, text
    # The time is the behaviour: it did not wait out the 30 s grace period (10 s is only a
    # generous guard for a busy machine, still far below it).
    assert seconds < 10, f"took {seconds:.1f}s:\n{text}"
    assert said in text
    wait_gone(busy)


# --------------------------------------------------------------------------- hung and dying workers
def test_hung_worker_is_aborted_with_its_stack_and_replaced(tmp_path: Path) -> None:
    """A worker whose event loop blocks past --timeout logs its stack, dies and is replaced."""
    with ThreadPoolExecutor(1) as pool, serve(tmp_path, "--timeout", "1") as proc:
        client = control(tmp_path)
        before = pids(wait_for_workers(client, ready(2)))
        hung = pool.submit(httpx.get, f"{proc.url}/hang", timeout=20)
        hung_pid = int(proc.out.wait_for(r"supervised_app: hang in pid \d+").split()[-1])
        # the other worker still serves while this one hangs
        assert httpx.get(f"{proc.url}/pid", timeout=5).text == str((before - {hung_pid}).pop())
        proc.out.wait_for(rf"pid {hung_pid}, generation 1\) silent for .*--timeout 1s", timeout=5)
        proc.out.wait_for(rf"pid {hung_pid}, generation 1\) killed by SIGABRT", timeout=5)
        after = pids(wait_for_workers(client, fresh(2, {hung_pid})))
        with pytest.raises(httpx.HTTPError):
            hung.result(timeout=5)
        answers = {httpx.get(f"{proc.url}/pid", timeout=5).text for _ in range(4)}
        text = proc.out.text
    assert hung_pid in before and len(after - before) == 1
    assert answers <= {str(pid) for pid in after}
    assert "Fatal Python error: Aborted" in text
    assert "Current thread" in text
    assert re.search(r'supervised_app\.py", line \d+ in hang_forever', text)


def crash_five_times(proc: Process, client: ControlClient) -> set[int]:
    """Kill the one worker through /exit five times (each time a fresh one): a crash loop.
    Returns the dead pids, once the CRITICAL line is out."""
    dead: set[int] = set()
    for _ in range(5):
        dead |= pids(wait_for_workers(client, fresh(1, dead)))
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{proc.url}/exit", timeout=5)
    proc.out.wait_for("CRITICAL:", timeout=10)
    return dead


def test_crash_loop_backs_off_keeps_respawning_and_recovers_by_itself(tmp_path: Path) -> None:
    """Five worker deaths make a crash loop: a CRITICAL line, 503s from the supervisor while no
    worker serves, /readyz failing; devserve respawns after a backoff by itself, and once the
    worker has served 10 s without dying the crash loop is over."""
    with serve(tmp_path, "--admin", "127.0.0.1:0", workers=1) as proc:
        admin = re.search(r"health endpoints on (\S+)/livez", proc.out.wait_for("health endpoints"))
        assert admin is not None
        client = control(tmp_path)
        dead: set[int] = set()
        for _ in range(5):
            workers = wait_for_workers(client, fresh(1, dead))
            dead |= pids(workers)
            with pytest.raises(httpx.HTTPError):
                httpx.get(f"{proc.url}/exit", timeout=5)
        line = proc.out.wait_for("CRITICAL:", timeout=10)
        stuck = client.request("status")
        # no worker left: devserve answers 503 itself instead of leaving clients in the backlog
        unavailable = httpx.get(f"{proc.url}/pid", timeout=5)
        not_ready = httpx.get(f"{admin[1]}/readyz", timeout=5)
        # nobody asks it to: the worker comes back once the backoff (4 s) has passed
        workers = wait_for_workers(client, fresh(1, dead), timeout=20)
        answer = httpx.get(f"{proc.url}/pid", timeout=5).text
        still = client.request("status")["server"]
        until(
            lambda: readyz(admin[1]),
            "/readyz to answer 200",
            20,
            accept=lambda answer: answer[0] == 200,
            interval=0.1,
        )
        recovered = client.request("status")["server"]
        proc.out.stop()
    assert unavailable.status_code == 503, unavailable.text
    assert unavailable.headers["retry-after"] == "5"
    assert "no worker is serving" in unavailable.text and "devserve ctl restart" in unavailable.text
    assert "workers died 5 times" in line and "respawning with a backoff" in line
    assert stuck["workers"] == [] and stuck["server"]["crash_loop"] is True
    assert not_ready.status_code == 503 and not_ready.json()["crash_loop"] is True
    assert answer == str(workers[0]["pid"]) and workers[0]["pid"] not in dead
    assert still["crash_loop"] is True  # not over until it has served a while
    assert recovered["crash_loop"] is False
    assert "crash loop over" in proc.out.text


def test_restart_ends_a_crash_loop_at_once(tmp_path: Path) -> None:
    """`restart` in a crash loop rolls a new generation now, without waiting out the backoff,
    and the 503 page gives way to it."""
    with serve(tmp_path, workers=1) as proc:
        client = control(tmp_path)
        dead = crash_five_times(proc, client)
        assert client.request("restart") == {"restart": "started"}
        workers = wait_for_workers(client, ready(1))
        # the supervisor's page stops accepting within a loop turn of the worker being ready
        answered = until(
            lambda: httpx.get(f"{proc.url}/pid", timeout=5),
            "the 503 page to give way after the restart",
            5,
            accept=lambda response: response.status_code != 503,
        )
        recovered = client.request("status")["server"]
        proc.out.stop()
    assert answered.text == str(workers[0]["pid"]) and workers[0]["pid"] not in dead
    assert recovered["crash_loop"] is False
    assert workers[0]["generation"] > 1 and recovered["generation"] > 1, (workers, recovered)


def test_scale_ends_a_crash_loop_and_counts_deaths_afresh(tmp_path: Path) -> None:
    """`scale` after a crash loop spawns again; one more death then is replaced at once, not
    taken for the loop going on."""
    with serve(tmp_path, workers=1) as proc:
        client = control(tmp_path)
        dead = crash_five_times(proc, client)
        assert client.request("scale", workers="1") == {"target": 1}
        dead |= pids(wait_for_workers(client, fresh(1, dead)))
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{proc.url}/exit", timeout=5)
        replaced = wait_for_workers(client, fresh(1, dead))
        server = client.request("status")["server"]
        proc.out.stop()
    assert server["crash_loop"] is False, server
    assert proc.out.count("CRITICAL:") == 1
    assert replaced[0]["pid"] not in dead


# --------------------------------------------------------------------------- scaling
def test_sigttin_adds_a_worker_and_sigttou_drains_the_newest(tmp_path: Path) -> None:
    """SIGTTIN scales up by one worker; SIGTTOU scales down again, draining the newest."""
    with serve(tmp_path, workers=1) as proc:
        client = control(tmp_path)
        first = pids(wait_for_workers(client, ready(1)))
        proc.proc.send_signal(signal.SIGTTIN)
        grown = pids(wait_for_workers(client, ready(2)))
        target_up = client.request("status")["server"]["workers_target"]
        proc.proc.send_signal(signal.SIGTTOU)
        shrunk = pids(wait_for_workers(client, ready(1)))
        target_down = client.request("status")["server"]["workers_target"]
        newest = (grown - first).pop()
        proc.out.wait_for(rf"pid {newest}, generation 1\) exited normally")
        proc.out.stop()
    assert first < grown and len(grown) == 2
    assert shrunk == first
    assert (target_up, target_down) == (2, 1)


def test_sigttou_at_one_worker_is_ignored_with_a_warning(tmp_path: Path) -> None:
    """SIGTTOU never scales below one worker: it is ignored with a warning."""
    with serve(tmp_path, workers=1) as proc:
        client = control(tmp_path)
        first = pids(wait_for_workers(client, ready(1)))
        proc.proc.send_signal(signal.SIGTTOU)
        line = proc.out.wait_for("SIGTTOU ignored")
        status = client.request("status")
        proc.out.stop()
    assert "at least 1" in line
    assert status["server"]["workers_target"] == 1 and pids(status["workers"]) == first


# --------------------------------------------------------------------------- startup failure
def test_first_boot_failure_with_two_workers_exits_3_with_one_error(tmp_path: Path) -> None:
    """An app that raises at import exits 3: its traceback once, then one error line, no more."""
    result = subprocess.run(
        devserve_command(
            "--no-tui", "--port", "0", "--workers", "2", "--control", str(tmp_path / "ctl.sock"),
            "--app-dir", APPS, "broken_app:app",
        ),
        capture_output=True,
        text=True,
        timeout=20,
        env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 3, result.stderr
    assert result.stdout == ""
    assert lines[0] == "Traceback (most recent call last):", result.stderr
    assert result.stderr.count("Traceback") == 1, result.stderr
    assert lines.count("RuntimeError: broken_app refuses to import") == 1, result.stderr
    assert lines[-1].startswith("devserve: error:") and "broken_app refuses" in lines[-1]
    assert [line for line in lines if "devserve: error:" in line] == [lines[-1]]
    noisy = [line for line in lines if re.match(r"(DEBUG|INFO|WARNING|ERROR|CRITICAL):", line)]
    assert noisy == [], result.stderr
    assert not (tmp_path / "ctl.sock").exists()


# --------------------------------------------------------------------------- pidfile and json logs
def test_pidfile_holds_the_supervisor_pid_and_is_removed_on_exit(tmp_path: Path) -> None:
    """--pidfile holds the supervisor's pid while it runs and is gone after a clean stop."""
    pidfile = tmp_path / "devserve.pid"
    with serve(tmp_path, "--pidfile", str(pidfile)) as proc:
        written = pidfile.read_text()
        proc.out.stop()
    assert written == f"{proc.proc.pid}\n"
    assert not pidfile.exists()


def test_json_log_format_prints_one_object_per_line(tmp_path: Path) -> None:
    """--log-format json prints each log line, workers' ready lines included, as a JSON object."""
    with serve(tmp_path, "--log-format", "json") as proc:
        serving = json.loads(proc.out.wait_for("serving on"))
        url = serving["message"].split()[-1]
        assert httpx.get(f"{url}/pid", timeout=5).status_code == 200
        proc.out.wait_for(r'"logger": "devserve.access"')
        text = proc.out.stop()
    entries = [json.loads(line) for line in text.splitlines()]
    assert all(set(e) == {"time", "level", "logger", "pid", "message"} for e in entries), text
    messages = [e["message"] for e in entries]
    ready_line = re.compile(r"worker \d \(pid \d+, generation 1\) ready in \d+ ms")
    ready_lines = [m for m in messages if ready_line.fullmatch(m)]
    assert len(ready_lines) == 2, text
    assert serving["pid"] == proc.proc.pid and serving["logger"] == "devserve.supervisor"
    assert "stopped" in messages


def test_stop_during_the_first_boot_is_a_clean_exit(tmp_path: Path) -> None:
    """SIGTERM while the first workers still import the app exits 0, and restart is refused."""
    gate = tmp_path / "gate"
    control = tmp_path / "ctl.sock"
    command = devserve_command(
        "--no-tui", "--port", "0", "--control", str(control), "--app-dir", APPS,
        "gated_boot_app:app",
    )  # fmt: skip
    with spawned(command, {"GATED_BOOT_APP_GATE": str(gate)}) as proc:
        client = ControlClient(str(control))
        state = until(
            lambda: server_state(client),
            "the control socket to answer",
            accept=lambda state: state is not None,
            detail=lambda: proc.out.text,
        )
        assert state == "starting"
        with pytest.raises(ControlError, match="still starting"):
            client.request("restart")
        proc.proc.terminate()
        assert proc.proc.wait(timeout=10) == 0, proc.out.text
    assert "error" not in proc.out.text.lower()


def test_prod_logs_go_to_stdout_only(tmp_path: Path) -> None:
    """With --prod every log line goes to stdout (what containers and journald collect)."""
    command = devserve_command(
        "--prod", "--no-tui", "--workers", "1", "--port", "0", "--control", "off"
    )
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "serving on" in line:
                break
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert err == ""
    assert "received SIGTERM" in out and "stopped" in out
