"""The supervisor's side effects, behind one small interface: start a worker, signal it, learn
that it ended, read the clock, wait. supervisor.py decides; this module does.

`Processes` is what the policy needs; `ForkServerProcesses` is the real thing (a fork server,
a channel socket per worker, the loop's reader on the process sentinel). Tests drive the policy
with a fake that starts no process and moves its clock by hand (tests/test_supervisor_policy.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from devserver import channel
from devserver.config import Config
from devserver.sockets import Listener
from devserver.supervisor import spawn
from devserver.supervisor.output import capture
from devserver.supervisor.workers import WorkerChannel
from devserver.worker import WorkerSpec

CHANNEL_LINGER = 1.0  # after a worker exits, how long its last messages may take to arrive


@dataclass(frozen=True)
class WorkerHooks:
    """What the supervisor wants to hear about one worker, in the order it happens."""

    opened: Callable[[WorkerChannel], None]  # before its first message: Ready needs an answer
    message: Callable[[channel.Message], None]
    channel_lost: Callable[[], None]  # EOF, or the worker broke the channel's protocol
    exited: Callable[[int | None], None]  # the exit code (-N: signal N), after its last words


class Timer(Protocol):
    when: float  # on the clock of `Processes.now`

    def cancel(self) -> None: ...

    def cancelled(self) -> bool: ...


class Processes(Protocol):
    """The process side of the supervisor, so that its policy runs without processes."""

    def spawn(self, slot: int, generation: int, hooks: WorkerHooks) -> int:
        """Start a worker; returns its pid. Everything after comes through `hooks`, never
        before this returns (the supervisor learns the pid from it)."""
        ...

    def signal(self, pid: int, signum: int) -> None:
        """Send a signal; a worker already gone is not an error (its exit is on its way)."""
        ...

    def now(self) -> float:
        """Seconds on time.monotonic's clock (the reloader's `seen_at` is on it too)."""
        ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer: ...


@dataclass
class _LoopTimer:
    when: float
    handle: asyncio.TimerHandle

    def cancel(self) -> None:
        self.handle.cancel()

    def cancelled(self) -> bool:
        return self.handle.cancelled()


class ForkServerProcesses:
    """Workers forked by the fork server (spawn.py), each with a channel socket pair."""

    def __init__(
        self,
        config: Config,
        listeners: list[Listener],
        reloading: bool,
        publish: Callable[[dict[str, Any]], None],
        capture_output: bool = False,
    ) -> None:
        self.config = config
        self.listeners = listeners
        self.reloading = reloading
        self.publish = publish
        # the in-process panel owns the terminal: workers' output becomes `log` events
        self.capture_output = capture_output
        # the workers' loop tasks (opening a channel and capturing its output, reading a
        # worker's last messages), held so none is garbage-collected while it runs
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, slot: int, generation: int, hooks: WorkerHooks) -> int:
        ours, theirs = socket.socketpair()
        output = socket.socketpair() if self.capture_output else None
        spec = WorkerSpec(
            self.config,
            self.listeners,
            theirs,
            slot,
            generation,
            self.reloading,
            output[1] if output else None,
            forward_logs=not self.capture_output,  # captured output has these lines already
        )
        try:
            process = spawn.spawn(spec)
        finally:
            theirs.close()
            if output:
                output[1].close()
        pid = process.pid
        assert pid is not None  # known once start() returned
        closed = asyncio.Event()  # EOF from the worker: its last message has arrived
        loop = asyncio.get_running_loop()
        loop.add_reader(process.sentinel, self._on_exit, process, closed, hooks)
        channel = self._open_channel(pid, slot, ours, output[0] if output else None, closed, hooks)
        # on the next loop turn, not now: under an eager task factory (Textual installs one on
        # 3.12+) the task would run at once and call the hooks before the caller has the pid
        loop.call_soon(lambda: self._hold(loop.create_task(channel)))
        return pid

    def _hold(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open_channel(
        self,
        pid: int,
        slot: int,
        sock: socket.socket,
        output: socket.socket | None,
        closed: asyncio.Event,
        hooks: WorkerHooks,
    ) -> None:
        def lost() -> None:
            closed.set()
            hooks.channel_lost()

        await channel.open_channel(sock, hooks.message, lost, hooks.opened)
        if output is not None:
            await capture(output, pid, slot, self.publish)

    def _on_exit(self, process: BaseProcess, closed: asyncio.Event, hooks: WorkerHooks) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(process.sentinel)
        self._hold(loop.create_task(self._after_exit(process, closed, hooks)))

    async def _after_exit(
        self, process: BaseProcess, closed: asyncio.Event, hooks: WorkerHooks
    ) -> None:
        """Read what the worker said last (its Failed message may still be in the socket)."""
        with contextlib.suppress(TimeoutError):
            # EOF comes when the process is gone, unless a child it started holds the socket
            await asyncio.wait_for(closed.wait(), CHANNEL_LINGER)
        process.join(0)
        exitcode = process.exitcode
        process.close()
        hooks.exited(exitcode)

    def signal(self, pid: int, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # already gone: its exit is on its way
            os.kill(pid, signum)

    def now(self) -> float:
        return time.monotonic()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        handle = asyncio.get_running_loop().call_later(delay, callback)
        return _LoopTimer(self.now() + delay, handle)
