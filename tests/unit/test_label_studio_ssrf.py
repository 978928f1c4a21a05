"""The SSRF list lets exactly the object store through and keeps every other reserved range banned."""

from __future__ import annotations

import importlib.util
import ipaddress

from tests.conftest import ROLES_DIR

spec = importlib.util.spec_from_file_location(
    "label_studio_ssrf", ROLES_DIR / "label_studio/filter_plugins/label_studio_ssrf.py"
)
assert spec and spec.loader
ssrf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ssrf)


def banned(allowed: list[str], address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in ipaddress.ip_network(net) for net in ssrf.label_studio_banned_subnets(allowed))


def test_nothing_allowed_keeps_the_upstream_list():
    upstream = sorted((ipaddress.ip_network(n) for n in ssrf.RESERVED), key=lambda n: (n.version, n))
    assert ssrf.label_studio_banned_subnets([]) == [str(n) for n in upstream]


def test_the_object_store_address_is_let_through_and_its_neighbours_are_not():
    assert not banned(["127.0.0.1"], "127.0.0.1")
    for neighbour in ("127.0.0.2", "127.0.0.0", "127.1.0.1", "10.0.0.1", "169.254.169.254", "::1"):
        assert banned(["127.0.0.1"], neighbour), neighbour


def test_a_private_network_can_be_let_through():
    assert not banned(["10.0.1.0/24"], "10.0.1.20")
    assert banned(["10.0.1.0/24"], "10.0.2.20")
    assert banned(["10.0.1.0/24"], "192.168.1.1")


def test_public_addresses_are_never_banned():
    assert not banned(["127.0.0.1"], "8.8.8.8")
