"""The supervisor's state as the control API's snapshot (its type: control/schema.py's Snapshot;
its fields: docs/control-api.md).

Reads the supervisor, never changes it. The numbers come from supervisor/metrics.py; totals are
the supervisor's own: `requests` includes the workers that have already exited, so the count
survives restarts. metrics.py and workers.py build their parts as plain dicts: the casts below
say which part of the contract each is, and tests/test_contracts_schema.py checks a live
snapshot against the types, field by field.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, cast

from devserver.control import schema

if TYPE_CHECKING:
    from devserver.supervisor.supervisor import Supervisor
    from devserver.supervisor.workers import Worker

Snapshot = schema.Snapshot  # what snapshot() returns, so its callers can name it


def snapshot(supervisor: Supervisor, history_since: float | None = None) -> Snapshot:
    now = time.monotonic()
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
        "failure": cast("schema.Failure | None", supervisor.last_failure),
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
    if supervisor.stopping:
        return "stopping"
    if not supervisor.booted:
        return "failed" if supervisor.fallback.showing else "starting"
    return "restarting" if supervisor.restarting else "running"
