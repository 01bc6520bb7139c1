"""Golden files of every renderer for fabrics/seed-poc.yaml (UPDATE_GOLDEN=1 regenerates)."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.fabric.render import FORMATS
from builder.fabric.validate import load
from tests.goldens import assert_golden

ROOT = Path(__file__).resolve().parents[2]
SEED = load(ROOT / "fabrics/seed-poc.yaml")


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_golden(fmt):
    got = FORMATS[fmt](SEED, None)
    assert_golden(f"fabric/seed-poc.{fmt}", got)


def test_vyos_reproduces_seed_block():
    # The seed post's block, verbatim except for the closing brace of `ethernet eth5` that the
    # post lost (its vxlan stanzas would otherwise nest inside eth5).
    got = FORMATS["vyos"](SEED, "router")
    for stanza in (
        "    vxlan vxlan1000 {\n        address 10.0.0.1/23\n        address 2a00:f10:114:1000::1/64\n"
        "        group 239.0.3.232\n        ip {\n            enable-arp-accept\n",
        "        vif 300 {\n            address 192.168.0.1/24\n            description VXLAN\n            mtu 9000\n        }\n",
        "                prefix 2a00:f10:114:2000::/64 {\n                    autonomous-flag true\n"
        "                    on-link-flag true\n                    valid-lifetime 2592000\n                }\n",
        "        link eth5.300\n        mtu 1500\n        vni 2000\n    }\n}\n",
    ):
        assert stanza in got
    assert got.count("{") == got.count("}")


def test_iproute2_reproduces_seed_script():
    seed = (
        "ip link add vxlan1000 type vxlan id 1000 dstport 4789 group 239.0.3.232 dev vlan300 ttl 5\n"
        "ip link set up dev vxlan1000\n"
        "ip addr add 10.0.0.11/23 dev vxlan1000\n"
        "ip addr add 2a00:f10:114:1000::101/64 dev vxlan1000\n"
    )
    assert seed in FORMATS["iproute2"](SEED, "ubuntu")


def test_anyip_routes_use_the_seed_form():
    out = FORMATS["iproute2"](SEED, "anyip")
    assert "ip -6 route add local 2001:db8:100::/64 dev lo\n" in out
    assert "ip -4 route add local 192.168.100.0/24 dev lo\n" in out
