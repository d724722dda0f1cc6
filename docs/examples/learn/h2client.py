"""Speak HTTP/2 by hand: h2 (the library devserve is built on) as a client, every frame printed.

    python3 docs/examples/learn/h2client.py 8000 GET '/hello?name=ada'
    python3 docs/examples/learn/h2client.py 8000 POST /upload 200000   # a body of 200000 bytes

The HTTP/2 chapter (docs/learn/http2.md) runs it. It connects in cleartext and opens with the
connection preface at once ("prior knowledge": no Upgrade, no TLS), sends one request on stream 1,
and prints each frame as it goes out (`>`) or comes in (`<`), with the header blocks decoded.
It ends when stream 1 ends, or with `--wait` when the server closes the connection. `--reset N`
opens N streams and cancels each at once (the "rapid reset" attack), `--continuation N` sends a
header block in one HEADERS frame and N CONTINUATION frames. h2 is one of devserve's
dependencies: run it with the Python devserve is installed in, or `pip install h2`.
"""

from __future__ import annotations

import argparse
import socket

import h2.config
import h2.connection
import h2.events
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hpack import Decoder, Encoder
from hyperframe.frame import ContinuationFrame, Frame, HeadersFrame

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class FrameLog:
    """Cuts one direction's bytes into frames and prints each; a header block is decoded with
    an HPACK decoder of its own, which stays in step as it sees every block in order."""

    def __init__(
        self, arrow: str, preface: bool = False, show: int = -1, hexdump: bool = False
    ) -> None:
        self.arrow, self.buffer, self.hpack = arrow, b"", Decoder()
        self.preface, self.hexdump = preface, hexdump
        self.show = show  # how many frames to print (-1: all); the rest are only parsed
        self.block = b""  # a header block whose CONTINUATION frames are still to come

    def feed(self, data: bytes) -> list[bytes]:
        """Print the frames `data` completes; their bytes, one frame each."""
        self.buffer += data
        if self.preface and len(self.buffer) >= len(PREFACE):
            print(f"{self.arrow} {self.buffer[: len(PREFACE)]!r} (the preface)")
            self.buffer, self.preface = self.buffer[len(PREFACE) :], False
        frames = []
        while len(self.buffer) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(self.buffer[:9]))
            if len(self.buffer) < 9 + length:
                break
            frame.parse_body(memoryview(self.buffer[9 : 9 + length]))
            shown = self.show != 0
            if shown:
                print(self.arrow, describe(frame))
                self.show -= 1
                if self.hexdump:  # the 9-byte frame header | the payload's first 24 bytes
                    payload = self.buffer[9 : 9 + min(length, 24)].hex(" ")
                    more = " ..." if length > 24 else ""
                    print(
                        f"      {self.buffer[:9].hex(' ')}" + (f" | {payload}{more}" * bool(length))
                    )
            if isinstance(frame, HeadersFrame | ContinuationFrame):
                self.block += frame.data
                if "END_HEADERS" in frame.flags:
                    fields = self.hpack.decode(self.block, raw=True)
                    self.block = b""
                    for name, value in fields if shown else []:
                        print(f"      {name.decode()}: {value.decode()}")
            frames.append(self.buffer[: 9 + length])
            self.buffer = self.buffer[9 + length :]
        return frames


def describe(frame: Frame) -> str:
    """`HEADERS stream=1 END_STREAM END_HEADERS`, `SETTINGS MAX_FRAME_SIZE=16384`, ..."""
    kind = type(frame).__name__.removesuffix("Frame")
    words = [
        {"RstStream": "RST_STREAM", "WindowUpdate": "WINDOW_UPDATE", "GoAway": "GOAWAY"}.get(
            kind, kind.upper()
        )
    ]
    if frame.stream_id:
        words.append(f"stream={frame.stream_id}")
    words += sorted(frame.flags)
    if kind == "Data":
        words.append(f"{len(frame.data)} bytes")
        if len(frame.data) <= 80:
            words.append(repr(frame.data))
    elif kind == "Settings":
        words += [f"{SettingCodes(code).name}={value}" for code, value in frame.settings.items()]
    elif kind == "Ping":
        words.append(repr(frame.opaque_data))
    elif kind == "WindowUpdate":
        words.append(f"+{frame.window_increment}")
    elif kind in ("RstStream", "GoAway"):
        if kind == "GoAway":
            words.append(f"last_stream_id={frame.last_stream_id}")
        words.append(ErrorCodes(frame.error_code).name)
    return " ".join(words)


def request(port: int, method: str, path: str, size: int, wait: bool, hexdump: bool) -> None:
    config = h2.config.H2Configuration(client_side=True, header_encoding=None)
    conn = h2.connection.H2Connection(config)
    sent, received = FrameLog(">", True, hexdump=hexdump), FrameLog("<", hexdump=hexdump)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:

        def flush() -> None:
            data = conn.data_to_send()
            sent.feed(data)
            sock.sendall(data)

        conn.initiate_connection()  # the preface and the client's SETTINGS
        head = [(":method", method), (":scheme", "http"), (":authority", f"127.0.0.1:{port}")]
        head.append((":path", path))
        if size:
            head.append(("content-length", str(size)))
        conn.send_headers(1, [(n.encode(), v.encode()) for n, v in head], end_stream=not size)
        flush()
        body = b"x" * size
        done = False  # stream 1 has ended; with --wait, read on until the server closes
        while not done or wait:
            body = send_what_fits(conn, body)
            flush()
            data = sock.recv(65536)
            if not data:
                print("(the server closed the connection)")
                return
            for frame in received.feed(data):  # h2 is fed one frame at a time: see on_goaway
                for event in conn.receive_data(frame):
                    if isinstance(event, h2.events.DataReceived):
                        # the app "read" it: give the server its window back (h2 says when)
                        conn.acknowledge_received_data(event.flow_controlled_length, 1)
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        wait = on_goaway(conn, event) or wait
                    done = done or isinstance(event, h2.events.StreamEnded | h2.events.StreamReset)
            flush()


def on_goaway(conn: h2.connection.H2Connection, event: h2.events.ConnectionTerminated) -> bool:
    """The server is closing the connection. h2 then refuses every frame, but a graceful GOAWAY
    (NO_ERROR) still owes us the responses of the streams up to its last_stream_id (RFC 9113
    6.8): put h2's state machine back to open (devserve's server side gives h2 a state machine
    that stays open instead), and read them."""
    if event.error_code != ErrorCodes.NO_ERROR:
        return False
    conn.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
    return True  # read on until the server closes


def send_what_fits(conn: h2.connection.H2Connection, body: bytes) -> bytes:
    """Queue as much of `body` as stream 1's and the connection's windows allow; the rest."""
    while body:
        room = min(conn.local_flow_control_window(1), conn.max_outbound_frame_size)
        if room <= 0:
            break
        chunk, body = body[:room], body[room:]
        conn.send_data(1, chunk, end_stream=not body)
    return body


def attack(port: int, resets: int, continuations: int) -> None:
    """Rapid reset (HEADERS then RST_STREAM, `resets` times) or a header block cut into
    1 + `continuations` frames, written in one go; then print what comes back until the close."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    head = [(":method", "GET"), (":scheme", "http"), (":authority", "x"), (":path", "/")]
    if resets:
        for stream_id in range(1, 2 * resets, 2):
            conn.send_headers(stream_id, head, end_stream=True)
            conn.reset_stream(stream_id, ErrorCodes.CANCEL)
        data = conn.data_to_send()
        FrameLog(">", preface=True, show=3).feed(data)  # SETTINGS, the first HEADERS and RST
        print(f"> ... {resets - 1} more HEADERS and RST_STREAM pairs, in the same write")
    else:
        # without Huffman coding, so that the block is longer than `continuations` bytes
        block = Encoder().encode([*head, ("x-filler", "a" * continuations)], huffman=False)
        data = conn.data_to_send() + cut_block(block, continuations)
        FrameLog(">", preface=True, show=3).feed(data)  # SETTINGS, HEADERS, a CONTINUATION
        print(f"> ... {continuations - 1} more CONTINUATION frames, in the same write")
    received = FrameLog("<")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        while chunk := sock.recv(65536):
            received.feed(chunk)
    print("(the server closed the connection)")


def cut_block(block: bytes, continuations: int) -> bytes:
    """`block` as a HEADERS frame on stream 1 with all but its last `continuations` bytes, then
    one CONTINUATION frame for each of those bytes, the last one with END_HEADERS."""
    first, rest = block[: len(block) - continuations], block[len(block) - continuations :]
    frames = [HeadersFrame(1, first, flags=["END_STREAM"])]
    for i in range(continuations):
        last = ["END_HEADERS"] if i == continuations - 1 else []
        frames.append(ContinuationFrame(1, rest[i : i + 1], flags=last))
    return b"".join(frame.serialize() for frame in frames)


def main() -> None:
    parser = argparse.ArgumentParser(description="One HTTP/2 request, every frame printed.")
    parser.add_argument("port", type=int, nargs="?", default=8000)
    parser.add_argument("method", nargs="?", default="GET")
    parser.add_argument("path", nargs="?", default="/")
    parser.add_argument("size", type=int, nargs="?", default=0, help="request body bytes")
    parser.add_argument("--wait", action="store_true", help="read on until the server closes")
    parser.add_argument("--hex", action="store_true", help="show each frame's first bytes")
    parser.add_argument("--reset", type=int, default=0, metavar="N", help="rapid reset, N times")
    parser.add_argument("--continuation", type=int, default=0, metavar="N")
    args = parser.parse_args()
    if args.reset or args.continuation:
        attack(args.port, args.reset, args.continuation)
    else:
        request(args.port, args.method, args.path, args.size, args.wait, args.hex)


if __name__ == "__main__":
    main()
