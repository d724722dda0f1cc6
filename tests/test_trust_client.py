"""Control-API clients meet bad messages and carry on: the stream says so and goes on.

A fake control socket (a real Unix socket, served by a thread of the test) acknowledges the
subscription, then sends lines no devserve should: not JSON, not an object, a type nobody
knows, one over the line limit, a snapshot without its parts; then a good snapshot.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboard.tui.feed import Feed
from devserver.control import schema
from devserver.control.client import AsyncControlClient, ControlClient, ControlError
from tests.utils import devserve_command

GOOD = schema.snapshot({"server": {"pid": 1}, "workers": [], "totals": {"requests": 7}})
BAD = [
    b"this is not json\n",
    b"[1, 2]\n",
    b'{"version": 1, "type": "mystery"}\n',
    b'{"version": 1, "type": "' + b"x" * (schema.MAX_LINE + 10) + b'"}\n',
    b'{"version": 1, "type": "snapshot", "snapshot": {"server": 1}}\n',
]


@pytest.fixture
def fake_server(tmp_path: Path) -> Iterator[tuple[str, list[bytes]]]:
    """A control socket that answers every connection with `lines` (set by the test): after
    the request's line, each one, then it hangs up."""
    path = str(tmp_path / "fake.sock")
    lines: list[bytes] = []
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed: the test is over
            with conn:
                conn.makefile("rb").readline()
                for line in lines:
                    conn.sendall(line)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield path, lines
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(timeout=5)


def ack() -> bytes:
    return schema.encode(schema.result(1, {"subscribed": True}))


def notes(messages: list[schema.Message]) -> list[str]:
    return [
        m["event"]["line"]
        for m in messages
        if m["type"] == "event" and m["event"].get("source") == "client"
    ]


def test_a_subscriber_skips_bad_lines_with_a_note_and_reads_on(
    fake_server: tuple[str, list[bytes]],
) -> None:
    """The blocking client (tests, scripts) yields a note for each unreadable line and the good
    snapshot after them; unknown types and odd shapes pass through for the caller to judge."""
    path, lines = fake_server
    lines += [ack(), *BAD, schema.encode(GOOD)]
    messages = list(ControlClient(path).subscribe())
    said = notes(messages)
    assert len(said) == 3
    assert "not JSON" in said[0] and "not a JSON object" in said[1]
    assert f"a line over the {schema.MAX_LINE} byte limit" in said[2]
    kinds = [m["type"] for m in messages]
    assert kinds == ["event", "event", "mystery", "event", "snapshot", "snapshot"]
    assert messages[-1] == GOOD


def test_the_panels_feed_notes_bad_messages_and_keeps_the_good_one(
    fake_server: tuple[str, list[bytes]],
) -> None:
    """`devserve top`'s feed: bad lines, an unknown type and a malformed snapshot each become
    a note in the events pane; the good snapshot after them is the one shown."""
    path, lines = fake_server
    lines += [ack(), *BAD, b'{"version": 1, "type": ["a", "list"]}\n', schema.encode(GOOD)]
    feed = Feed(AsyncControlClient(path), reconnect=False)
    asyncio.run(asyncio.wait_for(feed.run(), timeout=10))
    said = [e["line"] for e in feed.events]
    assert feed.snapshot == GOOD["snapshot"]
    assert len(said) == 6, said
    assert "not JSON" in said[0] and "not a JSON object" in said[1]
    assert "ignoring messages of type 'mystery'" in said[2]
    assert "over the" in said[3] and "malformed snapshot" in said[4]
    assert "ignoring messages of type \"['a', 'list']\"" in said[5]
    assert feed.problem == "the server closed the stream"


def test_the_panel_draws_a_malformed_event_rather_than_failing() -> None:
    """An event that lacks what its kind carries (a worker event without a pid) is shown raw."""
    from dashboard.tui.app import describe

    assert str(describe({"kind": "worker", "t": 1.0})).startswith("malformed event")
    assert str(describe({"kind": "log", "source": "client", "line": "x"})).strip() == "panel x"


@pytest.mark.parametrize(
    "reply",
    [b"not json\n", b"[1]\n", b'{"ok": true, "result": 5}\n', b'{"type": "event", "event": 5}\n'],
)
def test_an_unreadable_reply_is_one_line_from_ctl(
    fake_server: tuple[str, list[bytes]], reply: bytes
) -> None:
    """A reply that is not a control API reply is a ControlError, and one line from ctl."""
    path, lines = fake_server
    lines.append(reply)
    with pytest.raises(ControlError):
        ControlClient(path).request("status")
    with pytest.raises(ControlError):
        asyncio.run(AsyncControlClient(path).request("status"))
    result = subprocess.run(
        devserve_command("ctl", "--control", path, "status"),
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
