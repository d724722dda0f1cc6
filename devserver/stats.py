"""A worker's live numbers: hot-path counters, a mergeable latency histogram, sampled records.

Counting a request appends its duration to a list and adds a few integers (no locks); every
heartbeat tick `WorkerStats.take()` buckets the durations and hands over what changed since the
last tick, then starts over, so the channel carries deltas. Latency buckets are fixed and
log-spaced: bucket k holds durations in (2^((k-1)/8), 2^(k/8)] seconds, which is Prometheus's
native-histogram schema 3. Histograms from any worker and any tick therefore merge by adding
counts, and a percentile read from them is within one bucket (9%) of the true value, from 50 µs
to 60 s.

Request records (what the panels' request stream shows) are sampled: at most `limit` per tick,
spread over the tick at random (a record is only built, at the tick, for a request picked), and
the rest counted as dropped. Slow requests, 5xx responses and traced
requests are always kept.

HTTP requests are counted by protocol too: `PROTOCOLS` names the two, "h1" (HTTP/1.0 and 1.1)
and "h2" (HTTP/2, told by the exchange's stream id). WebSocket sessions are not in these counts
(their records say which protocol carried them).
"""

from __future__ import annotations

import math
import random
import time
import traceback
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable, Mapping
from operator import itemgetter
from time import perf_counter
from typing import Any, Protocol

from devserver.asgi import WWWScope
from devserver.redaction import Redactor, printable

SCHEMA = 3  # Prometheus native-histogram schema: 2^SCHEMA buckets per doubling
PER_OCTAVE = 1 << SCHEMA
LOWEST = math.ceil(math.log2(50e-6) * PER_OCTAVE)  # the bucket holding everything up to ~50 µs
HIGHEST = math.ceil(math.log2(60.0) * PER_OCTAVE)  # the bucket holding everything from ~60 s
_LOWEST_BOUND = 2.0 ** (LOWEST / PER_OCTAVE)

RECORDS_PER_TICK = 50  # sampled records a worker sends per tick (about 200 a second)
KEPT_PER_TICK = 500  # slow, failed and traced requests are kept up to this bound
# What a client sends must never make telemetry large (docs/security.md): one record holds at most
# RECORD_HEADERS header pairs and RECORD_HEADER_CHARS characters of them, a header value, path or
# query at most RECORD_TEXT characters; one tick's records at most TICK_RECORD_CHARS (the rest
# are dropped and counted, as a sample would drop them).
RECORD_HEADERS = 64
RECORD_HEADER_CHARS = 8192
RECORD_TEXT = 1024
RECORD_EXCEPTION = 16 * 1024  # a failed request's traceback keeps its last this many characters
TICK_RECORD_CHARS = 256 * 1024
CUT = "…"  # ends a shortened value
PROTOCOLS = ("h1", "h2")  # the order of a tick's "protocols" counts


# --------------------------------------------------------------------------- the buckets
def upper_bound(index: int) -> float:
    """The largest duration (seconds) bucket `index` holds."""
    return float(2.0 ** (index / PER_OCTAVE))


# upper bounds of LOWEST..HIGHEST-1; anything above the last one is in HIGHEST
_BOUNDS = [upper_bound(index) for index in range(LOWEST, HIGHEST)]


def bucket_of(seconds: float) -> int:
    """The bucket index for a duration (clamped to LOWEST..HIGHEST)."""
    return LOWEST + bisect_left(_BOUNDS, seconds)


def histogram(durations: list[float]) -> list[list[int]]:
    """[index, count] pairs of the non-empty buckets of sorted `durations`.

    The worker appends one float per request and buckets a whole tick here: a C-level sort,
    then two bisections per non-empty bucket, instead of a logarithm per request.
    """
    pairs = []
    start, total, last = 0, len(durations), len(_BOUNDS)
    while start < total:
        offset = bisect_left(_BOUNDS, durations[start])
        if offset == last:
            pairs.append([HIGHEST, total - start])
            break
        end = bisect_right(durations, _BOUNDS[offset], start)
        pairs.append([LOWEST + offset, end - start])
        start = end
    return pairs


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
def shorten(text: str, limit: int = RECORD_TEXT) -> str:
    """`text`, cut to `limit` characters (the cut marked) when longer."""
    return text if len(text) <= limit else text[: limit - 1] + CUT


def record_headers(
    headers: Iterable[tuple[bytes, bytes]], redactor: Redactor
) -> tuple[list[list[str]], int, bool]:
    """A record's [name, value] pairs within the record bounds, how many characters they hold,
    and whether any was cut: what did not fit ends in one ["…", "N more headers"] pair, and a
    shortened value ends in "…"."""
    pairs: list[list[str]] = []
    chars = omitted = 0
    cut = False
    for name, value in headers:
        if omitted or len(pairs) == RECORD_HEADERS or chars >= RECORD_HEADER_CHARS:
            omitted += 1
            continue
        text = name.decode("latin-1")
        shown = redactor.header(text, value.decode("latin-1"))
        limit = min(RECORD_TEXT, max(16, RECORD_HEADER_CHARS - chars))
        if len(text) > 256 or len(shown) > limit:
            text, shown, cut = shorten(text, 256), shorten(shown, limit), True
        chars += len(text) + len(shown)
        pairs.append([text, shown])
    if omitted:
        pairs.append([CUT, f"{omitted} more headers"])
    return pairs, chars, cut or bool(omitted)


class Traced(Protocol):
    """What a record takes of a traced request's tracing.Trace."""

    @property
    def events(self) -> list[dict[str, Any]]: ...

    @property
    def size(self) -> int: ...


class Exchange(Protocol):
    """What a request record and the access log (devserver/logging.py) read of one finished HTTP
    request (protocols/cycle.py's RequestCycle) or WebSocket session (WebSocketProtocol)."""

    @property
    def scope(self) -> WWWScope: ...

    @property
    def method(self) -> str: ...

    @property
    def status(self) -> int: ...

    @property
    def bytes_sent(self) -> int: ...

    @property
    def bytes_received(self) -> int: ...

    @property
    def started_at(self) -> float: ...

    @property
    def trace(self) -> Traced | None: ...

    @property
    def failure(self) -> BaseException | None: ...

    @property
    def stream_id(self) -> int | None:
        """The HTTP/2 stream that carried it; None over HTTP/1.1."""
        ...


def make_record(
    exchange: Exchange,
    seq: int,
    seconds: float,
    redact: bool | Redactor,
    clock_offset: float = 0.0,
) -> dict[str, Any]:
    """One request as the panels show it; the supervisor adds the worker's pid and slot.

    `clock_offset` turns the exchange's perf_counter start into wall-clock time. Its headers,
    path and query are cut to the record bounds, and "cut" lists what was shortened. "size", an
    estimate of its characters for the tick's budget, is taken out again before it is sent.
    """
    redactor = Redactor.of(redact)
    scope = exchange.scope
    client = scope.get("client")
    path = printable(scope["path"])  # %1b decodes to ESC: the panels must never draw it raw
    query = printable(redactor.query(scope["query_string"].decode("latin-1")))
    headers, size, headers_cut = record_headers(scope["headers"], redactor)
    record: dict[str, Any] = {
        "seq": seq,
        "type": scope["type"],
        "start": round(exchange.started_at + clock_offset, 6),
        "method": shorten(exchange.method, 64),
        "path": shorten(path),
        "query": shorten(query),
        "http_version": scope["http_version"],
        "stream": exchange.stream_id,
        "scheme": scope["scheme"],
        "client": f"{client[0]}:{client[1]}" if client else None,
        "status": exchange.status,
        "duration": round(seconds * 1000, 3),
        "bytes_in": exchange.bytes_received,
        "bytes_out": exchange.bytes_sent,
        "headers": headers,
    }
    cut = [name for name, text in (("path", path), ("query", query)) if len(text) > RECORD_TEXT]
    if headers_cut:
        cut.append("headers")
    if cut:
        record["cut"] = cut
    if exchange.trace is not None:
        record["trace"] = exchange.trace.events
        size += exchange.trace.size
    if exchange.failure is not None:
        record["exception"] = exception_text(exchange.failure)
        size += len(record["exception"])
    record["size"] = size + len(record["path"]) + len(record["query"]) + 256
    return record


def exception_text(exc: BaseException) -> str:
    """What the app raised, as a traceback for the inspectors: its last RECORD_EXCEPTION
    characters (the end says what was raised), each line's control characters escaped (an
    exception's message may carry what a client sent)."""
    text = "".join(traceback.format_exception(exc)).rstrip()
    if len(text) > RECORD_EXCEPTION:
        text = CUT + text[-RECORD_EXCEPTION:]
    return "\n".join(printable(line) for line in text.split("\n"))


# what a sampler holds until the tick: (seq, exchange, seconds); records are built at the tick,
# so a request that a later one replaces in the sample never costs a record
Held = tuple[int, Exchange, float]


class RecordSampler:
    """Picks the request records of one tick: a spread-out sample, plus every notable request.

    The caller (`WorkerStats.request_done`) numbers a tick's HTTP requests from 1 and calls
    `keep` for notable ones (slow, 5xx, traced) and `pick` only for request `next_pick`, so a
    request that is neither costs a comparison. Picks are spaced by random gaps averaging `gap`,
    which follows the previous tick's request count so that about `limit` are picked a tick,
    spread over all of it; random gaps never line up with a pattern in the traffic (a page and
    its assets, say). At most `limit` are held; records are built at the tick, only for what is
    held.
    """

    __slots__ = ("limit", "redactor", "base", "gap", "next_pick", "sample", "kept")

    def __init__(self, limit: int, redact: bool | Redactor) -> None:
        self.limit = limit
        self.redactor = Redactor.of(redact)
        self.base = 0  # a request's record id is base + its number in the tick
        self.gap = 1  # the mean distance between picks
        self.next_pick = 1  # the number of the next request to pick
        self._start()

    def _start(self) -> None:
        self.sample: list[Held] = []
        self.kept: list[Held] = []

    def keep(self, exchange: Exchange, seconds: float, number: int) -> None:
        """Keep notable request `number` of this tick, whatever the sample holds."""
        if len(self.kept) < KEPT_PER_TICK:
            self.kept.append((self.base + number, exchange, seconds))
        if number == self.next_pick:
            self.next_pick += 1  # the sample takes the next ordinary one instead

    def pick(self, exchange: Exchange, seconds: float, number: int) -> None:
        """Put request `number` (the one due: `next_pick`) in the sample; choose the next."""
        if len(self.sample) < self.limit:
            self.sample.append((self.base + number, exchange, seconds))
            gap = self.gap
            self.next_pick = number + (1 if gap == 1 else random.randint(1, 2 * gap - 1))

    def keep_session(self, exchange: Exchange, seconds: float, requests: int) -> None:
        """A WebSocket session ended (after `requests` HTTP requests of this tick): kept, and
        numbered between them (the base moves on by one)."""
        self.base += 1
        if len(self.kept) < KEPT_PER_TICK:
            self.kept.append((self.base + requests, exchange, seconds))

    def take(self, requests: int) -> list[dict[str, Any]]:
        """This tick's records in start order; then start over after `requests` requests."""
        held = sorted(self.sample + self.kept, key=lambda item: item[0])
        self.base += requests
        # aim at 4/5 of the limit, so that a busier tick rarely fills the sample before its end
        self.gap = max(1, -(-requests * 5 // (self.limit * 4)))
        left = self.next_pick - requests
        if len(self.sample) < self.limit and 0 < left < 2 * self.gap:
            self.next_pick = left  # the gap runs on into the next tick
        else:  # the sample filled up, or the rate fell: start afresh
            self.next_pick = random.randint(1, self.gap)
        self._start()
        clock_offset = time.time() - time.perf_counter()
        records = []
        budget = TICK_RECORD_CHARS
        for seq, exchange, seconds in held:
            record = make_record(exchange, seq, seconds, self.redactor, clock_offset)
            budget -= record.pop("size")
            if budget < 0:
                break  # what is left is counted as dropped, as an unsampled request is
            records.append(record)
        return records


# --------------------------------------------------------------------------- the counters
class WorkerStats:
    """The counters of one worker process, reset by every `take()`.

    Counting a request appends one tuple (duration, status, bytes in, bytes out) and makes five
    comparisons (an HTTP/2 request also adds one to `h2`); the histogram, the sums and the
    status classes are worked out once per tick, with C-level calls (see `take` and
    `histogram`). Two clock reads per request stay: one when the head is parsed
    (protocols/http.py) and one here.
    """

    __slots__ = (
        "sampler",
        "slow",
        "done",
        "h2",
        "sessions",
        "rejected",
        "ws_opened",
        "ws_received",
        "ws_sent",
    )

    def __init__(
        self, slow: float = 0.5, redact: bool | Redactor = True, limit: int = RECORDS_PER_TICK
    ) -> None:
        self.sampler = RecordSampler(limit, redact)
        self.slow = slow  # seconds; a request at least this long always has its record
        self._reset()

    def _reset(self) -> None:
        self.done: list[tuple[float, int, int, int]] = []  # one per request this tick
        self.h2 = 0  # of them, those that came over HTTP/2
        self.sessions = 0  # WebSocket sessions ended this tick
        self.rejected = 0  # malformed requests answered by the server itself
        self.ws_opened = 0
        self.ws_received = 0
        self.ws_sent = 0

    def request_done(self, exchange: Exchange) -> None:
        """Count one finished HTTP request: called for every response, through the bound method
        that ServerState holds (the hot path: no call but the clock's for most requests)."""
        seconds = perf_counter() - exchange.started_at
        done = self.done
        status = exchange.status
        done.append((seconds, status, exchange.bytes_received, exchange.bytes_sent))
        if exchange.stream_id is not None:
            self.h2 += 1
        if seconds >= self.slow or status >= 500 or exchange.trace is not None:
            self.sampler.keep(exchange, seconds, len(done))
        elif len(done) == self.sampler.next_pick:
            self.sampler.pick(exchange, seconds, len(done))

    def websocket_done(self, exchange: Exchange) -> None:
        """A WebSocket session ended: only its record, always kept."""
        self.sessions += 1
        seconds = perf_counter() - exchange.started_at
        self.sampler.keep_session(exchange, seconds, len(self.done))

    def take(self) -> dict[str, Any]:
        """The deltas since the last call, in the channel's form (`Tick.stats`)."""
        done = self.done
        records = self.sampler.take(len(done))
        durations: list[float] = []
        statuses = [0] * 5
        bytes_in = bytes_out = 0
        if done:  # C-level passes over the tick's tuples
            durations = sorted(map(itemgetter(0), done))
            for status, count in Counter(map(itemgetter(1), done)).items():
                if 100 <= status < 600:
                    statuses[status // 100 - 1] += count
            bytes_in = sum(map(itemgetter(2), done))
            bytes_out = sum(map(itemgetter(3), done))
        deltas = {
            "statuses": statuses,
            "buckets": histogram(durations),
            "duration_sum": sum(durations),
            "duration_max": durations[-1] if durations else 0.0,
            "bytes_in": bytes_in,
            "bytes_out": bytes_out,
            "protocols": [len(done) - self.h2, self.h2],
            "rejected": self.rejected,
            "ws_opened": self.ws_opened,
            "ws_received": self.ws_received,
            "ws_sent": self.ws_sent,
            "records": records,
            "records_dropped": len(done) + self.sessions - len(records),
        }
        self._reset()
        return deltas
