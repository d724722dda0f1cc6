"""The supervisor: keeps the target number of workers serving, restarts them in rolling generations.

It owns the worker table and every policy decision: spawn (supervisor/spawn.py), respawn with
backoff, stop respawning in a crash loop, scale, roll a new generation in before draining the old,
reload new code (the same roll, cancelling a generation that still boots old code), recycle, stop.
Signal handlers, the file watcher and control commands only call the small public methods below;
the work happens on this process's event loop. It never imports the user's app.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import random
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any

from devserver import channel
from devserver.config import Config
from devserver.control import schema
from devserver.cpus import usable_cpus
from devserver.logging import reopen_files
from devserver.sockets import Listener
from devserver.supervisor import signals, status
from devserver.supervisor.crash_loop import (
    CRASH_LOOP_BACKOFF,
    CRASH_WINDOW,
    RECOVERED_AFTER,
    CrashLoop,
)
from devserver.supervisor.errors import CommandError
from devserver.supervisor.fallback import NOBODY_SERVES, Fallback
from devserver.supervisor.metrics import Metrics
from devserver.supervisor.phase import STOPPING, Phase, check_move
from devserver.supervisor.processes import ForkServerProcesses, Processes, Timer, WorkerHooks
from devserver.supervisor.watch import Watch
from devserver.supervisor.workers import STARTING, Worker, WorkerChannel, WorkerState, describe_exit

logger = logging.getLogger("devserve.supervisor")

DRAINED_WAIT = 1.0  # seconds a reload waits for the old workers' Drained before handing over
MAX_WORKERS_FLOOR = 64  # `scale` refuses more than this or 8 per usable CPU, whichever is more
MAX_WORKERS_PER_CPU = 8
KEEP_IDLE = 1.0  # on a rolling drain, idle keep-alive connections get this for one more request

Event = dict[str, Any]


class Supervisor:
    """Runs and watches the workers of one devserve instance."""

    def __init__(
        self,
        config: Config,
        listeners: list[Listener],
        workers: int,
        publish: Callable[[Event], None] = lambda event: None,
        notify: Callable[[str], object] = lambda state: None,
        reloading: bool = False,
        capture_output: bool = False,
        processes: Processes | None = None,
    ) -> None:
        self.config = config
        # forking, signals and the clock; a test passes a fake that starts no process
        if processes is None:
            processes = ForkServerProcesses(config, listeners, reloading, publish, capture_output)
        self.processes = processes
        self.phase = Phase.BOOTING
        self.dashboard_url: str | None = None  # with its token: set when the dashboard starts
        self.also_serving: list[str] = []  # lines logged after "serving on" (the dashboard's)
        self.listeners = listeners
        self.configured = workers
        self.target = workers
        self.publish = publish
        self.notify = notify  # systemd's sd_notify, or nothing
        self.workers: dict[int, Worker] = {}
        self.generation = 0
        self._last_generation = 0
        self.started_at = self.processes.now()
        self.served_at: float | None = None  # when a generation first served
        # --reload: a failed boot is shown (error page, events) instead of ending devserve
        self.reloading = reloading
        self.fallback = Fallback(config, listeners)
        self.last_failure: schema.Failure | None = None  # the latest generation's, until one serves
        # changes seen while the first generation booted: reloaded once it settles
        self._early_reload: tuple[list[str], float | None] | None = None
        self.startup_failure: channel.Failed | None = None
        self.crashes = CrashLoop()
        self._crash_message = ""
        self.slot_restarts: collections.Counter[int] = collections.Counter()
        self.metrics = Metrics(clock=processes.now)
        # --trace, or `trace` with no count and no pid: new workers trace too
        self.tracing_all = config.trace
        self._slots_used: set[int] = set()
        self._recovery_timer: Timer | None = None
        self._respawn_after = 0.0
        self._respawn_timer: Timer | None = None
        self._restart: asyncio.Task[None] | None = None
        self._restart_again: str | None = None  # what to run once the running roll is done
        self._changed = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self.watch = Watch(self)

    # ------------------------------------------------------------------ commands
    def scale(self, how: str | int) -> schema.ScaleResult:
        """Set the target: N, '+N' or '-N' (at least 1). Up spawns, down drains the newest."""
        text = str(how).strip()
        try:
            number = int(text)
        except ValueError:
            raise CommandError(f"scale: {how!r} is not N, +N or -N") from None
        target = self.target + number if text[:1] in "+-" else number
        if target < 1:
            raise CommandError(f"scale: the target would be {target}; it must be at least 1")
        if target > (limit := max(MAX_WORKERS_FLOOR, MAX_WORKERS_PER_CPU * usable_cpus())):
            # a typo (1000 for 10) must not fork until the machine runs out of memory
            raise CommandError(f"scale: {target} workers is more than {limit} on this machine")
        self._require_running()
        self.target = target
        if self.crash_loop:  # the operator says try again: the deaths before count no more
            self._end_crash_loop()
        logger.info("scaling to %d worker(s)", target)
        self.publish({"kind": "scale", "target": target})
        self._reconcile()
        return {"target": target}

    def restart(self) -> schema.RestartResult:
        """Roll a new generation in; a request during a restart runs one more restart after it."""
        self._require_running(booted=True)
        if self.restarting:
            self._restart_again = self._restart_again or "restart"
            return {"restart": "queued"}
        self._restart_again = None
        self._restart = asyncio.get_running_loop().create_task(self._restarts("restart"))
        return {"restart": "started"}

    def reload(
        self, changed: Sequence[str] = (), seen_at: float | None = None
    ) -> schema.ReloadResult:
        """New code: roll in a generation that imports it. A generation still booting has the old
        code, so it is cancelled and replaced; `seen_at` is when the change was noticed."""
        self._require_running()
        changes = (list(changed), seen_at)
        if self.phase is Phase.BOOTING:  # the first generation decides what happens next
            self._early_reload = changes
            self._changed.set()
            return {"reload": "queued"}
        if self._restart is not None and not self._restart.done():
            self._restart.cancel()  # its generation's workers are stopped as it unwinds
        self._restart_again = None  # a restart asked for meanwhile is this reload
        loop = asyncio.get_running_loop()
        self._restart = loop.create_task(self._restarts("reload", changes))
        return {"reload": "started"}

    def kill(self, pid: int) -> schema.KillResult:
        """SIGKILL one worker; it is replaced at once (this does not count as a crash)."""
        self._require_running(booted=True)
        worker = self.workers.get(pid)
        if worker is None or not worker.alive:
            raise CommandError(f"kill: no worker with pid {pid}")
        worker.expected_exit = True
        self.processes.signal(pid, signal.SIGKILL)
        return {"killed": pid}

    def stop(self, fast: bool = False) -> schema.StopResult:
        """Drain every worker and exit; a second stop (or fast=True) closes everything now."""
        fast = fast or self.stopping
        if fast and not self.fast:
            self.watch.fast_stop_at = self.processes.now()
        if not self.stopping:
            self._enter(Phase.CLOSING if fast else Phase.DRAINING)
            for listener in self.listeners:  # once the workers let go too, new clients are refused
                listener.sock.close()
            self.notify("STOPPING=1")
            self.publish({"kind": "stopping", "fast": fast})
        elif fast and self.phase is Phase.DRAINING:
            self._enter(Phase.CLOSING)
        for worker in self.alive_workers():
            self._drain(worker, "stopping", fast=fast)
        self._stop_requested.set()
        self._changed.set()
        return {"stopping": "fast" if fast else "graceful"}

    def trace(self, requests: int | None = None, pid: int | None = None) -> schema.TraceResult:
        """Trace the ASGI messages of the next `requests` requests of each worker (or of worker
        `pid`); with no count, every request until `trace_off`, in new workers too."""
        if requests is not None and requests < 1:
            raise CommandError(f"trace: requests must be at least 1, not {requests}")
        targets = self._trace_targets(pid)
        for worker in targets:
            _send(worker, channel.StartTrace(requests))
        if pid is None:  # a count replaces tracing everything, in new workers too
            self.tracing_all = requests is None
        return {"tracing": [w.pid for w in targets], "requests": requests}

    def trace_off(self, pid: int | None = None) -> schema.TraceOffResult:
        """Stop tracing (in every worker, or in worker `pid`); this also ends --trace."""
        targets = self._trace_targets(pid)
        for worker in targets:
            _send(worker, channel.StopTrace())
        if pid is None:
            self.tracing_all = False
        return {"stopped": [w.pid for w in targets]}

    def _trace_targets(self, pid: int | None) -> list[Worker]:
        serving = [w for w in self.workers.values() if w.serving]
        if pid is None:
            return serving
        chosen = [w for w in serving if w.pid == pid]
        if not chosen:
            raise CommandError(f"trace: no serving worker with pid {pid}")
        return chosen

    def reopen_logs(self) -> schema.ReopenResult:
        reopen_files()
        for worker in self.alive_workers():
            _send(worker, channel.ReopenLogs())
        return {"reopened": True}

    def _require_running(self, booted: bool = False) -> None:
        if self.stopping:
            raise CommandError("devserve is stopping")
        if booted and self.phase is Phase.BOOTING:  # the first boot decides the exit status
            raise CommandError("devserve is still starting its first workers; try again")

    # ------------------------------------------------------------------ life
    async def run(self) -> bool:
        """Boot the first generation, supervise until stopped. False when the first boot failed
        (then `startup_failure` says why); a stop asked for during the boot is a clean stop."""
        self.watch.start()
        try:
            if not await self._first_boot():
                await self._wind_down()
                return self.startup_failure is None
            await self._stop_requested.wait()
            if self._restart is not None:
                self._restart.cancel()
            self.fallback.hide()
            await self._wind_down()
            return True
        finally:
            self.watch.stop()

    async def _first_boot(self) -> bool:
        """False when devserve should end: stopped, or (without --reload) the boot failed."""
        self.generation = self._last_generation = 1
        first = [self._spawn(1) for _ in range(self.target)]
        await self._until(
            lambda: self.stopping or _settled(first) or self._early_reload is not None
        )
        failed = _first_failure(first)
        if self.stopping:
            self.stop(fast=True)
            return False
        if self._early_reload is not None and failed is not None:
            # new code arrived while the first generation booted the old: boot the new instead
            self._enter(Phase.RETRYING)
            for worker in first:
                if worker.alive:
                    self._drain(worker, "newer changes arrived while it booted")
        elif failed is not None:
            failure = _failure_of(failed)
            if not self.reloading:
                self.startup_failure = failure
                self.stop(fast=True)
                return False
            self._enter(Phase.RETRYING)
            self._abandon(first, failure, 1, "reload")
            self._announce_also_serving()
        else:
            self._serving_at_last()
        if self._early_reload is not None:
            self.reload(*self._early_reload)
        return True

    def _serving_at_last(self) -> None:
        """The first generation that serves (the first boot's, or a reload's after it failed)."""
        self._enter(Phase.SERVING)
        self.served_at = self.processes.now()
        self.fallback.hide()
        tls = self.config.ssl_certfile is not None
        for listener in self.listeners:
            logger.info("serving on %s", listener.url(tls))
        self._announce_also_serving()
        self.notify(f"READY=1\nSTATUS=serving with {self.target} worker(s)")
        self.publish({"kind": "ready", "generation": self.generation})
        self._reconcile()  # the target may have changed while booting

    def _announce_also_serving(self) -> None:
        """Log the dashboard's line once: after "serving on", or as soon as a failed first boot
        shows its error page (the dashboard then says why, so its address matters most)."""
        lines, self.also_serving = self.also_serving, []
        for line in lines:
            logger.info("%s", line)

    async def _wind_down(self) -> None:
        await self._until(lambda: not self.alive_workers())
        self._enter(Phase.STOPPED)
        logger.log(logging.INFO if self.booted else logging.DEBUG, "stopped")

    async def _until(self, predicate: Callable[[], bool]) -> None:
        """Wait (without polling) until `predicate` holds; re-checked on every worker change."""
        while not predicate():
            self._changed.clear()
            await self._changed.wait()

    def _accepting_workers(self) -> list[Worker]:
        """Ready workers that were told to Serve (not one of a rolling generation held back)."""
        return [w for w in self.workers.values() if w.serving and not w.held]

    def _accepting(self) -> bool:
        return bool(self._accepting_workers())

    def alive_workers(self) -> list[Worker]:
        return [w for w in self.workers.values() if w.alive]

    @property
    def restarting(self) -> bool:
        return self._restart is not None and not self._restart.done()

    @property
    def stopping(self) -> bool:
        return self.phase in STOPPING

    @property
    def fast(self) -> bool:
        """Stopping without waiting for in-flight requests."""
        return self.phase is Phase.CLOSING

    @property
    def booted(self) -> bool:
        """A generation has served (devserve may be stopping since)."""
        return self.served_at is not None

    @property
    def crash_loop(self) -> bool:
        return self.crashes.on

    def _enter(self, phase: Phase) -> None:
        self.phase = check_move(self.phase, phase)
        self._changed.set()

    # ------------------------------------------------------------------ spawning and exits
    def _spawn(self, generation: int, slot: int | None = None, held: bool = False) -> Worker:
        if slot is None:
            slot = self._free_slot(generation)
        # a replacement, not a new slot (first boot, scale up); one of a rolling generation
        # counts when its generation serves: a failed reload replaced nothing
        replaces = slot in self._slots_used
        if replaces and not held:
            self.slot_restarts[slot] += 1
        self._slots_used.add(slot)
        # the hooks reach the worker through this cell: the pid comes back from spawn (which
        # promises to call no hook before it returns)
        cell: list[Worker] = []

        def opened(protocol: WorkerChannel) -> None:
            cell[0].channel = protocol  # before its first message: Ready is answered with Serve

        hooks = WorkerHooks(
            opened=opened,
            message=lambda message: self._on_message(cell[0], message),
            channel_lost=lambda: self._channel_lost(cell[0]),
            exited=lambda exitcode: self._on_exit(cell[0], exitcode),
        )
        pid = self.processes.spawn(slot, generation, hooks)
        now = self.processes.now()
        worker = Worker(
            pid,
            slot,
            generation,
            spawned_at=now,
            last_heard=now,
            max_requests=self._request_limit(),
            held=held,
            replaces=replaces,
        )
        cell.append(worker)
        self.workers[pid] = worker
        logger.debug("spawned %s", worker.describe())
        self._worker_event(worker)
        return worker

    def _channel_lost(self, worker: Worker) -> None:
        """The worker's channel closed: it exited, or it broke the channel's protocol. A
        violation is devserve's fault (or the app's tampering), not a crash of the app: the worker
        is replaced and the loss does not count toward a crash loop."""
        violation = worker.channel.violation if worker.channel is not None else None
        if violation is None or not worker.alive or worker.expected_exit:
            return
        logger.error(
            "%s broke the channel protocol (%s): replacing it", worker.describe(), violation
        )
        self._drain(worker, "channel protocol violation")
        self._reconcile()

    def _free_slot(self, generation: int) -> int:
        taken = {
            w.slot
            for w in self.workers.values()
            if w.generation == generation and w.alive and w.state is not WorkerState.DRAINING
        }
        return next(n for n in range(1, len(taken) + 2) if n not in taken)

    def _request_limit(self) -> int:
        limit = self.config.max_requests
        if not limit:
            return 0
        return limit + random.randint(0, self.config.max_requests_jitter)

    def _on_message(self, worker: Worker, message: channel.Message) -> None:
        worker.last_heard = self.processes.now()
        if isinstance(message, channel.Tick):
            worker.requests = message.requests
            worker.in_flight = message.in_flight
            worker.connections = message.connections
            worker.rss = message.rss
            self.metrics.on_tick(worker, message)
            self.watch.check_requests(worker)
        elif isinstance(message, channel.Booting):
            self._move(worker, WorkerState.BOOTING)
        elif isinstance(message, channel.Ready):
            self._on_ready(worker)
        elif isinstance(message, channel.Failed):
            worker.failure = message
        elif isinstance(message, channel.Stopping):
            logger.debug("%s stopping: %s", worker.describe(), message.reason)
        elif isinstance(message, channel.Log):
            self._publish_log(worker, message)
        elif isinstance(message, channel.Drained):
            worker.drained = True
            self._changed.set()

    def _publish_log(self, worker: Worker, message: channel.Log) -> None:
        event = {
            "kind": "log",
            "source": "worker",
            "pid": worker.pid,
            "slot": worker.slot,
            "level": message.level,
            "logger": message.logger,
            "line": message.line,
        }
        if message.details:
            event["details"] = message.details
        self.publish(event)

    def _on_ready(self, worker: Worker) -> None:
        if worker.state is WorkerState.DRAINING:  # dropped while booting; it is being killed
            return
        self._move(worker, WorkerState.READY)
        logger.info(
            "%s ready in %.0f ms",
            worker.describe(),
            (self.processes.now() - worker.spawned_at) * 1000,
        )
        if self.stopping:
            self._drain(worker, "stopping", fast=self.fast)
            return
        if self.tracing_all:
            _send(worker, channel.StartTrace())
        elif self.config.trace:  # started with --trace, which trace-off has ended since
            _send(worker, channel.StopTrace())
        if not worker.held:
            _send(worker, channel.Serve())
            if self.booted:  # out of a crash loop: a worker answers again (a failed first
                self.fallback.hide()  # boot's page waits for _serving_at_last)
            if self.crash_loop:
                self._watch_recovery()
        self._retire_replaced(worker.generation)

    def _on_exit(self, worker: Worker, exitcode: int | None) -> None:
        """The worker is gone (and its last messages are read)."""
        reason = describe_exit(exitcode, worker.expected_exit or bool(worker.aborted_at))
        worker.exit_status = reason
        self.metrics.forget(worker.pid)
        if worker.state in STARTING:
            self._move(worker, WorkerState.FAILED)
        else:
            self._move(worker, WorkerState.EXITED)
        if worker.channel is not None:
            worker.channel.close()
        del self.workers[worker.pid]
        self._log_exit(worker, reason)
        if not worker.expected_exit and worker.generation == self.generation and self.booted:
            self._note_death(worker, reason)
        self._reconcile()
        self._answer_if_nobody_serves()

    def _answer_if_nobody_serves(self) -> None:
        """In a crash loop with no worker left serving, the supervisor answers 503 itself:
        connections would otherwise wait in the listen backlog for workers that are not coming."""
        if not self.crash_loop or self.stopping or self.fallback.showing:
            return
        if self._accepting():
            return
        self.fallback.show(channel.Failed(self._crash_message), NOBODY_SERVES)

    def _log_exit(self, worker: Worker, reason: str) -> None:
        if not self.booted or worker.generation > self.generation:
            # a generation that never served: its failure is reported once, for the generation
            logger.debug("%s %s", worker.describe(), reason)
            return
        if worker.expected_exit:
            logger.info("%s %s", worker.describe(), reason)
            return
        logger.error("%s %s", worker.describe(), reason)
        if worker.failure is not None and self.booted:
            details = worker.failure.details.rstrip()
            logger.error("%s%s", worker.failure.message, "\n" + details if details else "")

    def _note_death(self, worker: Worker, reason: str) -> None:
        now = self.processes.now()
        served = now - worker.ready_at if worker.ready_at is not None else 0.0
        was_on = self.crashes.on
        backoff = self.crashes.death(now, served, self._accepting())
        if self.crashes.on and not was_on:
            message = (
                f"workers died {self.crashes.recent_deaths} times in {CRASH_WINDOW:.0f}s "
                f"(last: {worker.describe()} {reason}): crash loop, respawning with a backoff "
                f"of up to {CRASH_LOOP_BACKOFF:.0f}s and /readyz failing until workers serve "
                f"{RECOVERED_AFTER:.0f}s without dying. Fix the app, then restart "
                "(devserve ctl restart)."
            )
            logger.critical(message)
            self._crash_message = message
            self.publish({"kind": "crash_loop", "message": message})
        self._respawn_after = now + backoff
        self._watch_recovery()

    def _watch_recovery(self) -> None:
        """In a crash loop, look again once RECOVERED_AFTER has passed since the last death."""
        if self._recovery_timer is not None:
            self._recovery_timer.cancel()
        self._recovery_timer = None
        look_at = self.crashes.next_look()
        if look_at is not None:
            wait = max(0.0, look_at - self.processes.now())
            self._recovery_timer = self.processes.call_later(wait, self._check_recovered)

    def _check_recovered(self) -> None:
        """The crash loop is over when a worker has served RECOVERED_AFTER and none died since."""
        self._recovery_timer = None
        if not self.crash_loop or self.stopping:
            return
        serving_since = [w.ready_at for w in self._accepting_workers() if w.ready_at is not None]
        wait = self.crashes.recovered_in(self.processes.now(), serving_since, self.target)
        if wait is None:
            return  # too few serve yet: the next worker to be ready looks again
        if wait > 0:  # not for long enough yet
            self._recovery_timer = self.processes.call_later(wait, self._check_recovered)
            return
        logger.warning(
            "crash loop over: workers served %.0fs without dying; /readyz is ready again",
            RECOVERED_AFTER,
        )
        self._end_crash_loop()

    def _end_crash_loop(self) -> None:
        """Deaths before now count no more (a restart, a scale, or workers that stay up)."""
        self.crashes.end()
        self._respawn_after = 0.0
        if self._recovery_timer is not None:
            self._recovery_timer.cancel()
            self._recovery_timer = None

    # ------------------------------------------------------------------ keeping the target
    def _reconcile(self) -> None:
        """Spawn or drain workers of the current generation until `target` of them live."""
        if self.stopping or not self.booted:
            return
        current = [
            w
            for w in self.workers.values()
            if w.generation == self.generation
            and w.state in (*STARTING, WorkerState.READY)
            and not w.retiring
        ]
        missing = self.target - len(current)
        if missing > 0:
            wait = self._respawn_after - self.processes.now()
            if wait > 0:
                self._reconcile_later(wait)
                return
            for _ in range(missing):
                self._spawn(self.generation)
        elif missing < 0:
            # starting workers first, then the newest ready ones
            excess = sorted(current, key=lambda w: (w.serving, -w.spawned_at))[:-missing]
            for worker in excess:
                self._drain(worker, "scaled down")

    def _reconcile_later(self, delay: float) -> None:
        """Reconcile again after `delay`; a respawn already planned for later moves earlier (the
        last worker died: its shorter backoff must not wait behind a longer one)."""
        timer = self._respawn_timer
        if timer is not None and not timer.cancelled():
            if timer.when <= self.processes.now() + delay:
                return
            timer.cancel()
        logger.info("respawning in %.2fs", delay)

        def fire() -> None:
            self._respawn_timer = None
            self._reconcile()

        self._respawn_timer = self.processes.call_later(delay, fire)

    def _drain(
        self, worker: Worker, reason: str, fast: bool = False, keep_idle: bool = True
    ) -> None:
        """Tell a worker to go: drain (or stop at once); a worker still starting is killed.
        `keep_idle`: idle keep-alive connections get KEEP_IDLE for one more request (no client
        meets a closing connection, at the price of that request's answer coming from here)."""
        worker.expected_exit = True
        if worker.state in STARTING:
            self._move(worker, WorkerState.DRAINING)
            self.processes.signal(worker.pid, signal.SIGKILL)
            return
        if worker.state is WorkerState.READY:
            self._move(worker, WorkerState.DRAINING)
            logger.info("draining %s: %s", worker.describe(), reason)
        grace = min(KEEP_IDLE, self.config.timeout_keep_alive)
        message: channel.Message = (
            channel.Stop()
            if fast
            else channel.Drain(grace if keep_idle and not self.stopping else 0)
        )
        if not _send(worker, message):
            self.processes.signal(worker.pid, signal.SIGQUIT if fast else signal.SIGTERM)

    def retire(self, worker: Worker, reason: str) -> None:
        """Replace a serving worker gracefully: its replacement is ready before it drains."""
        if worker.retiring or not worker.serving or self.stopping:
            return
        if any(w.retiring and w.alive for w in self.workers.values()):
            return  # one at a time, so workers never recycle all at once; asked again later
        logger.info("recycling %s: %s", worker.describe(), reason)
        worker.retiring = reason
        self._reconcile()

    def _retire_replaced(self, generation: int) -> None:
        """Drain retiring workers once enough of their generation serve without them."""
        mine = [w for w in self.workers.values() if w.generation == generation]
        serving = sum(1 for w in mine if w.serving and not w.retiring)
        for worker in mine:
            if worker.retiring and worker.serving and serving >= self.target:
                self._drain(worker, worker.retiring)

    # ------------------------------------------------------------------ rolling restart
    async def _restarts(
        self, kind: str, changes: tuple[list[str], float | None] = ([], None)
    ) -> None:
        """Roll, then roll once more if a restart was asked for meanwhile (even before this task
        first ran: so `_restart_again` is cleared by whoever starts it, not here)."""
        while True:
            await self._rolling_restart(kind, *changes)
            again, self._restart_again = self._restart_again, None
            if again is None or self.stopping:
                return
            kind, changes = again, ([], None)

    async def _rolling_restart(self, kind: str, changed: list[str], seen_at: float | None) -> None:
        """Start a whole generation; once every worker of it serves, drain the others. `kind` is
        'restart' or 'reload' (then `changed` lists the files and `seen_at` when)."""
        self._last_generation += 1  # failed generations keep their number too
        generation = self._last_generation
        began = seen_at or self.processes.now()
        cause = f" ({_describe(changed)} changed)" if changed else ""
        logger.info("%s: starting generation %d%s", kind, generation, cause)
        # Type=notify-reload wants the monotonic time with RELOADING=1 (sd_notify(3))
        self.notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
        self.publish(
            {"kind": kind, "phase": "started", "generation": generation, "changed": changed}
        )
        new = [self._spawn(generation, held=True) for _ in range(self.target)]
        try:
            await self._until(lambda: self.stopping or _settled(new))
        except asyncio.CancelledError:
            self._cancel(new, generation, kind)
            raise
        failed = _first_failure(new)
        if self.stopping:
            return
        if failed is not None:
            self._abandon(new, _failure_of(failed), generation, kind)
            return
        old = [w for w in self.alive_workers() if w.generation != generation]
        if kind == "reload":
            await self._old_code_gone(old, generation)
            if self.stopping:
                return
        self._hand_over(new, old, generation, kind)
        seconds = self.processes.now() - began
        logger.info("%s: generation %d serving after %.2fs%s", kind, generation, seconds, cause)
        self.notify(f"READY=1\nSTATUS=generation {generation} serving")
        self.publish(
            {"kind": kind, "phase": "succeeded", "generation": generation, "seconds": seconds}
        )
        if not self.booted:
            self._serving_at_last()
        self._reconcile()

    def _hand_over(self, new: list[Worker], old: list[Worker], generation: int, kind: str) -> None:
        """The new generation starts accepting as the old one stops."""
        for worker in new:
            worker.held = False
            if worker.replaces:
                self.slot_restarts[worker.slot] += 1
            _send(worker, channel.Serve())
        self.fallback.hide()  # out of a crash loop: the new generation answers now
        self.generation = generation
        self._end_crash_loop()
        self.last_failure = None
        for worker in old:
            if worker.state is not WorkerState.DRAINING:
                # after a reload, the next request must see the new code: idle connections close
                # now (a client meeting one retries on a new connection, as browsers do)
                self._drain(
                    worker, f"replaced by generation {generation}", keep_idle=kind != "reload"
                )

    async def _old_code_gone(self, old: list[Worker], generation: int) -> None:
        """After a reload no request may meet the old code: the old generation stops accepting
        and closes its idle connections, and says so, before the new one accepts (new
        connections wait in the listen backlog meanwhile, DRAINED_WAIT at most)."""
        for worker in old:
            if worker.state is not WorkerState.DRAINING:
                self._drain(worker, f"replaced by generation {generation}", keep_idle=False)
        gone = self._until(lambda: all(w.drained or not w.alive for w in old))
        # a newer reload cancelling this one must not leave nobody serving: hand over anyway
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(gone, DRAINED_WAIT)

    def _cancel(self, new: list[Worker], generation: int, kind: str) -> None:
        """A newer reload replaces this generation before it served: stop it quietly."""
        if self.stopping:
            return
        for worker in new:
            if worker.alive:
                self._drain(worker, f"generation {generation} superseded")
        logger.info("%s: generation %d superseded by newer changes", kind, generation)
        self.publish({"kind": kind, "phase": "cancelled", "generation": generation})

    def _abandon(
        self, new: list[Worker], failure: channel.Failed, generation: int, kind: str
    ) -> None:
        for worker in new:
            if worker.alive:
                self._drain(worker, f"generation {generation} failed")
        where = ""
        if failure.file and f"line {failure.line}" not in failure.message:  # SyntaxError says it
            where = f" ({failure.file}, line {failure.line})"
        if self.booted:
            outcome = f"generation {self.generation} keeps serving"
        else:
            self.fallback.show(failure)
            outcome = "requests get an error page until a change fixes it"
        logger.error(
            "%s: generation %d did not start, %s: %s%s%s",
            f"{kind} failed" if generation > 1 else "the app failed",
            generation,
            outcome,
            failure.message,
            where,
            "\n" + failure.details.rstrip() if failure.details else "",
        )
        self.notify("READY=1")
        self.last_failure = {
            "generation": generation,
            "message": failure.message,
            "details": failure.details,
            "file": failure.file,
            "line": failure.line,
        }
        self.publish({"kind": kind, "phase": "failed", **self.last_failure})

    # ------------------------------------------------------------------ state changes
    def _move(self, worker: Worker, state: WorkerState) -> None:
        worker.move(state, self.processes.now())
        self._changed.set()
        self._worker_event(worker)

    def _worker_event(self, worker: Worker) -> None:
        self.publish(
            {
                "kind": "worker",
                "pid": worker.pid,
                "slot": worker.slot,
                "generation": worker.generation,
                "state": worker.state.value,
                "reason": worker.exit_status,
            }
        )

    # ------------------------------------------------------------------ status
    def snapshot(self, history_since: float | None = None) -> schema.Snapshot:
        """The state the control API's `status` returns (see control/schema.py), with the
        history points after `history_since` when that is given."""
        return status.snapshot(self, history_since)

    def install_signal_handlers(self) -> None:
        signals.install(self)

    @property
    def ready(self) -> bool:
        """At least one worker serves, devserve is not stopping and no crash loop is on:
        /readyz's answer (an orchestrator sends traffic elsewhere while workers keep dying)."""
        return (
            not self.stopping
            and not self.crash_loop
            and any(w.serving for w in self.workers.values())
        )


def _settled(workers: list[Worker]) -> bool:
    """Every one of them serves, or one of them is gone."""
    return all(w.serving for w in workers) or any(not w.alive for w in workers)


def _first_failure(workers: list[Worker]) -> Worker | None:
    """The worker that ended a boot: one that is gone, else (on stop) one that is not serving."""
    gone = [w for w in workers if not w.alive]
    return next(iter(gone), None) or next((w for w in workers if not w.serving), None)


def _failure_of(worker: Worker) -> channel.Failed:
    """Why a worker did not start: what it said, else how it ended."""
    return worker.failure or channel.Failed(
        f"{worker.describe()} {worker.exit_status or 'did not start'}"
    )


def _describe(paths: Sequence[str]) -> str:
    shown = [os.path.relpath(path) for path in paths[:3]]
    return ", ".join(shown) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")


def _send(worker: Worker, message: channel.Message) -> bool:
    return worker.channel is not None and worker.channel.send(message)
