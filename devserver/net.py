"""Which peers are trusted to speak for the client (proxy headers): IPs and CIDR networks.

Pure address logic, no sockets and no HTTP; `config` validates with it and the HTTP protocol asks
it one question per request: is this peer trusted?
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_ip(text: str) -> IPAddress | None:
    """The IP address `text` names, or None. An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`,
    what a dual-stack socket reports for an IPv4 peer) is taken as its IPv4 address."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_networks(text: str) -> tuple[bool, tuple[Network, ...], frozenset[str]]:
    """Parse '127.0.0.1, 10.0.0.0/8, *' into (trust_all, networks, literal names).

    Literal names (like 'unix' for Unix-socket peers) are kept as they are. Raises ValueError.
    """
    trust_all = False
    networks: list[Network] = []
    names: set[str] = set()
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if item == "*":
            trust_all = True
        elif item == "unix" or item.startswith("unix:"):
            names.add("unix")
        else:
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR network") from None
    return trust_all, tuple(networks), frozenset(names)


@dataclass(frozen=True)
class TrustedPeers:
    """Answers whether a connection's peer may set X-Forwarded-* / Forwarded."""

    trust_all: bool
    networks: tuple[Network, ...]
    names: frozenset[str]

    @classmethod
    def from_text(cls, text: str) -> TrustedPeers:
        return cls(*parse_networks(text))

    def __contains__(self, host: str | None) -> bool:
        if self.trust_all:
            return True
        if host is None:  # a Unix-socket peer has no address
            return "unix" in self.names
        address = parse_ip(host)
        return address is not None and self.trusts(address)

    def trusts(self, address: IPAddress) -> bool:
        """Whether `address` (a peer's, or one named in a proxy header) is a trusted proxy's."""
        return self.trust_all or any(address in network for network in self.networks)
