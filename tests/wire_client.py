"""The client side of the HTTP/1.1 wire tests: raw requests sent on a new connection, and the
checks on what comes back (an error answer that closes, a server that goes on serving)."""

from __future__ import annotations

from tests import wire_apps
from tests.utils import Running
from tests.wire_apps import parse_responses, read_until_closed

HOST = b"Host: test\r\n"
GET = b"GET / HTTP/1.1\r\n" + HOST + b"\r\n"
GET_CLOSE = b"GET / HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n"


def exchange(server: Running, data: bytes, timeout: float = 2.0) -> tuple[bytes, bool]:
    """Send `data` on a new connection; return what came back and whether it was closed."""
    with server.connect() as sock:
        sock.sendall(data)
        return read_until_closed(sock, timeout)


def assert_still_serving(server: Running) -> None:
    """A fresh connection after a bad one is served normally."""
    raw, closed = exchange(server, GET_CLOSE)
    [response] = parse_responses(raw)
    assert response.status == 200, raw
    assert closed


def assert_rejected(server: Running, data: bytes, status: int) -> wire_apps.Response:
    """`data` gets exactly one `status` answer, the connection closes, the server goes on."""
    raw, closed = exchange(server, data)
    responses = parse_responses(raw)
    assert [r.status for r in responses] == [status], raw[:300]
    assert responses[0].header("connection") == "close"
    assert closed, "the connection stayed open after an error response"
    assert_still_serving(server)
    return responses[0]
