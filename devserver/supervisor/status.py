"""The supervisor's state as the control API's snapshot (its fields: docs/control-api.md).

Reads the supervisor, never changes it. The numbers come from supervisor/metrics.py; totals are
the supervisor's own: `requests` includes the workers that have already exited, so the count
survives restarts.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devserver.supervisor.supervisor import Supervisor


def snapshot(supervisor: Supervisor, history_since: float | None = None) -> dict[str, Any]:
    now = time.monotonic()
    workers = sorted(supervisor.alive_workers(), key=lambda w: (w.generation, w.slot))
    metrics = supervisor.metrics
    rows = [
        {
            **w.as_dict(now),
            "restarts": supervisor.slot_restarts[w.slot],
            **metrics.worker_view(w.pid),
        }
        for w in workers
    ]
    config = supervisor.config
    view = {
        "server": {
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
            "metrics": config.metrics,
            "tracing": supervisor.tracing_all,
        },
        "workers": rows,
        "totals": {
            "workers_ready": sum(1 for w in workers if w.serving),
            "in_flight": sum(row["in_flight"] for row in rows),
            "connections": sum(row["connections"] for row in rows),
            "rss": sum(row["rss"] for row in rows),
            "cpu_percent": round(sum(row["cpu_percent"] for row in rows), 1),
            "restarts": sum(supervisor.slot_restarts.values()),
            **metrics.totals_view(),
        },
    }
    if history_since is not None:
        view["history"] = metrics.history_since(history_since)
    return view


def _state(supervisor: Supervisor) -> str:
    if supervisor.stopping:
        return "stopping"
    if not supervisor.booted:
        return "failed" if supervisor.fallback.showing else "starting"
    return "restarting" if supervisor.restarting else "running"
