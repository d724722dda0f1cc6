"""An HTTP/2 load for tests: threads that keep streams open on prior-knowledge connections for a
`with` block, and count what a careful HTTP/2 client would see (the HTTP/2 twin of load.py).

RFC 9113 6.8 says which requests a client may send again: those on streams above a GOAWAY's last
stream id, and those reset with REFUSED_STREAM, were never processed. The load retries those on a
new connection and counts them in `retried`. A request is *lost* when a stream the server had
taken (at or below the last stream id, or with no GOAWAY at all) ends without a complete 2xx
response: reset with another code, cut by the connection's close, or answered 5xx.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

STREAMS_PER_CONNECTION = 4  # requests each thread keeps in flight


class H2Load:
    """`threads` clients, each with STREAMS_PER_CONNECTION requests in flight, until the block
    ends. Read `succeeded`, `retried` and `lost` (a list of reasons) after it."""

    def __init__(self, host: str, port: int, threads: int = 2) -> None:
        self.address = (host, port)
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(threads)]
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.succeeded = 0
        self.retried = 0
        self.lost: list[str] = []

    def __enter__(self) -> H2Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=15)

    def wait_for_more(self, count: int, timeout: float = 10.0) -> None:
        """Block until `count` more requests have succeeded (or fail the test)."""
        target = self.succeeded + count
        deadline = time.monotonic() + timeout
        while self.succeeded < target:
            if time.monotonic() > deadline:
                raise AssertionError(f"load stalled: {self.summary()}")
            time.sleep(0.01)

    def summary(self) -> str:
        return f"{self.succeeded} succeeded, {self.retried} retried, {len(self.lost)} lost"

    def _count(self, succeeded: int = 0, retried: int = 0, lost: list[str] | None = None) -> None:
        with self.lock:
            self.succeeded += succeeded
            self.retried += retried
            self.lost += lost or []

    def _client(self) -> None:
        while not self.stopping.is_set():
            try:
                self._connection()
            except OSError as exc:
                self._count(lost=[f"connect: {exc!r}"])
                time.sleep(0.05)

    def _connection(self) -> None:
        """One connection: send requests until GOAWAY, the close, or the end of the load."""
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        connection = h2.connection.H2Connection(config)
        connection.initiate_connection()
        open_streams: set[int] = set()
        statuses: dict[int, int] = {}
        last_stream_id: int | None = None  # from the server's GOAWAY
        buffer = bytearray()
        with socket.create_connection(self.address, timeout=5) as sock:
            sock.sendall(connection.data_to_send())
            while True:
                while (
                    last_stream_id is None
                    and not self.stopping.is_set()
                    and len(open_streams) < STREAMS_PER_CONNECTION
                ):
                    stream_id = connection.get_next_available_stream_id()
                    headers = [(":method", "GET"), (":scheme", "http"), (":path", "/"),
                               (":authority", "load")]  # fmt: skip
                    connection.send_headers(stream_id, headers, end_stream=True)
                    open_streams.add(stream_id)
                with contextlib.suppress(h2.exceptions.ProtocolError):
                    sock.sendall(connection.data_to_send())
                if not open_streams:
                    return  # stopping, or GOAWAY with nothing of ours left: a new connection
                try:
                    data = sock.recv(65536)
                except OSError as exc:
                    data, reason = b"", f"read: {exc!r}"
                else:
                    reason = "closed"
                if not data:
                    self._cut(open_streams, last_stream_id, reason)
                    return
                buffer += data
                try:
                    for frame in _frames(buffer):
                        last_stream_id = self._handle(
                            connection, connection.receive_data(frame), open_streams, statuses,
                            last_stream_id,
                        )  # fmt: skip
                except h2.exceptions.ProtocolError as exc:
                    self._cut(open_streams, None, f"protocol error: {exc!r}")
                    return

    def _handle(
        self,
        connection: h2.connection.H2Connection,
        events: list[h2.events.Event],
        open_streams: set[int],
        statuses: dict[int, int],
        last_stream_id: int | None,
    ) -> int | None:
        """Count what `events` say of our streams; the last stream id of a GOAWAY among them."""
        for event in events:
            if isinstance(event, h2.events.ResponseReceived):
                statuses[event.stream_id] = int(dict(event.headers)[b":status"])
            elif isinstance(event, h2.events.DataReceived):
                connection.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                open_streams.discard(event.stream_id)
                status = statuses.pop(event.stream_id, 0)
                if 200 <= status < 300:
                    self._count(succeeded=1)
                else:
                    self._count(lost=[f"stream {event.stream_id}: status {status}"])
            elif isinstance(event, h2.events.StreamReset):
                open_streams.discard(event.stream_id)
                if event.error_code == h2.errors.ErrorCodes.REFUSED_STREAM:
                    self._count(retried=1)
                else:
                    self._count(lost=[f"stream {event.stream_id}: reset {event.error_code!r}"])
            elif isinstance(event, h2.events.ConnectionTerminated):
                # h2 refuses every frame after a GOAWAY, even the responses the server still
                # owes below its last stream id: put its state machine back (frames are fed
                # one at a time for this, see _frames).
                connection.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
                last_stream_id = event.last_stream_id
                unprocessed = {s for s in open_streams if s > last_stream_id}
                open_streams -= unprocessed
                self._count(retried=len(unprocessed))
        return last_stream_id

    def _cut(self, open_streams: set[int], last_stream_id: int | None, reason: str) -> None:
        """The connection ended with `open_streams` unanswered: lost, unless a GOAWAY had said
        the server never took them."""
        taken = [s for s in open_streams if last_stream_id is None or s <= last_stream_id]
        self._count(
            retried=len(open_streams) - len(taken),
            lost=[f"stream {s}: connection {reason}" for s in sorted(taken)],
        )


def _frames(buffer: bytearray) -> list[bytes]:
    """Take the whole frames off the front of `buffer` (a 9-byte header with a 24-bit length)."""
    frames = []
    while len(buffer) >= 9:
        end = 9 + int.from_bytes(buffer[:3], "big")
        if len(buffer) < end:
            break
        frames.append(bytes(buffer[:end]))
        del buffer[:end]
    return frames
