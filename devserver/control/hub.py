"""The control API's one implementation: commands to the supervisor, events and snapshots out.

Every transport (the Unix socket, later the dashboard's WebSocket, the in-process panel) hands
decoded requests to `Hub.handle` and streams `Hub.stream()` to subscribers; none of them talks to
the supervisor directly. Subscriber queues are bounded: a slow client loses events, never memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from devserver.control import schema

if TYPE_CHECKING:
    from devserver.supervisor.supervisor import Supervisor

logger = logging.getLogger("devserve.supervisor")

QUEUE_SIZE = 1000
RECENT_EVENTS = 200  # what a subscriber that asks for `recent` gets first
SNAPSHOT_INTERVAL = 1.0
RECORDS_INTERVAL = 0.25

# The supervisor's command methods return plain dicts, each of one of schema.CommandResult's
# shapes (tests/test_contracts_schema.py checks them against a live server); `_carry_out` is
# where they join the contract.
Handler = Callable[["Supervisor", schema.Request], Mapping[str, Any]]
_HANDLERS: dict[str, Handler] = {
    "status": lambda sup, msg: sup.snapshot(0.0 if msg.get("history") is True else None),
    "scale": lambda sup, msg: sup.scale(msg["workers"]),
    "restart": lambda sup, msg: sup.restart(),
    "reload": lambda sup, msg: sup.reload(),
    "kill": lambda sup, msg: sup.kill(_pid(msg["pid"])),
    "trace": lambda sup, msg: sup.trace(_count(msg.get("requests")), _optional_pid(msg.get("pid"))),
    "trace-off": lambda sup, msg: sup.trace_off(_optional_pid(msg.get("pid"))),
    "stop": lambda sup, msg: sup.stop(fast=bool(msg.get("fast", False))),
    "reopen-logs": lambda sup, msg: sup.reopen_logs(),
}


def _pid(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise ValueError(f"{value!r} is not a pid")
    return int(value)


def _optional_pid(value: Any) -> int | None:
    return None if value is None else _pid(value)


def _count(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"requests: {value!r} is not a whole number")
    return value


def _carry_out(
    supervisor: Supervisor, command: str, request: schema.Request
) -> schema.CommandResult:
    return cast("schema.CommandResult", _HANDLERS[command](supervisor, request))


class Hub:
    def __init__(self) -> None:
        self.supervisor: Supervisor | None = None
        self._subscribers: set[asyncio.Queue[schema.StreamMessage]] = set()
        self._recent: deque[schema.EventMessage] = deque(maxlen=RECENT_EVENTS)

    def attach(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor

    def handle(self, message: Any) -> schema.Reply:
        """Carry out one request (a decoded one, not checked yet); returns the reply (a result
        or an error), never raises."""
        request_id = message.get("id") if isinstance(message, dict) else None
        try:
            command, checked = schema.check_request(message)
            if command == "subscribe":
                raise schema.SchemaError("subscribe is answered by the transport's stream")
            assert self.supervisor is not None
            return schema.result(request_id, _carry_out(self.supervisor, command, checked))
        except ValueError as exc:  # SchemaError, CommandError and bad arguments
            return schema.error(request_id, str(exc))
        except OSError as exc:  # the machine refused (no processes or files left for a spawn)
            logger.error("%s failed: %s", message.get("command"), exc)
            return schema.error(request_id, f"{message.get('command')} failed: {exc}")

    def publish(self, event: Mapping[str, Any]) -> None:
        """Send an event (one of schema.Event's shapes, without its time) to every subscriber;
        a full queue drops its oldest event."""
        # the supervisor and the log handler build events as plain dicts: here they join the
        # contract, stamped with the time
        stamped = cast("schema.Event", {**event, "t": round(time.time(), 3)})
        message = schema.event(stamped)
        self._recent.append(message)
        for queue in self._subscribers:
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(message)

    async def stream(self, recent: bool = False) -> AsyncIterator[schema.StreamMessage]:
        """Until the caller stops: a snapshot now and once a second (the first with the whole
        history, later ones with the points added since), the request records as they arrive
        (first the ones kept so far), and events as they happen; with `recent`, the latest
        events from before the subscription first, each marked `"recent": true`."""
        supervisor = self.supervisor
        assert supervisor is not None
        metrics = supervisor.metrics
        queue: asyncio.Queue[schema.StreamMessage] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers.add(queue)
        loop = asyncio.get_running_loop()
        history_seen = 0.0
        cursor = metrics.record_count - len(metrics.records)
        earlier: list[schema.EventMessage] = []
        if recent:
            earlier = [{**message, "recent": True} for message in self._recent]
        try:
            next_snapshot = next_records = loop.time()
            while True:
                now = loop.time()
                if now >= next_snapshot:
                    next_snapshot = now + SNAPSHOT_INTERVAL
                    snapshot = supervisor.snapshot(history_since=history_seen)
                    if snapshot["history"]:
                        history_seen = snapshot["history"][-1]["t"]
                    yield schema.snapshot(snapshot)
                    while earlier:  # after the first snapshot: the client knows the server
                        yield earlier.pop(0)
                if now >= next_records:
                    next_records = now + RECORDS_INTERVAL
                    # in batches, so no message passes a transport's line limit
                    batches, cursor = metrics.batches_since(cursor)
                    for batch in batches:  # metrics.py keeps the records as plain dicts
                        yield schema.requests(cast("list[schema.Record]", batch))
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
                # lands as the queue yields, and the stream would then outlive the server
                try:
                    async with asyncio.timeout(min(next_snapshot, next_records) - loop.time()):
                        event = await queue.get()
                except TimeoutError:
                    continue
                yield event
        finally:
            self._subscribers.discard(queue)
