"""The supervisor's own life, as a transition table (workers.py holds a worker's).

    BOOTING ─▶ SERVING ─────────────▶ DRAINING ─▶ STOPPED
       │          ▲                      │  ▲         ▲
       └─▶ RETRYING ─────────────────────┼──┘         │
                                         ▼            │
       (any live phase) ───────────────▶ CLOSING ─────┘

- BOOTING: the first generation is starting; commands that need workers (restart, kill) wait.
- RETRYING: the first generation did not serve, and devserve waits for one that does: with
  --reload, for a change that fixes the app (the error page answers meanwhile), or for the
  newer code that arrived while the first generation booted.
- SERVING: a generation has served. It stays SERVING through restarts, reloads and crash loops,
  which are the supervisor's work rather than phases of its life.
- DRAINING: a graceful stop: workers finish in-flight requests. CLOSING: a fast stop (a second
  stop, or QUIT): everything closes now. STOPPED: every worker is gone.
Any other move is a bug in the supervisor and raises `IllegalTransition`.
"""

from __future__ import annotations

import enum

from devserver.supervisor.workers import IllegalTransition


class Phase(enum.Enum):
    BOOTING = "booting"
    RETRYING = "retrying"
    SERVING = "serving"
    DRAINING = "draining"
    CLOSING = "closing"
    STOPPED = "stopped"


P = Phase
TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    P.BOOTING: frozenset({P.SERVING, P.RETRYING, P.DRAINING, P.CLOSING}),
    P.RETRYING: frozenset({P.SERVING, P.DRAINING, P.CLOSING}),
    P.SERVING: frozenset({P.DRAINING, P.CLOSING}),
    P.DRAINING: frozenset({P.CLOSING, P.STOPPED}),
    P.CLOSING: frozenset({P.STOPPED}),
    P.STOPPED: frozenset(),
}
STOPPING = frozenset({P.DRAINING, P.CLOSING, P.STOPPED})


def check_move(old: Phase, new: Phase) -> Phase:
    """`new`, when the table allows the move; IllegalTransition otherwise."""
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(f"supervisor: {old.value} → {new.value}")
    return new
