"""systemd integration without libsystemd: socket activation and sd_notify.

Socket activation: systemd passes listening sockets as fds 3.. with LISTEN_FDS and LISTEN_PID.
sd_notify: one datagram to $NOTIFY_SOCKET ('@' means the abstract namespace) per state change;
with WatchdogSec= set, WATCHDOG_USEC asks for a WATCHDOG=1 ping more often than that.
Everything here is a no-op outside systemd.
"""

from __future__ import annotations

import contextlib
import os
import socket

LISTEN_FDS_START = 3


def listen_fds(environ: dict[str, str] | None = None) -> list[int]:
    """The fds systemd passed to this very process (LISTEN_PID must be our pid), else []."""
    env = os.environ if environ is None else environ
    try:
        count = int(env.get("LISTEN_FDS", "0"))
        pid = int(env.get("LISTEN_PID", "0"))
    except ValueError:
        return []
    if count <= 0 or pid != os.getpid():
        return []
    return list(range(LISTEN_FDS_START, LISTEN_FDS_START + count))


def forget_listen_fds() -> None:
    """Unset the variables so that nothing we start takes the fds for its own."""
    for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)


def notify(state: str) -> bool:
    """Send `state` (e.g. 'READY=1') to systemd; False when not run by systemd or it failed."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, contextlib.suppress(OSError):
        sock.connect(address)
        sock.sendall(state.encode())
        return True
    return False


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None when not asked."""
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", "0"))
        pid = int(os.environ.get("WATCHDOG_PID", str(os.getpid())))
    except ValueError:
        return None
    if usec <= 0 or pid != os.getpid():
        return None
    return usec / 2 / 1_000_000
