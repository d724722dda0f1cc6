"""The control panel in a real terminal: devserve and `devserve top` launched inside tmux.

tmux gives the panel a real pseudo-terminal; `send-keys` types, `capture-pane` reads the screen.
Each test runs its own tmux server (-L), so nothing leaks between tests or into the user's tmux.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from devserver.control.client import ControlClient
from tests.utils import run_devserve

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

DEADLINE = 20.0
APP = """\
import logging

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    print("hello from the app", scope["path"])
    logging.getLogger("myapp").warning("the app warns about %s", scope["path"])
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
"""


class Terminal:
    def __init__(self, name: str) -> None:
        self.name = name

    def tmux(self, *args: str) -> str:
        result = subprocess.run(
            ["tmux", "-L", self.name, *args], capture_output=True, text=True, timeout=10
        )
        return result.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "panel")

    def wait_for(self, pattern: str) -> re.Match[str]:
        deadline = time.monotonic() + DEADLINE
        while True:
            screen = self.screen()
            if found := re.search(pattern, screen):
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} never showed; the screen:\n{screen}")
            time.sleep(0.1)

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "panel", *keys)


@contextlib.contextmanager
def terminal(tmp_path: Path, command: list[str]) -> Iterator[Terminal]:
    """`command` in a 120x40 tmux window; when it exits the window says `EXITED <status>`."""
    term = Terminal(f"devserve-test-{tmp_path.name}")
    # without COLUMNS and LINES, which Textual would believe over the terminal's own size
    line = f"env -u COLUMNS -u LINES {shlex.join(command)}; echo EXITED $?; sleep 60"
    term.tmux(
        "new-session", "-d", "-s", "panel", "-x", "120", "-y", "40", "-c", str(tmp_path), line
    )
    try:
        yield term
    finally:
        term.tmux("kill-server")


def devserve(*args: str) -> list[str]:
    return [sys.executable, "-m", "devserver", *args]


def test_devserve_in_a_terminal_is_the_panel(tmp_path: Path) -> None:
    """`devserve app:app` in a terminal shows the panel: the workers, `+` scaling, the app's
    own output in the events pane; `q` stops the server and leaves a clean terminal."""
    (tmp_path / "app.py").write_text(APP)
    control = str(tmp_path / "ctl.sock")
    with terminal(tmp_path, devserve("app:app", "--port", "0", "--control", control)) as term:
        url = term.wait_for(r"http://127\.0\.0\.1:\d+").group(0)
        term.wait_for(r"workers 1/1 ready")
        term.keys("+")
        term.wait_for(r"workers 2/2 ready")
        assert len(ControlClient(control).request("status")["workers"]) == 2
        with urllib.request.urlopen(url + "/hi", timeout=10) as response:
            assert response.read() == b"ok"
        term.wait_for(r"\d+ hello from the app /hi")
        term.wait_for(r"the app warns about /hi")
        term.wait_for(r'"GET /hi HTTP/1.1" 200')  # the access log, in the panel too
        term.keys("q")
        term.wait_for(r"EXITED 0")
        screen = term.screen()
    leftovers = [line for line in screen.splitlines() if line.strip()]
    assert leftovers == ["EXITED 0"], screen  # the panel is gone, the shell's screen is back
    assert not Path(control).exists()


def test_devserve_top_attaches_to_a_prod_server_and_leaves_it_running(tmp_path: Path) -> None:
    control = str(tmp_path / "ctl.sock")
    with run_devserve("--prod", "--workers", "1", "--control", control) as server:
        with terminal(tmp_path, devserve("top", "--control", control)) as term:
            term.wait_for(r"prod · reload off")
            term.wait_for(r"workers 1/1 ready")
            urllib.request.urlopen(server.url + "/?from=top", timeout=10).read()
            term.wait_for(r"GET\s+/\?from=top\s+200")
            term.keys("q")
            term.wait_for(r"EXITED 0")
        status = ControlClient(control).request("status")
    assert status["server"]["state"] == "running"  # quitting `top` left the server alone
