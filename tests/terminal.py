"""A real terminal for the tests, played by tmux: `terminal` runs a command in a tmux window,
`send-keys` types into it and `capture-pane` reads its screen.

Each terminal is its own tmux server (-L), so nothing leaks between tests or into the user's
tmux. Without tmux a test that asks for a terminal skips, or fails under DEVSERVE_CI=1.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil

from tests.utils import require_tool, until

DEADLINE = 20.0  # s: a worker boots and the panel draws, on a busy machine


class Terminal:
    def __init__(self, tmux: str, name: str) -> None:
        self.command = [tmux, "-L", name]

    def tmux(self, *args: str) -> str:
        result = subprocess.run([*self.command, *args], capture_output=True, text=True, timeout=10)
        return result.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "panel")

    def wait_for(self, pattern: str) -> re.Match[str]:
        """The first match of `pattern` on the screen, once it shows (within DEADLINE)."""
        return until(
            lambda: re.search(pattern, self.screen()),
            f"{pattern!r} to show",
            DEADLINE,
            detail=lambda: f"the screen:\n{self.screen()}",
            interval=0.1,  # each look runs tmux
        )

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "panel", *keys)


@contextlib.contextmanager
def terminal(tmp_path: Path, command: list[str], reap: bool = True) -> Iterator[Terminal]:
    """`command` in a 120x40 tmux window; when it exits the window says `EXITED <status>`.
    Afterwards what still runs in the window's session is killed, unless `reap` is False (a
    test of a command meant to outlive its terminal, which stops it itself)."""
    # a name of its own: tests run by other people on this machine share tmux's socket folder
    term = Terminal(require_tool("tmux"), f"devserve-test-{uuid.uuid4().hex}")
    # without COLUMNS and LINES, which Textual would believe over the terminal's own size
    line = f"env -u COLUMNS -u LINES {shlex.join(command)}; echo EXITED $?; sleep 60"
    term.tmux(
        "new-session", "-d", "-s", "panel", "-x", "120", "-y", "40", "-c", str(tmp_path), line
    )
    session = int(term.tmux("display-message", "-p", "-t", "panel", "#{pane_pid}") or 0)
    try:
        yield term
    finally:
        term.tmux("kill-server")
        if reap:
            _kill_session(session)


def _kill_session(session: int) -> None:
    """Kill what is left of the window's session: a devserve that did not stop when its
    terminal went (a failing test) must not outlive the test, spinning on a dead terminal."""
    if not session:
        return
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
            if os.getsid(process.pid) == session:
                os.kill(process.pid, signal.SIGKILL)
