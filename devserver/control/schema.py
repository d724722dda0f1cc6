"""The control API's contract, shared by the server and every client: message shapes, version.

Stdlib only: the dashboard and `devserve ctl` import this module too. On the Unix control socket
each message is one JSON object on one line (UTF-8, '\\n'-terminated):

    client → server   {"id": 1, "command": "status"}
                      {"id": 2, "command": "scale", "workers": "+1"}      N, "+N" or "-N"
                      {"id": 3, "command": "restart"}                      rolling restart
                      {"id": 8, "command": "reload"}                       restart for new code
                      {"id": 4, "command": "kill", "pid": 4242}            SIGKILL, replaced
                      {"id": 9, "command": "trace", "requests": 5}         trace ASGI messages
                      {"id": 10, "command": "trace-off"}
                      {"id": 5, "command": "stop", "fast": false}          drain, then exit
                      {"id": 6, "command": "reopen-logs"}
                      {"id": 7, "command": "subscribe"}                    then a stream:
    server → client   {"version": 1, "type": "result", "id": 1, "ok": true, "result": {...}}
                      {"version": 1, "type": "error", "id": 2, "ok": false, "error": "..."}
                      {"version": 1, "type": "snapshot", "snapshot": {...}}   once a second
                      {"version": 1, "type": "requests", "requests": [{...}]}  sampled records
                      {"version": 1, "type": "event", "event": {"kind": "worker", ...}}

A snapshot has "server", "workers", "totals" and, in a stream, "history" (docs/control-api.md
lists every field). Clients must ignore message types they do not know.
Clients must ignore fields they do not know; a change that removes or renames one bumps VERSION.
"""

from __future__ import annotations

import json
from typing import Any, Literal, NotRequired, TypedDict

VERSION = 1
MAX_LINE = 1024 * 1024

# command → the arguments it requires
COMMANDS: dict[str, tuple[str, ...]] = {
    "status": (),
    "scale": ("workers",),
    "restart": (),
    "reload": (),
    "kill": ("pid",),
    "trace": (),
    "trace-off": (),
    "stop": (),
    "reopen-logs": (),
    "subscribe": (),
}
EVENT_KINDS = ("worker", "ready", "restart", "reload", "scale", "crash_loop", "stopping", "log")

Message = dict[str, Any]


# --------------------------------------------------------------------------- the snapshot
# What `status` returns and the stream sends once a second; each field is described in
# docs/control-api.md, and tests/test_contracts_schema.py keeps the two in step.

ServerState = Literal["starting", "running", "restarting", "failed", "stopping"]
WorkerStateName = Literal["spawning", "booting", "ready", "draining"]


class Window(TypedDict):
    """One window's requests; latency in ms, None when the window saw no request."""

    rps: float
    requests: int
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None
    error_rate: float


# keys that are not identifiers, hence the functional form
Windows = TypedDict("Windows", {"1s": Window, "10s": Window, "60s": Window})
Statuses = TypedDict("Statuses", {"1xx": int, "2xx": int, "3xx": int, "4xx": int, "5xx": int})


class Failure(TypedDict):
    """The latest generation that did not start (also the fields of a `failed` event)."""

    generation: int
    message: str
    details: str
    file: str | None
    line: int | None


class Server(TypedDict):
    pid: int
    app: str
    urls: list[str]
    dashboard: str | None
    mode: Literal["dev", "prod"]
    state: ServerState
    generation: int
    workers_target: int
    workers_configured: int
    uptime: float
    crash_loop: bool
    reload: bool
    failure: Failure | None
    metrics: bool
    tracing: bool


class Counts(TypedDict):
    """What a worker, and the total, count since it started."""

    statuses: Statuses
    bytes_in: int
    bytes_out: int
    rejected: int
    ws_opened: int
    ws_received: int
    ws_sent: int
    records_dropped: int


class Worker(Counts):
    pid: int
    slot: int
    generation: int
    state: WorkerStateName
    uptime: float
    retiring: str | None
    restarts: int
    requests: int
    in_flight: int
    connections: int
    websockets: int
    rss: int
    cpu_percent: float
    loop_lag: float
    windows: Windows


class Totals(Counts):
    workers_ready: int
    in_flight: int
    connections: int
    rss: int
    cpu_percent: float
    restarts: int
    requests: int
    websockets: int
    windows: Windows


class HistoryWorker(TypedDict):
    rps: float
    rss: int
    cpu_percent: float


class HistoryPoint(TypedDict):
    """One second of the total, for charts."""

    t: float
    rps: float
    requests: int
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None
    error_rate: float
    in_flight: int
    connections: int
    rss: int
    cpu_percent: float
    workers: dict[str, HistoryWorker]  # by pid, as a string (a JSON object's keys)


class Snapshot(TypedDict):
    server: Server
    workers: list[Worker]
    totals: Totals
    history: NotRequired[list[HistoryPoint]]  # when asked for, and in the stream


class SchemaError(ValueError):
    """A message that does not follow this schema; the text says what is wrong."""


def request(command: str, id: int = 1, **args: Any) -> Message:
    return {"id": id, "command": command, **args}


def check_request(message: Any) -> tuple[str, Message]:
    """The command name and the message, or SchemaError naming what is missing."""
    if not isinstance(message, dict):
        raise SchemaError("a request is a JSON object")
    command = message.get("command")
    if command not in COMMANDS:
        known = ", ".join(COMMANDS)
        raise SchemaError(f"unknown command {command!r} (known: {known})")
    missing = [name for name in COMMANDS[command] if name not in message]
    if missing:
        raise SchemaError(f"{command}: missing {', '.join(missing)}")
    return command, message


def result(id: Any, value: Message) -> Message:
    return {"version": VERSION, "type": "result", "id": id, "ok": True, "result": value}


def error(id: Any, text: str) -> Message:
    return {"version": VERSION, "type": "error", "id": id, "ok": False, "error": text}


def snapshot(value: Message) -> Message:
    return {"version": VERSION, "type": "snapshot", "snapshot": value}


def event(value: Message) -> Message:
    return {"version": VERSION, "type": "event", "event": value}


def requests(records: list[Message]) -> Message:
    return {"version": VERSION, "type": "requests", "requests": records}


def encode(message: Message) -> bytes:
    """One line; a message that would pass MAX_LINE becomes an error in its place, so a client
    never meets a line it must refuse (the server keeps each message far below the limit)."""
    line = json.dumps(message, separators=(",", ":")).encode() + b"\n"
    if len(line) > MAX_LINE:
        text = f"a {message.get('type')} message of {len(line)} bytes was over the line limit"
        return encode(error(message.get("id"), text))
    return line


def decode(line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError as exc:
        raise SchemaError(f"not JSON: {exc}") from None
    except RecursionError:  # [[[[…: nested deeper than the parser goes
        raise SchemaError("not JSON: nested too deep") from None
