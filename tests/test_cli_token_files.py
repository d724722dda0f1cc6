"""Kept dashboard tokens do not pile up: each running devserve holds its own file, and one that
starts removes the files of those that have stopped (devserver/control/access.py)."""

from __future__ import annotations

import contextlib
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dashboard_server import APPS
from tests.utils import Process, clean_env, devserve_command, spawned


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def devserve_with_a_dashboard(runtime: Path) -> Iterator[tuple[Process, str]]:
    """A dev-mode devserve whose dashboard is on a fixed address (so its token is kept), with
    $XDG_RUNTIME_DIR at `runtime`; the name of its token file."""
    port = free_port()
    command = devserve_command(
        "--no-tui", "--port", "0", "--dashboard", f"127.0.0.1:{port}", "--control", "off",
        "--app-dir", APPS, "supervised_app:app",
    )  # fmt: skip
    with spawned(command, clean_env(XDG_RUNTIME_DIR=str(runtime))) as process:
        process.out.wait_for("serving on", timeout=20)
        yield process, f"dashboard-127.0.0.1-{port}.token"
        process.out.stop()


def kept(runtime: Path) -> set[str]:
    return {path.name for path in (runtime / "devserve").glob("*.token")}


def test_one_file_per_running_server_and_the_last_stopped(tmp_path: Path) -> None:
    """Running servers keep one file each; a server that starts or stops removes the files of
    those that have stopped (a leftover of one killed, say), but its own: the last one to stop
    keeps its file, for its restart."""
    (tmp_path / "devserve").mkdir(mode=0o700)
    leftover = tmp_path / "devserve" / "dashboard-127.0.0.1-1.token"
    leftover.write_text("a-token-of-a-devserve-long-gone\n")
    leftover.chmod(0o600)
    with devserve_with_a_dashboard(tmp_path) as (_, first):
        assert kept(tmp_path) == {first}
        with devserve_with_a_dashboard(tmp_path) as (_, second):
            assert kept(tmp_path) == {first, second}
        assert kept(tmp_path) == {first, second}  # the first runs: the second's is the last
        with devserve_with_a_dashboard(tmp_path) as (_, third):
            assert kept(tmp_path) == {first, third}
        assert kept(tmp_path) == {first, third}
    assert kept(tmp_path) == {first}


def test_a_restart_on_its_address_keeps_its_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file a devserve reopens on its own address is its own: it is read, not removed."""
    from devserver.control.access import resolve_token

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    first = resolve_token(None, "127.0.0.1", 18124)
    again = resolve_token(None, "127.0.0.1", 18124)
    path = tmp_path / "devserve" / "dashboard-127.0.0.1-18124.token"
    assert first == again == path.read_text().strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
