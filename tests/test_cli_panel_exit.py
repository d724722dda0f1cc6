"""What the terminal shows after the in-process panel quits: the panel hands the screen back as
it found it, and devserve then says that it stopped and where its log is kept (tmux plays the
terminal: tests/terminal.py)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.terminal import terminal
from tests.utils import devserve_command

APP = """\
async def app(scope, receive, send):
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
"""


def after_quitting(tmp_path: Path, *args: str) -> list[str]:
    """The screen's non-blank lines once devserve, run in a terminal with `args`, was quit with
    `q` and exited."""
    (tmp_path / "app.py").write_text(APP)
    command = devserve_command("app:app", "--port", "0", "--control", "off", *args)
    with terminal(tmp_path, command) as term:
        term.wait_for(r"workers 1/1 ready")
        term.keys("q")
        term.wait_for(r"EXITED \d+")
        return [line.rstrip() for line in term.screen().splitlines() if line.strip()]


def test_after_the_panel_devserve_says_it_stopped(tmp_path: Path) -> None:
    assert after_quitting(tmp_path) == ["devserve: stopped", "EXITED 0"]


def test_a_log_file_is_named_after_the_panel(tmp_path: Path) -> None:
    """With --log-config writing devserve's log to a file, the last line says where it is."""
    log = tmp_path / "devserve.log"
    config = {
        "version": 1,
        "incremental": False,
        "disable_existing_loggers": False,
        "handlers": {"file": {"class": "logging.FileHandler", "filename": str(log)}},
        "loggers": {"devserve.supervisor": {"handlers": ["file"], "level": "INFO"}},
    }
    (tmp_path / "logging.json").write_text(json.dumps(config))
    lines = after_quitting(tmp_path, "--log-config", "logging.json")
    assert lines == [f"devserve: stopped; the log is in {log}", "EXITED 0"]
    assert "serving on" in log.read_text()
