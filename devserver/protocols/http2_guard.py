"""What an HTTP/2 client may not do to a worker, checked before h2 spends anything on it.

Two guards, one per connection, pure bookkeeping (no socket, no h2 connection): protocols/http2.py
asks them and, when one says no, ends the connection with the error code it names.

- `FrameGuard` reads every frame header as the bytes arrive. h2 buffers a frame whole before it
  checks its length, and a header block until its last CONTINUATION (up to 64 frames of any
  size): a 16 MiB frame header, or a slow stream of CONTINUATIONs, would make the worker hold
  megabytes per connection. Here either ends the connection at its header.
- `FloodCounter` counts frames that cost the server work (a reset stream, a PING or SETTINGS
  acknowledgement to write, a log line) and the client nothing, per second: the 2023 "rapid
  reset" attack and its relatives, and malformed requests ("MadeYouReset", CVE-2025-8671).
"""

from __future__ import annotations

from h2.errors import ErrorCodes

# Frames a client may send per second, by kind, before it gets GOAWAY ENHANCE_YOUR_CALM; browsers
# send a handful of each per page.
FLOOD_LIMITS = {
    "stream resets": 100,
    "pings": 50,
    "settings frames": 50,
    "priority frames": 200,
    "empty data frames": 200,
    "unknown frames": 100,
    "malformed requests": 50,  # also 431s: as cheap to send, as costly to answer
    "refused streams": 200,  # past --h2-max-concurrent-streams running apps, or a GOAWAY
    "tiny window updates": 200,  # under 1 KiB: each may wake every send waiting for a window
}
_HEADERS, _CONTINUATION = 0x1, 0x9
_END_HEADERS = 0x4
FRAME_HEADER = 9  # bytes: length (24 bits), type, flags, stream id (32 bits)


class FrameGuard:
    """Follows the frame boundaries of one connection's bytes, after its preface."""

    __slots__ = ("max_frame", "max_block", "skip", "head", "block")

    def __init__(self, max_frame: int, max_block: int, preface: int) -> None:
        self.max_frame = max_frame
        self.max_block = max_block  # bytes of one header block, across its CONTINUATIONs
        self.skip = preface  # bytes until the next frame header begins
        self.head = b""  # a frame header cut across reads
        self.block = 0  # bytes of the header block being received

    def check(self, data: bytes) -> tuple[ErrorCodes, str] | None:
        """The next bytes read: None if every frame header in them is within the limits, else
        the error code and what broke them."""
        at, end = self.skip, len(data)
        if self.head:  # a header cut across reads (then `skip` is 0): complete it
            need = FRAME_HEADER - len(self.head)
            head = self.head + data[:need]
            if len(head) < FRAME_HEADER:
                self.head = head
                return None
            self.head = b""
            refused = self._frame(head, 0)
            if refused is not None:
                return refused
            at = need + int.from_bytes(head[:3], "big")
        while at + FRAME_HEADER <= end:
            refused = self._frame(data, at)
            if refused is not None:
                return refused
            at += FRAME_HEADER + int.from_bytes(data[at : at + 3], "big")
        if at < end:
            self.head, self.skip = data[at:], 0
        else:
            self.skip = at - end
        return None

    def _frame(self, data: bytes, at: int) -> tuple[ErrorCodes, str] | None:
        length = int.from_bytes(data[at : at + 3], "big")
        if length > self.max_frame:
            return ErrorCodes.FRAME_SIZE_ERROR, f"a frame of {length} bytes"
        kind = data[at + 3]
        if kind in (_HEADERS, _CONTINUATION):
            self.block = length if kind == _HEADERS else self.block + length
            if data[at + 4] & _END_HEADERS:
                self.block = 0
            elif self.block > self.max_block:
                return (
                    ErrorCodes.ENHANCE_YOUR_CALM,
                    f"a header block of more than {self.max_block} bytes",
                )
        return None


class FloodCounter:
    """Counts, per kind, what one connection sent in the current second."""

    __slots__ = ("second", "counts")

    def __init__(self) -> None:
        self.second = 0.0
        self.counts: dict[str, int] = {}

    def over(self, kind: str, now: float) -> bool:
        """Count one of `kind` at `now` (seconds); True once it passes its FLOOD_LIMITS rate."""
        if now - self.second >= 1.0:
            self.second = now
            self.counts = {}
        seen = self.counts[kind] = self.counts.get(kind, 0) + 1
        return seen > FLOOD_LIMITS[kind]
