"""A fake transport for HTTPProtocol, bytes in and bytes out: no sockets, one asyncio loop per
test (test_protocol_unit.py, test_limits_http.py). Closing calls `connection_lost` on the next
loop iteration, as asyncio does."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from devserver.protocols.http import HTTPProtocol
from devserver.protocols.state import HTTPSettings, ServerState
from devserver.stats import WorkerStats


class FakeTransport:
    """Just enough of asyncio.Transport for HTTPProtocol."""

    def __init__(self) -> None:
        self.protocol: HTTPProtocol | None = None
        self.written = bytearray()
        self.reading = True
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.written += data

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            assert self.protocol is not None
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    abort = close

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        info = {"peername": ("10.0.0.2", 50000), "sockname": ("10.0.0.1", 8000)}
        return info.get(name, default)

    def take(self) -> bytes:
        data = bytes(self.written)
        self.written.clear()
        return data


def connect(
    app: Any, stats: WorkerStats | None = None, **settings: Any
) -> tuple[HTTPProtocol, FakeTransport, ServerState]:
    """A protocol on a fake transport (call inside a running loop)."""
    options: dict[str, Any] = {"server_header": False, "date_header": False, "access_log": False}
    options.update(settings)
    state = ServerState(app, HTTPSettings(**options), stats=stats)
    protocol = HTTPProtocol(state)
    transport = FakeTransport()
    transport.protocol = protocol
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return protocol, transport, state


async def settle() -> None:
    """Let every other task on the loop finish (bounded, so a stuck app fails the test)."""
    current = asyncio.current_task()
    for _ in range(3):
        tasks = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        if tasks:
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=1)
        await asyncio.sleep(0)


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run one test coroutine as the main task of a fresh loop (settle() bounds the waits)."""
    asyncio.run(test())
