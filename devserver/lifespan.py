"""The ASGI lifespan protocol: run the app's startup before serving and its shutdown after.

`--lifespan on` makes a failed or unsupported startup fatal; `auto` tolerates apps that do not
speak lifespan (they raise on the unknown scope type); `off` never sends the scope.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from devserver.asgi import ASGIApp, LifespanIncoming, LifespanScope, Outgoing, Receive, Send
from devserver.tracing import Tracer

logger = logging.getLogger("devserve.server")


class LifespanFailed(Exception):
    """Startup failed; the message says why (the app's own message or its exception)."""


class Lifespan:
    """Drives one lifespan session: `await startup()` ... serve ... `await shutdown()`."""

    def __init__(
        self, app: ASGIApp, mode: str, state: dict[str, Any], tracer: Tracer | None = None
    ) -> None:
        self.app = app
        self.mode = mode
        self.state = state
        self.tracer = tracer  # with --trace, the session's messages are traced like a request's
        self.supported = mode != "off"
        self._inbox: asyncio.Queue[LifespanIncoming] = asyncio.Queue()
        # the app's answer as it sent it (`_send` checked its type), or one made up for it
        self._answer: asyncio.Future[Mapping[str, Any]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = False  # the app answered lifespan.startup
        self.error: BaseException | None = None  # what the app raised, if it raised

    async def startup(self) -> None:
        """Run startup; raises LifespanFailed when it fails (or is unsupported in 'on' mode)."""
        if not self.supported:
            return
        self._task = asyncio.get_running_loop().create_task(self._run())
        reply = await self._exchange({"type": "lifespan.startup"})
        self._started = True
        if reply["type"] == "lifespan.startup.failed":
            message = reply.get("message") or "lifespan startup failed"
            raise LifespanFailed(message) from self.error

    async def shutdown(self) -> None:
        if not self.supported or self._task is None:
            return
        reply = await self._exchange({"type": "lifespan.shutdown"})
        if reply["type"] == "lifespan.shutdown.failed":
            logger.error("lifespan shutdown failed: %s", reply.get("message", ""))
        await asyncio.wait({self._task}, timeout=5)

    async def _exchange(self, message: LifespanIncoming) -> Mapping[str, Any]:
        event = message["type"]
        self._answer = asyncio.get_running_loop().create_future()
        await self._inbox.put(message)
        assert self._task is not None
        waiting: set[asyncio.Future[Any]] = {self._answer, self._task}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if self._answer.done():
            return self._answer.result()
        if self.mode == "auto" and event == "lifespan.startup":
            logger.debug("the app returned from the lifespan scope: going on without lifespan")
            self.supported = False
            return {"type": "lifespan.startup.complete"}
        return {
            "type": f"{event}.failed",
            "message": f"the app returned instead of answering {event}",
        }

    async def _run(self) -> None:
        scope: LifespanScope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        receive: Receive = self._inbox.get
        send: Send = self._send
        if self.tracer is not None and self.tracer.remaining < 0:  # --trace: everything
            receive, send = self.tracer.start_lifespan(scope).wrap(receive, send)
        try:
            await self.app(scope, receive, send)
        except BaseException as exc:
            self._crashed(exc)
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise

    def _crashed(self, exc: BaseException) -> None:
        answered_startup = self._started or (self._answer is not None and self._answer.done())
        if self.mode == "auto" and not answered_startup:
            logger.info(
                "the app does not support the lifespan protocol (%s); going on without",
                type(exc).__name__,
            )
            self.supported = False
            self._reply({"type": "lifespan.startup.complete"})
            return
        self.error = exc
        phase = "shutdown" if self._started else "startup"
        if phase == "shutdown":  # a startup failure is raised, with this as its cause
            logger.error("Exception in the app's lifespan handler", exc_info=exc)
        self._reply({"type": f"lifespan.{phase}.failed", "message": f"{type(exc).__name__}: {exc}"})

    async def _send(self, message: Outgoing) -> None:
        fields: Mapping[str, Any] = message  # an app is not type-checked: its answer is, here
        kind = fields.get("type", "")
        if not kind.startswith("lifespan.") or not kind.endswith((".complete", ".failed")):
            raise RuntimeError(f"unexpected lifespan message {kind!r}")
        self._reply(fields)

    def _reply(self, message: Mapping[str, Any]) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(message)
