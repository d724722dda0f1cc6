"""Apply proxy headers (RFC 7239 Forwarded, X-Forwarded-For/Proto/Host) to a request scope.

Only called for connections whose peer is trusted (see devserver.net); it never widens trust.
The rules, which docs/security.md repeats:

- One family only, chosen by --forwarded-headers: `x-forwarded` (the default: X-Forwarded-For,
  -Proto and -Host, what nginx, HAProxy and most load balancers write) or `forwarded` (RFC 7239).
  The other family is ignored whatever it says: a proxy that writes one passes a client's own
  copy of the other through untouched, so no precedence between the two can be trusted.
  X-Forwarded-Proto and -Host must be set (overwritten) by the proxy, as it does for the others.
- Only what the trusted proxies appended counts. The chain (Forwarded elements, X-Forwarded-For
  entries, repeated header lines joined in order) is walked from the right, past entries that
  name a trusted proxy; the first entry that does not is the client's, as the outermost trusted
  proxy recorded it, and everything left of it is the client's own word. A Forwarded `proto=`
  and `host=` are read from that same element; X-Forwarded-Proto and -Host from their
  rightmost value. When every entry names a trusted proxy the leftmost is the client, so with
  --forwarded-allow-ips '*' the client's own first entry is believed.
- A client address must parse as an IP address (the ipaddress module; IPv6 bare or in brackets,
  with an optional port). `unknown`, obfuscated identifiers (`_hidden`), host names and garbage
  end the walk and leave scope["client"] as it was: the proxy's own address. A port is kept when
  it is a number from 1 to 65535; any other port (absent, `_obf`, 0, 70000) becomes 0.
- Proto: http, https, ws or wss (any case); anything else leaves the scheme as it was.
- Host: X-Forwarded-Host or `host=` replace the Host header only with --forwarded-host, and
  only with a value made of host-and-port characters; otherwise Host stays the client's own.
- A Forwarded value is split at every `,` and `;`, inside quotes too: a quote that a client
  opens cannot swallow the elements that proxies appended after it.
"""

from __future__ import annotations

import re

from devserver.asgi import HTTPScope
from devserver.net import IPAddress, TrustedPeers, parse_ip

_SCHEMES = {"http": "http", "https": "https", "ws": "ws", "wss": "wss"}
_HOST = re.compile(r"[A-Za-z0-9.\-_~%!$&'()*+=:\[\]]{1,300}")  # reg-name / IP literal, port

Node = tuple[IPAddress, int]  # a parsed chain entry: the address and its port (0: none)


def apply_proxy_headers(
    scope: HTTPScope,
    trusted: TrustedPeers,
    forwarded_host: bool = False,
    family: str = "x-forwarded",
) -> None:
    """Rewrite scope["client"], scope["scheme"] and (with `forwarded_host`) the Host header from
    the proxy's headers of `family` ("x-forwarded" or "forwarded"). Call once per request, only
    when the connection's peer is trusted."""
    rfc7239 = family == "forwarded"
    forwarded: list[str] = []
    hops: list[str] = []
    proto = host = ""
    for name, value in scope["headers"]:
        if rfc7239:
            if name == b"forwarded":
                forwarded.append(value.decode("latin-1"))
        elif name == b"x-forwarded-for":
            hops.extend(value.decode("latin-1").split(","))
        elif name == b"x-forwarded-proto":
            proto = value.decode("latin-1").rsplit(",", 1)[-1]
        elif name == b"x-forwarded-host":
            host = value.decode("latin-1").rsplit(",", 1)[-1]
    if rfc7239:
        client, proto, host = _from_forwarded(",".join(forwarded), trusted)
    else:
        client = _nearest_untrusted([hop.strip() for hop in hops if hop.strip()], trusted)[1]
    if client is not None:
        scope["client"] = client
    if proto:
        scope["scheme"] = _scheme_for(scope["scheme"], proto.strip().lower())
    host = host.strip()
    if forwarded_host and host and _HOST.fullmatch(host):
        _replace_host(scope, host.encode("ascii"))


def _from_forwarded(value: str, trusted: TrustedPeers) -> tuple[tuple[str, int] | None, str, str]:
    """The client's element of a Forwarded chain: its (client, proto, host)."""
    elements = [element for element in map(_parameters, value.split(",")) if element]
    if not elements:
        return None, "", ""
    index, client = _nearest_untrusted([element.get("for", "") for element in elements], trusted)
    element = elements[index]
    return client, element.get("proto", ""), element.get("host", "")


def _parameters(element: str) -> dict[str, str]:
    """`for=192.0.2.1;proto=https` → {"for": "192.0.2.1", "proto": "https"} (keys lowercased)."""
    pairs: dict[str, str] = {}
    for pair in element.split(";"):
        key, _, value = pair.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if value:
            pairs[key.strip().lower()] = value
    return pairs


def _nearest_untrusted(
    hops: list[str], trusted: TrustedPeers
) -> tuple[int, tuple[str, int] | None]:
    """The client's entry: from the right, the first that is not a trusted proxy's address (one
    that is no IP address at all ends the walk too), else the leftmost. Its index, and the
    scope["client"] it gives (None when it names no IP address, or there are no entries)."""
    index, node = 0, None
    for index in range(len(hops) - 1, -1, -1):  # all trusted: ends on the leftmost, index 0
        node = _node(hops[index])
        if node is None or not trusted.trusts(node[0]):
            break
    return index, None if node is None else (str(node[0]), node[1])


def _node(hop: str) -> Node | None:
    """'192.0.2.1', '192.0.2.1:80', '[2001:db8::1]:80' or '2001:db8::1' → (address, port)."""
    if hop.startswith("["):
        address, bracket, rest = hop[1:].partition("]")
        if not bracket or (rest and rest[0] != ":"):
            return None
        port = rest[1:]
    elif hop.count(":") == 1:
        address, _, port = hop.partition(":")
    else:
        address, port = hop, ""
    ip = parse_ip(address)
    if ip is None:
        return None
    number = int(port) if port.isascii() and port.isdigit() and len(port) <= 5 else 0
    return ip, number if number <= 65535 else 0


def _scheme_for(current: str, proto: str) -> str:
    scheme = _SCHEMES.get(proto)
    if scheme is None:
        return current
    if current in ("ws", "wss"):
        return "wss" if scheme in ("https", "wss") else "ws"
    return scheme


def _replace_host(scope: HTTPScope, host: bytes) -> None:
    """Host becomes `host`, in place of the client's (added if the request had none). A new list:
    the connection may still hold the old one."""
    headers = [(name, host if name == b"host" else value) for name, value in scope["headers"]]
    if not any(name == b"host" for name, _ in headers):
        headers.append((b"host", host))
    scope["headers"] = headers
