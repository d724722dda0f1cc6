"""One worker as the supervisor sees it: its lifecycle states, the legal transitions, its numbers.

The rules, in the style of a transition table:

    SPAWNING ─▶ BOOTING ─▶ READY ─▶ DRAINING ─▶ EXITED
        │           │         │                    ▲
        └───────────┴─────────┼──▶ FAILED          │
                              └────────────────────┘  (crashed or killed while serving)

- SPAWNING: forked, not heard from yet. BOOTING: importing the app, running lifespan startup.
- READY: started up, and accepting connections once the supervisor says `Serve` (at once, except
  in a rolling generation: there, when the whole generation is ready); only READY workers count
  as serving.
- DRAINING: told to finish in-flight work and exit (or, still starting, killed); it no longer
  counts toward the target.
- FAILED: died, or reported a failure, before it was ever ready. EXITED: gone after being ready.
Any other move is a bug in the supervisor and raises `IllegalTransition`.
This module holds no policy (when to spawn, restart or kill): that is supervisor.py's job.
"""

from __future__ import annotations

import enum
import signal
from dataclasses import dataclass
from typing import Any, Protocol

from devserver.channel import Failed, Message


class WorkerState(enum.Enum):
    SPAWNING = "spawning"
    BOOTING = "booting"
    READY = "ready"
    DRAINING = "draining"
    EXITED = "exited"
    FAILED = "failed"


S = WorkerState
TRANSITIONS: dict[WorkerState, frozenset[WorkerState]] = {
    S.SPAWNING: frozenset({S.BOOTING, S.DRAINING, S.FAILED}),
    S.BOOTING: frozenset({S.READY, S.DRAINING, S.FAILED}),
    S.READY: frozenset({S.DRAINING, S.EXITED}),
    S.DRAINING: frozenset({S.EXITED}),
    S.EXITED: frozenset(),
    S.FAILED: frozenset(),
}
ALIVE = frozenset({S.SPAWNING, S.BOOTING, S.READY, S.DRAINING})
STARTING = frozenset({S.SPAWNING, S.BOOTING})


class IllegalTransition(RuntimeError):
    pass


class WorkerChannel(Protocol):
    """The supervisor's end of a worker's channel (channel.ChannelProtocol, or a test's fake)."""

    violation: str | None  # why this end closed it: the worker broke the channel's protocol

    def send(self, message: Message) -> bool: ...

    def close(self) -> None: ...


@dataclass(eq=False)
class Worker:
    """A worker process and what the supervisor knows about it."""

    pid: int
    slot: int
    generation: int
    spawned_at: float  # on the supervisor's clock (processes.Processes.now), as are the others
    channel: WorkerChannel | None = None
    state: WorkerState = WorkerState.SPAWNING
    ready_at: float | None = None
    last_heard: float = 0.0
    draining_since: float | None = None
    aborted_at: float | None = None
    # from the latest heartbeat (the rest of its numbers are in supervisor/metrics.py)
    requests: int = 0
    in_flight: int = 0
    connections: int = 0
    rss: int = 0
    # policy marks set by the supervisor
    retiring: str | None = None  # why it is being replaced (recycling), None when it is not
    expected_exit: bool = False  # the supervisor asked it to go (kill, drain, stop)
    max_requests: int = 0  # this worker's own limit, jittered
    held: bool = False  # part of a rolling generation: told to Serve with the rest of it
    replaces: bool = False  # its slot had a worker before: a restart once it serves in its place
    drained: bool = False  # said it stopped accepting and closed its idle connections
    failure: Failed | None = None
    exit_status: str | None = None

    @property
    def alive(self) -> bool:
        return self.state in ALIVE

    @property
    def serving(self) -> bool:
        return self.state is WorkerState.READY

    def move(self, new: WorkerState, now: float) -> WorkerState:
        """Change state at time `now`, returning the old state; IllegalTransition for a move
        not in the table."""
        old = self.state
        if new not in TRANSITIONS[old]:
            raise IllegalTransition(f"worker {self.pid}: {old.value} → {new.value}")
        self.state = new
        if new is WorkerState.READY:
            self.ready_at = now
        elif new is WorkerState.DRAINING:
            self.draining_since = now
        return old

    def uptime(self, now: float) -> float:
        return now - self.spawned_at

    def describe(self) -> str:
        return f"worker {self.slot} (pid {self.pid}, generation {self.generation})"

    def as_dict(self, now: float) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "slot": self.slot,
            "generation": self.generation,
            "state": self.state.value,
            "uptime": round(self.uptime(now), 3),
            "retiring": self.retiring,
        }


def describe_exit(exitcode: int | None, killed_by_us: bool) -> str:
    """A readable reason for a process's end, from multiprocessing's exitcode (-N: signal N)."""
    if exitcode is None:
        return "ended (status unknown)"
    if exitcode >= 0:
        return "exited normally" if exitcode == 0 else f"exited with status {exitcode}"
    try:
        name = signal.Signals(-exitcode).name
    except ValueError:
        name = f"signal {-exitcode}"
    if -exitcode == signal.SIGKILL and not killed_by_us:
        return f"killed by {name} — out of memory?"
    return f"killed by {name}"
