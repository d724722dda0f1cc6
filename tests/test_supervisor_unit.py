"""Units of the supervisor: channel framing, the lifecycle table, exit reasons, the control hub."""

from __future__ import annotations

import asyncio
import signal
import socket
from typing import Any

import pytest

from devserver import channel
from devserver.control import schema
from devserver.control.hub import Hub
from devserver.supervisor.errors import CommandError
from devserver.supervisor.metrics import Metrics
from devserver.supervisor.workers import (
    TRANSITIONS,
    IllegalTransition,
    Worker,
    WorkerState,
    describe_exit,
)

ALL_MESSAGES: list[channel.Message] = [
    channel.Booting(42),
    channel.Ready(42),
    channel.Failed("could not import module 'x'", "Traceback ...\n"),
    channel.Tick(requests=10, in_flight=2, connections=3),
    channel.Stopping("stopped"),
    channel.Drain(),
    channel.Stop(),
    channel.ReopenLogs(),
]


@pytest.mark.parametrize("message", ALL_MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_survives_encoding(message: channel.Message) -> None:
    """Each channel message decodes to an equal dataclass after its length prefix."""
    frame = channel.encode(message)
    assert int.from_bytes(frame[:4], "big") == len(frame) - 4
    assert channel.decode(frame[4:]) == message


def test_garbage_is_a_channel_error() -> None:
    """Bytes that are not a known message raise ChannelError, not a KeyError or TypeError."""
    for body in (b"not json", b'{"type": "Nope"}', b'{"type": "Ready", "bogus": 1}'):
        with pytest.raises(channel.ChannelError):
            channel.decode(body)


def test_protocol_reassembles_frames_split_anywhere() -> None:
    """Messages split across reads, or several in one read, arrive whole and in order."""

    async def scenario() -> list[channel.Message]:
        ours, theirs = socket.socketpair()
        received: list[channel.Message] = []
        done = asyncio.Event()

        def on_message(message: channel.Message) -> None:
            received.append(message)
            if len(received) == len(ALL_MESSAGES):
                done.set()

        protocol = await channel.open_channel(ours, on_message, lambda: None)
        stream = b"".join(channel.encode(m) for m in ALL_MESSAGES)
        for start in range(0, len(stream), 7):  # 7-byte pieces: every boundary gets split
            theirs.sendall(stream[start : start + 7])
            await asyncio.sleep(0)
        await asyncio.wait_for(done.wait(), 5)
        protocol.close()
        theirs.close()
        return received

    assert asyncio.run(scenario()) == ALL_MESSAGES


# --------------------------------------------------------------------------- lifecycle table
def _worker(state: WorkerState) -> Worker:
    worker = Worker(1234, slot=1, generation=1, spawned_at=0.0)
    worker.state = state
    return worker


@pytest.mark.parametrize("old", list(WorkerState), ids=lambda s: s.value)
@pytest.mark.parametrize("new", list(WorkerState), ids=lambda s: s.value)
def test_only_moves_in_the_table_are_allowed(old: WorkerState, new: WorkerState) -> None:
    """Worker.move accepts exactly the transitions the table lists and raises for the rest."""
    worker = _worker(old)
    if new in TRANSITIONS[old]:
        assert worker.move(new, now=1.0) is old
        assert worker.state is new
    else:
        with pytest.raises(IllegalTransition):
            worker.move(new, now=1.0)


def test_terminal_states_have_no_way_out() -> None:
    """EXITED and FAILED are final; every other state can still end."""
    assert not TRANSITIONS[WorkerState.EXITED] and not TRANSITIONS[WorkerState.FAILED]
    for state in (WorkerState.SPAWNING, WorkerState.BOOTING, WorkerState.READY):
        assert TRANSITIONS[state] & {WorkerState.EXITED, WorkerState.FAILED, WorkerState.DRAINING}


@pytest.mark.parametrize(
    ("exitcode", "ours", "text"),
    [
        (0, False, "exited normally"),
        (3, False, "exited with status 3"),
        (-signal.SIGKILL, False, "killed by SIGKILL — out of memory?"),
        (-signal.SIGKILL, True, "killed by SIGKILL"),
        (-signal.SIGABRT, True, "killed by SIGABRT"),
        (None, False, "ended (status unknown)"),
    ],
)
def test_exit_statuses_are_decoded(exitcode: int | None, ours: bool, text: str) -> None:
    """Exit codes and signals read as sentences; an unexplained SIGKILL suggests the OOM killer."""
    assert describe_exit(exitcode, ours) == text


# --------------------------------------------------------------------------- control schema
class _Supervisor:
    """Stands in for the supervisor to isolate the hub's dispatch (no processes involved)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.metrics = Metrics()

    def snapshot(self, history_since: float | None = None) -> dict[str, Any]:
        return {"server": {}, "workers": [], "totals": {}, "history": []}

    def scale(self, how: str) -> dict[str, Any]:
        if how == "0":
            raise CommandError("scale: the target would be 0; it must be at least 1")
        self.calls.append(("scale", how))
        return {"target": int(how)}

    def kill(self, pid: int) -> dict[str, Any]:
        self.calls.append(("kill", pid))
        return {"killed": pid}


def _hub() -> tuple[Hub, _Supervisor]:
    hub, supervisor = Hub(), _Supervisor()
    hub.attach(supervisor)  # type: ignore[arg-type]
    return hub, supervisor


def test_hub_answers_with_the_request_id() -> None:
    """A valid request gets a versioned result carrying the same id."""
    hub, supervisor = _hub()
    reply = hub.handle({"id": 7, "command": "scale", "workers": "3"})
    assert reply == {
        "version": schema.VERSION,
        "type": "result",
        "id": 7,
        "ok": True,
        "result": {"target": 3},
    }
    assert supervisor.calls == [("scale", "3")]


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        ({"id": 1, "command": "explode"}, "unknown command 'explode'"),
        ({"id": 2, "command": "scale"}, "scale: missing workers"),
        ({"id": 3, "command": "scale", "workers": "0"}, "must be at least 1"),
        ({"id": 4, "command": "kill", "pid": "abc"}, "'abc' is not a pid"),
        ({"id": 5, "command": "kill", "pid": True}, "True is not a pid"),
        (["status"], "a request is a JSON object"),
    ],
)
def test_hub_refuses_bad_requests_with_a_reason(request_: Any, error: str) -> None:
    """Unknown commands, missing or bad arguments and refusals come back as errors, never raise."""
    hub, supervisor = _hub()
    reply = hub.handle(request_)
    assert reply["ok"] is False and reply["type"] == "error"
    assert error in reply["error"]
    assert not supervisor.calls


def test_subscribers_that_fall_behind_lose_old_events_not_memory() -> None:
    """A full subscriber queue drops its oldest events; the newest is always kept."""

    async def scenario() -> list[Any]:
        hub, _ = _hub()
        stream = hub.stream()
        first = await stream.__anext__()  # the opening snapshot registers the queue
        assert first["type"] == "snapshot"
        for n in range(1500):
            hub.publish({"kind": "worker", "n": n})
        events = [await stream.__anext__() for _ in range(3)]
        await stream.aclose()
        return events

    events = asyncio.run(scenario())
    assert [e["event"]["n"] for e in events] == [500, 501, 502]
