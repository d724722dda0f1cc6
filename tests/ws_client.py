"""A WebSocket client for the tests, two ways: raw frames on a socket (`RawWS`, hand-built
masked frames), where a client library would hide what the server does (the raw 101, close
frames without a code, fragments, backpressure, unanswered pings); and websockets' own sync
client (`ws_connect`) elsewhere."""

from __future__ import annotations

import base64
import dataclasses
import os
import re
import socket
import struct
import time
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.wire_apps import parse_responses, read_until_closed

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
KEY = base64.b64encode(b"devserve-test-16").decode()  # any 16 bytes, base64 (RFC 6455 4.1)
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MiB = 1 << 20


def upgrade_request(
    path: str = "/echo", method: str = "GET", headers: dict[str, str | None] | None = None
) -> bytes:
    """A WebSocket handshake request; `headers` override (None: leave out) the usual ones."""
    fields: dict[str, str | None] = {
        "Host": "test",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": KEY,
        "Sec-WebSocket-Version": "13",
    }
    fields.update(headers or {})
    lines = "".join(f"{name}: {value}\r\n" for name, value in fields.items() if value is not None)
    return f"{method} {path} HTTP/1.1\r\n{lines}\r\n".encode("latin-1")


def client_frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, rsv1: bool = False
) -> bytes:
    """One masked client frame (RFC 6455 5.2)."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", first, 0x80 | size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", first, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, size)
    mask = os.urandom(4)
    key = int.from_bytes((mask * (size // 4 + 1))[:size], "big")
    return head + mask + (int.from_bytes(payload, "big") ^ key).to_bytes(size, "big")


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode()


@dataclasses.dataclass
class Frame:
    opcode: int
    payload: bytes
    fin: bool = True
    rsv1: bool = False

    @property
    def close(self) -> tuple[int | None, str]:
        assert self.opcode == OP_CLOSE, f"expected a close frame, got {self}"
        if len(self.payload) < 2:
            return None, ""
        return struct.unpack("!H", self.payload[:2])[0], self.payload[2:].decode()

    def __repr__(self) -> str:
        return f"Frame(opcode={self.opcode}, fin={self.fin}, payload={self.payload[:40]!r}…)"


class RawWS:
    """A raw client connection: reads HTTP heads and unmasked server frames off a buffer."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    @classmethod
    def connect(cls, port: int, data: bytes = b"") -> RawWS:
        raw = cls(socket.create_connection(("127.0.0.1", port), timeout=5))
        if data:
            raw.sock.sendall(data)
        return raw

    @classmethod
    def open(
        cls, port: int, path: str = "/echo", headers: dict[str, str | None] | None = None
    ) -> tuple[bytes, RawWS]:
        """Handshake on a new connection; returns (the 101 head, the client)."""
        raw = cls.connect(port, upgrade_request(path, headers=headers))
        head = raw.read_head()
        assert head.startswith(b"HTTP/1.1 101 "), head
        return head, raw

    def close(self) -> None:
        self.sock.close()

    def _fill(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"nothing more arrived; buffered {bytes(self.buffer[:200])!r}")
        self.sock.settimeout(left)
        chunk = self.sock.recv(MiB)
        if not chunk:
            raise EOFError(f"connection closed; buffered {bytes(self.buffer[:200])!r}")
        self.buffer += chunk

    def read_head(self, timeout: float = 5.0) -> bytes:
        deadline = time.monotonic() + timeout
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            self._fill(deadline)
        head = bytes(self.buffer[:end])
        del self.buffer[: end + 4]
        return head

    def read_http(self, timeout: float = 5.0) -> tuple[bytes, bytes]:
        """One response with a Content-Length body; bytes after it stay buffered."""
        deadline = time.monotonic() + timeout
        head = self.read_head(timeout)
        match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        length = int(match.group(1)) if match else 0
        while len(self.buffer) < length:
            self._fill(deadline)
        body = bytes(self.buffer[:length])
        del self.buffer[:length]
        return head, body

    def send(self, opcode: int, payload: bytes = b"", *, fin: bool = True) -> None:
        self.sock.sendall(client_frame(opcode, payload, fin=fin))

    def recv_frame(self, timeout: float = 5.0) -> Frame:
        deadline = time.monotonic() + timeout
        while (parsed := self._parse()) is None:
            self._fill(deadline)
        return parsed

    def _parse(self) -> Frame | None:
        buffer = self.buffer
        if len(buffer) < 2:
            return None
        first, second = buffer[0], buffer[1]
        assert not second & 0x80, "a server never masks its frames"
        size, pos = second & 0x7F, 2
        if size == 126:
            if len(buffer) < 4:
                return None
            size, pos = struct.unpack_from("!H", buffer, 2)[0], 4
        elif size == 127:
            if len(buffer) < 10:
                return None
            size, pos = struct.unpack_from("!Q", buffer, 2)[0], 10
        if len(buffer) < pos + size:
            return None
        payload = bytes(buffer[pos : pos + size])
        frame = Frame(first & 0x0F, payload, fin=bool(first & 0x80), rsv1=bool(first & 0x40))
        del buffer[: pos + size]
        return frame

    def recv_close(self, timeout: float = 5.0) -> tuple[int | None, str]:
        """The server's close frame (pings skipped): its (code, reason)."""
        while (frame := self.recv_frame(timeout)).opcode == OP_PING:
            pass
        return frame.close

    def at_eof(self, timeout: float = 5.0) -> bool:
        """True when the server ended the TCP connection (EOF or reset) within `timeout`."""
        if self.buffer:
            return False
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False


def ws_connect(port: int, path: str, **options: Any) -> ClientConnection:
    """websockets' sync client, with short timeouts and no proxy from the environment."""
    options = {"open_timeout": 5, "close_timeout": 5, "proxy": None, **options}
    return connect(f"ws://127.0.0.1:{port}{path}", **options)


def closed_by_server(ws: ClientConnection, timeout: float = 5.0) -> tuple[int, str]:
    """Wait for the server's close; its (code, reason) as the client received them."""
    with pytest.raises(ConnectionClosed) as info:
        while True:
            ws.recv(timeout=timeout)
    received = info.value.rcvd
    assert received is not None, f"no close frame from the server: {info.value!r}"
    return received.code, received.reason


def http_answer(port: int, request: bytes) -> tuple[Any, bool]:
    """Send `request` on a new connection; the one response it gets and whether it was closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        raw, closed = read_until_closed(sock, timeout=3)
    [response] = parse_responses(raw)
    return response, closed
