"""A raw HTTP/2 client for the wire tests: h2's client state machine over a plain socket, plus
hand-built frames (hyperframe, the connection's own HPACK encoder) for what h2 will not send.

h2 is told to send header fields as given (no validation, no normalisation), so a malformed
request head is sent by `headers()` like any other; only frames h2 refuses to build (oversized
frames, endless CONTINUATION runs, unknown types, streams past the peer's limit) go through
`send_frame()`/`send_raw()`. What the server sends is read by h2 (so a server that breaks the
protocol fails the test) and gathered per stream, with the resets, the GOAWAY and whether the
socket closed. Reading waits on the socket under a deadline, never by sleeping.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import socket
import sys
import termios
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    ExtensionFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PriorityFrame,
    SettingsFrame,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
Fields = list[tuple[bytes, bytes]]

CONFIG = h2.config.H2Configuration(
    client_side=True,
    header_encoding=None,
    validate_outbound_headers=False,
    normalize_outbound_headers=False,
)


@dataclasses.dataclass
class Stream:
    """What the server sent on one stream."""

    stream_id: int
    headers: Fields = dataclasses.field(default_factory=list)
    body: bytearray = dataclasses.field(default_factory=bytearray)
    trailers: Fields = dataclasses.field(default_factory=list)
    ended: bool = False  # END_STREAM received
    reset: ErrorCodes | int | None = None  # RST_STREAM's error code

    @property
    def status(self) -> int | None:
        for name, value in self.headers:
            if name == b":status":
                return int(value)
        return None

    def header(self, name: bytes) -> bytes | None:
        return next((v for n, v in self.headers if n == name), None)

    @property
    def done(self) -> bool:
        return self.ended or self.reset is not None


class _Connection(h2.connection.H2Connection):
    """h2's client, except that a GOAWAY(NO_ERROR) leaves it reading: h2 would refuse every
    frame after it, where the streams the GOAWAY names still get their responses (RFC 9113
    6.8). Restored inside h2's handling, since frames may follow in the same read."""

    def _receive_goaway_frame(self, frame: GoAwayFrame) -> Any:
        result = super()._receive_goaway_frame(frame)
        if frame.error_code == ErrorCodes.NO_ERROR:
            self.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
        return result


class H2Client:
    """One HTTP/2 connection to a test server, driven from the test's thread."""

    def __init__(
        self, sock: socket.socket, settings: dict[SettingCodes, int] | None = None
    ) -> None:
        self.sock = sock
        self.conn = _Connection(config=CONFIG)
        if settings:
            self.conn.local_settings = h2.settings.Settings(client=True, initial_values=settings)
        self.streams: dict[int, Stream] = {}
        self.events: list[h2.events.Event] = []
        self.goaway: h2.events.ConnectionTerminated | None = None  # the last one
        self.goaways: list[h2.events.ConnectionTerminated] = []
        self.closed = False
        self.error: Exception | None = None  # what h2 made of bytes it could not accept
        self.server_settings: dict[int, int] = {}
        self.window_updates: list[tuple[int, int]] = []  # (stream id, increment)
        self.ping_acks: list[bytes] = []
        self.auto_window = True  # give back the window of DATA as it arrives
        self.autoflush = True  # send what h2 answers (acknowledgements, windows) as it reads
        self.received = 0  # bytes read from the socket

    # ------------------------------------------------------------------ connecting
    @classmethod
    @contextlib.contextmanager
    def connect(
        cls,
        host: str,
        port: int,
        settings: dict[SettingCodes, int] | None = None,
        start: bool = True,
        timeout: float = 5.0,
    ) -> Iterator[H2Client]:
        """A client on a new connection; with `start`, the preface and SETTINGS are sent and
        the server's SETTINGS read."""
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client = cls(sock, settings)
        try:
            if start:
                client.start()
            yield client
        finally:
            sock.close()

    def start(self) -> None:
        """Send the preface and our SETTINGS; read until the server's SETTINGS have come."""
        self.conn.initiate_connection()
        self.flush()
        self.read_until(lambda: bool(self.server_settings), "the server's SETTINGS")

    # ------------------------------------------------------------------ sending
    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.send_raw(data)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(self, *frames: Frame) -> None:
        """Hand-built frames, in one write."""
        self.send_raw(b"".join(frame.serialize() for frame in frames))

    def request_fields(
        self,
        path: str = "/",
        method: str = "GET",
        headers: Iterable[tuple[bytes, bytes]] = (),
        authority: bytes = b"test",
    ) -> Fields:
        return [
            (b":method", method.encode()),
            (b":scheme", b"http"),
            (b":authority", authority),
            (b":path", path.encode()),
            *headers,
        ]

    def headers(
        self,
        fields: Fields,
        end_stream: bool = True,
        stream_id: int | None = None,
        fragment: int | None = None,
    ) -> int:
        """A HEADERS frame with `fields` exactly as given (in order, any case, any bytes);
        returns its stream id. `fragment`: the block is cut into HEADERS and CONTINUATION
        frames of at most this many bytes."""
        conn = self.conn
        if stream_id is None:
            stream_id = conn.get_next_available_stream_id()
        self.streams.setdefault(stream_id, Stream(stream_id))
        frame_size = conn.max_outbound_frame_size
        if fragment is not None:
            conn.max_outbound_frame_size = fragment  # h2 cuts a new stream's block at this
        try:
            conn.send_headers(stream_id, fields, end_stream=end_stream)
        finally:
            conn.max_outbound_frame_size = frame_size
            conn.streams[stream_id].max_outbound_frame_size = frame_size
        self.flush()
        return stream_id

    def request(
        self,
        path: str = "/",
        method: str = "GET",
        headers: Iterable[tuple[bytes, bytes]] = (),
        body: bytes | None = None,
        end_stream: bool = True,
    ) -> int:
        """A well-formed request; `body` is sent as DATA (it must fit the windows)."""
        fields = self.request_fields(path, method, headers)
        stream_id = self.headers(fields, end_stream=end_stream and body is None)
        if body is not None:
            self.data(stream_id, body, end_stream)
        return stream_id

    def data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """DATA frames of at most the server's MAX_FRAME_SIZE (they must fit the windows)."""
        size = self.conn.max_outbound_frame_size
        parts = [data[at : at + size] for at in range(0, len(data), size)] or [b""]
        for n, part in enumerate(parts):
            self.conn.send_data(stream_id, part, end_stream=end_stream and n == len(parts) - 1)
        self.flush()

    def reset(self, stream_id: int, code: ErrorCodes = ErrorCodes.CANCEL) -> None:
        self.conn.reset_stream(stream_id, code)
        self.flush()

    def raw_headers(
        self, stream_id: int, fields: Fields, end_stream: bool = True, end_headers: bool = True
    ) -> HeadersFrame:
        """A HEADERS frame h2 does not know about, its block from the connection's encoder (so
        the server's HPACK table stays in step)."""
        flags = {"END_HEADERS"} if end_headers else set()
        if end_stream:
            flags.add("END_STREAM")
        return HeadersFrame(stream_id, data=self.conn.encoder.encode(fields), flags=flags)

    def goodbye(self, last_stream_id: int = 0, code: int = 0) -> None:
        """GOAWAY built by hand: h2 would stop reading the server's frames after its own."""
        self.send_frame(GoAwayFrame(0, last_stream_id=last_stream_id, error_code=code))

    def barrier(self, timeout: float = 3.0) -> None:
        """PING and wait for its acknowledgement: the server has read everything sent before.
        (Each barrier is one ping against the server's ping flood limit.)"""
        opaque = os.urandom(8)
        self.conn.ping(opaque)
        self.flush()
        self.read_until(lambda: opaque in self.ping_acks, "the PING acknowledgement", timeout)

    # ------------------------------------------------------------------ reading
    def read_until(self, predicate: Callable[[], object], what: str, timeout: float = 3.0) -> None:
        """Read and handle what the server sends until `predicate()` holds; fail after `timeout`
        seconds, or when the connection closed first, with what was seen."""
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if self.closed or left <= 0:
                state = "closed" if self.closed else f"timed out after {timeout:g}s"
                raise AssertionError(f"{state} waiting for {what}; {self.summary()}")
            self._read(left)

    def read_until_closed(self, timeout: float = 3.0) -> None:
        self.read_until(lambda: self.closed, "the server to close the connection", timeout)

    def stays_open(self, timeout: float = 3.0) -> bool:
        """After a barrier: whether the connection is still open (no GOAWAY, no close)."""
        self.barrier(timeout)
        return not self.closed and self.goaway is None

    def response(self, stream_id: int, timeout: float = 3.0) -> Stream:
        """Read until `stream_id` ended or was reset; its Stream."""
        stream = self.streams.setdefault(stream_id, Stream(stream_id))
        self.read_until(lambda: stream.done, f"stream {stream_id} to end", timeout)
        return stream

    def answered(self, stream_id: int) -> Callable[[], bool]:
        """A predicate for read_until: `stream_id` ended or was reset, or the connection
        closed."""
        stream = self.streams.setdefault(stream_id, Stream(stream_id))
        return lambda: stream.done or self.closed

    def get(self, path: str = "/", timeout: float = 3.0) -> Stream:
        return self.response(self.request(path), timeout)

    def resets(self) -> dict[int, ErrorCodes | int]:
        return {s.stream_id: s.reset for s in self.streams.values() if s.reset is not None}

    def _read(self, timeout: float) -> None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 16)
        except TimeoutError:
            return
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.closed = True
            return
        self.received += len(data)
        if self.error is not None:
            return  # h2 gave up on the connection: only EOF matters now
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self.error = exc
            return
        for event in events:
            self._handle(event)
        if self.autoflush:
            with contextlib.suppress(OSError):
                self.flush()

    def _handle(self, event: h2.events.Event) -> None:
        self.events.append(event)
        stream_id = getattr(event, "stream_id", None)
        stream = self.streams.setdefault(stream_id, Stream(stream_id)) if stream_id else None
        if isinstance(event, h2.events.ResponseReceived):
            assert stream is not None
            stream.headers = list(event.headers or [])  # type: ignore[arg-type]
        elif isinstance(event, h2.events.TrailersReceived):
            assert stream is not None
            stream.trailers = list(event.headers or [])  # type: ignore[arg-type]
        elif isinstance(event, h2.events.DataReceived):
            assert stream is not None
            stream.body += event.data or b""
            if self.auto_window and event.flow_controlled_length:
                self.conn.acknowledge_received_data(event.flow_controlled_length, stream.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            assert stream is not None
            stream.ended = True
        elif isinstance(event, h2.events.StreamReset):
            assert stream is not None
            stream.reset = event.error_code
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            for code, change in event.changed_settings.items():
                self.server_settings[int(code)] = change.new_value
        elif isinstance(event, h2.events.WindowUpdated):
            self.window_updates.append((event.stream_id or 0, event.delta or 0))
        elif isinstance(event, h2.events.PingAckReceived):
            self.ping_acks.append(event.ping_data or b"")
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event
            self.goaways.append(event)

    def summary(self) -> str:
        goaway = ", ".join(
            f"GOAWAY({_code(g.error_code)}, last={g.last_stream_id})" for g in self.goaways
        )
        streams = ", ".join(
            f"{s.stream_id}: status={s.status} ended={s.ended} reset={_code(s.reset)} "
            f"body={bytes(s.body[:60])!r}"
            for s in self.streams.values()
        )
        state = f"closed={self.closed}; h2 error={self.error!r}"
        return f"{goaway or 'no GOAWAY'}; {state}; streams {{{streams}}}"


def _queued(sock: socket.socket | Any, request: int) -> int:
    return int.from_bytes(fcntl.ioctl(sock.fileno(), request, bytes(4)), sys.byteorder)


def unacknowledged(sock: socket.socket | Any) -> int:
    """Bytes written to `sock` that its peer's kernel has not acknowledged yet (Linux)."""
    return _queued(sock, termios.TIOCOUTQ)


def unread(sock: socket.socket | Any) -> int:
    """Bytes that have arrived on `sock` and wait to be read."""
    return _queued(sock, termios.FIONREAD)


def _code(code: ErrorCodes | int | None) -> str:
    if code is None:
        return "-"
    return code.name if isinstance(code, ErrorCodes) else hex(code)


def continuation_run(stream_id: int, block: bytes, count: int, end: bool) -> list[Frame]:
    """HEADERS carrying `block` without END_HEADERS, then `count` empty CONTINUATION frames (the
    last with END_HEADERS when `end`)."""
    frames: list[Frame] = [HeadersFrame(stream_id, data=block, flags={"END_STREAM"})]
    for n in range(count):
        last = end and n == count - 1
        frames.append(
            ContinuationFrame(stream_id, data=b"", flags={"END_HEADERS"} if last else set())
        )
    return frames


def unknown_frame(kind: int = 0xFA, stream_id: int = 0) -> ExtensionFrame:
    return ExtensionFrame(kind, stream_id)


def priority_frame(stream_id: int) -> PriorityFrame:
    return PriorityFrame(stream_id, depends_on=0, stream_weight=16)


def settings_frame() -> SettingsFrame:
    return SettingsFrame(0)


def data_frame(stream_id: int, data: bytes, end_stream: bool = False) -> DataFrame:
    return DataFrame(stream_id, data=data, flags={"END_STREAM"} if end_stream else set())
