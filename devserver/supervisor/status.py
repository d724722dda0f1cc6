"""The supervisor's state as the control API's snapshot (its type: control/schema.py's Snapshot;
its fields: docs/control-api.md).

Reads the supervisor, never changes it. The numbers come from supervisor/metrics.py; totals are
the supervisor's own: `requests` includes the workers that have already exited, so the count
survives restarts. metrics.py and workers.py build their parts as plain dicts: the casts below
say which part of the contract each is, and tests/test_contracts_schema.py checks a live
snapshot against the types, field by field.
"""

from __future__ import annotations

import collections
import os
from typing import Protocol, cast

from devserver.config import Config
from devserver.control import schema
from devserver.sockets import Listener
from devserver.supervisor.fallback import Fallback
from devserver.supervisor.metrics import Metrics
from devserver.supervisor.phase import STOPPING, Phase
from devserver.supervisor.processes import Processes
from devserver.supervisor.workers import Worker

Snapshot = schema.Snapshot  # what snapshot() returns, so its callers can name it


class Supervisor(Protocol):
    """What the snapshot reads of the supervisor (supervisor.Supervisor has all of it)."""

    config: Config
    processes: Processes
    metrics: Metrics
    listeners: list[Listener]
    fallback: Fallback
    phase: Phase
    dashboard_url: str | None
    generation: int
    target: int
    configured: int
    started_at: float
    reloading: bool
    last_failure: schema.Failure | None
    tracing_all: bool
    slot_restarts: collections.Counter[int]

    @property
    def crash_loop(self) -> bool: ...

    @property
    def restarting(self) -> bool: ...

    def alive_workers(self) -> list[Worker]: ...


def snapshot(supervisor: Supervisor, history_since: float | None = None) -> Snapshot:
    now = supervisor.processes.now()
    workers = sorted(supervisor.alive_workers(), key=lambda w: (w.generation, w.slot))
    rows = [_worker(supervisor, worker, now) for worker in workers]
    view: Snapshot = {
        "server": _server(supervisor, now),
        "workers": rows,
        "totals": _totals(supervisor, workers, rows),
    }
    if history_since is not None:
        history = supervisor.metrics.history_since(history_since)
        view["history"] = cast("list[schema.HistoryPoint]", history)
    return view


def _server(supervisor: Supervisor, now: float) -> schema.Server:
    config = supervisor.config
    return {
        "pid": os.getpid(),
        "app": config.app or "devserver.demo:app",
        "urls": [
            listener.url(config.ssl_certfile is not None) for listener in supervisor.listeners
        ],
        "dashboard": supervisor.dashboard_url,
        "mode": "prod" if config.prod else "dev",
        "state": _state(supervisor),
        "generation": supervisor.generation,
        "workers_target": supervisor.target,
        "workers_configured": supervisor.configured,
        "uptime": round(now - supervisor.started_at, 3),
        "crash_loop": supervisor.crash_loop,
        "reload": supervisor.reloading,
        "failure": supervisor.last_failure,
        "metrics": supervisor.config.metrics,
        "tracing": supervisor.tracing_all,
    }


def _worker(supervisor: Supervisor, worker: Worker, now: float) -> schema.Worker:
    row = {
        **worker.as_dict(now),
        "restarts": supervisor.slot_restarts[worker.slot],
        **supervisor.metrics.worker_view(worker.pid),
    }
    return cast("schema.Worker", row)


def _totals(
    supervisor: Supervisor, workers: list[Worker], rows: list[schema.Worker]
) -> schema.Totals:
    totals = {
        "workers_ready": sum(1 for w in workers if w.serving),
        "in_flight": sum(row["in_flight"] for row in rows),
        "connections": sum(row["connections"] for row in rows),
        "rss": sum(row["rss"] for row in rows),
        "cpu_percent": round(sum(row["cpu_percent"] for row in rows), 1),
        "restarts": sum(supervisor.slot_restarts.values()),
        **supervisor.metrics.totals_view(),
    }
    return cast("schema.Totals", totals)


def _state(supervisor: Supervisor) -> schema.ServerState:
    phase = supervisor.phase
    if phase in STOPPING:
        return "stopping"
    if phase is Phase.BOOTING or (phase is Phase.RETRYING and not supervisor.fallback.showing):
        return "starting"  # RETRYING without the error page: newer code boots
    if phase is Phase.RETRYING:
        return "failed"
    return "restarting" if supervisor.restarting else "running"
