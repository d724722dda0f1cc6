"""The supervisor's watch: timeouts, hung workers, resource samples and recycling triggers.

Every 250 ms it checks each worker against its clocks: a boot longer than --timeout-boot, a ready
worker whose heartbeat has been silent for --timeout (SIGABRT so faulthandler logs its stack, then
SIGKILL), a drain past the grace period, a fast stop that did not end. Once a second it asks the
supervisor to recycle workers past --max-worker-lifetime or --max-worker-memory (the RSS each
worker reports on its heartbeat); --max-requests is checked on each heartbeat. Decisions about
replacements stay in supervisor.py; this module only notices and escalates.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
from typing import Protocol

from devserver.config import Config
from devserver.supervisor.processes import Processes
from devserver.supervisor.workers import STARTING, Worker, WorkerState

logger = logging.getLogger("devserve.supervisor")

INTERVAL = 0.25
RECYCLE_EVERY = 1.0
ABORT_GRACE = 2.0  # after SIGABRT, seconds before SIGKILL (faulthandler needs a moment)
DRAIN_MARGIN = 2.0  # past the grace period, a draining worker is killed
FAST_STOP_GRACE = 1.0


class Watched(Protocol):
    """What the watch reads of the supervisor, and the one decision it asks of it."""

    config: Config
    processes: Processes
    workers: dict[int, Worker]

    @property
    def fast(self) -> bool: ...

    def notify(self, state: str) -> object: ...

    def retire(self, worker: Worker, reason: str) -> None: ...


class Watch:
    def __init__(self, supervisor: Watched) -> None:
        self.supervisor = supervisor
        self.config = supervisor.config
        self.processes = supervisor.processes
        self.fast_stop_at: float | None = None
        self.watchdog: float | None = None  # systemd WatchdogSec/2, set by the CLI when asked
        self._tasks: list[asyncio.Task[None]] = []
        self._lifetimes: dict[int, float] = {}

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run())]
        if self.watchdog:
            self._tasks.append(loop.create_task(self._ping_watchdog(self.watchdog)))

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def _ping_watchdog(self, interval: float) -> None:
        """Its own clock: tied to the 250 ms check, pings would drift past short WatchdogSec."""
        while True:
            self.supervisor.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    async def _run(self) -> None:
        next_sample = 0.0
        while True:
            now = self.processes.now()
            for worker in list(self.supervisor.workers.values()):
                self._check_clocks(worker, now)
            if now >= next_sample:
                next_sample = now + RECYCLE_EVERY
                self._check_recycling(now)
            await asyncio.sleep(INTERVAL)

    # ------------------------------------------------------------------ clocks
    def _check_clocks(self, worker: Worker, now: float) -> None:
        config = self.config
        if worker.state in STARTING and config.timeout_boot:
            if worker.uptime(now) > config.timeout_boot and not worker.aborted_at:
                logger.error(
                    "%s did not boot within %gs (--timeout-boot): killing it",
                    worker.describe(),
                    config.timeout_boot,
                )
                worker.aborted_at = now
                self.processes.signal(worker.pid, signal.SIGKILL)
        elif worker.state is WorkerState.READY and config.timeout:
            silent = now - worker.last_heard
            if silent > config.timeout and not worker.aborted_at:
                logger.error(
                    "%s silent for %.1fs (--timeout %gs): the app blocks its event loop? "
                    "Aborting it; its stack follows.",
                    worker.describe(),
                    silent,
                    config.timeout,
                )
                worker.aborted_at = now
                self.processes.signal(worker.pid, signal.SIGABRT)
        elif worker.state is WorkerState.DRAINING and worker.draining_since is not None:
            grace = 0.0 if self.supervisor.fast else config.timeout_graceful_shutdown
            if now - worker.draining_since > grace + DRAIN_MARGIN and not worker.aborted_at:
                logger.warning("%s still draining after %gs: killing it", worker.describe(), grace)
                worker.aborted_at = now
                self.processes.signal(worker.pid, signal.SIGKILL)
        if worker.aborted_at and now - worker.aborted_at > ABORT_GRACE and worker.alive:
            self.processes.signal(worker.pid, signal.SIGKILL)
        if self.fast_stop_at and now - self.fast_stop_at > FAST_STOP_GRACE:
            self.processes.signal(worker.pid, signal.SIGKILL)

    # ------------------------------------------------------------------ recycling
    def _check_recycling(self, now: float) -> None:
        alive = {w.pid for w in self.supervisor.workers.values() if w.alive}
        for pid in set(self._lifetimes) - alive:
            del self._lifetimes[pid]
        for worker in list(self.supervisor.workers.values()):
            if worker.serving and not worker.retiring and worker.ready_at is not None:
                self._recycle_if_due(worker, now)

    def _recycle_if_due(self, worker: Worker, now: float) -> None:
        config = self.config
        if config.max_worker_memory and worker.rss > config.max_worker_memory * 1024 * 1024:
            mib = worker.rss / 1024 / 1024
            self.supervisor.retire(worker, f"RSS {mib:.0f} MiB > --max-worker-memory")
        elif config.max_worker_lifetime:
            # up to 10% jitter per worker, so workers started together do not recycle together
            limit = self._lifetimes.setdefault(
                worker.pid, config.max_worker_lifetime * (1 + random.random() / 10)
            )
            if worker.ready_at is not None and now - worker.ready_at > limit:
                self.supervisor.retire(worker, f"older than {config.max_worker_lifetime:g}s")

    def check_requests(self, worker: Worker) -> None:
        """On each heartbeat: recycle a worker that served its --max-requests (plus jitter)."""
        if worker.max_requests and worker.requests >= worker.max_requests:
            self.supervisor.retire(worker, f"served {worker.requests} requests")
