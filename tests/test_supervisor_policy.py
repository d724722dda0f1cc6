"""The supervisor's policy, driven in-process through a fake process side (no fork, no signal,
a clock moved by hand): boots, crash loops and their backoff, failed and coalesced restarts,
scaling during a restart, recycling one at a time, reloads that cancel a booting generation, and
its own life as a transition table.

The real process side (processes.ForkServerProcesses) is covered by the tests that start real
servers (test_rolling.py, test_reload.py, test_supervisor_signals.py, test_telemetry_limits.py).
"""

from __future__ import annotations

import asyncio
import functools
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from devserver import channel
from devserver.config import Config
from devserver.supervisor.crash_loop import CrashLoop
from devserver.supervisor.errors import CommandError
from devserver.supervisor.phase import TRANSITIONS, Phase, check_move
from devserver.supervisor.processes import WorkerHooks
from devserver.supervisor.supervisor import Supervisor
from devserver.supervisor.workers import IllegalTransition

# --------------------------------------------------------------------------- the fake side


@dataclass
class FakeChannel:
    sent: list[channel.Message] = field(default_factory=list)
    violation: str | None = None
    closed: bool = False

    def send(self, message: channel.Message) -> bool:
        if self.closed:
            return False
        self.sent.append(message)
        return True

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeTimer:
    when: float
    callback: Callable[[], None]
    _cancelled: bool = False

    def cancel(self) -> None:
        self._cancelled = True

    def cancelled(self) -> bool:
        return self._cancelled


@dataclass
class FakeWorker:
    pid: int
    slot: int
    generation: int
    hooks: WorkerHooks
    channel: FakeChannel = field(default_factory=FakeChannel)
    signals: list[int] = field(default_factory=list)
    gone: bool = False


class FakeProcesses:
    """Starts no process: each spawn is a record the test moves through its life by hand."""

    def __init__(self) -> None:
        self.clock = 1000.0
        self.timers: list[FakeTimer] = []
        self.spawned: list[FakeWorker] = []
        self._next_pid = 100

    # the interface (processes.Processes)
    def spawn(self, slot: int, generation: int, hooks: WorkerHooks) -> int:
        self._next_pid += 1
        self.spawned.append(FakeWorker(self._next_pid, slot, generation, hooks))
        return self._next_pid

    def signal(self, pid: int, signum: int) -> None:
        self.by_pid(pid).signals.append(signum)

    def now(self) -> float:
        return self.clock

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(self.clock + delay, callback)
        self.timers.append(timer)
        return timer

    # what the test does
    def by_pid(self, pid: int) -> FakeWorker:
        return next(w for w in self.spawned if w.pid == pid)

    def alive(self, generation: int | None = None) -> list[FakeWorker]:
        return [
            w
            for w in self.spawned
            if not w.gone and (generation is None or w.generation == generation)
        ]

    def boot(self, worker: FakeWorker) -> None:
        """The worker opens its channel, imports the app and says it is ready."""
        worker.hooks.opened(worker.channel)
        worker.hooks.message(channel.Booting(worker.pid))
        worker.hooks.message(channel.Ready(worker.pid))

    def fail(self, worker: FakeWorker, message: str = "ImportError: no module named 'app'") -> None:
        """The worker reports a startup failure and exits with status 3, as worker.main does."""
        worker.hooks.opened(worker.channel)
        worker.hooks.message(channel.Failed(message))
        self.exit(worker, 3)

    def exit(self, worker: FakeWorker, exitcode: int = 0) -> None:
        worker.gone = True
        worker.channel.closed = True
        worker.hooks.channel_lost()
        worker.hooks.exited(exitcode)

    def advance(self, seconds: float) -> None:
        """Move the clock, firing the timers that fall due on the way, in order."""
        end = self.clock + seconds
        while due := sorted(
            (t for t in self.timers if not t.cancelled() and t.when <= end), key=lambda t: t.when
        ):
            timer = due[0]
            self.timers.remove(timer)
            self.clock = max(self.clock, timer.when)
            timer.callback()
        self.clock = end

    def until_spawn(self, limit: float = 120.0) -> float:
        """Fire timers until one spawns a worker; how long that took on the clock."""
        began, count = self.clock, len(self.spawned)
        while len(self.spawned) == count:
            pending = [t for t in self.timers if not t.cancelled()]
            assert pending, "nothing is planned: no worker will ever be spawned"
            step = min(t.when for t in pending) - self.clock
            assert self.clock + step - began <= limit, f"no spawn within {limit}s"
            self.advance(max(step, 0.0))
        return round(self.clock - began, 3)


def _config(**options: Any) -> Config:
    # The real Watch runs beside these tests on the loop's own clock, reading the fake one: its
    # clocks (boot timeout, heartbeat) are off, so it never acts while time is moved by hand.
    return Config(timeout_boot=0, timeout=0, **options)


class Harness:
    def __init__(self, workers: int, reloading: bool = False, **options: Any) -> None:
        self.fake = FakeProcesses()
        self.events: list[dict[str, Any]] = []
        self.supervisor = Supervisor(
            _config(**options),
            [],
            workers,
            publish=self.events.append,
            reloading=reloading,
            processes=self.fake,
        )
        self.run: asyncio.Task[bool] | None = None

    async def start(self) -> None:
        self.run = asyncio.get_running_loop().create_task(self.supervisor.run())
        await settle(lambda: len(self.fake.spawned) == self.supervisor.target, "the first spawns")

    async def serving(self) -> None:
        await self.start()
        for worker in self.fake.alive():
            self.fake.boot(worker)
        await settle(lambda: self.supervisor.phase is Phase.SERVING, "serving")

    def crash_the_newest(self, times: int) -> None:
        """The newest worker dies at once, `times` times over, each replaced when its wait is
        over (the others keep serving)."""
        for _ in range(times):
            self.fake.exit(self.fake.alive()[-1], 1)
            if len(self.fake.alive()) < self.supervisor.target:
                self.fake.until_spawn()

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] == kind]

    async def stop(self) -> bool:
        self.supervisor.stop(fast=True)
        for worker in self.fake.alive():
            self.fake.exit(worker)
        assert self.run is not None
        return await asyncio.wait_for(self.run, 5)


async def settle(predicate: Callable[[], object], what: str, turns: int = 200) -> None:
    """Let the loop run the supervisor's tasks until `predicate` holds; no clock involved (the
    loop runs nothing but this test), so a bound on the turns is the deadline."""
    for _ in range(turns):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never reached: {what}")


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 10))


def sent(worker: FakeWorker, kind: type) -> list[channel.Message]:
    return [m for m in worker.channel.sent if isinstance(m, kind)]


# --------------------------------------------------------------------------- its own life


@pytest.mark.parametrize("old", list(Phase), ids=lambda p: p.value)
@pytest.mark.parametrize("new", list(Phase), ids=lambda p: p.value)
def test_only_phase_moves_in_the_table_are_allowed(old: Phase, new: Phase) -> None:
    """check_move accepts exactly the moves the table lists and raises for the rest."""
    if new in TRANSITIONS[old]:
        assert check_move(old, new) is new
    else:
        with pytest.raises(IllegalTransition):
            check_move(old, new)


def test_every_phase_can_reach_stopped() -> None:
    """No phase is a dead end: from each, some path leads to STOPPED."""
    for start in Phase:
        seen, todo = {start}, [start]
        while todo:
            for nxt in TRANSITIONS[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        assert Phase.STOPPED in seen, start


def test_a_graceful_then_fast_stop_walks_the_phases() -> None:
    """Booting, serving, draining (workers told to drain), closing (told to stop), stopped."""

    async def scenario() -> None:
        h = Harness(workers=2)
        await h.start()
        assert h.supervisor.phase is Phase.BOOTING
        with pytest.raises(CommandError, match="still starting"):
            h.supervisor.restart()
        for worker in h.fake.alive():
            h.fake.boot(worker)
        await settle(lambda: h.supervisor.phase is Phase.SERVING, "serving")
        assert all(sent(w, channel.Serve) for w in h.fake.alive())
        assert h.supervisor.stop() == {"stopping": "graceful"}
        assert h.supervisor.phase is Phase.DRAINING
        # stopping: idle keep-alive connections close at once (no grace for one more request)
        assert all(sent(w, channel.Drain) == [channel.Drain(0)] for w in h.fake.alive())
        with pytest.raises(CommandError, match="stopping"):
            h.supervisor.scale(3)
        assert h.supervisor.stop() == {"stopping": "fast"}
        assert h.supervisor.phase is Phase.CLOSING and h.supervisor.fast
        assert all(sent(w, channel.Stop) for w in h.fake.alive())
        for worker in h.fake.alive():
            h.fake.exit(worker)
        assert h.run is not None and await h.run is True
        assert h.supervisor.phase is Phase.STOPPED

    run(scenario)


@pytest.mark.parametrize("retrying", [False, True], ids=["booting", "retrying"])
def test_a_stop_before_anything_served_is_a_clean_stop(retrying: bool) -> None:
    """Ctrl-C while the first workers boot, or while --reload waits for a fix: the starting
    workers are killed and devserve ends without a startup failure."""

    async def scenario() -> None:
        h = Harness(workers=1, reloading=True)
        await h.start()
        if retrying:
            h.fake.fail(h.fake.alive()[0])
            await settle(lambda: h.supervisor.phase is Phase.RETRYING, "retrying")
            h.supervisor.reload(["app.py"], None)
            await settle(lambda: h.fake.alive(generation=2), "generation 2 spawned")
        h.supervisor.stop()
        [starting] = h.fake.alive()
        await settle(lambda: signal.SIGKILL in starting.signals, "the starting worker killed")
        h.fake.exit(starting, -signal.SIGKILL)
        assert h.run is not None and await h.run is True
        assert h.supervisor.startup_failure is None and h.supervisor.phase is Phase.STOPPED

    run(scenario)


def test_a_first_boot_that_fails_ends_devserve_with_the_failure() -> None:
    """Without --reload, a worker that cannot import the app ends the run with its message."""

    async def scenario() -> None:
        h = Harness(workers=2)
        await h.start()
        first, second = h.fake.alive()
        h.fake.fail(first, "ModuleNotFoundError: No module named 'nope'")
        await settle(lambda: second.signals, "the other worker killed")
        assert signal.SIGKILL in second.signals  # still starting: killed, not drained
        h.fake.exit(second, -signal.SIGKILL)
        assert h.run is not None and await h.run is False
        assert h.supervisor.startup_failure is not None
        assert "No module named 'nope'" in h.supervisor.startup_failure.message
        assert h.supervisor.phase is Phase.STOPPED and not h.supervisor.booted

    run(scenario)


def test_with_reload_a_failed_first_boot_waits_for_a_fix() -> None:
    """With --reload the failure is shown and devserve retries; the next change that boots
    serves, and only then is devserve serving."""

    async def scenario() -> None:
        h = Harness(workers=1, reloading=True)
        await h.start()
        h.fake.fail(h.fake.alive()[0])
        await settle(lambda: h.supervisor.phase is Phase.RETRYING, "retrying")
        assert h.supervisor.last_failure is not None
        assert h.supervisor.snapshot()["server"]["state"] == "failed"
        assert h.supervisor.reload(["app.py"], None) == {"reload": "started"}
        await settle(lambda: h.fake.alive(generation=2), "generation 2 spawned")
        h.fake.boot(h.fake.alive(generation=2)[0])
        await settle(lambda: h.supervisor.phase is Phase.SERVING, "serving")
        assert h.supervisor.last_failure is None and h.supervisor.generation == 2
        await h.stop()

    run(scenario)


def test_the_dashboard_line_is_logged_once_even_when_the_first_boot_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With --reload and a broken app, the dashboard's address is logged beside the error page
    (the dashboard says why), and not again when a fixed generation serves."""

    async def scenario() -> None:
        h = Harness(workers=1, reloading=True)
        h.supervisor.also_serving.append("dashboard: http://127.0.0.1:9/")
        await h.start()
        h.fake.fail(h.fake.alive()[0])
        await settle(lambda: h.supervisor.phase is Phase.RETRYING, "retrying")
        h.supervisor.reload(["app.py"], None)
        await settle(lambda: h.fake.alive(generation=2), "generation 2 spawned")
        h.fake.boot(h.fake.alive(generation=2)[0])
        await settle(lambda: h.supervisor.phase is Phase.SERVING, "serving")
        await h.stop()

    with caplog.at_level("INFO", logger="devserve.supervisor"):
        run(scenario)
    lines = [r.getMessage() for r in caplog.records]
    assert lines.count("dashboard: http://127.0.0.1:9/") == 1
    assert lines.index("dashboard: http://127.0.0.1:9/") < next(
        i for i, line in enumerate(lines) if "generation 2 serving" in line
    )


def test_a_change_during_the_first_boot_replaces_the_booting_generation() -> None:
    """A reload asked for while the first workers boot is queued; once they settle, the
    booting ones (old code) are dropped and a generation with the new code boots."""

    async def scenario() -> None:
        h = Harness(workers=1, reloading=True)
        await h.start()
        booting = h.fake.alive()[0]
        assert h.supervisor.reload(["app.py"], None) == {"reload": "queued"}
        await settle(lambda: h.fake.alive(generation=2), "generation 2 spawned")
        assert signal.SIGKILL in booting.signals
        assert h.supervisor.phase is Phase.RETRYING
        h.fake.exit(booting, -signal.SIGKILL)
        h.fake.boot(h.fake.alive(generation=2)[0])
        await settle(lambda: h.supervisor.phase is Phase.SERVING, "serving")
        assert h.supervisor.generation == 2
        await h.stop()

    run(scenario)


# --------------------------------------------------------------------------- crash loop


def test_respawn_waits_grow_then_a_crash_loop_doubles_them_up_to_30s() -> None:
    """Deaths 1-4 wait 0, 0.25, 0.5 and 1 s; the fifth begins a crash loop (event, /readyz
    fails), and each worker that dies before serving doubles the wait: 4, 8, 16, 30, 30."""

    async def scenario() -> None:
        h = Harness(workers=2)
        await h.serving()
        waits = []
        for _ in range(9):
            victim = h.fake.alive()[-1]  # the newest; the other keeps serving
            h.fake.exit(victim, 1)
            waits.append(0.0 if len(h.fake.alive()) == 2 else h.fake.until_spawn())
        assert waits == [0.0, 0.25, 0.5, 1.0, 4.0, 8.0, 16.0, 30.0, 30.0]
        assert h.supervisor.crash_loop and not h.supervisor.ready
        [event] = h.kinds("crash_loop")
        assert "died 5 times" in event["message"]
        assert h.supervisor.snapshot()["server"]["crash_loop"] is True
        await h.stop()

    run(scenario)


def test_while_nobody_serves_a_crash_loop_waits_at_most_5s() -> None:
    """With no worker left serving (every request gets a 503), respawns are never held back
    longer than MAX_BACKOFF, however long the crash loop."""

    async def scenario() -> None:
        h = Harness(workers=1)
        await h.serving()
        waits = []
        for _ in range(8):
            h.fake.exit(h.fake.alive()[0], 1)
            waits.append(0.0 if h.fake.alive() else h.fake.until_spawn())
        assert h.supervisor.crash_loop
        assert max(waits) == 5.0, waits
        await h.stop()

    run(scenario)


def test_a_worker_that_served_a_while_is_replaced_without_doubling_the_wait() -> None:
    """In a crash loop, a worker that served longer than the wait before it (killed under
    load, say) does not double the backoff."""

    async def scenario() -> None:
        h = Harness(workers=2)
        await h.serving()
        h.crash_the_newest(5)
        assert h.supervisor.crash_loop
        newest = h.fake.alive()[-1]
        h.fake.boot(newest)
        h.fake.advance(6.0)  # serves 6 s: longer than the 4 s wait that came before it
        h.fake.exit(newest, 1)
        assert h.fake.until_spawn() == 4.0
        await h.stop()

    run(scenario)


def test_a_crash_loop_ends_after_workers_serve_10s_without_dying() -> None:
    """Once the replacement has served RECOVERED_AFTER with no death, the loop is over and
    /readyz is ready again; not a moment before."""

    async def scenario() -> None:
        h = Harness(workers=2)
        await h.serving()
        h.crash_the_newest(5)
        assert h.supervisor.crash_loop
        h.fake.boot(h.fake.alive()[-1])
        h.fake.advance(9.9)
        assert h.supervisor.crash_loop
        h.fake.advance(0.2)
        assert not h.supervisor.crash_loop and h.supervisor.ready
        await h.stop()

    run(scenario)


def test_a_crash_loop_ends_10s_after_a_slow_replacement_is_ready() -> None:
    """A replacement still booting when the recovery check comes (fewer serve than the target)
    does not end the loop; once it is ready, it ends the loop after serving 10 s."""

    async def scenario() -> None:
        h = Harness(workers=2)
        await h.serving()
        h.crash_the_newest(5)
        slow = h.fake.alive()[-1]
        h.fake.advance(15.0)  # the recovery check at the last death + 10 s finds one serving
        assert h.supervisor.crash_loop
        h.fake.boot(slow)
        h.fake.advance(9.9)
        assert h.supervisor.crash_loop
        h.fake.advance(0.2)
        assert not h.supervisor.crash_loop
        await h.stop()

    run(scenario)


def test_crash_loop_recovery_counts_from_the_newest_worker_or_the_last_death() -> None:
    """CrashLoop on its own: the loop is over 10 s after the later of the newest serving
    worker's start and the last death, and never while fewer than the target serve."""
    crashes = CrashLoop()
    for second in range(5):
        crashes.death(now=100.0 + second, served=0.0, someone_serves=True)
    assert crashes.on and crashes.next_look() == 114.0
    assert crashes.recovered_in(now=110.0, serving_since=[50.0], target=2) is None
    assert crashes.recovered_in(now=110.0, serving_since=[50.0, 90.0], target=2) == 4.0
    assert crashes.recovered_in(now=110.0, serving_since=[50.0, 108.0], target=2) == 8.0
    crashes.end()
    assert not crashes.on and crashes.next_look() is None


def test_scaling_ends_a_crash_loop() -> None:
    """The operator acting (scale, restart) means try again: earlier deaths count no more."""

    async def scenario() -> None:
        h = Harness(workers=2)
        await h.serving()
        h.crash_the_newest(5)
        assert h.supervisor.crash_loop
        h.supervisor.scale(3)
        assert not h.supervisor.crash_loop
        h.fake.exit(h.fake.alive()[-1], 1)  # one death after: no wait, no loop
        assert len(h.fake.alive()) == 3 and not h.supervisor.crash_loop
        await h.stop()

    run(scenario)


def test_deaths_the_supervisor_asked_for_are_not_crashes() -> None:
    """A kill from the operator and a channel protocol violation replace the worker at once
    and never count toward a crash loop."""

    async def scenario() -> None:
        h = Harness(workers=1)
        await h.serving()
        for _ in range(6):
            worker = h.fake.alive()[0]
            h.supervisor.kill(worker.pid)
            assert signal.SIGKILL in worker.signals
            h.fake.exit(worker, -signal.SIGKILL)
            assert len(h.fake.alive()) == 1  # replaced at once
            h.fake.boot(h.fake.alive()[0])
        broken = h.fake.alive()[0]
        broken.channel.violation = "a 99999999-byte frame"
        broken.hooks.channel_lost()
        assert sent(broken, channel.Drain)
        assert len(h.fake.alive()) == 2  # its replacement starts while it drains
        h.fake.exit(broken)
        assert not h.supervisor.crash_loop and not h.kinds("crash_loop")
        await h.stop()

    run(scenario)


def test_a_shorter_respawn_wait_replaces_a_longer_one_already_planned() -> None:
    """When the last worker dies, its short wait must not queue behind a longer one."""

    async def scenario() -> None:
        h = Harness(workers=1)
        await h.serving()
        planned = []
        for delay in (30.0, 5.0, 20.0):
            h.supervisor._reconcile_later(delay)
            live = [t for t in h.fake.timers if not t.cancelled()]
            planned.append([round(t.when - h.fake.clock) for t in live])
        assert planned == [[30], [5], [5]]
        await h.stop()

    run(scenario)


# --------------------------------------------------------------------------- restarts


def test_a_failed_generation_is_dropped_and_the_old_one_keeps_serving() -> None:
    """When one worker of a new generation fails, the rest of it is killed, the old workers
    never hear of it, the failure is published, and the generation number stays."""

    async def scenario() -> None:
        h = Harness(workers=2)
        await h.serving()
        old = h.fake.alive(generation=1)
        assert h.supervisor.restart() == {"restart": "started"}
        await settle(lambda: len(h.fake.alive(generation=2)) == 2, "generation 2 spawned")
        bad, other = h.fake.alive(generation=2)
        h.fake.boot(other)
        assert not sent(other, channel.Serve)  # held until its whole generation is ready
        h.fake.fail(bad, "RuntimeError: boom")
        await settle(lambda: not h.supervisor.restarting, "the restart over")
        assert sent(other, channel.Drain) and not sent(other, channel.Serve)
        assert all(not sent(w, channel.Drain) for w in old)
        assert h.supervisor.generation == 1 and h.supervisor.ready
        [failed] = [e for e in h.kinds("restart") if e["phase"] == "failed"]
        assert failed["generation"] == 2 and failed["message"] == "RuntimeError: boom"
        await h.stop()

    run(scenario)


def test_restarts_asked_for_during_a_restart_coalesce_into_one_more() -> None:
    """Three restarts while one runs: that one finishes, exactly one more follows."""

    async def scenario() -> None:
        h = Harness(workers=1)
        await h.serving()
        assert h.supervisor.restart() == {"restart": "started"}
        assert h.supervisor.restart() == {"restart": "queued"}
        assert h.supervisor.restart() == {"restart": "queued"}
        assert h.supervisor._restart_again == "restart"
        for generation in (2, 3):
            await settle(functools.partial(h.fake.alive, generation), f"generation {generation}")
            h.fake.boot(h.fake.alive(generation=generation)[0])
            [old] = h.fake.alive(generation=generation - 1)
            await settle(
                functools.partial(sent, old, channel.Drain), f"generation {generation - 1} drained"
            )
            h.fake.exit(old)
        await settle(lambda: not h.supervisor.restarting, "the restarts over")
        assert h.supervisor.generation == 3
        assert max(w.generation for w in h.fake.spawned) == 3
        assert len(h.fake.alive()) == 1
        await h.stop()

    run(scenario)


def test_scaling_during_a_restart_lands_in_the_new_generation() -> None:
    """Scale from 2 to 3 while generation 2 boots: once it serves, 3 workers of generation 2
    serve and generation 1 is drained."""

    async def scenario() -> None:
        h = Harness(workers=2)
        await h.serving()
        h.supervisor.restart()
        await settle(lambda: len(h.fake.alive(generation=2)) == 2, "generation 2 spawned")
        h.supervisor.scale(3)
        for worker in h.fake.alive():
            if not sent(worker, channel.Serve):
                h.fake.boot(worker)
        await settle(lambda: h.supervisor.generation == 2, "generation 2 serving")
        await settle(lambda: len(h.fake.alive(generation=2)) == 3, "a third worker")
        h.fake.boot(h.fake.alive(generation=2)[-1])
        assert all(sent(w, channel.Drain) for w in h.fake.alive(generation=1))
        serving = [w for w in h.supervisor.workers.values() if w.serving and w.generation == 2]
        assert len(serving) == 3 and h.supervisor.target == 3
        await h.stop()

    run(scenario)


def test_a_reload_cancels_a_generation_still_booting_old_code() -> None:
    """A second change while the first change's generation boots: that generation is killed
    (it imported the older code), a newer one boots and serves, and the old generation stops
    accepting before the new one starts."""

    async def scenario() -> None:
        h = Harness(workers=1, reloading=True)
        await h.serving()
        h.supervisor.reload(["a.py"], None)
        await settle(lambda: h.fake.alive(generation=2), "generation 2 spawned")
        superseded = h.fake.alive(generation=2)[0]
        h.supervisor.reload(["b.py"], None)
        await settle(lambda: h.fake.alive(generation=3), "generation 3 spawned")
        assert signal.SIGKILL in superseded.signals
        [cancelled] = [e for e in h.kinds("reload") if e["phase"] == "cancelled"]
        assert cancelled["generation"] == 2
        h.fake.exit(superseded, -signal.SIGKILL)
        newest = h.fake.alive(generation=3)[0]
        h.fake.boot(newest)
        [old] = h.fake.alive(generation=1)
        await settle(functools.partial(sent, old, channel.Drain), "generation 1 drained")
        assert sent(old, channel.Drain)[0] == channel.Drain(0)  # idle connections close now
        assert not sent(newest, channel.Serve)  # waits for the old code to stop accepting
        old.hooks.message(channel.Drained())
        await settle(lambda: sent(newest, channel.Serve), "generation 3 serving")
        assert h.supervisor.generation == 3
        await h.stop()

    run(scenario)


# --------------------------------------------------------------------------- recycling


def test_workers_over_their_memory_limit_recycle_one_at_a_time() -> None:
    """Three workers over --max-worker-memory: one is replaced (its replacement serves before
    it drains), and the next only after it has gone."""

    async def scenario() -> None:
        h = Harness(workers=3, max_worker_memory=100)
        await h.serving()
        for worker in h.supervisor.workers.values():
            worker.rss = 200 * 1024 * 1024
        h.supervisor.watch._check_recycling(h.fake.now())
        retiring = [w for w in h.supervisor.workers.values() if w.retiring]
        assert len(retiring) == 1 and "--max-worker-memory" in (retiring[0].retiring or "")
        first = h.fake.by_pid(retiring[0].pid)
        replacement = h.fake.alive()[-1]
        assert replacement.pid not in {w.pid for w in h.fake.spawned[:3]}
        assert not sent(first, channel.Drain)  # until its replacement serves
        h.fake.boot(replacement)
        assert sent(first, channel.Drain)
        h.supervisor.watch._check_recycling(h.fake.now())
        assert len(h.fake.spawned) == 4  # the first one still drains: nobody else retires
        h.fake.exit(first)
        h.supervisor.watch._check_recycling(h.fake.now())
        assert len(h.fake.spawned) == 5
        await h.stop()

    run(scenario)
