"""`devserve --help` as a user reads it: grouped, with its commands, at 80 columns, in a pipe
and in a terminal (colours there unless NO_COLOR)."""

from __future__ import annotations

import os
import pty
import re
import subprocess

import pytest

from devserver.config import GROUPS, OPTIONS, cli_flag
from tests.utils import clean_env, devserve_command

COLOUR = re.compile(r"\x1b\[[0-9;]*3[0-7]m")  # a foreground colour (bold and dim are not)


def help_text(*args: str, **env: str) -> str:
    result = subprocess.run(
        devserve_command(*args, "--help"),
        capture_output=True, text=True, timeout=20, env=clean_env(**env),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def in_a_terminal(*args: str, **env: str) -> str:
    """What `devserve ARGS` writes to a real terminal (a pseudo-terminal, 80 columns)."""
    environment = {k: v for k, v in clean_env(**env).items() if k not in ("NO_COLOR", "COLUMNS")}
    environment.update(env)
    main, terminal = pty.openpty()
    with subprocess.Popen(
        devserve_command(*args), stdin=terminal, stdout=terminal, stderr=terminal, env=environment
    ) as process:
        os.close(terminal)
        chunks = []
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the terminal's last writer is gone
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout=20) == 0
    os.close(main)
    return b"".join(chunks).decode()


def headings(text: str) -> list[str]:
    return [line.rstrip()[:-1] for line in text.splitlines() if re.fullmatch(r"\S.*:\s*", line)]


def test_options_come_in_their_groups_after_the_commands() -> None:
    """Every option shows under its group's heading (config.py's Option.group), the groups in
    GROUPS' order after the commands, and the options that only inform last."""
    text = help_text(COLUMNS="80")
    assert headings(text) == ["Commands", *GROUPS, "Information"]
    sections = dict(zip(headings(text), re.split(r"(?m)^\S.*:\s*$", text)[1:], strict=True))
    for name, spec in OPTIONS.items():
        if name != "app":
            assert re.search(rf"(?m)^  {cli_flag(name)}\b", sections[spec.group]), name
    assert re.search(r"(?m)^  APP <MODULE:ATTR>", sections["App"])
    assert re.search(r"(?m)^  --print-config", sections["Information"])


def test_the_first_lines_say_what_app_and_the_commands_are() -> None:
    text = help_text(COLUMNS="80")
    lines = [line.rstrip() for line in text.splitlines()]
    assert lines[0] == "Usage: devserve [OPTIONS] [APP] | COMMAND ..."
    assert "ASGI or WSGI app" in lines[2]
    commands = text.split("Commands:")[1].split("\n\n")[0]
    assert re.search(r"(?m)^  top +Open the control panel on a running devserve", commands)
    assert re.search(r"(?m)^  ctl +Operate a running devserve", commands)


@pytest.mark.parametrize("args", [(), ("ctl",), ("ctl", "scale"), ("top",)])
def test_help_fits_80_columns_and_a_pipe_gets_no_escapes(args: tuple[str, ...]) -> None:
    text = help_text(*args, COLUMNS="80")
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80
    assert "\x1b" not in text


def test_a_terminal_gets_colours_unless_no_color() -> None:
    coloured = in_a_terminal("--help")
    plain = in_a_terminal("--help", NO_COLOR="1")
    assert COLOUR.search(coloured), coloured[:300]
    assert not COLOUR.search(plain), plain[:300]
    assert "Usage:" in plain and "Commands:" in plain
