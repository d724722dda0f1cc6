"""A closed terminal (SIGHUP to the whole process group) against `kill -HUP` (a rolling
restart): devserve runs in a real tmux pseudo-terminal and the terminal is really closed.

The app writes a line to a file when its lifespan shuts down, so a worker that drained
gracefully leaves a trace, and one killed by the hangup does not.
"""

from __future__ import annotations

import os
import re
import signal
import urllib.request
from pathlib import Path

import pytest

from devserver.control.client import ControlClient, ControlError
from tests.terminal import DEADLINE, terminal
from tests.utils import devserve_command, until

APP = """\
import os
import subprocess

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        with open(os.environ["SHUTDOWN_LOG"], "a") as log:
            log.write(f"shutdown {os.getpid()}\\n")
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b"ok"
    if scope["path"] == "/ignored":  # the signals a program the app runs starts out ignoring
        status = subprocess.run(["cat", "/proc/self/status"], capture_output=True, text=True)
        body = [l for l in status.stdout.splitlines() if l.startswith("SigIgn:")][0].encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def start(tmp_path: Path, *args: str) -> tuple[list[str], Path]:
    (tmp_path / "app.py").write_text(APP)
    control = tmp_path / "ctl.sock"
    command = ["env", f"SHUTDOWN_LOG={tmp_path / 'shutdown.log'}"]
    command += devserve_command(
        "app:app", "--port", "0", "--workers", "2", "--control", str(control)
    )
    return [*command, *args], control


@pytest.mark.parametrize("mode", ["--no-tui", "panel"])
def test_closing_the_terminal_stops_devserve_gracefully(tmp_path: Path, mode: str) -> None:
    """The terminal closes: devserve stops as on SIGTERM (the workers drain and run their
    lifespan shutdown) instead of living on orphaned or losing its workers to the hangup."""
    command, control = start(tmp_path, *(["--no-tui"] if mode == "--no-tui" else []))
    with terminal(tmp_path, command) as term:
        until(control.exists, "the control socket", DEADLINE)
        until(lambda: len(ready(control)) == 2, "two workers", DEADLINE)
        status = ControlClient(str(control)).request("status")
        supervisor, workers = status["server"]["pid"], ready(control)
        try:
            term.tmux("kill-server")  # the terminal is gone: the kernel hangs up its processes
            until(lambda: not alive(supervisor), "devserve to stop", DEADLINE)
        finally:  # a devserve that did not stop must not outlive the test (no terminal has it)
            for pid in (supervisor, *workers):
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)
    shutdowns = (tmp_path / "shutdown.log").read_text().split()
    assert sorted(int(pid) for pid in shutdowns[1::2]) == sorted(workers), shutdowns
    assert not any(alive(pid) for pid in workers)
    assert not control.exists()  # cleaned up on the way out, as on SIGTERM


def ready(control: Path) -> list[int]:
    try:
        status = ControlClient(str(control)).request("status")
    except ControlError:  # not listening yet
        return []
    return [w["pid"] for w in status["workers"] if w["state"] == "ready"]


def test_kill_hup_with_the_terminal_open_is_a_rolling_restart(tmp_path: Path) -> None:
    """`kill -HUP` while the terminal is still there keeps its meaning: a rolling restart."""
    command, control = start(tmp_path, "--no-tui")
    with terminal(tmp_path, command) as term:
        until(lambda: len(ready(control)) == 2, "two workers", DEADLINE)
        client = ControlClient(str(control))
        supervisor, before = client.request("status")["server"]["pid"], set(ready(control))
        os.kill(supervisor, signal.SIGHUP)
        until(lambda: len(set(ready(control)) - before) == 2, "a new generation", DEADLINE)
        term.wait_for(r"restart: generation 2 serving")
        generation = client.request("status")["server"]["generation"]
        assert alive(supervisor)
        term.keys("C-c")
        term.wait_for(r"EXITED 0")
    assert generation == 2
    assert not re.search(r"terminal is gone", term.screen())


def test_under_nohup_closing_the_terminal_leaves_devserve_serving(tmp_path: Path) -> None:
    """`nohup devserve ... &` asks to outlive the terminal: its hangup changes nothing."""
    command, control = start(tmp_path, "--no-tui")
    nohup = ["nohup", *command]
    with terminal(tmp_path, nohup, reap=False) as term:  # it stops devserve below
        until(lambda: len(ready(control)) == 2, "two workers", DEADLINE)
        client = ControlClient(str(control))
        supervisor, workers = client.request("status")["server"]["pid"], set(ready(control))
        term.tmux("kill-server")
    try:
        until(
            lambda: "the terminal is gone" in (tmp_path / "nohup.out").read_text(),
            "the hangup in nohup.out",
            DEADLINE,
        )
        assert set(ready(control)) == workers  # the same workers, still serving
        assert client.request("status")["server"]["generation"] == 1
    finally:
        os.kill(supervisor, signal.SIGTERM)
        until(lambda: not alive(supervisor), "devserve to stop", DEADLINE)


def test_programs_the_app_runs_do_not_inherit_ignored_signals(tmp_path: Path) -> None:
    """Workers leave SIGINT and SIGHUP to the supervisor with a handler, not by ignoring them:
    an ignored signal would stay ignored in every program the app starts."""
    command, control = start(tmp_path, "--no-tui")
    with terminal(tmp_path, command):
        until(lambda: len(ready(control)) == 2, "two workers", DEADLINE)
        (url,) = ControlClient(str(control)).request("status")["server"]["urls"]
        with urllib.request.urlopen(url + "/ignored", timeout=10) as response:
            line = response.read().decode()
    mask = int(line.split()[1], 16)
    assert not mask & (1 << (signal.SIGHUP - 1)), line
    assert not mask & (1 << (signal.SIGINT - 1)), line
