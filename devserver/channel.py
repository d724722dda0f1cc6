"""The messages a worker and its supervisor exchange, and how they travel between the two.

One connected Unix stream socket per worker carries frozen dataclasses, each framed as a 4-byte
big-endian length followed by JSON `{"type": <class name>, ...fields}`. Both ends read with
`ChannelProtocol` on their event loop; the worker may also `send_blocking` before its loop runs.
A message too large for a frame is shortened by `fit` before it is sent (a tick loses its request
records, a log or failure its middle), so what clients send can never break the channel; bytes
that are still not a message are a protocol violation, which the receiving end reports.
Nothing here knows about serving or supervising.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("devserve.supervisor")

_LENGTH = struct.Struct(">I")
MAX_FRAME = 16 * 1024 * 1024  # far above any real message; stops a corrupt stream early
TEXT_LIMIT = 64 * 1024  # a Log or Failed text longer than this keeps its start and end


# --------------------------------------------------------------------------- worker → supervisor
@dataclass(frozen=True)
class Booting:
    """The worker process runs and is about to import the app."""

    pid: int


@dataclass(frozen=True)
class Ready:
    """The app is imported and lifespan startup is done: the worker accepts once told `Serve`."""

    pid: int


@dataclass(frozen=True)
class Failed:
    """Startup failed; `message` is one line, `details` the traceback when there is one."""

    message: str
    details: str = ""
    file: str | None = None  # where to look: the app's file and line, when known
    line: int | None = None


@dataclass(frozen=True)
class Tick:
    """Heartbeat with the worker's numbers, about every 250 ms while its loop runs.

    `requests` is cumulative (the supervisor derives deltas and recycling from it); `stats` holds
    what changed since the previous tick (devserver/stats.py `WorkerStats.take`), None with
    --no-metrics. `elapsed` is the time since the previous tick by the worker's clock, so rates
    do not depend on when ticks arrive; `loop_lag` is how late this tick's timer fired.
    """

    requests: int
    in_flight: int
    connections: int
    websockets: int = 0
    elapsed: float = 0.0
    loop_lag: float = 0.0
    rss: int = 0
    cpu_time: float = 0.0  # the process's CPU seconds so far (user + system)
    stats: dict[str, Any] | None = None


@dataclass(frozen=True)
class Log:
    """A warning or error the worker logged (the app's exceptions, with `details` their
    traceback), for the control API's `log` events where nobody captures the worker's output."""

    level: str
    logger: str
    line: str
    details: str = ""


@dataclass(frozen=True)
class Drained:
    """The worker stopped accepting and closed its idle connections (after `Drain`): after a
    reload, the new generation accepts only then, so no request meets the old code."""


@dataclass(frozen=True)
class Stopping:
    """The worker stopped serving and is shutting down (`reason` for the log)."""

    reason: str


# --------------------------------------------------------------------------- supervisor → worker
@dataclass(frozen=True)
class Drain:
    """Stop accepting, finish in-flight requests (bounded by the grace period), then exit.

    `keep_idle`: seconds an idle keep-alive connection stays open for one more request, for
    drains where other workers keep serving (restart, scale down, recycling); 0 on stop.
    """

    keep_idle: float = 0.0


@dataclass(frozen=True)
class Stop:
    """Exit now: close every connection without waiting."""


@dataclass(frozen=True)
class Serve:
    """Start accepting connections. A worker waits for this after `Ready`, so a whole new
    generation can start accepting at the moment the old one stops."""


@dataclass(frozen=True)
class ReopenLogs:
    """Reopen log files (after logrotate moved them)."""


@dataclass(frozen=True)
class StartTrace:
    """Trace the ASGI messages of the next `requests` requests (None: every one, until told
    `StopTrace`)."""

    requests: int | None = None


@dataclass(frozen=True)
class StopTrace:
    """Trace no more requests (this also ends --trace)."""


Message = (
    Booting
    | Ready
    | Failed
    | Tick
    | Log
    | Drained
    | Stopping
    | Serve
    | Drain
    | Stop
    | ReopenLogs
    | StartTrace
    | StopTrace
)
_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        Booting,
        Ready,
        Failed,
        Tick,
        Log,
        Drained,
        Stopping,
        Serve,
        Drain,
        Stop,
        ReopenLogs,
        StartTrace,
        StopTrace,
    )
}


class ChannelError(ValueError):
    """Bytes on the channel that are not a message."""


def encode(message: Message) -> bytes:
    """The frame for `message`, shortened (`fit`) when it would be over MAX_FRAME; a log line or
    failure always is, since its texts travel on to the control API's snapshots and events."""
    if isinstance(message, Log | Failed):
        message = fit(message)
    body = _body(message)
    if len(body) > MAX_FRAME:
        body = _body(fit(message))
    return _LENGTH.pack(len(body)) + body


def _body(message: Message) -> bytes:
    # vars(), not dataclasses.asdict(): no deep copy of a tick's records on the way to JSON
    return json.dumps({"type": type(message).__name__, **vars(message)}).encode()


def fit(message: Message) -> Message:
    """`message` made small: a tick without its request records (counted as dropped), a log
    line or failure with its texts cut to TEXT_LIMIT; other messages are small already."""
    if isinstance(message, Tick) and message.stats is not None:
        stats = dict(message.stats)
        records = stats.pop("records", [])
        stats["records"] = []
        stats["records_dropped"] = stats.get("records_dropped", 0) + len(records)
        return dataclasses.replace(message, stats=stats)
    if isinstance(message, Log):
        return Log(message.level, message.logger, _cut(message.line), _cut(message.details))
    if isinstance(message, Failed):
        return Failed(_cut(message.message), _cut(message.details), message.file, message.line)
    return message


def _cut(text: str) -> str:
    """A long text's start and end (a traceback's error is at its end)."""
    if len(text) <= TEXT_LIMIT:
        return text
    half = TEXT_LIMIT // 2
    return f"{text[:half]}\n… {len(text) - 2 * half} characters cut …\n{text[-half:]}"


def decode(body: bytes) -> Message:
    try:
        data = json.loads(body)
        cls = _TYPES[data.pop("type")]
        message: Message = cls(**data)
    except (ValueError, KeyError, TypeError) as exc:
        raise ChannelError(f"not a channel message: {exc}") from None
    return message


def send_blocking(sock: socket.socket, message: Message) -> None:
    """Send on a blocking socket: for the worker before its event loop runs."""
    sock.sendall(encode(message))


class ChannelProtocol(asyncio.Protocol):
    """One end of a channel on an event loop: decodes frames, calls back, sends messages."""

    def __init__(
        self,
        on_message: Callable[[Message], None],
        on_lost: Callable[[], None],
    ) -> None:
        self.on_message = on_message
        self.on_lost = on_lost
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.violation: str | None = None  # why this end closed the channel, if the peer broke it

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not registered

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.on_lost()

    def data_received(self, data: bytes) -> None:
        if self.violation is not None:
            return  # closing: the rest is not read
        self.buffer += data
        while len(self.buffer) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(self.buffer)
            if length > MAX_FRAME:
                self._violated(f"a {length}-byte frame is over the {MAX_FRAME}-byte limit")
                return
            end = _LENGTH.size + length
            if len(self.buffer) < end:
                return
            body = bytes(self.buffer[_LENGTH.size : end])
            del self.buffer[:end]
            try:
                message = decode(body)
            except ChannelError as exc:
                self._violated(str(exc))
                return
            self.on_message(message)

    def _violated(self, reason: str) -> None:
        """The peer sent bytes that are not a message: nothing more from it can be trusted."""
        self.violation = reason
        self.buffer.clear()
        logger.error("channel: %s; closing", reason)
        self.close()

    def send(self, message: Message) -> bool:
        """Queue a message; False when the other end is gone."""
        if self.transport is None or self.transport.is_closing():
            return False
        self.transport.write(encode(message))
        return True

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def open_channel(
    sock: socket.socket,
    on_message: Callable[[Message], None],
    on_lost: Callable[[], None],
    on_open: Callable[[ChannelProtocol], None] = lambda protocol: None,
) -> ChannelProtocol:
    """Wrap a connected socket in a ChannelProtocol on the running loop.

    `on_open` gets the protocol before the first message is handed to `on_message`: messages
    the peer sent already (a worker that booted while this loop was busy) are read as soon as
    the transport exists, before this coroutine returns, and an answer to them needs the
    protocol.
    """
    loop = asyncio.get_running_loop()

    def made() -> ChannelProtocol:
        protocol = ChannelProtocol(on_message, on_lost)
        on_open(protocol)
        return protocol

    _transport, protocol = await loop.connect_accepted_socket(made, sock)
    return protocol
