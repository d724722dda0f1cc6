"""Which peers are trusted to speak for the client (proxy headers): IPs and CIDR networks.

Pure address logic, no sockets and no HTTP; `config` validates with it and the HTTP protocol asks
it one question per request: is this peer trusted?
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


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
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)
