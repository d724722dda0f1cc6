"""Worker output, captured for the in-process panel: each worker's stdout and stderr become
`log` events on the control API instead of bytes on the terminal the panel draws on.

The supervisor gives each worker one end of a socket pair; the worker puts it in place of its
file descriptors 1 and 2 (so `print`, logging and C extensions all land there), and the
supervisor reads the other end a line at a time.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

LINE_LIMIT = 4096  # a longer line is cut: one event stays small

Event = dict[str, Any]


class _Lines(asyncio.Protocol):
    def __init__(self, emit: Callable[[str], None]) -> None:
        self.emit = emit
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            self.emit(line[:LINE_LIMIT].decode("utf-8", "replace").rstrip("\r"))
        if len(self.buffer) > LINE_LIMIT:
            self.emit(self.buffer[:LINE_LIMIT].decode("utf-8", "replace"))
            self.buffer = b""

    def connection_lost(self, exc: Exception | None) -> None:
        if self.buffer:
            self.emit(self.buffer.decode("utf-8", "replace"))
            self.buffer = b""


async def capture(
    sock: socket.socket, pid: int, slot: int, publish: Callable[[Event], None]
) -> None:
    """Publish every line `sock` carries as a log event of worker `pid`, until it closes."""

    def emit(line: str) -> None:
        publish({"kind": "log", "source": "worker", "pid": pid, "slot": slot, "line": line})

    loop = asyncio.get_running_loop()
    await loop.connect_accepted_socket(lambda: _Lines(emit), sock)
