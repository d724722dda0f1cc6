"""An HTTP/2 request head, checked by the rules of RFC 9113 section 8 and turned into an ASGI scope.

h2 is told not to validate inbound headers (its checks raise a connection error, where section 8.1.1
asks for a stream error, and they cost more than these): every rule it would apply is here, once,
and a request that breaks one gets `MalformedRequest`, which the connection answers by resetting
that stream with PROTOCOL_ERROR. Limits on the head (field count and size) are `HeadTooLarge`:
answered with a 431 on the stream, as HTTP/1.1 answers them.
"""

from __future__ import annotations

import re
from typing import Any

from devserver.asgi import Headers, HTTPScope
from devserver.protocols import wire
from devserver.protocols.scope import http_scope

# The checks below run over every byte of every field, and HPACK lets a client send a 4 KB field
# again as one byte: they are bytes methods (C loops), never a regular expression (~30 ns a byte).
# Lower-case token characters only: RFC 9113 8.2.1 makes an upper-case name malformed.
_NAME_CHARS = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
# White space and control bytes have no place in a request target or an authority (RFC 3986)
_TARGET_CHARS = bytes(range(0x21, 0x7F)) + bytes(range(0x80, 0x100))
_EDGE_SPACE = (b" ", b"\t")
_PSEUDO = {
    name: name[1:].decode()
    for name in (b":method", b":scheme", b":path", b":authority", b":protocol")
}
_SCHEMES = frozenset((b"http", b"https"))
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # a method (RFC 9110 9.1)
# Decoded once: the few common methods repeat forever.
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")}


class MalformedRequest(Exception):
    """A request head RFC 9113 section 8 calls malformed: reset its stream (PROTOCOL_ERROR)."""


class HeadTooLarge(Exception):
    """More header fields, or a larger one, than the limits allow (431), or a longer :path
    than --limit-request-line (414): answered with that status on the stream."""

    def __init__(self, detail: str, status: int = 431) -> None:
        super().__init__(detail)
        self.status = status


def invalid_value(value: bytes) -> bool:
    """NUL, CR or LF anywhere, or white space at either end (RFC 9113 8.2.1)."""
    return (
        b"\n" in value
        or b"\r" in value
        or b"\x00" in value
        or value[:1] in _EDGE_SPACE
        or value[-1:] in _EDGE_SPACE
    )


class RequestHead:
    """The pseudo-header fields of one request and its regular fields, as the app will see them."""

    __slots__ = ("method", "scheme", "path", "authority", "protocol", "headers")

    def __init__(self) -> None:
        self.method = b""
        self.scheme = b""
        self.path = b""
        self.authority = b""
        self.protocol = b""  # extended CONNECT (RFC 8441): the protocol to run, "websocket"
        self.headers: Headers = []


def parse_head(
    fields: list[tuple[bytes, bytes]],
    max_fields: int,
    max_field_size: int,
    max_target: int,
    connect: bool,
) -> RequestHead:
    """Check a decoded header block and sort it into a RequestHead.

    `connect`: whether extended CONNECT was offered (SETTINGS_ENABLE_CONNECT_PROTOCOL), so that
    a `:protocol` field may appear.
    """
    head = RequestHead()
    headers = head.headers
    cookies: list[bytes] = []
    has_host = False
    if len(fields) > max_fields + len(_PSEUDO):  # counted exactly below, without pseudo-headers
        raise HeadTooLarge(f"more than {max_fields} header fields")
    for name, value in fields:
        if len(name) + len(value) > max_field_size:
            raise HeadTooLarge(f"a header field larger than {max_field_size} bytes")
        if invalid_value(value):
            raise MalformedRequest(f"invalid value of {_show(name)}")
        if name[:1] == b":":
            if headers or cookies or has_host:
                raise MalformedRequest(f"pseudo-header {_show(name)} after a regular field")
            _set_pseudo(head, name, value, connect)
            continue
        if not name or name.translate(None, _NAME_CHARS):
            raise MalformedRequest(f"invalid header name {_show(name)}")
        if name in wire.CONNECTION_SPECIFIC:  # made for another protocol, or a hop's framing
            raise MalformedRequest(f"connection-specific header {_show(name)}")
        if name == b"te" and value != b"trailers":
            raise MalformedRequest("te other than 'trailers'")
        if name == b"cookie":
            cookies.append(value)  # crumbs are joined into one field below (RFC 9113 8.2.3)
            continue
        if name == b"host":
            has_host = True
            if head.authority and value != head.authority:
                raise MalformedRequest("host differs from :authority")
        headers.append((name, value))
    _check_pseudo(head)
    if len(head.path) > max_target:  # as HTTP/1.1 bounds its request line
        raise HeadTooLarge(f":path longer than {max_target}", 414)
    if len(headers) + len(cookies) > max_fields:  # as HTTP/1.1 counts them: Host among them
        raise HeadTooLarge(f"more than {max_fields} header fields")
    if cookies:
        headers.append((b"cookie", b"; ".join(cookies)))
    if head.authority and not has_host:  # the app and proxies read the host header (ASGI)
        headers.insert(0, (b"host", head.authority))
    return head


def _set_pseudo(head: RequestHead, name: bytes, value: bytes, connect: bool) -> None:
    attribute = _PSEUDO.get(name)
    if attribute is None or (attribute == "protocol" and not connect):
        raise MalformedRequest(f"unknown pseudo-header {_show(name)}")
    if getattr(head, attribute):
        raise MalformedRequest(f"duplicate pseudo-header {_show(name)}")
    if not value:
        raise MalformedRequest(f"empty pseudo-header {_show(name)}")
    if (attribute == "path" or attribute == "authority") and value.translate(None, _TARGET_CHARS):
        raise MalformedRequest(f"invalid {_show(name)} {_show(value)}")  # as HTTP/1.1: a 400
    setattr(head, attribute, value)


def _check_pseudo(head: RequestHead) -> None:
    """The pseudo-headers a request needs (RFC 9113 8.3.1, RFC 8441 4)."""
    if not head.method:
        raise MalformedRequest("no :method")
    if head.method == b"CONNECT" and not head.protocol:
        # A plain CONNECT (a tunnel) has only :method and :authority: not served by an app.
        raise MalformedRequest("CONNECT without :protocol (tunnels are not served)")
    if head.protocol and head.method != b"CONNECT":
        raise MalformedRequest(":protocol in a request other than CONNECT")
    if not head.scheme or not head.path:
        raise MalformedRequest("no :scheme or :path")
    if head.scheme not in _SCHEMES:
        raise MalformedRequest(f"unsupported :scheme {_show(head.scheme)}")
    if head.path[:1] != b"/" and not (head.path == b"*" and head.method == b"OPTIONS"):
        raise MalformedRequest(f"invalid :path {_show(head.path[:100])}")


def request_scope(
    head: RequestHead,
    scheme: str,
    client: tuple[str, int] | None,
    server: tuple[str, int | None] | None,
    root_path: str,
    state: dict[str, Any],
) -> HTTPScope:
    """The ASGI http scope of a checked head (ASGI HTTP spec 2.4, http_version "2")."""
    method = _METHODS.get(head.method)
    if method is None:
        if not _TOKEN.fullmatch(head.method):
            raise MalformedRequest(f"invalid :method {_show(head.method)}")
        method = head.method.decode("ascii")
    try:
        return http_scope(
            method, "2", head.path, head.headers, scheme, client, server, root_path, state
        )
    except ValueError as exc:
        raise MalformedRequest(str(exc)) from None


def _show(text: bytes) -> str:
    return repr(text[:60])[1:]
