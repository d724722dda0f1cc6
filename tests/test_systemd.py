"""systemd integration: socket activation and sd_notify, with real sockets and no systemd.

The tests play systemd's part (tests/fake_systemd.py): they bind the listening socket and hand
it over as fd 3 with LISTEN_FDS/LISTEN_PID, and they bind the AF_UNIX datagram socket
NOTIFY_SOCKET names and read what devserve reports on it. The functions of devserver.systemd
are tested on their own below.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devserver import systemd
from tests.fake_systemd import NOT_SYSTEMD, next_states, notify_socket, pending, socket_activated
from tests.utils import Process, run_devserve

APPS = str(Path(__file__).parent / "cli_apps")
APP = "supervised_app:app"


def serve(tmp_path: Path, env: dict[str, str]) -> contextlib.AbstractContextManager[Process]:
    control = str(tmp_path / "ctl.sock")
    return run_devserve(
        "--workers", "1", "--control", control, "--app-dir", APPS, APP, env={**NOT_SYSTEMD, **env}
    )


# --------------------------------------------------------------------------- socket activation
@contextlib.contextmanager
def activated(tmp_path: Path) -> Iterator[tuple[Process, int]]:
    """devserve serving on a socket the test bound (the test keeps no copy); and its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    control = str(tmp_path / "ctl.sock")
    with listener, socket_activated(listener, "--control", control, "--app-dir", APPS, APP) as proc:
        listener.close()  # from now on only devserve holds the socket
        line = proc.out.wait_for(r"serving on |error:", timeout=20)
        assert "serving on" in line, proc.out.text
        yield proc, port


def test_socket_activation_serves_on_the_inherited_socket(tmp_path: Path) -> None:
    """With LISTEN_FDS=1 and its own pid in LISTEN_PID, devserve serves on the socket at fd 3."""
    with activated(tmp_path) as (proc, port):
        response = httpx.get(f"http://127.0.0.1:{port}/pid", timeout=5)
        text = proc.out.stop()
    assert f"serving on http://127.0.0.1:{port}\n" in text
    assert response.status_code == 200 and response.text.isdigit()


def test_socket_activation_variables_do_not_reach_the_workers(tmp_path: Path) -> None:
    """devserve unsets LISTEN_FDS and LISTEN_PID, so the app in a worker never sees them."""
    with activated(tmp_path) as (proc, port):
        seen = httpx.get(f"http://127.0.0.1:{port}/env", timeout=5).json()
        proc.out.stop()
    assert seen == {"LISTEN_FDS": None, "LISTEN_PID": None}


# --------------------------------------------------------------------------- sd_notify
def test_notify_ready_reloading_and_stopping(tmp_path: Path) -> None:
    """NOTIFY_SOCKET hears READY=1 once serving, RELOADING=1 and READY=1 on SIGHUP, STOPPING=1."""
    with notify_socket(tmp_path) as (sock, path), serve(tmp_path, {"NOTIFY_SOCKET": path}) as proc:
        first = next_states(sock)
        served = httpx.get(f"{proc.url}/pid", timeout=5).status_code
        sent_before = time.monotonic_ns() // 1000
        proc.proc.send_signal(signal.SIGHUP)
        reloading = next_states(sock)
        reloaded = next_states(sock)
        proc.out.wait_for(r"restart: generation 2 serving", timeout=5)
        proc.out.stop(signal.SIGTERM)
        last = [states for states in pending(sock) if states != ["WATCHDOG=1"]]
    assert "READY=1" in first and served == 200
    assert "RELOADING=1" in reloading
    # with the monotonic clock's microseconds (CLOCK_MONOTONIC is system-wide on Linux)
    (stamp,) = [int(s.split("=")[1]) for s in reloading if s.startswith("MONOTONIC_USEC=")]
    assert sent_before <= stamp <= time.monotonic_ns() // 1000
    assert "READY=1" in reloaded
    assert len(last) == 1 and "STOPPING=1" in last[0], last


@pytest.mark.parametrize("usec", [500_000, 200_000])
def test_notify_watchdog_pings_more_often_than_watchdog_usec(tmp_path: Path, usec: int) -> None:
    """With WATCHDOG_USEC set, no two WATCHDOG=1 pings are ever that far apart."""
    with (
        notify_socket(tmp_path) as (sock, path),
        serve(tmp_path, {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": str(usec)}),
    ):
        assert "READY=1" in next_states(sock)
        pings = []
        for _ in range(8):
            assert next_states(sock, timeout=2, watchdog=True) == ["WATCHDOG=1"]
            pings.append(time.monotonic())
    gaps = [later - earlier for earlier, later in itertools.pairwise(pings)]
    assert max(gaps) < usec / 1_000_000, [f"{gap:.4f}" for gap in gaps]


# --------------------------------------------------------------------------- the functions
def test_listen_fds_counts_from_fd_3_for_this_process() -> None:
    """listen_fds returns LISTEN_FDS descriptors from 3 on when LISTEN_PID is this process."""
    env = {"LISTEN_FDS": "2", "LISTEN_PID": str(os.getpid())}
    assert systemd.listen_fds(env) == [3, 4]


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"LISTEN_FDS": "1"},
        {"LISTEN_FDS": "1", "LISTEN_PID": "1"},
        {"LISTEN_FDS": "0", "LISTEN_PID": "<own>"},
        {"LISTEN_FDS": "-1", "LISTEN_PID": "<own>"},
        {"LISTEN_FDS": "two", "LISTEN_PID": "<own>"},
        {"LISTEN_FDS": "1", "LISTEN_PID": "me"},
    ],
)
def test_listen_fds_is_empty_unless_meant_for_this_process(env: dict[str, str]) -> None:
    """listen_fds returns [] for a missing, zero, negative or garbled count or another pid."""
    env = {k: str(os.getpid()) if v == "<own>" else v for k, v in env.items()}
    assert systemd.listen_fds(env) == []


def test_forget_listen_fds_unsets_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """forget_listen_fds removes LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES from the environment."""
    for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        monkeypatch.setenv(name, "1")
    systemd.forget_listen_fds()
    assert not {"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"} & set(os.environ)


def test_notify_without_notify_socket_returns_false(monkeypatch: pytest.MonkeyPatch) -> None:
    """notify is a no-op returning False when NOTIFY_SOCKET is unset or empty."""
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", "")
    assert systemd.notify("READY=1") is False


def test_notify_sends_one_datagram_to_a_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """notify sends the state as one datagram to the socket at NOTIFY_SOCKET and returns True."""
    with notify_socket(tmp_path) as (sock, path):
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        assert systemd.notify("STATUS=hello") is True
        assert pending(sock) == [["STATUS=hello"]]


def test_notify_to_an_abstract_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """A NOTIFY_SOCKET starting with '@' names a socket in the abstract namespace."""
    name = f"devserve-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert systemd.notify("READY=1") is True
        assert pending(sock) == [["READY=1"]]


def test_notify_to_a_socket_nobody_listens_on_returns_false(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """notify returns False, without raising, when nothing listens at NOTIFY_SOCKET."""
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody.sock"))
    assert systemd.notify("READY=1") is False


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({"WATCHDOG_USEC": "500000"}, 0.25),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "<own>"}, 15.0),
        ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(
    env: dict[str, str], interval: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """watchdog_interval is WATCHDOG_USEC/2 in seconds, None when unset, garbled or not ours."""
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, str(os.getpid()) if value == "<own>" else value)
    assert systemd.watchdog_interval() == interval
