"""The admin endpoint (--admin): /livez and /readyz as a load balancer or Kubernetes sees them.

The admin listener binds port 0 and the test reads the real port from devserve's log line, so no
port is guessed. /readyz follows the supervisor: 503 while the first workers boot, 200 while one
serves, 503 again once devserve is stopping (a slow request keeps the drain going meanwhile).
"""

from __future__ import annotations

import contextlib
import re
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.utils import Process, devserve_command, spawned

APPS = str(Path(__file__).parent / "cli_apps")
HEALTH = re.compile(r"health endpoints on (http://\S+)/livez")


@contextlib.contextmanager
def started(
    tmp_path: Path, *args: str, app: str = "supervised_app:app", env: dict[str, str] | None = None
) -> Iterator[tuple[Process, str]]:
    """devserve with --admin on a free port, not yet necessarily serving; and the admin URL."""
    command = devserve_command(
        "--no-tui", "--port", "0", "--admin", "127.0.0.1:0",
        "--control", str(tmp_path / "ctl.sock"), "--app-dir", APPS, *args, app,
    )  # fmt: skip
    with spawned(command, env) as process:
        match = HEALTH.search(process.out.wait_for(HEALTH.pattern, timeout=20))
        assert match is not None
        yield process, match.group(1)


def serving_url(proc: Process) -> str:
    match = re.search(r"serving on (http://\S+)", proc.out.wait_for("serving on", timeout=20))
    assert match is not None
    return match.group(1)


def test_livez_and_readyz_answer_200_while_workers_serve(tmp_path: Path) -> None:
    """With every worker ready, /livez and /readyz answer 200 with JSON bodies."""
    with started(tmp_path, "--workers", "2") as (proc, admin):
        serving_url(proc)  # logged once the whole first generation is ready
        livez = httpx.get(f"{admin}/livez", timeout=5)
        readyz = httpx.get(f"{admin}/readyz", timeout=5)
        proc.out.stop()
    assert (livez.status_code, livez.json()) == (200, {"status": "alive"})
    assert (readyz.status_code, readyz.json()) == (
        200,
        {"ready": True, "workers_ready": 2, "crash_loop": False},
    )
    assert readyz.headers["content-type"] == "application/json"
    assert readyz.headers["cache-control"] == "no-store"


def test_other_admin_paths_are_404(tmp_path: Path) -> None:
    """Any path but /livez, /readyz and /metrics is a 404 naming the path."""
    with started(tmp_path) as (proc, admin):
        serving_url(proc)
        answers = [httpx.get(f"{admin}{path}", timeout=5) for path in ("/", "/livez/x", "/nope")]
        proc.out.stop()
    assert [r.status_code for r in answers] == [404, 404, 404]
    assert answers[2].json() == {"error": "no such endpoint: /nope"}


def test_readyz_is_503_until_the_first_worker_is_ready(tmp_path: Path) -> None:
    """While the first worker still imports the app, /livez is 200 and /readyz 503; then 200."""
    gate = tmp_path / "gate"
    env = {"GATED_BOOT_APP_GATE": str(gate)}
    with started(tmp_path, app="gated_boot_app:app", env=env) as (proc, admin):
        livez = httpx.get(f"{admin}/livez", timeout=5)
        booting = httpx.get(f"{admin}/readyz", timeout=5)
        gate.touch()
        serving_url(proc)
        ready = httpx.get(f"{admin}/readyz", timeout=5)
        proc.out.stop()
    assert livez.status_code == 200
    assert (booting.status_code, booting.json()) == (
        503,
        {"ready": False, "workers_ready": 0, "crash_loop": False},
    )
    assert (ready.status_code, ready.json()) == (
        200,
        {"ready": True, "workers_ready": 1, "crash_loop": False},
    )


def test_readyz_is_503_while_stopping(tmp_path: Path) -> None:
    """Once SIGTERM starts the drain /readyz answers 503 while /livez still answers 200."""
    release = tmp_path / "release"
    with (
        ThreadPoolExecutor(1) as pool,
        started(tmp_path, "--timeout-graceful-shutdown", "10") as (proc, admin),
    ):
        url = serving_url(proc)
        slow = pool.submit(httpx.get, f"{url}/slow?{release}", timeout=20)
        proc.out.wait_for("supervised_app: slow in pid")
        proc.proc.send_signal(signal.SIGTERM)
        proc.out.wait_for("draining worker 1")
        readyz = httpx.get(f"{admin}/readyz", timeout=5)
        livez = httpx.get(f"{admin}/livez", timeout=5)
        still_running = proc.proc.poll() is None
        release.touch()
        assert slow.result(timeout=10).status_code == 200
        status = proc.proc.wait(timeout=10)
    assert still_running, "the slow request keeps the drain going"
    assert readyz.status_code == 503 and readyz.json()["ready"] is False
    assert livez.status_code == 200
    assert status == 0
