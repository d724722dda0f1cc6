"""Apply proxy headers (X-Forwarded-For/Proto/Host, RFC 7239 Forwarded) to a request scope.

Only called for connections whose peer is trusted (see devserver.net); it never widens trust.
The client address is the nearest untrusted hop, walking the chain from the right.
"""

from __future__ import annotations

from typing import Any

from devserver.net import TrustedPeers

_SCHEMES = {"http": "http", "https": "https", "ws": "ws", "wss": "wss"}


def apply_proxy_headers(scope: dict[str, Any], trusted: TrustedPeers) -> None:
    """Rewrite scope["client"], scope["scheme"] and the host header from the proxy's headers."""
    forwarded: bytes | None = None
    hops: list[str] = []
    proto = host = None
    for name, value in scope["headers"]:
        if name == b"forwarded":
            forwarded = value if forwarded is None else forwarded + b"," + value
        elif name == b"x-forwarded-for":
            hops.extend(h.strip() for h in value.decode("latin-1").split(",") if h.strip())
        elif name == b"x-forwarded-proto":
            proto = value.decode("latin-1").rsplit(",", 1)[-1].strip().lower()
        elif name == b"x-forwarded-host":
            host = value.decode("latin-1").rsplit(",", 1)[-1].strip()
    if forwarded is not None:  # RFC 7239 wins over the de-facto X-Forwarded-* set
        hops, proto, host = _parse_forwarded(forwarded)
    if hops:
        client = _nearest_untrusted(hops, trusted)
        if client is not None:
            scope["client"] = _split_host_port(client)
    if proto:
        scope["scheme"] = _scheme_for(scope["scheme"], proto)
    if host:
        encoded = host.encode("latin-1")
        scope["headers"] = [(k, encoded if k == b"host" else v) for k, v in scope["headers"]]


def _parse_forwarded(value: bytes) -> tuple[list[str], str | None, str | None]:
    hops: list[str] = []
    proto = host = None
    for element in value.decode("latin-1").split(","):
        for pair in element.split(";"):
            key, _, val = pair.strip().partition("=")
            key, val = key.strip().lower(), val.strip().strip('"')
            if key == "for" and val:
                hops.append(val)
            elif key == "proto" and val:
                proto = val.lower()
            elif key == "host" and val:
                host = val
    return hops, proto, host


def _nearest_untrusted(hops: list[str], trusted: TrustedPeers) -> str | None:
    for hop in reversed(hops):
        if _split_host_port(hop)[0] not in trusted:
            return hop
    return hops[0] if hops else None


def _split_host_port(hop: str) -> tuple[str, int]:
    if hop.startswith("["):  # [2001:db8::1]:4711
        address, _, rest = hop[1:].partition("]")
        port = rest.lstrip(":")
    elif hop.count(":") == 1:
        address, _, port = hop.partition(":")
    else:
        address, port = hop, ""
    return address, int(port) if port.isdigit() else 0


def _scheme_for(current: str, proto: str) -> str:
    scheme = _SCHEMES.get(proto)
    if scheme is None:
        return current
    if current in ("ws", "wss"):
        return "wss" if scheme in ("https", "wss") else "ws"
    return scheme
