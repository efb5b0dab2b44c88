"""Client IP addresses as sockets and configs give them: unmapped, unscoped, matched to networks.

`::ffff:192.0.2.1` (an IPv4 client on a dual-stack socket) is 192.0.2.1 here, and `fe80::1%eth0`
is fe80::1, so a relay listed as `192.0.2.0/24` or an SPF record matches however it connected.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def plain_ip(text: str | None) -> IpAddress | None:
    """The address in `text`, IPv4-mapped IPv6 turned into IPv4; None when it is none."""
    if not text or not isinstance(text, str):
        return None
    try:
        address = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def in_networks(ip: str | None, networks: Iterable[IpNetwork]) -> bool:
    address = plain_ip(ip)
    return address is not None and any(address in n for n in networks)


def parse_network(text: object) -> IpNetwork | None:
    """`192.0.2.10`, `192.0.2.0/24` or `2001:db8::/64` as a network; None when it is none."""
    try:
        return ipaddress.ip_network(str(text), strict=False)
    except ValueError:
        return None
