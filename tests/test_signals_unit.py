"""What a SIGHUP means, decided without a terminal: the terminal check is injected.
(test_hangup.py closes a real terminal under tmux; this covers every case of the decision.)"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from devserver.supervisor.signals import Hangup, hangup_handler, hangup_meaning


@pytest.mark.parametrize(
    ("had", "has", "nohup", "meaning"),
    [
        (True, True, False, Hangup.RESTART),  # kill -HUP from another terminal
        (False, False, False, Hangup.RESTART),  # systemd, docker: never had a terminal
        (False, False, True, Hangup.RESTART),
        (True, False, False, Hangup.STOP),  # the terminal window was closed
        (True, False, True, Hangup.IGNORE),  # ... but devserve was started under nohup
        (True, True, True, Hangup.RESTART),
    ],
)
def test_a_hangup_restarts_unless_the_terminal_is_gone(
    had: bool, has: bool, nohup: bool, meaning: Hangup
) -> None:
    """Only losing the terminal devserve had changes a HUP from a restart; nohup keeps it."""
    assert hangup_meaning(had, has, nohup) is meaning


class _Commands:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.stopping = False

    def stop(self, fast: bool = False) -> None:
        self.calls.append("stop")

    def restart(self) -> None:
        self.calls.append("restart")

    def scale(self, how: str | int) -> None:
        self.calls.append(f"scale {how}")

    def reopen_logs(self) -> None:
        self.calls.append("reopen")


@pytest.fixture
def hup_default() -> Iterator[None]:
    """The handler reads whether HUP is ignored (nohup) when it is made: make it not ignored."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_the_handler_stops_once_the_terminal_it_started_with_is_gone(hup_default: None) -> None:
    """The handler checks the terminal at install time and again at each HUP."""
    terminal = [True]
    commands = _Commands()
    on_hangup = hangup_handler(commands, has_terminal=lambda: terminal[0])
    on_hangup()
    assert commands.calls == ["restart"]
    terminal[0] = False
    on_hangup()
    assert commands.calls == ["restart", "stop"]


def test_under_nohup_a_closed_terminal_changes_nothing() -> None:
    """Started with HUP ignored, losing the terminal neither stops nor restarts devserve."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        terminal = [True]
        commands = _Commands()
        on_hangup = hangup_handler(commands, has_terminal=lambda: terminal[0])
    finally:
        signal.signal(signal.SIGHUP, previous)
    terminal[0] = False
    on_hangup()
    assert commands.calls == []
