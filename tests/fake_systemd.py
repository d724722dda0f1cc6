"""systemd's part, played by the tests: a listening socket handed over as fd 3 with
LISTEN_FDS/LISTEN_PID (socket activation), and the datagram socket NOTIFY_SOCKET names, from
which the test reads what devserve reports (sd_notify)."""

from __future__ import annotations

import contextlib
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tests.utils import Process, spawned

# No variable of systemd's from the test's own environment reaches devserve.
NOT_SYSTEMD = {"LISTEN_FDS": "0", "LISTEN_PID": "0", "NOTIFY_SOCKET": "", "WATCHDOG_USEC": "0"}

# Puts the inherited socket on fd 3 and names this very process in LISTEN_PID, as systemd does,
# then becomes devserve (exec keeps the pid).
LAUNCHER = """
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.executable, [sys.executable, "-m", "devserver", *sys.argv[2:]])
"""


@contextlib.contextmanager
def socket_activated(listener: socket.socket, *args: str) -> Iterator[Process]:
    """devserve started with `listener` as its one systemd socket (fd 3); stopped in `finally`."""
    fd = listener.fileno()
    command = [sys.executable, "-c", LAUNCHER, str(fd), "--no-tui", "--port", "0", *args]
    with spawned(command, NOT_SYSTEMD, pass_fds=(fd,)) as process:
        yield process


@contextlib.contextmanager
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket bound where NOTIFY_SOCKET will point, and that path."""
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        yield sock, path


def next_states(sock: socket.socket, timeout: float = 10.0, watchdog: bool = False) -> list[str]:
    """The assignments of the next datagram (one per line), skipping bare WATCHDOG=1 pings."""
    deadline = time.monotonic() + timeout
    while True:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        states = sock.recv(4096).decode().split("\n")
        if watchdog or states != ["WATCHDOG=1"]:
            return states


def pending(sock: socket.socket) -> list[list[str]]:
    """The assignments of every datagram already queued, without waiting."""
    sock.setblocking(False)
    datagrams = []
    with contextlib.suppress(BlockingIOError):
        while True:
            datagrams.append(sock.recv(4096).decode().split("\n"))
    return datagrams
