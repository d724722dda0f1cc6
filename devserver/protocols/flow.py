"""Backpressure both ways for one connection: pause reading when the app lags, drain writes.

The toggles are idempotent so every caller can simply say what it wants; the transport is only
touched when the state actually changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

try:  # the socket's unsent bytes (Linux); elsewhere only the transport's buffer is counted
    import fcntl
    import termios

    _OUTQ: int | None = termios.TIOCOUTQ
except (ImportError, AttributeError):
    _OUTQ = None


class FlowControl:
    """Read pausing and write draining for one transport."""

    __slots__ = (
        "_transport",
        "read_paused",
        "write_paused",
        "_drain_waiter",
        "_stalled_tick",
        "_stalled_buffer",
    )

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self.read_paused = False
        self.write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._stalled_tick = 0  # while writes are paused: since when the client took nothing
        self._stalled_buffer = 0  # ...and how much waited for it then

    def pause_reading(self) -> None:
        if not self.read_paused:
            self.read_paused = True
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused:
            self.read_paused = False
            self._transport.resume_reading()

    def pause_writing(self) -> None:
        """The transport's write buffer passed its high-water mark."""
        self.write_paused = True

    def resume_writing(self) -> None:
        """The buffer drained below the low-water mark, or the connection is gone."""
        self.write_paused = False
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def writes_paused_at(self, tick: int) -> None:
        """Writes paused at the server's `tick`: the time a stall (stalled_since) counts from."""
        self._stalled_tick, self._stalled_buffer = tick, unsent_bytes(self._transport)

    def stalled_since(self, tick: int) -> int:
        """While writes are paused: the tick since which the client has taken none of what waits
        for it (the transport's buffer and the socket's queue); any progress, seen now at `tick`,
        starts the count again."""
        buffered = unsent_bytes(self._transport)
        if buffered < self._stalled_buffer:
            self._stalled_tick, self._stalled_buffer = tick, buffered
        return self._stalled_tick

    @property
    def draining(self) -> bool:
        """A send is waiting for the peer to take what was written."""
        return self._drain_waiter is not None

    async def drain(self) -> None:
        """Wait until the peer has taken enough of what we wrote; returns at once if it has."""
        if self.write_paused:
            if self._drain_waiter is None:
                self._drain_waiter = asyncio.get_running_loop().create_future()
            await self._drain_waiter


def unsent_bytes(transport: asyncio.Transport) -> int:
    """Bytes written that the client has not taken: the transport's buffer and, where the
    system says (Linux's SIOCOUTQ), the socket's send queue, which can hold megabytes and
    drains in steps too coarse to show progress by the buffer alone."""
    unsent = transport.get_write_buffer_size()
    sock = transport.get_extra_info("socket")
    if sock is not None and _OUTQ is not None:
        with contextlib.suppress(OSError, ValueError):
            buffer = bytearray(4)
            fcntl.ioctl(sock.fileno(), _OUTQ, buffer)
            unsent += int.from_bytes(buffer, sys.byteorder, signed=True)
    return unsent
