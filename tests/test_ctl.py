"""The control socket and `devserve ctl` against a real server: commands, errors, permissions."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devserver.control.client import ControlClient, ControlError, NotRunning
from tests.utils import Process, devserve_command, run_devserve, until


def ctl(control: Path, *args: str, after: bool = False) -> subprocess.CompletedProcess[str]:
    """`devserve ctl --control PATH ARGS`, or with `after` `devserve ctl ARGS --control PATH`."""
    where = [*args, "--control", str(control)] if after else ["--control", str(control), *args]
    return subprocess.run(
        devserve_command("ctl", *where),
        capture_output=True,
        text=True,
        timeout=20,
    )


def ready_pids(control: Path) -> list[int]:
    status = ControlClient(str(control)).request("status")
    return [w["pid"] for w in status["workers"] if w["state"] == "ready"]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Process, Path]]:
    control = tmp_path / "ctl.sock"
    with run_devserve("--workers", "2", "--control", str(control)) as proc:
        until(lambda: len(ready_pids(control)) == 2, "two workers ready")
        yield proc, control


def test_control_socket_is_private(server: tuple[Process, Path]) -> None:
    """The control socket is created with mode 0600: only its owner may connect."""
    _, control = server
    assert stat.S_IMODE(os.stat(control).st_mode) == 0o600


def test_status_prints_a_table_of_workers(server: tuple[Process, Path]) -> None:
    """`ctl status` shows the ready count and one row per worker with its pid and state."""
    _, control = server
    result = ctl(control, "status")
    assert result.returncode == 0, result.stderr
    assert "workers 2/2 ready (started with 2)" in result.stdout
    assert re.search(r"^dashboard http://127\.0\.0\.1:\d+/\?token=\S{32}$", result.stdout, re.M)
    for pid in ready_pids(control):
        assert any(
            line.split()[1:2] == [str(pid)] and "ready" in line
            for line in result.stdout.splitlines()
        )


@pytest.mark.parametrize("where", ["before", "after"])
def test_status_json_is_the_snapshot(server: tuple[Process, Path], where: str) -> None:
    """`ctl --control PATH --json status` and `ctl status --control PATH --json` print the
    snapshot: server, workers and totals."""
    proc, control = server
    result = (
        ctl(control, "--json", "status")
        if where == "before"
        else ctl(control, "status", "--json", after=True)
    )
    assert result.returncode == 0, result.stderr
    snapshot = json.loads(result.stdout)
    assert snapshot["server"]["pid"] == proc.proc.pid
    assert snapshot["server"]["workers_target"] == 2
    assert {w["state"] for w in snapshot["workers"]} == {"ready"}
    assert snapshot["totals"]["workers_ready"] == 2


def test_scale_restart_and_kill(server: tuple[Process, Path]) -> None:
    """scale +1 adds a worker, -1 takes one away, 4 sets the number, as the README writes them
    (a negative number is not an option); restart replaces every pid, kill replaces one
    worker; --control works after the command as before it."""
    _, control = server
    assert ctl(control, "scale", "+1").stdout.strip() == "scaling to 3 worker(s)"
    until(lambda: len(ready_pids(control)) == 3, "three workers")
    assert ctl(control, "scale", "-1", after=True).stdout.strip() == "scaling to 2 worker(s)"
    assert ctl(control, "scale", "4").stdout.strip() == "scaling to 4 worker(s)"
    assert ctl(control, "scale", "3", after=True).stdout.strip() == "scaling to 3 worker(s)"
    until(lambda: len(ready_pids(control)) == 3, "three workers again")
    before = set(ready_pids(control))
    assert ctl(control, "restart").returncode == 0
    until(
        lambda: len(ready_pids(control)) == 3 and not before & set(ready_pids(control)),
        "a new generation",
    )
    victim = ready_pids(control)[0]
    assert ctl(control, "kill", str(victim), after=True).stdout.strip() == f"killed worker {victim}"
    until(
        lambda: victim not in ready_pids(control) and len(ready_pids(control)) == 3,
        "the killed worker replaced",
    )


def test_refusals_are_one_line_and_exit_1(server: tuple[Process, Path]) -> None:
    """A command the server refuses prints its reason on one line and exits 1."""
    _, control = server
    for args, reason in (
        (("scale", "0"), "it must be at least 1"),
        (("kill", "1"), "no worker with pid 1"),
    ):
        result = ctl(control, *args)
        assert result.returncode == 1
        assert result.stderr.count("\n") == 1 and reason in result.stderr


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("scale", "lots"), "Invalid value for WORKERS: 'lots' is not N, +N or -N"),
        (("scale", "--lots"), "Invalid value for WORKERS: '--lots' is not N, +N or -N"),
        (("scale",), "Missing argument 'WORKERS'"),
        (("kill", "abc"), "'abc' is not a valid integer"),
        (("status", "--bogus"), "No such option '--bogus'"),
        (("nosuch",), "No such command 'nosuch'"),
    ],
)
def test_a_bad_command_line_is_one_line_and_exit_2(
    tmp_path: Path, args: tuple[str, ...], reason: str
) -> None:
    """A command line ctl cannot use exits 2 with one line, before asking any server."""
    result = ctl(tmp_path / "nobody.sock", *args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("devserve ctl: error: ") and reason in result.stderr


def test_ctl_alone_shows_its_commands(tmp_path: Path) -> None:
    """`devserve ctl` without a command shows what it can do (and exits 2: none was given)."""
    result = subprocess.run(devserve_command("ctl"), capture_output=True, text=True, timeout=20)
    assert result.returncode == 2
    assert "Usage: devserve ctl [OPTIONS] COMMAND" in result.stderr
    for command in ("status", "scale", "restart", "reload", "kill", "stop", "trace"):
        assert re.search(rf"(?m)^  {command} ", result.stderr), command


def test_stop_drains_and_exits(server: tuple[Process, Path]) -> None:
    """`ctl stop` stops the server with status 0 and removes the control socket."""
    proc, control = server
    assert ctl(control, "stop").stdout.strip() == "stopping (graceful)"
    assert proc.proc.wait(timeout=15) == 0
    assert not control.exists()


def test_stop_with_a_subscriber_ends_its_stream_quietly(server: tuple[Process, Path]) -> None:
    """Stopping while a dashboard is subscribed ends the subscription (the stream closes, it
    does not hang) and logs no traceback."""
    proc, control = server
    stream = ControlClient(str(control)).subscribe()
    assert next(stream)["type"] == "snapshot"
    assert ctl(control, "stop").returncode == 0
    assert proc.proc.wait(timeout=15) == 0
    with pytest.raises((StopIteration, OSError)):
        while True:  # what was queued before the stop, then the end
            next(stream)
    output = "".join(proc.output)
    assert "stopped" in output
    assert "Traceback" not in output and "CancelledError" not in output, output


@pytest.mark.parametrize("after", [False, True])
def test_no_server_is_a_clear_message(tmp_path: Path, after: bool) -> None:
    """With nobody listening, ctl says so in one line, naming the path, and exits 1."""
    path = tmp_path / "nobody.sock"
    result = ctl(path, "status", after=after)
    assert result.returncode == 1
    assert result.stderr.startswith(f"devserve ctl: error: no devserve is listening on {path} ")
    with pytest.raises(NotRunning):
        ControlClient(str(tmp_path / "nobody.sock")).request("status")


def test_a_second_server_on_the_same_control_path_does_not_start(
    server: tuple[Process, Path],
) -> None:
    """An explicit --control path held by a live server is a startup error (status 3)."""
    _, control = server
    result = subprocess.run(
        devserve_command("--no-tui", "--port", "0", "--control", str(control)),
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 3
    assert "is in use by another devserve" in result.stderr
    assert ready_pids(control), "the first server still answers"


def test_malformed_lines_get_errors_and_the_connection_stays_usable(
    server: tuple[Process, Path],
) -> None:
    """Garbage on the socket gets an error reply; the next valid request is still answered."""
    import socket

    _, control = server
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(control))
        sock.sendall(b"this is not json\n" + b'{"id": 9, "command": "status"}\n')
        data = b""
        while data.count(b"\n") < 2:
            data += sock.recv(65536)
    first, second = (json.loads(line) for line in data.splitlines()[:2])
    assert first["type"] == "error" and "not JSON" in first["error"]
    assert second["id"] == 9 and second["ok"] is True


def test_subscribe_streams_snapshots_and_events(server: tuple[Process, Path]) -> None:
    """A subscriber gets a snapshot at once and worker events when the server scales."""
    _, control = server
    client = ControlClient(str(control))
    stream = client.subscribe()
    first = next(stream)
    assert first["type"] == "snapshot" and first["version"] == 1
    client.request("scale", workers="3")
    states = set()
    deadline = time.monotonic() + 10
    for message in stream:
        if message["type"] == "event" and message["event"]["kind"] == "worker":
            states.add(message["event"]["state"])
        if "ready" in states or time.monotonic() > deadline:
            break
    stream.close()
    assert {"spawning", "booting", "ready"} <= states
    with pytest.raises(ControlError):
        client.request("scale", workers="-5")


def _until_second_snapshot(stream: Iterator[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a subscriber gets from its first snapshot up to its second (a second's worth)."""
    first = next(stream)
    assert first["type"] == "snapshot"
    messages = []
    for message in stream:
        if message["type"] == "snapshot":
            return messages
        messages.append(message)
    raise AssertionError("the stream ended")


def test_a_late_subscriber_asks_for_the_recent_events(server: tuple[Process, Path]) -> None:
    """Events from before a subscription come first with `recent`, each marked and timed;
    without it, none do."""
    _, control = server
    client = ControlClient(str(control))
    pids = set(ready_pids(control))
    before = time.time()
    with_recent = client.subscribe(recent=True)
    replayed = _until_second_snapshot(with_recent)
    with_recent.close()
    plain = client.subscribe()
    fresh = _until_second_snapshot(plain)
    plain.close()
    events = [m["event"] for m in replayed if m["type"] == "event"]
    assert events and all(m["recent"] is True for m in replayed if m["type"] == "event")
    assert {e["pid"] for e in events if e["kind"] == "worker" and e["state"] == "ready"} == pids
    assert any(e["kind"] == "ready" for e in events)
    assert all(before - 60 < e["t"] <= before for e in events)
    assert [e["t"] for e in events] == sorted(e["t"] for e in events)
    assert not any(m.get("recent") for m in fresh)


def test_scale_refuses_a_target_the_machine_cannot_hold(server: tuple[Process, Path]) -> None:
    """A typo (1000 for 10) must not fork until memory runs out: refused with the limit."""
    _, control = server
    result = ctl(control, "scale", "100000")
    status = ControlClient(str(control)).request("status")
    assert result.returncode == 1
    assert re.search(r"scale: 100000 workers is more than \d+ on this machine", result.stderr)
    assert status["server"]["workers_target"] == 2


def test_a_request_nested_too_deep_is_an_error_reply(server: tuple[Process, Path]) -> None:
    """JSON nested past the parser's depth is answered with an error, not a dropped socket."""
    _, control = server
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(control))
        sock.sendall(b"[" * 100_000 + b"]" * 100_000 + b"\n")
        reply = json.loads(sock.makefile("rb").readline())
    assert reply["ok"] is False and "nested too deep" in reply["error"], reply
    assert ControlClient(str(control)).request("status")["server"]["state"] == "running"
