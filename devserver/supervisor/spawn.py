"""Start worker processes from a fork server, so no worker inherits the supervisor's threads.

The fork server is a fresh interpreter, started once before any thread exists, that pre-imports
devserve's worker code (never the user's app) and forks one child per request. multiprocessing's
forkserver context does this and passes the listening sockets and the channel as file descriptors.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devserver.worker import WorkerSpec

_PRELOAD = ["devserver.worker"]
_context = multiprocessing.get_context("forkserver")


def start_fork_server() -> None:
    """Start the fork server now (call before starting any thread); later calls do nothing."""
    _context.set_forkserver_preload(_PRELOAD)
    multiprocessing.forkserver.ensure_running()


def spawn(spec: WorkerSpec) -> BaseProcess:
    """Fork a worker running `worker.main(spec)`; returns once its pid is known."""
    from devserver import worker  # here: start_fork_server() must not wait for these imports

    process = _context.Process(
        target=worker.main, args=(spec,), name=f"devserve-worker-{spec.slot}"
    )
    process.start()
    return process
