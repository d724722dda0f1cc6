"""The supervisor's signals, one line each: what an operator's `kill -SIG` means to devserve.

    TERM, INT   graceful stop (a second one: stop now)     HUP          rolling restart (with
                                                                        the panel, or when the
                                                                        terminal closed: stop)
    QUIT        fast stop                                  TTIN / TTOU  one worker more / fewer
    USR1        reopen log files

asyncio runs these handlers on the loop, outside the real signal handler, and they only call
the supervisor's public commands: the loop does the work.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import signal
from collections.abc import Callable
from typing import Any, Protocol

from devserver.supervisor.errors import CommandError

logger = logging.getLogger("devserve.supervisor")


class Commands(Protocol):
    """The supervisor's commands a signal can give (supervisor.Supervisor has them)."""

    @property
    def stopping(self) -> bool: ...

    def stop(self, fast: bool = False) -> Any: ...

    def restart(self) -> Any: ...

    def scale(self, how: str | int) -> Any: ...

    def reopen_logs(self) -> Any: ...


def install(supervisor: Commands) -> None:
    loop = asyncio.get_running_loop()
    actions: dict[signal.Signals, Callable[[], object]] = {
        signal.SIGINT: lambda: handle_stop(supervisor),
        signal.SIGTERM: lambda: handle_stop(supervisor),
        signal.SIGQUIT: lambda: supervisor.stop(fast=True),
        signal.SIGHUP: hangup_handler(supervisor),
        signal.SIGTTIN: lambda: supervisor.scale("+1"),
        signal.SIGTTOU: lambda: supervisor.scale("-1"),
        signal.SIGUSR1: supervisor.reopen_logs,
    }
    for signum, action in actions.items():
        loop.add_signal_handler(signum, _on_signal, signum, action)


class Hangup(enum.Enum):
    """What a SIGHUP means."""

    RESTART = "restart"  # `kill -HUP`, `systemctl reload`: a rolling restart
    STOP = "stop"  # the terminal devserve ran in was closed: nobody is left to see or stop it
    IGNORE = "ignore"  # the terminal was closed, but devserve was started under nohup


def hangup_meaning(had_terminal: bool, has_terminal: bool, outlive_terminal: bool) -> Hangup:
    """A HUP is a restart unless the terminal devserve had is gone; then devserve stops
    (gracefully) rather than live on orphaned, unless it was started with HUP ignored."""
    if not had_terminal or has_terminal:
        return Hangup.RESTART
    return Hangup.IGNORE if outlive_terminal else Hangup.STOP


def hangup_handler(
    supervisor: Commands, has_terminal: Callable[[], bool] | None = None
) -> Callable[[], object]:
    """The SIGHUP handler: what the terminal looks like now decides (hangup_meaning)."""
    terminal_now = has_terminal or _has_terminal
    had_terminal = terminal_now()
    # started under nohup (HUP ignored): the user asked to outlive the terminal
    outlive_terminal = signal.getsignal(signal.SIGHUP) is signal.SIG_IGN

    def on_hangup() -> object:
        meaning = hangup_meaning(had_terminal, terminal_now(), outlive_terminal)
        if meaning is Hangup.IGNORE:
            logger.info("the terminal is gone; started with HUP ignored (nohup): serving on")
        elif meaning is Hangup.STOP:
            logger.info("the terminal is gone: stopping")
            handle_stop(supervisor)
        else:
            return supervisor.restart()
        return None

    return on_hangup


def _has_terminal() -> bool:
    """True while this process has a controlling terminal (a hung-up one no longer counts)."""
    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
    except OSError:
        return False
    return True


def hangup_stops(supervisor: Commands) -> None:
    """With the in-process panel, HUP means the terminal is gone: stop (gracefully), since
    nobody is left to see or operate the server."""
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(
        signal.SIGHUP, _on_signal, signal.SIGHUP, lambda: handle_stop(supervisor)
    )


def _on_signal(signum: signal.Signals, action: Callable[[], object]) -> None:
    logger.info("received %s", signum.name)
    try:
        action()
    except CommandError as exc:
        logger.warning("%s ignored: %s", signum.name, exc)


def handle_stop(supervisor: Commands) -> None:
    if supervisor.stopping:
        logger.warning("stopping now, without waiting for in-flight requests")
    else:
        logger.info("finishing in-flight requests, then stopping (again: stop now)")
    supervisor.stop()
