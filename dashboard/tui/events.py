"""The events pane's lines: what each control-API event reads as, each happening shown once, and
the access log only when asked for (the requests pane already shows every request, and a
stream of access lines would push a traceback out of sight).

A panel that gets devserve's own log lines (the in-process panel, or a server with the web
dashboard on) gets some happenings twice: the structured event and devserve's line about it
(`scale` and "scaling to 2 worker(s)"). The second of such a pair, within TWIN_SECONDS of the
first, is not shown; which lines restate which events is in `restates`.
"""

from __future__ import annotations

import collections
import re
import reprlib
import time
from typing import Any

from rich.text import Text

from dashboard.tui import format as fmt

Event = dict[str, Any]
LOG_STYLES = {"warning": "yellow", "error": "bold red", "critical": "bold red"}
# a worker's first steps: the workers pane shows them while they last, and a line each for every
# worker of a restart would push what matters (ready, exited, failed) out of the pane at once
PASSING_STATES = ("spawning", "booting")
TWIN_SECONDS = 2.0
RECENT_LIMIT = 64  # lines kept for twins: a pair's halves come within a few lines
# devserve's access log as a worker writes it: the default and gunicorn-style formats quote the
# request line before the status; the JSON format names its logger
ACCESS_LINE = re.compile(r'"[A-Z]+ \S* HTTP/[\d.]+" \d{3}\b|"logger": ?"devserve\.access"')
# a rollout's phase → the word devserve's log line about it uses
PHASE_WORDS = {
    "started": "starting generation",
    "succeeded": "serving after",
    "failed": "did not start",
    "cancelled": "superseded",
}


def is_access_line(event: Event) -> bool:
    if event.get("kind") != "log":
        return False
    if event.get("logger") == "devserve.access":
        return True
    return event.get("source") == "worker" and bool(ACCESS_LINE.search(str(event.get("line"))))


def restates(line: Event, event: Event) -> bool:
    """Whether devserve's log line `line` says what the structured `event` says. The lines are
    recognised by the numbers they share with the event (pid, generation, target) and the word
    for what happened, not by their whole wording."""
    if line.get("kind") != "log" or line.get("logger") != "devserve.supervisor":
        return False
    text, kind = str(line.get("line")), event.get("kind")
    if kind == "worker":
        said = event.get("state", "") in text or (event.get("reason") or "\0") in text
        return f"(pid {event.get('pid')}," in text and said
    if kind in ("reload", "restart"):
        word = PHASE_WORDS.get(event.get("phase", ""), "\0")
        return f"generation {event.get('generation')}" in text and word in text
    if kind == "scale":
        return f"scaling to {event.get('target')} worker" in text
    if kind == "crash_loop":
        return str(event.get("message")) in text
    if kind == "stopping":
        return "stopping" in text
    return False


class EventLines:
    """Turns the events, in order, into the pane's lines: None for one not shown."""

    def __init__(self, access_log: bool = False) -> None:
        self.access_log = access_log
        # events and devserve's lines shown in the last TWIN_SECONDS, for their twins;
        # bounded, so a burst of them never makes each new line scan them all
        self.recent: collections.deque[Event] = collections.deque(maxlen=RECENT_LIMIT)

    def line(self, event: Event) -> Text | None:
        if not self.access_log and is_access_line(event):
            return None
        if event.get("kind") == "worker" and event.get("state") in PASSING_STATES:
            return None
        at = _time(event)
        while self.recent and at - _time(self.recent[0]) > TWIN_SECONDS:
            self.recent.popleft()
        twin = next((seen for seen in self.recent if _twins(seen, event)), None)
        if twin is not None:
            self.recent.remove(twin)  # a pair: a third such line is news again
            return None
        if event.get("kind") != "log" or event.get("logger") == "devserve.supervisor":
            self.recent.append(event)  # the app's own lines restate nothing: not kept
        return describe(event)


def _twins(one: Event, other: Event) -> bool:
    return restates(one, other) or restates(other, one)


def _time(event: Event) -> float:
    at = event.get("t")
    return float(at) if isinstance(at, int | float) else time.time()


def describe(event: Event) -> Text:
    """An event's lines in the pane; one that lacks what its kind should carry is shown raw,
    dim, rather than taking the panel down."""
    try:
        text = _describe(event)
    except (KeyError, TypeError, ValueError, AttributeError):
        # reprlib: a bounded rendering, not all of a (1 MiB) event formatted on every redraw
        return Text(f"malformed event from devserve: {reprlib.repr(event)}", style="dim")
    at = event.get("t")
    if isinstance(at, int | float):
        return Text.assemble((fmt.clock(at)[:8] + " ", "dim"), text)
    return text


def _describe(event: Event) -> Text:
    kind = event.get("kind")
    if kind == "worker":
        return _worker(event)
    if kind in ("reload", "restart"):
        return _rollout(event)
    if kind == "log":
        return _log(event)
    if kind == "scale":
        return Text(f"scale: target {event['target']} workers")
    if kind == "ready":
        return Text(f"serving: generation {event['generation']} ready", style="green")
    if kind == "crash_loop":
        return Text(f"crash loop: {event['message']}", style="bold red")
    if kind == "stopping":
        return Text(f"stopping{' (fast)' if event.get('fast') else ''}", style="yellow")
    return Text(f"{kind}: {event}", style="dim")


def _worker(event: Event) -> Text:
    """In devserve's own words for a worker: `worker 2 (pid 41208, generation 3)`."""
    state = event["state"]
    text = Text(f"worker {event['slot']} (pid {event['pid']}, generation {event['generation']}) ")
    text.append(state, style=fmt.STATE_STYLES.get(state, ""))
    if event.get("reason"):
        text.append(f": {event['reason']}", style="dim")
    return text


def _rollout(event: Event) -> Text:
    kind, phase = event["kind"], event["phase"]
    text = Text(f"{kind} {phase}: generation {event['generation']}")
    if event.get("changed"):
        text.append(" — " + ", ".join(event["changed"]), style="dim")
    if event.get("seconds") is not None:
        text.append(f" ready in {event['seconds'] * 1000:.0f} ms", style="green")
    if phase == "failed":
        text.stylize("bold red")
        text.append(f"\n{event.get('message', '')}")
        if event.get("details"):
            text.append(f"\n{event['details'].rstrip()}", style="red")
    return text


def _log(event: Event) -> Text:
    sources = {"worker": f"{event.get('pid')}", "client": "panel"}
    source = sources.get(event.get("source", ""), "devserve")
    line = Text(f"{source:>8} ", style="dim")
    line.append(event["line"], style=LOG_STYLES.get(event.get("level") or "", ""))
    if event.get("details"):  # a worker's exception, sent without a panel capturing output
        line.append(f"\n{event['details'].rstrip()}", style="red")
    return line
