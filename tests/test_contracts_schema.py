"""control/schema.py's TypedDicts are the control API: a live server's messages and the examples
and field lists of docs/control-api.md match them, value by value.

mypy checks the code that builds messages from typed parts; this checks the parts that reach the
contract as plain dicts (metrics.py's numbers, the supervisor's results and events) and the docs.
"""

from __future__ import annotations

import itertools
import json
import re
import socket
import time
import types
import typing
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, NotRequired, Required

import pytest

from devserver.control import schema
from devserver.control.client import ControlClient
from tests.utils import run_devserve

DOC = Path(__file__).resolve().parent.parent / "docs" / "control-api.md"
TEXT = DOC.read_text(encoding="utf-8")
EXAMPLES = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", TEXT, re.DOTALL)]

RESULTS: dict[str, Any] = {  # each command's result type, as the docs' results table says
    "status": schema.Snapshot,
    "scale": schema.ScaleResult,
    "restart": schema.RestartResult,
    "reload": schema.ReloadResult,
    "kill": schema.KillResult,
    "stop": schema.StopResult,
    "reopen-logs": schema.ReopenResult,
    "trace": schema.TraceResult,
    "trace-off": schema.TraceOffResult,
    "subscribe": schema.SubscribeResult,
}
EVENTS: dict[str, Any] = {
    "worker": schema.WorkerEvent,
    "ready": schema.ReadyEvent,
    "restart": schema.RolloutEvent,
    "reload": schema.RolloutEvent,
    "scale": schema.ScaleEvent,
    "crash_loop": schema.CrashLoopEvent,
    "stopping": schema.StoppingEvent,
    "log": schema.LogEvent,
}


# --------------------------------------------------------------------------- checking a value
def fields(typed_dict: Any) -> dict[str, tuple[Any, bool]]:
    """Each key of a TypedDict: its type and whether it is required. (Python 3.11 does not see
    NotRequired in a module with `from __future__ import annotations`: read it here.)"""
    hints = typing.get_type_hints(typed_dict, include_extras=True)
    found = {}
    for key, hint in hints.items():
        required = key in typed_dict.__required_keys__
        if typing.get_origin(hint) in (Required, NotRequired):
            required = typing.get_origin(hint) is Required
            hint = typing.get_args(hint)[0]
        found[key] = (hint, required)
    return found


def problems(value: Any, expected: Any, where: str = "") -> list[str]:
    """What in `value` (decoded JSON) does not match the type `expected`; [] when it matches.
    A key a TypedDict does not declare counts: the server sends no field the contract lacks."""
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if expected is Any:
        return []
    if typing.is_typeddict(expected):
        return _dict_problems(value, expected, where)
    if origin in (typing.Union, types.UnionType):
        options = [problems(value, option, where) for option in args]
        return [] if any(not found for found in options) else min(options, key=len)
    if origin is Literal:
        return [] if value in args else [f"{where}: {value!r} is not one of {args}"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{where}: {value!r} is not a list"]
        return [p for i, item in enumerate(value) for p in problems(item, args[0], f"{where}[{i}]")]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{where}: {value!r} is not an object"]
        return [p for k, item in value.items() for p in problems(item, args[1], f"{where}.{k}")]
    if expected is None or expected is type(None):
        return [] if value is None else [f"{where}: {value!r} is not null"]
    allowed = (int, float) if expected is float else (expected,)  # JSON's 0 is a float's 0.0
    if isinstance(value, bool) and expected is not bool:
        return [f"{where}: {value!r} is not {expected.__name__}"]
    return [] if isinstance(value, allowed) else [f"{where}: {value!r} is not {expected.__name__}"]


def _dict_problems(value: Any, typed_dict: Any, where: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where}: {value!r} is not an object ({typed_dict.__name__})"]
    declared = fields(typed_dict)
    found = [f"{where}.{key}: not in {typed_dict.__name__}" for key in value if key not in declared]
    for key, (hint, required) in declared.items():
        if key in value:
            found += problems(value[key], hint, f"{where}.{key}")
        elif required:
            found.append(f"{where}.{key}: missing ({typed_dict.__name__})")
    return found


def keys_of(typed_dict: Any) -> set[str]:
    return set(fields(typed_dict))


def test_the_checker_finds_each_kind_of_mismatch() -> None:
    """A wrong type, a missing field, an unknown field and a wrong literal are each reported."""
    good: schema.Window = {
        "rps": 1,
        "requests": 2,
        "p50": None,
        "p90": 1.5,
        "p99": 2.0,
        "max": 3.0,
        "error_rate": 0.0,
    }
    assert problems(good, schema.Window) == []
    assert problems({**good, "requests": "2"}, schema.Window) == [".requests: '2' is not int"]
    assert problems({**good, "requests": True}, schema.Window) == [".requests: True is not int"]
    assert problems({**good, "extra": 1}, schema.Window) == [".extra: not in Window"]
    missing = {key: item for key, item in good.items() if key != "rps"}
    assert problems(missing, schema.Window) == [".rps: missing (Window)"]
    assert problems({"target": 2}, schema.ScaleResult) == []
    assert problems({"restart": "later"}, schema.RestartResult) != []
    assert problems({"kind": "scale", "target": 2, "t": 1.0}, schema.Event) == []
    assert problems({"kind": "scale", "t": 1.0}, schema.Event) != []
    assert problems({"id": 1, "command": "status"}, schema.Request) == []
    assert problems({"id": 1}, schema.Request) == [".command: missing (Request)"]


# --------------------------------------------------------------------------- the docs
def _message_type(example: dict[str, Any]) -> Any:
    if "command" in example:
        return schema.Request
    if "server" in example:
        return schema.Snapshot
    return {
        "result": schema.ResultReply,
        "error": schema.ErrorReply,
        "snapshot": schema.SnapshotMessage,
        "requests": schema.RequestsMessage,
        "event": schema.EventMessage,
    }[example["type"]]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: json.dumps(e)[:60])
def test_every_example_in_the_docs_has_the_types(example: dict[str, Any]) -> None:
    """Each JSON example of docs/control-api.md (requests, replies, snapshots, records, events)
    matches its TypedDict: no field missing, none unknown, every value of its type."""
    assert problems(example, _message_type(example)) == []


def test_the_documented_snapshot_shows_every_field() -> None:
    """The snapshot example fills every optional part too (a worker, every window), so each
    field of Server, Worker and Totals is documented by example."""
    (example,) = [e for e in EXAMPLES if "server" in e]
    assert set(example["server"]) == keys_of(schema.Server)
    assert set(example["workers"][0]) == keys_of(schema.Worker)
    assert set(example["totals"]) == keys_of(schema.Totals)
    assert set(example["totals"]["windows"]) == keys_of(schema.Windows)


def _backticked(text: str) -> set[str]:
    return set(re.findall(r"`([a-z_0-9]+)`", text))


def _between(start: str, end: str) -> str:
    begin = TEXT.index(start)
    return TEXT[begin : TEXT.index(end, begin)]


def _table_rows(heading: str) -> dict[str, list[str]]:
    """The table after `heading`: the name in its first column → the other cells."""
    lines = TEXT[TEXT.index(heading) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = {}
    for line in itertools.takewhile(lambda line: line.startswith("|"), lines[start + 2 :]):
        name, *cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        rows[name.strip("`")] = cells
    return rows


def test_the_event_table_lists_each_events_fields() -> None:
    """Every field an event type declares (beside `kind` and `t`) is named in its table row."""
    rows = _table_rows("The event kinds:")
    assert set(rows) == set(EVENTS) == set(schema.EVENT_KINDS)
    for kind, typed_dict in EVENTS.items():
        named = _backticked(rows[kind][0])
        if rows[kind][0].startswith("as `restart`"):
            named |= _backticked(rows["restart"][0])
        assert keys_of(typed_dict) - {"kind", "t"} <= named, kind


def test_the_request_table_lists_every_argument() -> None:
    """The requests table names every argument of schema.Arguments, and no other."""
    rows = _table_rows("## Requests")
    named = set().union(*(_backticked(cells[0]) for cells in rows.values()))
    assert named - {"true"} == keys_of(schema.Arguments)


def test_the_results_table_shows_each_results_fields() -> None:
    """Each command's documented result has exactly the keys of its result type."""
    rows = _table_rows("What each command returns in `result`:")
    assert set(rows) == set(RESULTS) == set(schema.COMMANDS)
    for command, typed_dict in RESULTS.items():
        if command != "status":
            assert set(re.findall(r'"([a-z_]+)":', rows[command][0])) == keys_of(typed_dict)


def test_the_prose_names_the_fields_of_history_failures_and_records() -> None:
    """History points, a failure and a request record: the docs name each field of the types."""
    history = _between("- `history` is there when asked for", "## The stream")
    assert keys_of(schema.HistoryPoint) | keys_of(schema.HistoryWorker) <= _backticked(history)
    failure = _between("- `server.failure` is null", "- `server.metrics`")
    assert keys_of(schema.Failure) <= _backticked(failure)
    records = _between("A request record has", "```json")
    assert keys_of(schema.Record) <= _backticked(records)


# --------------------------------------------------------------------------- a live server
def _fetch(url: str, body: bytes | None = None) -> int:
    with urllib.request.urlopen(url, body, timeout=10) as response:
        return int(response.status)


def _raw_reply(path: str, request: dict[str, Any]) -> Any:
    """One request over the socket as it is, and the reply line as it comes (errors too)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(schema.encode(request))
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = sock.recv(65536)
            assert chunk, "the server closed the connection without a reply"
            reply += chunk
    return schema.decode(reply)


def _until(stream: Iterator[Any], seen: list[Any], done: Any) -> None:
    """Read the stream into `seen` until `done(seen)`; snapshots come every second, so the
    deadline is checked at least that often."""
    deadline = time.monotonic() + 20
    for message in stream:
        seen.append(message)
        if done(seen):
            return
        assert time.monotonic() < deadline, f"gave up waiting: {[m['type'] for m in seen]}"


def _history(message: Any) -> Any:
    return message["snapshot"]["history"]


def _events(seen: list[Any], kind: str, **match: Any) -> list[Any]:
    return [
        m["event"]
        for m in seen
        if m.get("type") == "event"
        and m["event"].get("kind") == kind
        and all(m["event"].get(k) == v for k, v in match.items())
    ]


@pytest.fixture(scope="module")
def conversation(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A server driven through every command but reload: the raw replies and the stream."""
    control = str(tmp_path_factory.mktemp("contracts") / "ctl.sock")
    replies: dict[str, Any] = {}
    seen: list[Any] = []
    with run_devserve("--control", control) as server:
        stream = ControlClient(control).subscribe(recent=True)

        def ask(name: str, **args: Any) -> None:
            replies[name] = _raw_reply(control, {"id": len(replies) + 1, "command": name, **args})

        ask("trace", requests=1)
        assert _fetch(server.url + "/echo?traced=1", b'{"name": "a"}') == 200
        _until(stream, seen, lambda s: any(m["type"] == "requests" for m in s))
        ask("trace-off")
        ask("scale", workers="+1")
        _until(stream, seen, lambda s: _events(s, "worker", state="ready", generation=1)[1:])
        ask("kill", pid=ControlClient(control).request("status")["workers"][0]["pid"])
        ask("reopen-logs")
        ask("restart")
        _until(stream, seen, lambda s: _events(s, "restart", phase="succeeded"))
        _until(stream, seen, lambda s: any(m["type"] == "snapshot" and _history(m) for m in s))
        ask("status", history=True)  # the ring has a point by now
        replies["error"] = _raw_reply(control, {"id": 99, "command": "no-such-command"})
        ask("stop")
        _until(stream, seen, lambda s: _events(s, "stopping"))
        stream.close()
    return {"replies": replies, "stream": seen}


def test_a_live_servers_replies_have_the_types(conversation: dict[str, Any]) -> None:
    """Each command's reply is a ResultReply whose result has the command's result type (the
    status one with its history), and a refused request gets an ErrorReply."""
    replies = conversation["replies"]
    assert set(replies) == set(RESULTS) - {"reload", "subscribe"} | {"error"}
    for command, reply in replies.items():
        if command == "error":
            assert problems(reply, schema.ErrorReply) == []
            continue
        assert problems(reply, schema.ResultReply) == [], command
        assert problems(reply["result"], RESULTS[command]) == [], command
    assert replies["status"]["result"]["history"], "a status with history=true carries it"


def test_a_live_servers_stream_has_the_types(conversation: dict[str, Any]) -> None:
    """Every snapshot, request record and event the stream sent matches its type, and the
    stream carried each kind of event the conversation caused."""
    stream = conversation["stream"]
    for message in stream:
        assert problems(message, schema.StreamMessage) == [], message.get("type")
    for message in stream:
        if message["type"] == "event":  # and each event has the type its kind names
            assert problems(message["event"], EVENTS[message["event"]["kind"]]) == []
    kinds = {m["event"]["kind"] for m in stream if m["type"] == "event"}
    assert {"worker", "ready", "scale", "restart", "stopping"} <= kinds
    records = [r for m in stream if m["type"] == "requests" for r in m["requests"]]
    assert any("trace" in record for record in records), "the traced request's record came"
