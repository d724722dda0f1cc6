"""Zero-copy file bodies (pathsend, zerocopysend): os.sendfile on the connection's socket.

uvloop's transports have no `loop.sendfile`, so we wait until the transport's buffer is empty
(sendfile bypasses it), then call os.sendfile on a duplicate of the socket's fd, waiting for
writability on that duplicate when the kernel buffer is full. TLS connections, and sockets we
cannot reach, fall back to reading the file and writing through the transport.
"""

from __future__ import annotations

import asyncio
import os
from typing import IO

from devserver.protocols.flow import FlowControl

COPY_CHUNK = 1 << 18


async def send_file(
    transport: asyncio.Transport, flow: FlowControl, file: IO[bytes], count: int, offset: int = 0
) -> int:
    """Write `count` bytes of `file` from `offset`; returns how many were written."""
    sock = transport.get_extra_info("socket")
    if transport.get_extra_info("sslcontext") is None and sock is not None:
        await _flush(transport, flow)
        if not transport.is_closing():
            return await _sendfile(sock.fileno(), file.fileno(), count, offset)
    return await _copy(transport, flow, file, count, offset)


async def _flush(transport: asyncio.Transport, flow: FlowControl) -> None:
    """Wait until the transport has handed everything buffered to the kernel."""
    if transport.get_write_buffer_size() == 0:
        return
    high, low = transport.get_write_buffer_limits()
    transport.set_write_buffer_limits(high=0, low=0)  # pause now, resume at empty
    try:
        if transport.get_write_buffer_size():
            flow.pause_writing()
            await flow.drain()
    finally:
        transport.set_write_buffer_limits(high=high, low=low)


async def _sendfile(sock_fd: int, file_fd: int, count: int, offset: int) -> int:
    loop = asyncio.get_running_loop()
    fd = os.dup(sock_fd)  # our own fd to poll: the transport owns the original
    sent = 0
    try:
        while sent < count:
            try:
                n = os.sendfile(fd, file_fd, offset + sent, count - sent)
            except BlockingIOError:
                await _writable(loop, fd)
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if n == 0:
                break  # the file is shorter than announced
            sent += n
    finally:
        os.close(fd)
    return sent


async def _writable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    ready = loop.create_future()
    loop.add_writer(fd, ready.set_result, None)
    try:
        await ready
    finally:
        loop.remove_writer(fd)


async def _copy(
    transport: asyncio.Transport, flow: FlowControl, file: IO[bytes], count: int, offset: int
) -> int:
    sent = 0
    while sent < count and not transport.is_closing():
        data = os.pread(file.fileno(), min(COPY_CHUNK, count - sent), offset + sent)
        if not data:
            break
        transport.write(data)
        sent += len(data)
        await flow.drain()
    return sent
