"""ASGI tracing, the teaching view: every message between the server and the app, with its time.

`--trace` traces every request, and each worker's lifespan session; at run time the control
API's `trace` command asks a worker to trace its next N requests, or all of them until
`trace-off`. A traced request logs its scope and each `receive()` and `send()` as it happens
(logger `devserve.trace`), and its events ride on its request record to the panels' inspector
(a lifespan session has no record: its lines are only logged). An untraced request costs one
integer test.

An event is {"t": ms since the request began, "call": "receive" | "send", "type": ...,
"keys": [the message's other keys], ...}: small values (status, more_body, code, reason) are
copied, bodies become their size in bytes, headers become redacted [name, value] pairs (within
a request record's bounds). A request keeps at most TRACE_EVENTS events for its record (a long
WebSocket session would otherwise grow without end); the rest are only logged, and one last
`{"call": "omitted", "events": N}` event counts them.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from devserver.asgi import Incoming, LifespanScope, Outgoing, Receive, Scope, Send, WWWScope
from devserver.redaction import Redactor
from devserver.stats import record_headers

logger = logging.getLogger("devserve.trace")

_SIZED = ("body", "bytes", "text")
_PAIRS = ("headers",)
TRACE_EVENTS = 200  # events a traced request keeps for its record


class Tracer:
    """Decides which requests of this worker are traced."""

    __slots__ = ("remaining", "redact", "_numbers")

    def __init__(self, always: bool = False, redact: bool | Redactor = True) -> None:
        self.remaining = -1 if always else 0  # -1: every request; N > 0: the next N
        self.redact = Redactor.of(redact)
        self._numbers = itertools.count(1)

    def enable(self, requests: int | None = None) -> None:
        """Trace the next `requests` requests, or every request when None."""
        self.remaining = -1 if requests is None else max(0, requests)

    def disable(self) -> None:
        self.remaining = 0

    def start(self, scope: WWWScope) -> Trace:
        """A Trace for this request (call only when `remaining` is non-zero)."""
        if self.remaining > 0:
            self.remaining -= 1
        return Trace(scope, f"trace {os.getpid()}:{next(self._numbers)}", self.redact)

    def start_lifespan(self, scope: LifespanScope) -> Trace:
        """The worker's lifespan session: named, not numbered, so requests count from 1."""
        return Trace(scope, f"trace {os.getpid()}:lifespan", self.redact)


class Trace:
    """The events of one traced request or WebSocket session."""

    __slots__ = ("label", "redact", "started", "events", "size")

    def __init__(self, scope: Scope, label: str, redact: Redactor) -> None:
        self.label = label
        self.redact = redact
        self.started = time.perf_counter()
        self.events: list[dict[str, Any]] = []
        self.size = 0  # about how many characters the kept events take in a record
        logger.info("%s %s", label, describe_scope(scope, redact))

    def wrap(self, receive: Receive, send: Send) -> tuple[Receive, Send]:
        """`receive` and `send` that note every message on its way."""

        async def traced_receive() -> Incoming:
            message = await receive()
            self.note("receive", message)
            return message

        async def traced_send(message: Outgoing) -> None:
            self.note("send", message)  # before: the access log of the last one comes inside
            try:
                await send(message)
            except Exception as exc:  # the protocol refused it, or the client is gone
                self.refused(message, exc)
                raise

        return traced_receive, traced_send

    def refused(self, message: Mapping[str, Any], exc: Exception) -> None:
        """The `send` just noted did not go through: say so, and why."""
        self._add("refused", message.get("type"), {"error": f"{type(exc).__name__}: {exc}"})

    def note(self, call: str, message: Mapping[str, Any]) -> None:
        keys = [key for key in message if key != "type"]
        self._add(call, message.get("type"), summarize(message, self.redact), keys)

    def _add(
        self, call: str, kind: Any, fields: dict[str, Any], keys: list[str] | None = None
    ) -> None:
        event = {
            "t": round((time.perf_counter() - self.started) * 1000, 3),
            "call": call,
            "type": kind,
            "keys": list(fields) if keys is None else keys,
            **fields,
        }
        logger.info("%s %s", self.label, describe_event(event))
        events = self.events
        if len(events) < TRACE_EVENTS:
            events.append(event)
            self.size += 64 + sum(len(str(value)) for value in fields.values())
        elif len(events) == TRACE_EVENTS:
            events.append({"t": event["t"], "call": "omitted", "type": None, "keys": ["events"]})
            events[-1]["events"] = 1
        else:
            events[-1]["events"] += 1


def summarize(message: Mapping[str, Any], redact: bool | Redactor) -> dict[str, Any]:
    """The parts of a message worth showing: small values, body sizes, redacted headers."""
    redact = Redactor.of(redact)
    summary: dict[str, Any] = {}
    for key, value in message.items():
        if key == "type":
            continue
        if key in _SIZED and isinstance(value, bytes | bytearray | memoryview | str):
            summary[key] = len(value.encode() if isinstance(value, str) else value)
        elif key in _PAIRS:
            summary[key] = record_headers(value, redact)[0]
        elif _small(value):
            summary[key] = value
        else:
            summary[key] = f"<{type(value).__name__}>"
    return summary


def _small(value: Any) -> bool:
    """A value shown as it is: a number, a flag, None or a short text (a close reason)."""
    if isinstance(value, str):
        return len(value) <= 200
    return value is None or isinstance(value, bool | int | float)


def describe_scope(scope: Mapping[str, Any], redact: bool | Redactor = True) -> str:
    """`scope http GET /path?q HTTP/1.1 from 127.0.0.1:5000, 3 headers`; `scope lifespan`."""
    if scope["type"] == "lifespan":
        return "scope lifespan"
    query = Redactor.of(redact).query(scope.get("query_string", b"").decode("latin-1"))
    target = scope.get("path", "") + ("?" + query if query else "")
    client = scope.get("client")
    peer = f"{client[0]}:{client[1]}" if client else "a unix socket"
    method = scope.get("method", "")
    return (
        f"scope {scope['type']} {method + ' ' if method else ''}{target} "
        f"HTTP/{scope.get('http_version', '1.1')} from {peer}, {len(scope.get('headers', ()))} "
        "headers"
    )


def describe_event(event: dict[str, Any]) -> str:
    """`+0.105 ms send http.response.start status=200 headers=2`."""
    fields = []
    for key in event["keys"]:
        value = event.get(key)
        if key in _SIZED and isinstance(value, int):
            fields.append(f"{key}={value}B")
        elif key in _PAIRS and isinstance(value, list):
            fields.append(f"{key}={len(value)}")
        else:
            fields.append(f"{key}={value}")
    return f"+{event['t']:.3f} ms {event['call']:<7} {event['type']} {' '.join(fields)}".rstrip()
