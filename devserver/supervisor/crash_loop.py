"""The crash-loop policy: how long to wait before replacing a worker that died unexpectedly,
when deaths come fast enough to be a crash loop, and when the loop is over.

    deaths in CRASH_WINDOW   wait before the respawn
    1                        none
    2, 3, 4                  0.25 s, 0.5 s, 1 s (MAX_BACKOFF at most)
    CRASH_LIMIT or more      a crash loop: 2 s, doubling with each worker that dies before it
                             has served as long as the wait before it, up to CRASH_LOOP_BACKOFF
                             (MAX_BACKOFF while no worker serves: every request gets a 503 then)

A crash loop never gives up (a burst of deaths, from the OOM killer or a dependency down for a
minute, must not leave devserve dead until a person acts): it ends once the target number of
workers serve and the newest of them has served RECOVERED_AFTER seconds with no death since, or
when the operator restarts or scales.
Pure bookkeeping on times the caller passes in: no clock, no processes, no logging.
"""

from __future__ import annotations

import collections

CRASH_WINDOW = 30.0  # seconds over which unexpected deaths are counted
CRASH_LIMIT = 5  # that many deaths within the window is a crash loop: respawn slowly
MAX_BACKOFF = 5.0  # the longest wait before a respawn outside a crash loop
CRASH_LOOP_BACKOFF = 30.0  # the longest wait in a crash loop
RECOVERED_AFTER = 10.0  # a crash loop ends once workers have served this long with no death


class CrashLoop:
    def __init__(self) -> None:
        self.on = False
        self._deaths: collections.deque[float] = collections.deque()
        self._loop_deaths = 0  # quick deaths since the loop began: its backoff doubles with them

    @property
    def recent_deaths(self) -> int:
        return len(self._deaths)

    def death(self, now: float, served: float, someone_serves: bool) -> float:
        """Count a death at `now` of a worker that had served `served` seconds; the wait
        before its replacement. Check `on` afterwards: this death may have begun a loop."""
        self._deaths.append(now)
        while self._deaths and now - self._deaths[0] > CRASH_WINDOW:
            self._deaths.popleft()
        deaths = len(self._deaths)
        if deaths >= CRASH_LIMIT:
            self.on = True
        if not self.on:
            return min(0.25 * 2 ** (deaths - 2), MAX_BACKOFF) if deaths > 1 else 0.0
        if served < self.backoff():
            # it died sooner than the wait before it: respawning faster would only burn the
            # machine; one that served longer (killed under load, say) is replaced as fast
            self._loop_deaths += 1
        if not someone_serves:
            # nobody serves (every request gets the 503 page): the long waits are for sparing
            # the machine while other workers carry the load, not for this
            return min(self.backoff(), MAX_BACKOFF)
        return self.backoff()

    def backoff(self) -> float:
        """The wait before a respawn in a crash loop: 2 s, doubling with each quick death."""
        return min(2.0 ** (self._loop_deaths + 1), CRASH_LOOP_BACKOFF)

    def next_look(self) -> float | None:
        """In a loop, when to look again for recovery: RECOVERED_AFTER after the last death."""
        if not self.on or not self._deaths:
            return None
        return self._deaths[-1] + RECOVERED_AFTER

    def recovered_in(self, now: float, serving_since: list[float], target: int) -> float | None:
        """Seconds until the loop is over (0 or less: over now), given since when each serving
        worker serves; None while fewer than `target` serve (a respawn still waits, and the
        next worker to be ready asks again). Over means the newest of them has served
        RECOVERED_AFTER, and nobody died meanwhile: a worker that served all along does not
        end the loop while its peers keep dying, nor does the quiet of a long backoff."""
        if len(serving_since) < target:
            return None
        since = max([*serving_since, *([self._deaths[-1]] if self._deaths else [])])
        return since + RECOVERED_AFTER - now

    def end(self) -> None:
        """Deaths before now count no more (a restart, a scale, or workers that stay up)."""
        self.on = False
        self._deaths.clear()
        self._loop_deaths = 0
