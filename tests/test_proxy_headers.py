"""Proxy headers: X-Forwarded-* and RFC 7239 Forwarded, honoured only from trusted peers."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from devserver.net import TrustedPeers
from devserver.protocols.proxy import apply_proxy_headers
from tests.utils import run_server


async def scope_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    host = dict(scope["headers"]).get(b"host", b"").decode()
    body = json.dumps({"client": scope["client"], "scheme": scope["scheme"], "host": host})
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body.encode()})


FORWARDED = {
    "X-Forwarded-For": "203.0.113.7",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "example.com",
}


def fetch(headers: dict[str, str], **options: Any) -> dict[str, Any]:
    with run_server(scope_app, **options) as server:
        response = httpx.get(server.url + "/", headers=headers)
    result: dict[str, Any] = response.json()
    return result


def untouched(data: dict[str, Any]) -> bool:
    return data["client"][0] == "127.0.0.1" and data["scheme"] == "http"


# --------------------------------------------------------------------------- end to end
def test_x_forwarded_headers_applied_from_the_default_trusted_loopback() -> None:
    """By default 127.0.0.1 is trusted, so X-Forwarded-For/Proto rewrite client and scheme;
    X-Forwarded-Host is ignored without --forwarded-host."""
    data = fetch(FORWARDED)
    assert data["client"] == ["203.0.113.7", 0] and data["scheme"] == "https"
    assert data["host"].startswith("127.0.0.1:")


def test_rfc7239_forwarded_applied_from_a_trusted_peer() -> None:
    """With --forwarded-headers forwarded, a Forwarded header's for/proto rewrite client and
    scheme; host= is ignored without --forwarded-host."""
    headers = {"Forwarded": 'for="203.0.113.8:4711";proto=https;host=fwd.example'}
    data = fetch(headers, forwarded_headers="forwarded")
    assert data["client"] == ["203.0.113.8", 4711] and data["scheme"] == "https"
    assert data["host"].startswith("127.0.0.1:")


@pytest.mark.parametrize(
    "headers",
    [{"X-Forwarded-Host": "example.com"}, {"Forwarded": "for=203.0.113.8;host=example.com"}],
    ids=["x-forwarded-host", "forwarded"],
)
def test_forwarded_host_flag_lets_the_proxy_set_host(headers: dict[str, str]) -> None:
    """With --forwarded-host, X-Forwarded-Host or Forwarded host= from a trusted proxy become
    the Host header."""
    family = "forwarded" if "Forwarded" in headers else "x-forwarded"
    assert fetch(headers, forwarded_host=True, forwarded_headers=family)["host"] == "example.com"


def test_a_clients_own_forwarded_header_is_ignored_behind_an_x_forwarded_proxy() -> None:
    """By default only X-Forwarded-* is read: a Forwarded header the client sent (which a
    proxy such as nginx passes through) changes nothing."""
    headers = {
        "Forwarded": "for=6.6.6.6;proto=https;host=evil.example",
        "X-Forwarded-For": "203.0.113.9",
    }
    data = fetch(headers, forwarded_host=True)
    assert data["client"] == ["203.0.113.9", 0] and data["scheme"] == "http"
    assert data["host"].startswith("127.0.0.1:")


def test_forwarded_host_is_off_by_default() -> None:
    """Without --forwarded-host a trusted proxy's X-Forwarded-Host leaves Host alone."""
    assert fetch({"X-Forwarded-Host": "example.com"})["host"].startswith("127.0.0.1:")


def test_headers_ignored_when_the_peer_is_not_trusted() -> None:
    """With forwarded_allow_ips='10.0.0.1' a loopback peer's proxy headers are ignored."""
    data = fetch(
        {**FORWARDED, "Forwarded": "for=203.0.113.8;proto=https"}, forwarded_allow_ips="10.0.0.1"
    )
    assert untouched(data)
    assert data["host"].startswith("127.0.0.1:")


def test_cidr_network_is_trusted() -> None:
    """A CIDR network containing the peer (127.0.0.0/8) makes it trusted."""
    assert fetch(FORWARDED, forwarded_allow_ips="10.0.0.0/8, 127.0.0.0/8")["scheme"] == "https"
    assert untouched(fetch(FORWARDED, forwarded_allow_ips="10.0.0.0/8"))


def test_star_trusts_everyone() -> None:
    """'*' trusts every peer."""
    assert fetch(FORWARDED, forwarded_allow_ips="*")["client"] == ["203.0.113.7", 0]


def test_no_proxy_headers_ignores_them_even_from_trusted_peers() -> None:
    """proxy_headers=False (--no-proxy-headers) ignores proxy headers altogether."""
    assert untouched(fetch(FORWARDED, proxy_headers=False, forwarded_allow_ips="*"))


def test_rightmost_untrusted_hop_is_the_client() -> None:
    """In 'spoofed, real, trusted-proxy' the nearest untrusted hop from the right is the client."""
    data = fetch({"X-Forwarded-For": "1.1.1.1, 198.51.100.2, 10.0.0.5"},
                 forwarded_allow_ips="127.0.0.1, 10.0.0.0/8")  # fmt: skip
    assert data["client"] == ["198.51.100.2", 0]


def test_requests_without_proxy_headers_keep_the_real_peer() -> None:
    """A trusted peer that sends no proxy headers keeps its own address and scheme."""
    assert untouched(fetch({}))


# --------------------------------------------------------------------------- apply_proxy_headers
def make_scope(*headers: tuple[bytes, bytes], scheme: str = "http") -> dict[str, Any]:
    return {
        "type": "http",
        "scheme": scheme,
        "client": ("127.0.0.1", 5555),
        "headers": [(b"host", b"internal:8000"), *headers],
    }


TRUST_LOCAL = TrustedPeers.from_text("127.0.0.1, 10.0.0.0/8")


def test_apply_x_forwarded_for_proto_host() -> None:
    """X-Forwarded-For/Proto/Host set client (port 0), scheme and the host header."""
    scope = make_scope(
        (b"x-forwarded-for", b"203.0.113.7"),
        (b"x-forwarded-proto", b"HTTPS"),
        (b"x-forwarded-host", b"example.com"),
    )
    apply_proxy_headers(scope, TRUST_LOCAL, forwarded_host=True)
    assert scope["client"] == ("203.0.113.7", 0)
    assert scope["scheme"] == "https"
    assert (b"host", b"example.com") in scope["headers"]
    assert (b"host", b"internal:8000") not in scope["headers"]


def test_apply_walks_the_chain_from_the_right() -> None:
    """Trusted hops on the right are skipped; the first untrusted one from the right wins."""
    scope = make_scope((b"x-forwarded-for", b"6.6.6.6, 198.51.100.2, 10.1.2.3, 127.0.0.1"))
    apply_proxy_headers(scope, TRUST_LOCAL)
    assert scope["client"] == ("198.51.100.2", 0)


def test_apply_joins_repeated_x_forwarded_for_headers() -> None:
    """Two X-Forwarded-For header lines form one chain, in order."""
    scope = make_scope(
        (b"x-forwarded-for", b"198.51.100.1"), (b"x-forwarded-for", b"198.51.100.2, 10.0.0.1")
    )
    apply_proxy_headers(scope, TRUST_LOCAL)
    assert scope["client"] == ("198.51.100.2", 0)


def test_apply_all_hops_trusted_uses_the_leftmost() -> None:
    """When every hop is trusted, the leftmost (the origin) is the client."""
    scope = make_scope((b"x-forwarded-for", b"10.0.0.1, 10.0.0.2"))
    apply_proxy_headers(scope, TRUST_LOCAL)
    assert scope["client"] == ("10.0.0.1", 0)


def test_apply_forwarded_ipv6_and_port() -> None:
    """RFC 7239 `for="[2001:db8::1]:4711"` becomes client ('2001:db8::1', 4711)."""
    scope = make_scope((b"forwarded", b'for="[2001:db8::1]:4711";proto=https'))
    apply_proxy_headers(scope, TRUST_LOCAL, family="forwarded")
    assert scope["client"] == ("2001:db8::1", 4711)
    assert scope["scheme"] == "https"


def test_apply_x_forwarded_for_ipv6_without_brackets() -> None:
    """A bare IPv6 address in X-Forwarded-For is taken whole, port 0."""
    scope = make_scope((b"x-forwarded-for", b"2001:db8::7"))
    apply_proxy_headers(scope, TRUST_LOCAL)
    assert scope["client"] == ("2001:db8::7", 0)


def test_apply_forwarded_chain_and_case_insensitive_keys() -> None:
    """A multi-element Forwarded chain is walked from the right; keys are case-insensitive."""
    scope = make_scope(
        (b"forwarded", b"For=192.0.2.60;Proto=http, for=198.51.100.17;proto=https"),
        (b"forwarded", b"for=10.0.0.9"),
    )
    apply_proxy_headers(scope, TRUST_LOCAL, family="forwarded")
    assert scope["client"] == ("198.51.100.17", 0)
    assert scope["scheme"] == "https"


@pytest.mark.parametrize(
    ("family", "client", "scheme"),
    [("forwarded", ("203.0.113.2", 0), "http"), ("x-forwarded", ("203.0.113.1", 0), "https")],
)
def test_apply_reads_one_family_and_ignores_the_other(
    family: str, client: tuple[str, int], scheme: str
) -> None:
    """With both families present, only the one --forwarded-headers names is read."""
    scope = make_scope(
        (b"x-forwarded-for", b"203.0.113.1"),
        (b"x-forwarded-proto", b"https"),
        (b"forwarded", b"for=203.0.113.2"),
    )
    apply_proxy_headers(scope, TRUST_LOCAL, family=family)
    assert scope["client"] == client
    assert scope["scheme"] == scheme


def test_apply_unknown_proto_is_ignored() -> None:
    """An X-Forwarded-Proto that is not http/https/ws/wss leaves the scheme alone."""
    scope = make_scope((b"x-forwarded-proto", b"gopher"))
    apply_proxy_headers(scope, TRUST_LOCAL)
    assert scope["scheme"] == "http"


@pytest.mark.parametrize(
    ("current", "proto", "expected"),
    [("ws", "https", "wss"), ("ws", "http", "ws"), ("wss", "http", "ws"), ("http", "wss", "wss")],
)
def test_apply_maps_proto_onto_websocket_schemes(current: str, proto: str, expected: str) -> None:
    """For a WebSocket scope, a forwarded https/http becomes wss/ws."""
    scope = make_scope((b"x-forwarded-proto", proto.encode()), scheme=current)
    apply_proxy_headers(scope, TRUST_LOCAL)
    assert scope["scheme"] == expected


def test_apply_without_proxy_headers_changes_nothing() -> None:
    """A scope without proxy headers is left exactly as it was."""
    scope = make_scope((b"accept", b"*/*"))
    before = {**scope, "headers": list(scope["headers"])}
    apply_proxy_headers(scope, TRUST_LOCAL)
    assert scope == before


def test_trusted_peers_parsing() -> None:
    """TrustedPeers understands IPs, CIDRs, '*', 'unix', and rejects garbage."""
    peers = TrustedPeers.from_text("127.0.0.1, 10.0.0.0/8, ::1")
    assert "127.0.0.1" in peers and "10.9.8.7" in peers and "::1" in peers
    assert "11.0.0.1" not in peers and None not in peers and "not-an-ip" not in peers
    assert "8.8.8.8" in TrustedPeers.from_text("*")
    assert None in TrustedPeers.from_text("unix")
    with pytest.raises(ValueError, match="not-an-ip"):
        TrustedPeers.from_text("not-an-ip")


@pytest.mark.parametrize("value", [b"", b"198.51.100.3, ", b"198.51.100.3,,10.0.0.1"])
def test_apply_skips_empty_x_forwarded_for_items(value: bytes) -> None:
    """Empty items (an empty header, a trailing or doubled comma) are not taken as the client."""
    scope = make_scope((b"x-forwarded-for", value))
    apply_proxy_headers(scope, TRUST_LOCAL)
    assert scope["client"][0] != ""
    assert scope["client"] in (("127.0.0.1", 5555), ("198.51.100.3", 0))


# --------------------------------------------------------------------------- trust and validation
def test_apply_forwarded_proto_and_host_come_from_the_clients_element() -> None:
    """proto= and host= are read from the element of the client (the nearest untrusted hop):
    not from the client's own elements on its left, nor the internal hops on its right."""
    scope = make_scope(
        (b"forwarded", b"for=192.0.2.1;proto=https;host=spoofed.example"),
        (b"forwarded", b"for=198.51.100.2;proto=http;host=edge.example"),
        (b"forwarded", b"for=10.0.0.5;proto=wss;host=internal"),
    )
    apply_proxy_headers(scope, TRUST_LOCAL, forwarded_host=True, family="forwarded")
    assert scope["client"] == ("198.51.100.2", 0)
    assert scope["scheme"] == "http"
    assert (b"host", b"edge.example") in scope["headers"]


def test_apply_a_client_claiming_to_be_a_trusted_proxy_gains_nothing() -> None:
    """A client that sends `Forwarded: for=10.0.0.7;proto=https` itself, before the proxy
    appends its element, is the client, and its proto= is not believed."""
    scope = make_scope((b"forwarded", b"for=10.0.0.7;proto=https, for=198.51.100.9"))
    apply_proxy_headers(scope, TRUST_LOCAL, family="forwarded")
    assert scope["client"] == ("198.51.100.9", 0)
    assert scope["scheme"] == "http"


def test_apply_forwarded_makes_every_x_forwarded_header_ignored() -> None:
    """With Forwarded present, X-Forwarded-Proto and -Host are ignored even where Forwarded has
    no proto= or host=."""
    scope = make_scope(
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-host", b"x.example"),
        (b"forwarded", b"for=203.0.113.2"),
    )
    apply_proxy_headers(scope, TRUST_LOCAL, forwarded_host=True, family="forwarded")
    assert scope["client"] == ("203.0.113.2", 0)
    assert scope["scheme"] == "http"
    assert (b"host", b"internal:8000") in scope["headers"]


NOT_IPS = ["unknown", "_hidden", "example.com", "1.2.3", "999.1.1.1", "01.2.3.4", "[2001:db8::1"]


@pytest.mark.parametrize("value", NOT_IPS)
@pytest.mark.parametrize("header", [b"forwarded", b"x-forwarded-for"])
def test_apply_a_client_that_is_no_ip_address_leaves_the_client_alone(
    header: bytes, value: str
) -> None:
    """`unknown`, obfuscated identifiers, names and garbage keep the proxy's address; the
    walk stops there, so no hop on their left is believed either."""
    hops = f'for="{value}"' if header == b"forwarded" else value
    left = "for=198.51.100.1, " if header == b"forwarded" else "198.51.100.1, "
    scope = make_scope((header, (left + hops).encode()))
    family = "forwarded" if header == b"forwarded" else "x-forwarded"
    apply_proxy_headers(scope, TRUST_LOCAL, family=family)
    assert scope["client"] == ("127.0.0.1", 5555)


@pytest.mark.parametrize(
    ("hop", "client"),
    [
        ("203.0.113.1:80", ("203.0.113.1", 80)),
        ("203.0.113.1:65535", ("203.0.113.1", 65535)),
        ("203.0.113.1:65536", ("203.0.113.1", 0)),
        ("203.0.113.1:0", ("203.0.113.1", 0)),
        ("203.0.113.1:_obf", ("203.0.113.1", 0)),
        ("203.0.113.1:+80", ("203.0.113.1", 0)),
        ("[2001:DB8::1]:99999", ("2001:db8::1", 0)),
        ("[2001:db8::1]", ("2001:db8::1", 0)),
    ],
)
def test_apply_ports_outside_1_to_65535_become_0(hop: str, client: tuple[str, int]) -> None:
    """A port is kept when it is a number from 1 to 65535, else it is 0; IPv6 is normalised."""
    scope = make_scope((b"forwarded", f'for="{hop}"'.encode()))
    apply_proxy_headers(scope, TRUST_LOCAL, family="forwarded")
    assert scope["client"] == client


@pytest.mark.parametrize("host", ["evil.example/path", "a b", "user@evil.example", "ex\u00e4mple"])
def test_apply_a_forwarded_host_that_is_no_host_is_ignored(host: str) -> None:
    """Even with --forwarded-host, a value with characters no host[:port] has leaves Host."""
    scope = make_scope((b"x-forwarded-host", host.encode("latin-1")))
    apply_proxy_headers(scope, TRUST_LOCAL, forwarded_host=True)
    assert (b"host", b"internal:8000") in scope["headers"]


def test_apply_forwarded_host_adds_a_missing_host_header() -> None:
    """A request without Host gets the forwarded one (HTTP/1.0 has no Host)."""
    scope = make_scope((b"x-forwarded-host", b"[2001:db8::1]:8443"))
    scope["headers"] = scope["headers"][1:]
    apply_proxy_headers(scope, TRUST_LOCAL, forwarded_host=True)
    assert scope["headers"][-1] == (b"host", b"[2001:db8::1]:8443")


def test_apply_x_forwarded_proto_uses_the_rightmost_value() -> None:
    """Of `X-Forwarded-Proto: https, http` the value the nearest proxy added (http) counts."""
    scope = make_scope((b"x-forwarded-proto", b"https, http"))
    apply_proxy_headers(scope, TRUST_LOCAL)
    assert scope["scheme"] == "http"


def test_an_ipv4_mapped_peer_is_trusted_as_its_ipv4_address() -> None:
    """A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d: trusted as a.b.c.d."""
    assert "::ffff:127.0.0.1" in TrustedPeers.from_text("127.0.0.1")
    assert "::ffff:127.0.0.1" not in TrustedPeers.from_text("10.0.0.0/8, ::1")
