"""What the panel knows of the server: the latest snapshot, the history, records and events.

The feed reads the control API's stream and only keeps state; the panel redraws from it at
about 4 Hz. A newer snapshot replaces an older one that was not drawn yet, so a busy server
never queues work in the panel. `version` changes whenever something new arrived.

A message of the wrong shape is skipped with a note among the events, never kept: the panel
draws only what it can, and one bad message must not end the stream it follows. A type it does
not know is ignored, as the API asks, with one note per type (a newer devserve, probably).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Protocol, Unpack

from devserver.control import schema
from devserver.control.client import AsyncControlClient, ControlError

HISTORY_POINTS = 900  # 15 minutes at one point a second, as the server keeps
RECORDS_KEPT = 2000
EVENTS_KEPT = 500
RETRY_SECONDS = 1.0
UNKNOWN_NOTED = 20  # message types noted as unknown, at most: a confused server is not a flood

# what the feed keeps of the stream: parts of schema.StreamMessage that `apply` checked enough
# to draw (a server may send what this panel does not know, or send it wrong)
Message = dict[str, Any]


class Client(Protocol):
    """A control client: AsyncControlClient over the socket, or devserve's in-process one."""

    path: str

    def request(
        self, command: str, **args: Unpack[schema.Arguments]
    ) -> Awaitable[schema.CommandResult]: ...

    def subscribe(self, recent: bool = False) -> AsyncIterator[schema.StreamMessage]: ...


class Feed:
    def __init__(self, client: Client | AsyncControlClient, reconnect: bool = True) -> None:
        self.client = client
        self.reconnect = reconnect  # False in-process: the stream ends when the server does
        self.snapshot: Message | None = None
        self.history: collections.deque[Message] = collections.deque(maxlen=HISTORY_POINTS)
        self.records: collections.deque[Message] = collections.deque(maxlen=RECORDS_KEPT)
        self.events: collections.deque[Message] = collections.deque(maxlen=EVENTS_KEPT)
        self.connected = False
        self.problem: str | None = None  # why the stream is down, for the header
        self.version = 0
        self.records_seen = 0  # records ever received: the panel appends what is new
        self.events_seen = 0
        self.last_event_at = 0.0  # `t` of the latest event shown
        self.replay_after = 0.0  # a reconnect's replay skips what was shown before it
        self.unknown_types: set[str] = set()  # each noted once

    @property
    def path(self) -> str:
        return self.client.path

    async def run(self) -> None:
        """Follow the stream until cancelled, reconnecting when the server goes away."""
        while True:
            try:
                async for message in self.client.subscribe(recent=True):
                    if not self.connected:
                        self.connected, self.problem = True, None
                        self.replay_after = self.last_event_at
                        self.history.clear()  # the first snapshot brings the whole ring again
                    self.apply(message)
                self.problem = "the server closed the stream"
            except ControlError as exc:
                self.problem = str(exc)
            if self.connected:
                self.connected = False
                self.version += 1
            if not self.reconnect:
                return
            await asyncio.sleep(RETRY_SECONDS)

    def apply(self, message: Mapping[str, Any]) -> None:
        """Keep what a stream message brings, once `_well_formed` found the parts drawn."""
        kind = message.get("type")
        if kind in ("snapshot", "requests", "event") and not _well_formed(message):
            self.note(f"skipped a malformed {kind} message from devserve")
            return
        if kind == "snapshot":
            snapshot = message["snapshot"]
            self.history.extend(snapshot.get("history", []))
            self.snapshot = snapshot
        elif kind == "requests":
            self.records.extend(message["requests"])
            self.records_seen += len(message["requests"])
        elif kind == "event":
            event, at = message["event"], message["event"].get("t", 0.0)
            if message.get("recent") and at <= self.replay_after:
                return  # shown before the reconnect
            self.last_event_at = max(self.last_event_at, at)
            self.events.append(event)
            self.events_seen += 1
        elif (name := str(kind)[:40]) not in self.unknown_types and (
            len(self.unknown_types) < UNKNOWN_NOTED
        ):
            self.unknown_types.add(name)
            self.note(f"ignoring messages of type {name!r} (a newer devserve?)")
            return
        else:
            return  # a message type this panel does not know: ignored, as the API asks
        self.version += 1

    def note(self, line: str) -> None:
        """A line of the panel's own among the events (a warning about the stream)."""
        event = {"kind": "log", "source": "client", "level": "warning", "line": line}
        self.events.append({**event, "t": time.time()})
        self.events_seen += 1
        self.version += 1

    def new_records(self, seen: int) -> list[Message]:
        """Records that arrived after the first `seen` (as many as are still kept)."""
        fresh = min(self.records_seen - seen, len(self.records))
        return list(self.records)[len(self.records) - fresh :] if fresh > 0 else []

    def new_events(self, seen: int) -> list[Message]:
        fresh = min(self.events_seen - seen, len(self.events))
        return list(self.events)[len(self.events) - fresh :] if fresh > 0 else []

    async def command(self, command: str, **args: Unpack[schema.Arguments]) -> schema.CommandResult:
        """Send a command; raises ControlError with the server's one-line refusal."""
        return await self.client.request(command, **args)


def _well_formed(message: Mapping[str, Any]) -> bool:
    """True when a snapshot, requests or event message has what the panel reads in it."""
    kind = message["type"]
    if kind == "snapshot":
        snapshot = message.get("snapshot")
        return (
            isinstance(snapshot, dict)
            and all(isinstance(snapshot.get(part), dict) for part in ("server", "totals"))
            and isinstance(snapshot.get("workers"), list)
            and all(isinstance(worker, dict) for worker in snapshot["workers"])
            and isinstance(snapshot.get("history", []), list)
        )
    if kind == "requests":
        records = message.get("requests")
        return isinstance(records, list) and all(isinstance(r, dict) for r in records)
    event = message.get("event")
    return isinstance(event, dict) and isinstance(event.get("t", 0.0), (int, float))


class RequestFilter:
    """What `/` typed: words that must all match a record.

    `5xx` (any status class), `404` (a status), `GET` (a method, upper case), `slow` (500 ms or
    more), `>100ms` (at least that long); any other word is a substring of the path and query.
    """

    def __init__(self, text: str = "") -> None:
        self.text = text.strip()
        self.tests: list[Callable[[Message], bool]] = [
            self._test(word) for word in self.text.split()
        ]

    def __bool__(self) -> bool:
        return bool(self.tests)

    def matches(self, record: Message) -> bool:
        return all(test(record) for test in self.tests)

    @staticmethod
    def _test(word: str) -> Callable[[Message], bool]:
        lowered = word.lower()
        if len(word) == 3 and word[0] in "12345" and lowered.endswith("xx"):
            status_class = int(word[0])
            return lambda record: record["status"] // 100 == status_class
        if len(word) == 3 and word.isdigit():
            status = int(word)
            return lambda record: record["status"] == status
        if word.isalpha() and word.isupper():
            return lambda record: record["method"] == word
        if lowered == "slow":
            return lambda record: record["duration"] >= 500
        if lowered.startswith(">") and lowered.endswith("ms"):
            try:
                least = float(lowered[1:-2])
            except ValueError:
                pass
            else:
                return lambda record: record["duration"] >= least
        return lambda record: (
            word in record["path"] + ("?" + record["query"] if record.get("query") else "")
        )
