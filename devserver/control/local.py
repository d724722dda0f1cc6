"""The in-process transport: the panel started by `devserve` talks to the hub directly, with
the same calls as control/client.py's AsyncControlClient and the same messages."""

from __future__ import annotations

import copy
import itertools
from collections.abc import AsyncIterator
from typing import Any

from devserver.control import schema
from devserver.control.client import ControlError
from devserver.control.hub import Hub


class LocalClient:
    path = "in-process"

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._ids = itertools.count(1)
        self.closed = False

    async def request(self, command: str, **args: Any) -> schema.Message:
        reply = self.hub.handle(schema.request(command, next(self._ids), **args))
        if not reply.get("ok"):
            raise ControlError(str(reply.get("error", "the server refused the command")))
        result: schema.Message = reply["result"]
        return result

    async def subscribe(self) -> AsyncIterator[schema.Message]:
        """The hub's stream, copied as a socket would (the panel may keep what it gets); ends
        when the server stops."""
        async for message in self.hub.stream():
            if self.closed:
                return
            yield copy.deepcopy(message)
