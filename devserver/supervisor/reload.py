"""--reload: watch the app's files with watchfiles and tell the supervisor what changed.

Runs in the supervisor process, never in a worker, and never polls. What is watched: every
directory under the roots (--reload-dir, default --app-dir) that no exclude pattern prunes, each
one watched on its own (not recursively), so that a .venv or node_modules costs no inotify watch
at all; a directory created later is picked up by restarting the watcher. What counts: a changed
path that matches an include pattern and no exclude pattern, or one of the named files (the
config file, --env-file) wherever it lives. Every change seen within --reload-delay of the first
one goes into the same reload, so an editor's multi-file save is one reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pathspec
import watchfiles

from devserver.config import RELOAD_EXCLUDE, RELOAD_INCLUDE, Config

logger = logging.getLogger("devserve.supervisor")

STEP_MS = 10  # how often watchfiles' thread hands over what it saw; grouping is ours (delay)
MTIME_SLACK = 0.05  # file times tick coarser than the clock: look this much further back
HUGE = 5000  # directories: past this many, say how to narrow the watch


@dataclass(frozen=True)
class WatchSet:
    """Which paths --reload watches and which of their changes count."""

    roots: tuple[str, ...]
    include_patterns: tuple[str, ...]
    exclude_patterns: tuple[str, ...]
    files: frozenset[str]  # absolute paths that count wherever they are
    _include: pathspec.GitIgnoreSpec = field(init=False, repr=False, compare=False)
    _exclude: pathspec.GitIgnoreSpec = field(init=False, repr=False, compare=False)

    @classmethod
    def from_config(cls, config: Config, config_file: str | None = None) -> WatchSet:
        roots = tuple(_absolute(d) for d in (config.reload_dir or (config.app_dir,)))
        files = {_absolute(f) for f in (config_file, config.env_file) if f}
        return cls(
            roots=tuple(dict.fromkeys(roots)),
            include_patterns=(*RELOAD_INCLUDE, *config.reload_include),
            exclude_patterns=(*RELOAD_EXCLUDE, *config.reload_exclude),
            files=frozenset(files),
        )

    def __post_init__(self) -> None:
        # compiled once; the dataclass is frozen, hence object.__setattr__
        object.__setattr__(
            self, "_include", pathspec.GitIgnoreSpec.from_lines(self.include_patterns)
        )
        object.__setattr__(
            self, "_exclude", pathspec.GitIgnoreSpec.from_lines(self.exclude_patterns)
        )

    def counts(self, path: str) -> bool:
        """A change to this file should reload."""
        path = _absolute(path)
        if path in self.files:
            return True
        relative = self._relative(path)
        if relative is None:
            return False
        return bool(self._include.match_file(relative)) and not self._exclude.match_file(relative)

    def pruned(self, directory: str) -> bool:
        """Nothing under this directory is watched."""
        relative = self._relative(_absolute(directory))
        return relative is None or bool(self._exclude.match_file(relative + "/"))

    def directories(self) -> list[str]:
        """Every directory to watch: the unpruned tree under each root, and the named files'."""
        found = dict.fromkeys(d for root in self.roots for d in self._walk(root))
        for path in sorted(self.files):
            found.setdefault(os.path.dirname(path))
        return list(found)

    def matching_files(self, under: str | None = None) -> list[str]:
        """The files that exist now and would trigger a reload, all of them or under a directory."""
        found: list[str] = []
        for directory in self.directories() if under is None else self._walk(under):
            with contextlib.suppress(OSError), os.scandir(directory) as entries:
                found.extend(e.path for e in entries if e.is_file() and self.counts(e.path))
        return sorted(set(found))

    def warn_if_huge(self, directories: Sequence[str]) -> None:
        if len(directories) > HUGE:
            logger.warning(
                "--reload watches %d directories under %s: narrow it with --reload-dir or "
                "--reload-exclude (devserve --print-watch shows what is watched)",
                len(directories),
                ", ".join(self.roots),
            )

    def _relative(self, path: str) -> str | None:
        for root in self.roots:
            if path == root:
                return "."
            if path.startswith(root.rstrip(os.sep) + os.sep):
                return os.path.relpath(path, root).replace(os.sep, "/")
        return None

    def _walk(self, root: str) -> Iterator[str]:
        if not os.path.isdir(root):
            return
        yield root
        stack = [root]
        while stack:
            with contextlib.suppress(OSError), os.scandir(stack.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False) and not self.pruned(entry.path):
                        yield entry.path
                        stack.append(entry.path)


class Reloader:
    """Watches a WatchSet and calls `on_change(paths, first_seen)` once per group of changes."""

    def __init__(
        self,
        watch_set: WatchSet,
        delay: float,
        on_change: Callable[[list[str], float], None],
    ) -> None:
        self.watch_set = watch_set
        self.delay = delay
        self.on_change = on_change
        self.ready = asyncio.Event()  # set once the first watcher is in place
        self._pending: dict[str, None] = {}
        self._first_seen = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._stop = asyncio.Event()

    async def run(self) -> None:
        """Watch until closed. A new directory needs a new watcher (each directory is watched on
        its own); what changed while none watched is found by its mtime, once the next one is in
        place, and the new directories' files count as changed (they may have been moved in)."""
        since: float | None = None  # when the previous watcher last reported
        grown: list[str] = []
        while not self._stop.is_set():
            directories = await asyncio.to_thread(self.watch_set.directories)
            if not self.ready.is_set():
                self.watch_set.warn_if_huge(directories)
            changes_seen = watchfiles.awatch(
                *directories,
                watch_filter=None,
                recursive=False,
                step=STEP_MS,
                stop_event=self._stop,
                ignore_permission_denied=True,
            )
            # awatch builds its watcher in the first step of the first anext(), synchronously,
            # and keeps what it sees between our reads: once that step ran, nothing is missed
            following = asyncio.ensure_future(anext(changes_seen))
            await asyncio.sleep(0)
            if following.done() and isinstance(following.exception(), FileNotFoundError):
                continue  # a directory vanished between the walk and the watch: walk again
            self._announce(directories)
            if since is not None:
                missed = await asyncio.to_thread(self._missed, directories, grown, since)
                for path in missed:
                    self._note(path)
            try:
                since, grown = await self._follow(changes_seen, following)
            except FileNotFoundError:
                continue
            finally:
                await changes_seen.aclose()

    def close(self) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.cancel()

    def _announce(self, directories: list[str]) -> None:
        if self.ready.is_set():
            return
        self.ready.set()
        logger.info(
            "reload: watching %d director%s under %s for %s",
            len(directories),
            "y" if len(directories) == 1 else "ies",
            ", ".join(_shown(root) for root in self.watch_set.roots),
            ", ".join(self.watch_set.include_patterns),
        )

    async def _follow(
        self, changes_seen: AsyncIterator[set[tuple[watchfiles.Change, str]]], following: Any
    ) -> tuple[float, list[str]]:
        """Note changes until a directory appears: then when that was, and the new directories."""
        while True:
            try:
                changes = await following
            except StopAsyncIteration:  # closed
                return time.time(), []
            seen = time.time() - MTIME_SLACK
            grown = []
            for change, path in changes:
                if change is watchfiles.Change.added and os.path.isdir(path):
                    if not self.watch_set.pruned(path):
                        grown.append(path)
                elif self.watch_set.counts(path):
                    self._note(path)
            if grown:
                return seen, grown
            following = asyncio.ensure_future(anext(changes_seen))

    def _missed(self, directories: list[str], grown: list[str], since: float) -> list[str]:
        """Files that count and changed since `since`, plus every file under new directories."""
        found = [path for directory in grown for path in self.watch_set.matching_files(directory)]
        for directory in directories:
            with contextlib.suppress(OSError), os.scandir(directory) as entries:
                for entry in entries:
                    with contextlib.suppress(OSError):
                        if entry.is_file() and entry.stat().st_mtime >= since:
                            found.append(entry.path)
        return [path for path in dict.fromkeys(found) if self.watch_set.counts(path)]

    def _note(self, path: str) -> None:
        if not self._pending:
            self._first_seen = time.monotonic()
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.delay, self._fire)
        self._pending[path] = None

    def _fire(self) -> None:
        self._timer = None
        changed, self._pending = list(self._pending), {}
        self.on_change(changed, self._first_seen)


def _shown(path: str) -> str:
    relative = os.path.relpath(path)
    return relative if not relative.startswith("..") else path


def _absolute(path: str) -> str:
    return os.path.abspath(os.fspath(Path(path)))
