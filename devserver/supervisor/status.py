"""The supervisor's state as the control API's snapshot (its fields: docs/control-api.md).

Reads the supervisor, never changes it. Totals are the supervisor's own: `requests` includes
the workers that have already exited, so the count survives restarts.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devserver.supervisor.supervisor import Supervisor


def snapshot(supervisor: Supervisor) -> dict[str, Any]:
    now = time.monotonic()
    workers = sorted(supervisor.alive_workers(), key=lambda w: (w.generation, w.slot))
    rows = [{**w.as_dict(now), "restarts": supervisor.slot_restarts[w.slot]} for w in workers]
    config = supervisor.config
    return {
        "server": {
            "pid": os.getpid(),
            "app": config.app or "devserver.demo:app",
            "mode": "prod" if config.prod else "dev",
            "state": _state(supervisor),
            "generation": supervisor.generation,
            "workers_target": supervisor.target,
            "workers_configured": supervisor.configured,
            "uptime": round(now - supervisor.started_at, 3),
            "crash_loop": supervisor.crash_loop,
            "reload": supervisor.reloading,
            "failure": supervisor.last_failure,
        },
        "workers": rows,
        "totals": {
            "workers_ready": sum(1 for w in workers if w.serving),
            "requests": supervisor.retired_requests + sum(w.requests for w in workers),
            "in_flight": sum(w.in_flight for w in workers),
            "connections": sum(w.connections for w in workers),
            "rss": sum(w.rss for w in workers),
            "cpu_percent": round(sum(w.cpu_percent for w in workers), 1),
            "restarts": sum(supervisor.slot_restarts.values()),
        },
    }


def _state(supervisor: Supervisor) -> str:
    if supervisor.stopping:
        return "stopping"
    if not supervisor.booted:
        return "failed" if supervisor.fallback.showing else "starting"
    return "restarting" if supervisor.restarting else "running"
