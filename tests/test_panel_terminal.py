"""The control panel in a real terminal: devserve and `devserve top` launched inside tmux.

tmux gives the panel a real pseudo-terminal (tests/terminal.py): `send-keys` types,
`capture-pane` reads the screen, and each test has its own tmux server.
"""

from __future__ import annotations

import contextlib
import urllib.error
import urllib.request
from pathlib import Path

from devserver.control.client import ControlClient
from tests.terminal import terminal
from tests.utils import devserve_command, run_devserve, until

APP = """\
import logging

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/boom":
        raise LookupError("raised on purpose, for the inspector")
    print("hello from the app", scope["path"])
    logging.getLogger("myapp").warning("the app warns about %s", scope["path"])
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
"""


def test_devserve_in_a_terminal_is_the_panel(tmp_path: Path) -> None:
    """`devserve app:app` in a terminal shows the panel: the workers, `+` scaling, the app's
    own output in the events pane; `q` stops the server and leaves a clean terminal."""
    (tmp_path / "app.py").write_text(APP)
    control = str(tmp_path / "ctl.sock")
    with terminal(
        tmp_path, devserve_command("app:app", "--port", "0", "--control", control)
    ) as term:
        url = term.wait_for(r"http://127\.0\.0\.1:\d+").group(0)
        term.wait_for(r"workers 1/1 ready")
        term.keys("+")
        term.wait_for(r"workers 2/2 ready")
        assert len(ControlClient(control).request("status")["workers"]) == 2
        with urllib.request.urlopen(url + "/hi", timeout=10) as response:
            assert response.read() == b"ok"
        term.wait_for(r"\d+ hello from the app /hi")
        term.wait_for(r"the app warns about /hi")
        term.wait_for(r"access log hidden · a shows it")
        term.keys("a")  # the access log, in the panel too, once asked for
        term.wait_for(r'"GET /hi HTTP/1.1" 200')
        term.keys("a")
        until(lambda: '"GET /hi' not in term.screen(), "the access line hidden again", 10)
        term.keys("q")
        term.wait_for(r"EXITED 0")
        screen = term.screen()
    leftovers = [line for line in screen.splitlines() if line.strip()]
    # the panel is gone, the shell's screen is back, with how devserve ended
    assert leftovers == ["devserve: stopped", "EXITED 0"], screen
    assert not Path(control).exists()


def test_at_80x24_a_request_shows_its_status_and_duration(tmp_path: Path) -> None:
    """In the size most terminals open at, the panel's header keeps the app's URL and the
    dashboard's, and a request's row its method, path, status and duration."""
    (tmp_path / "app.py").write_text(APP)
    control = str(tmp_path / "ctl.sock")
    command = devserve_command("app:app", "--port", "0", "--control", control)
    with terminal(tmp_path, command) as term:
        term.tmux("resize-window", "-t", "panel", "-x", "80", "-y", "24")
        url = term.wait_for(r"http://127\.0\.0\.1:\d+").group(0)
        term.wait_for(r"workers 1/1 ready")
        term.wait_for(r"dashboard http://127\.0\.0\.1:\d+/")
        urllib.request.urlopen(url + "/hi?from=80x24", timeout=10).read()
        row = term.wait_for(r"GET\s+/hi\?from=80x24\s+200\s+\d+\.\d+ ms")
        screen = term.screen().splitlines()
        assert max(len(line) for line in screen) <= 80 and len(screen) == 24, screen
        assert row.group(0) in "\n".join(screen)
        term.keys("q")
        term.wait_for(r"EXITED 0")


def test_the_inspector_of_a_request_that_raised_shows_its_traceback(tmp_path: Path) -> None:
    """In devserve's own panel, enter on a 500 shows the exception its record carries: the
    traceback."""
    (tmp_path / "app.py").write_text(APP)
    command = devserve_command("app:app", "--port", "0", "--control", str(tmp_path / "c.sock"))
    with terminal(tmp_path, command) as term:
        url = term.wait_for(r"http://127\.0\.0\.1:\d+").group(0)
        term.wait_for(r"workers 1/1 ready")
        with contextlib.suppress(urllib.error.HTTPError):  # the 500
            urllib.request.urlopen(url + "/boom", timeout=10)
        term.wait_for(r"GET\s+/boom\s+500")
        term.keys("Tab")  # to the requests, whose cursor follows the newest
        term.keys("Enter")
        term.wait_for(r"LookupError: raised on purpose, for the inspector")
        screen = term.screen()
        assert "Traceback (most recent call last)" in screen, screen
        term.keys("q")  # closes the inspector (tmux would read escape and q as alt+q)
        until(lambda: "/boom → 500 in" not in term.screen(), "the inspector closed", 10)
        term.keys("q")
        term.wait_for(r"EXITED 0")


def test_devserve_top_attaches_to_a_prod_server_and_leaves_it_running(tmp_path: Path) -> None:
    control = str(tmp_path / "ctl.sock")
    with run_devserve("--prod", "--workers", "1", "--control", control) as server:
        with terminal(tmp_path, devserve_command("top", "--control", control)) as term:
            term.wait_for(r"prod · reload off")
            term.wait_for(r"workers 1/1 ready")
            urllib.request.urlopen(server.url + "/?from=top", timeout=10).read()
            term.wait_for(r"GET\s+/\?from=top\s+200")
            term.keys("q")
            term.wait_for(r"EXITED 0")
            term.wait_for(r"devserve top: left; devserve still serves")  # not a blank screen
        status = ControlClient(control).request("status")
    assert status["server"]["state"] == "running"  # quitting `top` left the server alone
