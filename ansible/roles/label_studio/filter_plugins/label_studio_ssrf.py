"""Label Studio's SSRF guard, narrowed to let exactly the given networks through.

Label Studio refuses storage and webhook URLs that resolve into reserved ranges. We turn
its built-in list off and pass the same ranges ourselves with the allowed networks cut
out (ipaddress.address_exclude), so everything else stays blocked.
"""

from __future__ import annotations

import ipaddress
from typing import Any

# The reserved ranges Label Studio 1.23 blocks by default (core/utils/io.py validate_ip).
RESERVED = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "233.252.0.0/24", "240.0.0.0/4",
    "255.255.255.255/32", "::/128", "::1/128", "::ffff:0:0/96", "::ffff:0:0:0/96", "64:ff9b::/96",
    "64:ff9b:1::/48", "100::/64", "2001:0000::/32", "2001:20::/28", "2001:db8::/32", "2002::/16",
    "fc00::/7", "fe80::/10", "ff00::/8",
)  # fmt: skip


def label_studio_banned_subnets(allowed: list[str]) -> list[str]:
    allowed_networks = [ipaddress.ip_network(item, strict=False) for item in allowed]
    banned = [ipaddress.ip_network(item) for item in RESERVED]
    for hole in allowed_networks:
        next_banned = []
        for network in banned:
            if network.version == hole.version and hole.subnet_of(network):  # type: ignore[arg-type]
                next_banned.extend(network.address_exclude(hole))  # type: ignore[arg-type]
            elif network.version == hole.version and network.subnet_of(hole):  # type: ignore[arg-type]
                continue
            else:
                next_banned.append(network)
        banned = next_banned
    return [str(network) for network in sorted(banned, key=lambda n: (n.version, n))]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"label_studio_banned_subnets": label_studio_banned_subnets}
