"""A worker's live numbers: hot-path counters, a mergeable latency histogram, sampled records.

Counting a request is a few integer additions (no locks, no allocation); every heartbeat tick
`WorkerStats.take()` hands over what changed since the last tick and starts over, so the channel
carries deltas. Latency buckets are fixed and log-spaced: bucket k holds durations in
(2^((k-1)/8), 2^(k/8)] seconds, which is Prometheus's native-histogram schema 3. Histograms from
any worker and any tick therefore merge by adding counts, and a percentile read from them is
within one bucket (9%) of the true value, from 50 µs to 60 s.

Request records (what the panels' request stream shows) are sampled: at most `limit` per tick,
chosen uniformly (reservoir sampling: a record is only built for a request that is picked), and
the rest counted as dropped. Slow requests, 5xx responses and traced requests are always kept.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

SCHEMA = 3  # Prometheus native-histogram schema: 2^SCHEMA buckets per doubling
PER_OCTAVE = 1 << SCHEMA
LOWEST = math.ceil(math.log2(50e-6) * PER_OCTAVE)  # the bucket holding everything up to ~50 µs
HIGHEST = math.ceil(math.log2(60.0) * PER_OCTAVE)  # the bucket holding everything from ~60 s
_LOWEST_BOUND = 2.0 ** (LOWEST / PER_OCTAVE)

SECRET_HEADERS = frozenset({"authorization", "cookie", "set-cookie", "proxy-authorization"})
REDACTED = "[redacted]"
RECORDS_PER_TICK = 100  # sampled records a worker sends per tick (about 400 a second)
KEPT_PER_TICK = 500  # slow, failed and traced requests are kept up to this bound


# --------------------------------------------------------------------------- the buckets
def bucket_of(seconds: float) -> int:
    """The bucket index for a duration (clamped to LOWEST..HIGHEST)."""
    if seconds <= _LOWEST_BOUND:
        return LOWEST
    index = math.ceil(math.log2(seconds) * PER_OCTAVE)
    return HIGHEST if index > HIGHEST else index


def upper_bound(index: int) -> float:
    """The largest duration (seconds) bucket `index` holds."""
    return float(2.0 ** (index / PER_OCTAVE))


def quantile(buckets: Mapping[int, int], q: float, maximum: float | None = None) -> float | None:
    """The q-quantile (0..1) of merged bucket counts, in seconds; None when there are none.

    Reported as the bucket's geometric middle, never above the largest duration seen.
    """
    total = sum(buckets.values())
    if not total:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for index in sorted(buckets):
        seen += buckets[index]
        if seen >= rank:
            value = float(2.0 ** ((index - 0.5) / PER_OCTAVE))
            return min(value, maximum) if maximum is not None else value
    raise AssertionError("unreachable: the ranks add up to the total")


def merge(into: dict[int, int], pairs: Iterable[Iterable[int]]) -> None:
    """Add [index, count] pairs (the channel's form) into a sparse histogram."""
    for index, count in pairs:
        into[index] = into.get(index, 0) + count


# --------------------------------------------------------------------------- records
def header_pairs(headers: Iterable[tuple[bytes, bytes]], redact: bool) -> list[list[str]]:
    """Headers as [name, value] text pairs, secrets replaced unless `redact` is off."""
    pairs = []
    for name, value in headers:
        text = name.decode("latin-1")
        if redact and text.lower() in SECRET_HEADERS:
            pairs.append([text, REDACTED])
        else:
            pairs.append([text, value.decode("latin-1")])
    return pairs


class Exchange(Protocol):
    """What a request record reads of one finished request or WebSocket session."""

    scope: dict[str, Any]
    method: str
    status: int
    bytes_sent: int
    bytes_received: int
    started_at: float
    trace: Any  # a tracing.Trace, or None


def make_record(exchange: Exchange, seq: int, seconds: float, redact: bool) -> dict[str, Any]:
    """One request as the panels show it; the supervisor adds the worker's pid and slot."""
    scope = exchange.scope
    client = scope.get("client")
    record: dict[str, Any] = {
        "seq": seq,
        "type": scope["type"],
        "start": round(time.time() - seconds, 6),
        "method": exchange.method,
        "path": scope["path"],
        "query": scope["query_string"].decode("latin-1"),
        "http_version": scope["http_version"],
        "scheme": scope["scheme"],
        "client": f"{client[0]}:{client[1]}" if client else None,
        "status": exchange.status,
        "duration": round(seconds * 1000, 3),
        "bytes_in": exchange.bytes_received,
        "bytes_out": exchange.bytes_sent,
        "headers": header_pairs(scope["headers"], redact),
    }
    if exchange.trace is not None:
        record["trace"] = exchange.trace.events
    return record


class RecordSampler:
    """Picks the request records of one tick: a uniform sample, plus every notable request.

    The sample is a reservoir (Li's algorithm L): after the first `limit` requests, the number
    of requests to skip before the next one that replaces a sampled record is drawn at random,
    so a request that is not picked costs a comparison, and no record is built for it.
    """

    __slots__ = (
        "limit",
        "slow",
        "redact",
        "seq",
        "offered",
        "next_pick",
        "weight",
        "sample",
        "kept",
        "overflow",
    )

    def __init__(self, limit: int, slow: float, redact: bool) -> None:
        self.limit = limit
        self.slow = slow  # seconds; at least this long is always kept
        self.redact = redact
        self.seq = 0  # numbers this worker's requests, so a record has an id
        self._start()

    def _start(self) -> None:
        self.offered = 0
        self.next_pick = 0
        self.weight = 1.0
        self.sample: list[dict[str, Any]] = []
        self.kept: list[dict[str, Any]] = []
        self.overflow = 0  # notable requests past KEPT_PER_TICK

    def offer(self, exchange: Exchange, seconds: float) -> None:
        self.seq += 1
        if exchange.status >= 500 or seconds >= self.slow or exchange.trace is not None:
            if len(self.kept) < KEPT_PER_TICK:
                self.kept.append(make_record(exchange, self.seq, seconds, self.redact))
            else:
                self.overflow += 1
            return
        offered = self.offered = self.offered + 1
        if offered <= self.limit:
            self.sample.append(make_record(exchange, self.seq, seconds, self.redact))
            if offered == self.limit:
                self._plan_next_pick()
        elif offered == self.next_pick:
            slot = random.randrange(self.limit)
            self.sample[slot] = make_record(exchange, self.seq, seconds, self.redact)
            self._plan_next_pick()

    def _plan_next_pick(self) -> None:
        self.weight *= math.exp(math.log(random.random()) / self.limit)
        skip = math.floor(math.log(random.random()) / math.log1p(-self.weight))
        self.next_pick = self.offered + skip + 1

    def take(self) -> tuple[list[dict[str, Any]], int]:
        """This tick's records in start order, and how many were dropped; then start over."""
        records = sorted(self.sample + self.kept, key=lambda record: record["seq"])
        dropped = self.offered - len(self.sample) + self.overflow
        self._start()
        return records, dropped


# --------------------------------------------------------------------------- the counters
class WorkerStats:
    """The counters of one worker process, reset by every `take()`."""

    __slots__ = (
        "sampler",
        "statuses",
        "counts",
        "duration_sum",
        "duration_max",
        "bytes_in",
        "bytes_out",
        "rejected",
        "ws_opened",
        "ws_received",
        "ws_sent",
    )

    def __init__(
        self, slow: float = 0.5, redact: bool = True, limit: int = RECORDS_PER_TICK
    ) -> None:
        self.sampler = RecordSampler(limit, slow, redact)
        self._reset()

    def _reset(self) -> None:
        self.statuses = [0] * 6  # by status // 100; 0 for none
        self.counts = [0] * (HIGHEST - LOWEST + 1)
        self.duration_sum = 0.0
        self.duration_max = 0.0
        self.bytes_in = 0
        self.bytes_out = 0
        self.rejected = 0  # malformed requests answered by the server itself
        self.ws_opened = 0
        self.ws_received = 0
        self.ws_sent = 0

    def request_done(self, exchange: Exchange) -> None:
        """Count one finished HTTP request (the hot path)."""
        seconds = time.perf_counter() - exchange.started_at
        self.statuses[exchange.status // 100] += 1
        self.counts[bucket_of(seconds) - LOWEST] += 1
        self.duration_sum += seconds
        if seconds > self.duration_max:
            self.duration_max = seconds
        self.bytes_in += exchange.bytes_received
        self.bytes_out += exchange.bytes_sent
        self.sampler.offer(exchange, seconds)

    def websocket_done(self, exchange: Exchange) -> None:
        """A WebSocket session ended: only its record, sampled like any other."""
        self.sampler.offer(exchange, time.perf_counter() - exchange.started_at)

    def take(self) -> dict[str, Any]:
        """The deltas since the last call, in the channel's form (`Tick.stats`)."""
        records, dropped = self.sampler.take()
        deltas = {
            "statuses": self.statuses[1:],
            "buckets": [[i + LOWEST, n] for i, n in enumerate(self.counts) if n],
            "duration_sum": self.duration_sum,
            "duration_max": self.duration_max,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "rejected": self.rejected,
            "ws_opened": self.ws_opened,
            "ws_received": self.ws_received,
            "ws_sent": self.ws_sent,
            "records": records,
            "records_dropped": dropped,
        }
        self._reset()
        return deltas
