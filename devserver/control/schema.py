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

The TypedDicts below give every message its type (Request, Reply, StreamMessage, Snapshot,
Event...); docs/control-api.md says what each field means, and tests/test_contracts_schema.py
keeps the two and a live server's messages in step. A received message is only as typed as the
server that sent it: a client checks what it reads. Clients must ignore message types they do
not know.
Clients must ignore fields they do not know; a change that removes or renames one bumps VERSION.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal, NotRequired, Required, TypedDict, Unpack, cast

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

Message = dict[str, Any]  # a decoded message before it is checked: any JSON object


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


class Protocols(TypedDict):
    """HTTP requests by the protocol that carried them (WebSocket sessions aside)."""

    h1: int  # HTTP/1.0 and HTTP/1.1
    h2: int  # HTTP/2


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
    protocols: Protocols
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


# --------------------------------------------------------------------------- requests
RequestId = Any  # any JSON value: the reply carries it back unchanged


class Arguments(TypedDict, total=False):
    """Every command's arguments; COMMANDS says which are required, the docs which command
    reads which. The hub checks each value before it acts, as a request comes from outside."""

    history: bool  # status: add the history ring
    workers: int | str  # scale: N, "+N" or "-N"
    pid: int | str  # kill (required), trace, trace-off: one worker
    requests: int | None  # trace: how many requests (None: until trace-off)
    fast: bool  # stop: close connections at once
    recent: bool  # subscribe: the latest events from before first


class Request(Arguments, total=False):
    id: RequestId
    command: Required[str]


# --------------------------------------------------------------------------- results
class ScaleResult(TypedDict):
    target: int


class RestartResult(TypedDict):
    restart: Literal["started", "queued"]


class ReloadResult(TypedDict):
    reload: Literal["started", "queued"]


class KillResult(TypedDict):
    killed: int


class StopResult(TypedDict):
    stopping: Literal["graceful", "fast"]


class ReopenResult(TypedDict):
    reopened: bool


class TraceResult(TypedDict):
    tracing: list[int]
    requests: int | None  # None: every request until trace-off


class TraceOffResult(TypedDict):
    stopped: list[int]


class SubscribeResult(TypedDict):
    subscribed: bool


CommandResult = (
    Snapshot
    | ScaleResult
    | RestartResult
    | ReloadResult
    | KillResult
    | StopResult
    | ReopenResult
    | TraceResult
    | TraceOffResult
    | SubscribeResult
)


# --------------------------------------------------------------------------- events
class Record(TypedDict):
    """One sampled request (or WebSocket session), as the `requests` message carries it."""

    id: str  # "PID-SEQ"
    pid: int
    slot: int
    seq: int
    type: Literal["http", "websocket"]
    start: float
    method: str
    path: str
    query: str
    http_version: str  # "1.0", "1.1" or "2"
    stream: int | None  # the HTTP/2 stream id; None over HTTP/1
    scheme: str
    client: str | None
    status: int
    duration: float
    bytes_in: int
    bytes_out: int
    headers: list[list[str]]  # [name, value] pairs, redacted
    cut: NotRequired[list[str]]  # the fields that were shortened
    trace: NotRequired[list[dict[str, Any]]]  # the ASGI messages: keys vary with each message
    exception: NotRequired[str]  # what the app raised, a traceback (its last 16 KiB)


class _Timed(TypedDict):
    t: float  # Unix time; the hub stamps it as it publishes


class WorkerEvent(_Timed):
    kind: Literal["worker"]
    pid: int
    slot: int
    generation: int
    state: str  # a WorkerStateName, or "exited" / "failed" once it is gone
    reason: str | None


class ReadyEvent(_Timed):
    kind: Literal["ready"]
    generation: int


class RolloutEvent(_Timed):
    """A rolling restart's or a reload's progress: which fields come depends on the phase."""

    kind: Literal["restart", "reload"]
    phase: Literal["started", "succeeded", "failed", "cancelled"]
    generation: int
    changed: NotRequired[list[str]]  # reload, started
    seconds: NotRequired[float]  # succeeded
    message: NotRequired[str]  # failed: Failure's fields
    details: NotRequired[str]
    file: NotRequired[str | None]
    line: NotRequired[int | None]


class ScaleEvent(_Timed):
    kind: Literal["scale"]
    target: int


class CrashLoopEvent(_Timed):
    kind: Literal["crash_loop"]
    message: str


class StoppingEvent(_Timed):
    kind: Literal["stopping"]
    fast: bool


class LogEvent(_Timed):
    kind: Literal["log"]
    source: Literal["devserve", "worker", "client"]  # client: a client's note of its own
    line: str
    logger: NotRequired[str]
    level: NotRequired[str]
    pid: NotRequired[int]
    slot: NotRequired[int]
    details: NotRequired[str]  # a worker's exception's traceback


Event = (
    WorkerEvent | ReadyEvent | RolloutEvent | ScaleEvent | CrashLoopEvent | StoppingEvent | LogEvent
)


# --------------------------------------------------------------------------- server → client
class ResultReply(TypedDict):
    version: int
    type: Literal["result"]
    id: RequestId
    ok: Literal[True]
    result: CommandResult


class ErrorReply(TypedDict):
    version: int
    type: Literal["error"]
    id: RequestId
    ok: Literal[False]
    error: str  # one line, for a person


Reply = ResultReply | ErrorReply


class SnapshotMessage(TypedDict):
    version: int
    type: Literal["snapshot"]
    snapshot: Snapshot


class RequestsMessage(TypedDict):
    version: int
    type: Literal["requests"]
    requests: list[Record]


class EventMessage(TypedDict):
    version: int
    type: Literal["event"]
    event: Event
    recent: NotRequired[bool]  # from before the subscription (`"recent": true`)


class Hello(TypedDict):
    """The first message on the web dashboard's WebSocket."""

    version: int
    type: Literal["hello"]
    read_only: bool


StreamMessage = SnapshotMessage | RequestsMessage | EventMessage


# --------------------------------------------------------------------------- building, checking
class SchemaError(ValueError):
    """A message that does not follow this schema; the text says what is wrong."""


def request(command: str, id: int = 1, **args: Unpack[Arguments]) -> Request:
    return {"id": id, "command": command, **args}


def check_request(message: Any) -> tuple[str, Request]:
    """The command name and the message, or SchemaError naming what is missing. Only the names
    are checked here: the hub checks each argument's value as it carries the command out."""
    if not isinstance(message, dict):
        raise SchemaError("a request is a JSON object")
    command = message.get("command")
    if command not in COMMANDS:
        known = ", ".join(COMMANDS)
        raise SchemaError(f"unknown command {command!r} (known: {known})")
    missing = [name for name in COMMANDS[command] if name not in message]
    if missing:
        raise SchemaError(f"{command}: missing {', '.join(missing)}")
    return command, cast(Request, message)


def result(id: RequestId, value: CommandResult) -> ResultReply:
    return {"version": VERSION, "type": "result", "id": id, "ok": True, "result": value}


def error(id: RequestId, text: str) -> ErrorReply:
    return {"version": VERSION, "type": "error", "id": id, "ok": False, "error": text}


def snapshot(value: Snapshot) -> SnapshotMessage:
    return {"version": VERSION, "type": "snapshot", "snapshot": value}


def event(value: Event) -> EventMessage:
    return {"version": VERSION, "type": "event", "event": value}


def requests(records: list[Record]) -> RequestsMessage:
    return {"version": VERSION, "type": "requests", "requests": records}


def encode(message: Mapping[str, Any]) -> bytes:
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
