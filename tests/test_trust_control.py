"""`devserve ctl` and `devserve top` talk only to their own user's control socket.

A socket file of another user, or a server process of another user behind a file of ours, is
refused before anything is sent. Making another user's socket needs root (chown, setuid): the
tests that do so skip without it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from devserver.control.client import ControlClient, NotYours
from tests.utils import devserve_command

NOBODY = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="making another user's socket needs root")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(devserve_command(*args), capture_output=True, text=True, timeout=20)


@pytest.fixture
def foreign_socket(tmp_path: Path) -> Iterator[tuple[Path, socket.socket]]:
    """A listening socket whose file belongs to another user (nobody)."""
    path = tmp_path / "theirs.sock"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
        listener.listen()
        os.chown(path, NOBODY, NOBODY)
        yield path, listener


def nobody_connected(listener: socket.socket) -> bool:
    listener.setblocking(False)
    try:
        listener.accept()[0].close()
    except BlockingIOError:
        return True
    return False


@needs_root
def test_ctl_refuses_another_users_socket(foreign_socket: tuple[Path, socket.socket]) -> None:
    """ctl exits 1 with one line naming the owner, and never connects (root included)."""
    path, listener = foreign_socket
    result = run("ctl", "--control", str(path), "status")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"devserve ctl: error: control socket {path} belongs to another user (nobody), not to "
        "you: not connecting (run this as nobody)"
    ]
    assert nobody_connected(listener)


@needs_root
def test_top_refuses_another_users_socket(foreign_socket: tuple[Path, socket.socket]) -> None:
    """top exits 1 (refused) with one line, without the "is devserve running?" hint, and
    never connects."""
    path, listener = foreign_socket
    result = run("top", "--control", str(path))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "belongs to another user (nobody)" in result.stderr
    assert "is devserve running" not in result.stderr
    assert nobody_connected(listener)


@needs_root
def test_a_server_process_of_another_user_is_refused(tmp_path: Path) -> None:
    """A socket file of ours answered by another user's process (swapped in after the file
    check, say) is refused once connected, from the server's credentials."""
    path = tmp_path / "ours.sock"
    ready_in, ready_out = os.pipe()
    with socket.socket(socket.AF_UNIX) as bound:
        bound.bind(str(path))  # the file is root's; the process that listens will be nobody's
        pid = os.fork()  # Python itself is out of nobody's reach here: no exec, a fork
        if pid == 0:  # pragma: no cover (the child)
            try:
                os.setgid(NOBODY)
                os.setuid(NOBODY)
                bound.listen()  # SO_PEERCRED reports who called listen()
                os.write(ready_out, b"!")
                bound.settimeout(20)
                while True:  # until killed: each client is refused and hangs up
                    bound.accept()[0].recv(1)
            finally:
                os._exit(0)
    try:
        assert os.read(ready_in, 1) == b"!"
        assert os.stat(path).st_uid == os.getuid()
        with pytest.raises(NotYours, match=r"belongs to another user \(nobody\)"):
            ControlClient(str(path)).request("status")
        result = run("ctl", "--control", str(path), "status")
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(ready_in)
        os.close(ready_out)
    assert result.returncode == 1
    assert "belongs to another user (nobody)" in result.stderr
