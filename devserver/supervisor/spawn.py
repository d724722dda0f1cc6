"""Start worker processes from a fork server, so no worker inherits the supervisor's threads.

The fork server is a fresh interpreter, started once before any thread exists, that pre-imports
devserve's worker code (never the user's app) and forks one child per request. multiprocessing's
forkserver context does this and passes the listening sockets and the channel as file descriptors.
"""

from __future__ import annotations

import importlib.machinery
import multiprocessing
import multiprocessing.forkserver
import signal
import sys
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devserver.worker import WorkerSpec

_PRELOAD = ["devserver.worker", "uvloop"]  # uvloop where installed (missing: skipped)
_context = multiprocessing.get_context("forkserver")


def start_fork_server() -> None:
    """Start the fork server now (call before starting any thread); later calls do nothing."""
    _skip_main_in_children()
    _context.set_forkserver_preload(_PRELOAD)
    # The fork server, the resource tracker it starts and every worker forked from it ignore
    # SIGHUP (an ignored signal stays ignored across exec): a closed terminal hangs up the whole
    # process group, and only the supervisor decides what that means (signals.py).
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGHUP, previous)


def _skip_main_in_children() -> None:
    """multiprocessing runs a script's __main__ again in every child it starts, which for the
    `devserve` console script means importing the CLI (click and all): 25-35 ms of CPU per
    worker. Workers need nothing from it (their code is imported by name), and multiprocessing
    skips a __main__ that is a package's `__main__` module, so name devserve's own."""
    main = sys.modules["__main__"]
    if getattr(main, "__spec__", None) is None and getattr(main, "__file__", None):
        main.__spec__ = importlib.machinery.ModuleSpec("devserver.__main__", None)


def spawn(spec: WorkerSpec) -> BaseProcess:
    """Fork a worker running `worker.main(spec)`; returns once its pid is known."""
    from devserver import worker  # here: start_fork_server() must not wait for these imports

    process = _context.Process(
        target=worker.main, args=(spec,), name=f"devserve-worker-{spec.slot}"
    )
    process.start()
    return process
