"""HTTP/1.1 bytes on the wire: status lines, response heads, chunk framing, canned error responses.

Pure functions and constants only: no transport, no event loop, no ASGI. Everything here is
cheap to call once per response, and the common cases are precomputed.
"""

from __future__ import annotations

import email.utils
import http
import re

CRLF = b"\r\n"
# Fields that describe one connection, not the message (RFC 9110 7.6.1): HTTP/2 has no place
# for them (RFC 9113 8.2.2), in a request or a response.
CONNECTION_SPECIFIC = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)
LAST_CHUNK = b"0\r\n\r\n"
CONTINUE_100 = b"HTTP/1.1 100 Continue\r\n\r\n"

# Token characters of RFC 9110 for header names; values may hold any visible char, space, tab.
_INVALID_NAME = re.compile(rb"[^!#$%&'*+\-.^_`|~0-9A-Za-z]")
_INVALID_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def _status_line(code: int) -> bytes:
    try:
        phrase = http.HTTPStatus(code).phrase
    except ValueError:
        phrase = ""
    return b"HTTP/1.1 %d %s\r\n" % (code, phrase.encode("ascii"))


STATUS_LINES: dict[int, bytes] = {code: _status_line(code) for code in range(100, 600)}


def status_line(code: int) -> bytes:
    line = STATUS_LINES.get(code)
    if line is None:
        raise ValueError(f"invalid HTTP status code {code!r}")
    return line


def has_body(status: int, is_head: bool) -> bool:
    """Whether a response with this status (to a HEAD request or not) has a body on the wire."""
    return not is_head and status >= 200 and status not in (204, 304)


def bodiless_status(status: int) -> bool:
    """Statuses whose responses never have a body nor framing headers (RFC 9110 6.4.1)."""
    return status < 200 or status == 204


def check_header(name: bytes, value: bytes) -> None:
    """Refuse header names/values that would let an app split or corrupt the response."""
    if not name or _INVALID_NAME.search(name):
        raise ValueError(f"invalid header name {name!r}")
    if _INVALID_VALUE.search(value):
        raise ValueError(f"invalid header value for {name.decode('latin-1')!r}: {value!r}")


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def http_date() -> bytes:
    return email.utils.formatdate(usegmt=True).encode("ascii")


def trailer_block(headers: list[tuple[bytes, bytes]]) -> bytes:
    """The end of a chunked body carrying trailers (the last chunk, the fields, the blank line)."""
    return b"0\r\n" + b"".join(b"%b: %b\r\n" % (k, v) for k, v in headers) + CRLF


def simple_response(status: int, body: str, extra: bytes = b"", head: bool = False) -> bytes:
    """A whole plain-text response the server sends on its own (400, 431, 500, 503 ...), after
    which the connection closes.

    `extra` is a ready block of header lines (the server's Date/Server headers); `head` leaves
    the body out (the answer to a HEAD request), keeping its Content-Length.
    """
    payload = body.encode("utf-8")
    parts = [
        status_line(status),
        extra,
        b"content-type: text/plain; charset=utf-8\r\n",
        b"content-length: %d\r\n" % len(payload),
        b"connection: close\r\n",
        CRLF,
        b"" if head else payload,
    ]
    return b"".join(parts)
