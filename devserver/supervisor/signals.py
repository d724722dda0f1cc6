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
import logging
import os
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devserver.supervisor.supervisor import Supervisor

logger = logging.getLogger("devserve.supervisor")


def install(supervisor: Supervisor) -> None:
    loop = asyncio.get_running_loop()
    actions: dict[signal.Signals, Callable[[], object]] = {
        signal.SIGINT: lambda: handle_stop(supervisor),
        signal.SIGTERM: lambda: handle_stop(supervisor),
        signal.SIGQUIT: lambda: supervisor.stop(fast=True),
        signal.SIGHUP: _hangup_or_restart(supervisor),
        signal.SIGTTIN: lambda: supervisor.scale("+1"),
        signal.SIGTTOU: lambda: supervisor.scale("-1"),
        signal.SIGUSR1: supervisor.reopen_logs,
    }
    for signum, action in actions.items():
        loop.add_signal_handler(signum, _on_signal, signum, action)


def _hangup_or_restart(supervisor: Supervisor) -> Callable[[], object]:
    """HUP is a rolling restart (`kill -HUP`, `systemctl reload`), unless it came because the
    terminal devserve runs in was closed: then nobody is left to see or stop the server, so it
    stops (gracefully) rather than live on orphaned."""
    had_terminal = _has_terminal()
    # started under nohup (HUP ignored): the user asked to outlive the terminal
    outlive_terminal = signal.getsignal(signal.SIGHUP) is signal.SIG_IGN

    def on_hangup() -> object:
        if had_terminal and not _has_terminal():
            if outlive_terminal:
                logger.info("the terminal is gone; started with HUP ignored (nohup): serving on")
                return None
            logger.info("the terminal is gone: stopping")
            handle_stop(supervisor)
            return None
        return supervisor.restart()

    return on_hangup


def _has_terminal() -> bool:
    """True while this process has a controlling terminal (a hung-up one no longer counts)."""
    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
    except OSError:
        return False
    return True


def hangup_stops(supervisor: Supervisor) -> None:
    """With the in-process panel, HUP means the terminal is gone: stop (gracefully), since
    nobody is left to see or operate the server."""
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(
        signal.SIGHUP, _on_signal, signal.SIGHUP, lambda: handle_stop(supervisor)
    )


def _on_signal(signum: signal.Signals, action: Callable[[], object]) -> None:
    from devserver.supervisor.supervisor import CommandError

    logger.info("received %s", signum.name)
    try:
        action()
    except CommandError as exc:
        logger.warning("%s ignored: %s", signum.name, exc)


def handle_stop(supervisor: Supervisor) -> None:
    if supervisor.stopping:
        logger.warning("stopping now, without waiting for in-flight requests")
    else:
        logger.info("finishing in-flight requests, then stopping (again: stop now)")
    supervisor.stop()
