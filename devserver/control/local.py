"""The in-process transport: the panel started by `devserve` talks to the hub directly, with
the same calls as control/client.py's AsyncControlClient and the same messages.

It subscribes as soon as it is made (before the supervisor starts), so the panel, which takes
a moment to come up, still shows the first log lines and worker events.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
from collections.abc import AsyncIterator
from typing import Unpack

from devserver.control import schema
from devserver.control.client import ControlError
from devserver.control.hub import QUEUE_SIZE, Hub


class LocalClient:
    path = "in-process"

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._ids = itertools.count(1)
        self._queue: asyncio.Queue[schema.StreamMessage | None] = asyncio.Queue(QUEUE_SIZE)
        self._pump = asyncio.get_running_loop().create_task(self._follow(), name="local stream")

    async def _follow(self) -> None:
        async for message in self.hub.stream():
            if self._queue.full():  # nobody reads fast enough: the oldest goes, as in the hub
                self._queue.get_nowait()
            # copied, as a socket would: the panel may keep what it gets
            self._queue.put_nowait(copy.deepcopy(message))

    def close(self) -> None:
        """The server stopped: the stream ends (after what was already queued)."""
        self._pump.cancel()
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)

    async def request(self, command: str, **args: Unpack[schema.Arguments]) -> schema.CommandResult:
        reply = self.hub.handle(schema.request(command, next(self._ids), **args))
        if reply["type"] == "error":
            raise ControlError(reply["error"])
        return reply["result"]

    async def subscribe(self, recent: bool = False) -> AsyncIterator[schema.StreamMessage]:
        """The stream; it began when this client was made, so nothing was missed (`recent`
        has nothing to add)."""
        while (message := await self._queue.get()) is not None:
            yield message
