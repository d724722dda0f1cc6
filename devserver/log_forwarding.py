"""A worker's warnings and errors, sent to its supervisor as `Log` messages.

Where nobody captures a worker's stdout and stderr (no in-process panel: `--no-tui`, `--prod`),
the web dashboard and `devserve top` would never see the app's exceptions. This handler sends
what the worker logs at WARNING and above over the channel too; the lines still go wherever
logging sends them (the terminal, a log file). A budget keeps an app that fails on every request
from flooding the supervisor: past it, records are counted, not sent, and the count follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable

from devserver import channel

# devserve.server carries the app's exceptions, lifespan's and what WSGI apps write to
# wsgi.errors; the root logger the app's own records, when the app set up logging (a handler
# added to a bare root would silence logging's last-resort stderr output)
SERVER_LOGGER = "devserve.server"
BURST = 20  # records sent at once before the rate applies
RATE = 5.0  # records a second after that
LINE_LIMIT = 4096
DETAILS_LIMIT = 16384  # a traceback longer than this keeps its end, where the error is
NOTE_AFTER = 1.0  # seconds after the first dropped record, the count goes out by itself


class ForwardHandler(logging.Handler):
    """Sends WARNING and above to `send` on the worker's event loop, from any thread (WSGI
    apps log from their thread pool)."""

    def __init__(self, send: Callable[[channel.Log], object]) -> None:
        super().__init__(logging.WARNING)
        self.send = send
        self.loop = asyncio.get_running_loop()
        self.loop_thread = threading.get_ident()
        self.tracebacks = logging.Formatter()  # for formatException
        self.pid = os.getpid()
        self.tokens = float(BURST)
        self.refilled = time.monotonic()
        self.dropped = 0
        self.sending = False

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "devserve_forwarded", False):  # propagated to a second handler
            return
        if os.getpid() != self.pid:  # a process the app forked: the channel is not its own
            return
        record.devserve_forwarded = True
        if not self._take_token():
            self.dropped += 1
            if self.dropped == 1:  # the count goes out with the next record sent, or by itself
                self._later(NOTE_AFTER, self._send_dropped_note)
            return
        try:
            line = record.getMessage()
            details = self.tracebacks.formatException(record.exc_info) if record.exc_info else ""
        except Exception:
            self.handleError(record)
            return
        messages = []
        if self.dropped:
            messages.append(self._dropped_note())
        messages.append(
            channel.Log(
                record.levelname.lower(),
                record.name,
                line[:LINE_LIMIT],
                details[-DETAILS_LIMIT:],
            )
        )
        for message in messages:
            self._send(message)

    def _take_token(self) -> bool:
        now = time.monotonic()
        self.tokens = min(BURST, self.tokens + (now - self.refilled) * RATE)
        self.refilled = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def _send_dropped_note(self) -> None:
        """On the loop, a while after records were dropped: the count, if no record took it."""
        with self.lock:  # type: ignore[union-attr]  # Handler.createLock made it
            if not self.dropped:
                return
            if not self._take_token():
                self._later(NOTE_AFTER, self._send_dropped_note)
                return
            note = self._dropped_note()
        self._send(note)

    def _later(self, delay: float, callback: Callable[[], None]) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: the worker is exiting
            self.loop.call_soon_threadsafe(self.loop.call_later, delay, callback)

    def _dropped_note(self) -> channel.Log:
        note = (
            f"{self.dropped} more warning(s) and error(s) were not sent to the supervisor "
            f"(over {RATE:g} a second); the worker's own log has them"
        )
        self.dropped = 0
        return channel.Log("warning", SERVER_LOGGER, note)

    def _send(self, message: channel.Log) -> None:
        # on the loop thread at once, unless this record was logged while a send was half done
        # (a signal handler, a finalizer): frames must not interleave, so it waits its turn
        if threading.get_ident() == self.loop_thread and not self.sending:
            self.sending = True
            try:
                self.send(message)
            finally:
                self.sending = False
            return
        with contextlib.suppress(RuntimeError):  # a closed loop: the worker is exiting
            self.loop.call_soon_threadsafe(self.send, message)


def install(send: Callable[[channel.Log], object]) -> ForwardHandler:
    """Forward from now on (call on the worker's loop, once the app has set up its logging)."""
    handler = ForwardHandler(send)
    logging.getLogger(SERVER_LOGGER).addHandler(handler)
    root = logging.getLogger()
    if root.handlers:
        root.addHandler(handler)
    return handler


def uninstall(handler: ForwardHandler) -> None:
    for log in (logging.getLogger(SERVER_LOGGER), logging.getLogger()):
        if handler in log.handlers:
            log.removeHandler(handler)
