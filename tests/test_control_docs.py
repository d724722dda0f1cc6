"""docs/control-api.md stays true: its examples match the schema and a live server's messages."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from devserver.control import schema
from devserver.control.client import ControlClient
from tests.utils import run_devserve

DOC = Path(__file__).resolve().parent.parent / "docs" / "control-api.md"
TEXT = DOC.read_text(encoding="utf-8")
EXAMPLES = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", TEXT, re.DOTALL)]


def _table_first_column(heading: str) -> set[str]:
    """The backticked names in the first column of the table following `heading`."""
    start = TEXT.index(heading)
    rows = re.findall(r"^\| `([a-z_-]+)` \|", TEXT[start:].split("\n\n|", 1)[-1], re.MULTILINE)
    table = TEXT[start:].split("\n|---", 1)[1].split("\n\n", 1)[0]
    return {name for name in rows if f"| `{name}` |" in table}


def _shape(value: Any) -> Any:
    """The keys of nested dicts (and of the first list item): what a schema change would alter."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return None


def test_the_doc_has_examples() -> None:
    """The doc shows requests, both replies, a snapshot, the stream's snapshot, records, events."""
    kinds = {e.get("type", "request" if "command" in e else "snapshot") for e in EXAMPLES}
    assert kinds == {"request", "result", "error", "snapshot", "requests", "event"}


@pytest.mark.parametrize("example", [e for e in EXAMPLES if "command" in e], ids=str)
def test_request_examples_are_valid(example: dict[str, Any]) -> None:
    """Every request example passes the schema's own check."""
    command, _ = schema.check_request(example)
    assert command in schema.COMMANDS


def test_the_command_table_lists_every_command() -> None:
    """The requests table documents exactly the commands the schema accepts."""
    assert _table_first_column("## Requests") == set(schema.COMMANDS)


def test_the_event_table_lists_every_kind() -> None:
    """The events table documents exactly the event kinds the schema names."""
    assert _table_first_column("The event kinds:") == set(schema.EVENT_KINDS)


def test_examples_match_a_live_server(tmp_path: Path) -> None:
    """Snapshot, record, reply and worker-event examples have the same shape as a real server's."""
    control = tmp_path / "ctl.sock"
    with run_devserve("--control", str(control)) as server:
        client = ControlClient(str(control))
        stream = client.subscribe()
        live_snapshot = next(stream)
        plain = _fetch(server.url + "/?page=2")
        client.request("trace", requests=1)
        traced = _fetch(server.url + "/echo?traced=1", b'{"name": "a"}')
        client.request("scale", workers="2")
        live_event = None
        records: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + 10
        for message in stream:
            if message["type"] == "event" and message["event"]["kind"] == "worker":
                live_event = live_event or message
            elif message["type"] == "requests":
                records.update((r["query"], r) for r in message["requests"])
            if live_event and "page=2" in records and "traced=1" in records:
                break
            assert time.monotonic() < deadline, f"missing: {live_event} {list(records)}"
        stream.close()
        status = client.request("status")
    assert plain == traced == 200
    assert live_event is not None
    by_type = {e.get("type"): e for e in EXAMPLES if "command" not in e}
    documented_snapshot = next(e for e in EXAMPLES if "server" in e)
    assert _shape(documented_snapshot) == _shape(status)
    # the example shows a server with no workers yet, and no history points yet
    streamed = {**_shape(status), "workers": [], "history": []}
    assert _shape(by_type["snapshot"]) == {**_shape(live_snapshot), "snapshot": streamed}
    documented_records = [e["requests"][0] for e in EXAMPLES if e.get("type") == "requests"]
    assert [_shape(r) for r in documented_records] == [
        _shape(records["page=2"]),
        _shape(records["traced=1"]),
    ]
    worker_events = [e for e in EXAMPLES if e.get("event", {}).get("kind") == "worker"]
    assert worker_events and all(_shape(e) == _shape(live_event) for e in worker_events)
    for example in EXAMPLES:
        if example.get("type") in ("result", "error", "snapshot", "requests", "event"):
            assert example["version"] == schema.VERSION
        if example.get("type") == "event":
            assert example["event"]["kind"] in schema.EVENT_KINDS


def _fetch(url: str, body: bytes | None = None) -> int:
    with urllib.request.urlopen(url, body, timeout=10) as response:
        return int(response.status)
