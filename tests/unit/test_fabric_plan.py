"""Host plan (pure): names carry the run id and fit IFNAMSIZ, segments shard over bridges."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from builder.fabric.model import BRIDGE_MAX_PORTS
from builder.fabric.netns import node_script, plan_host, shard_sizes
from builder.fabric.validate import load

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))


@pytest.mark.parametrize("ports", [1, 1023, 1024, 2000, 2044, 2045, 5000])
def test_shards_fit_the_bridge_limit(ports):
    sizes = shard_sizes(ports, BRIDGE_MAX_PORTS)
    assert sum(sizes) == ports
    hub_joins = len(sizes) - 1
    assert sizes[0] + hub_joins <= BRIDGE_MAX_PORTS
    assert all(s + 1 <= BRIDGE_MAX_PORTS for s in sizes[1:])


def test_seed_plan_names():
    topo = load(ROOT / "fabrics/seed-poc.yaml")
    plan = plan_host(topo, "bx00aa11")
    assert plan.netns == {"router": "bx00aa11n0", "ubuntu": "bx00aa11n1", "web2000": "bx00aa11n2", "anyip": "bx00aa11n3"}
    assert all(n.startswith("bx00aa11") and len(n) <= 15 for n in plan.link_names)
    script = plan.link_script()
    assert "link add bx00aa11b1 mtu 9000 type bridge mcast_snooping 0 stp_state 0\n" in script
    assert "type veth peer name vlan300 mtu 9000 netns bx00aa11n1\n" in script


def test_node_script_is_the_seed_plan_for_ip_batch():
    topo = load(ROOT / "fabrics/seed-poc.yaml")
    s = node_script(topo.node("anyip"))
    assert "link add vxlan1000 type vxlan id 1000 dstport 4789 group 239.0.3.232 dev vlan300 ttl 5\n" in s
    assert "route add local 2001:db8:100::/64 dev lo\n" in s  # `ip -6` dropped: batch lines take no options
    assert "link add link eth1" not in s  # no 8021q on this host: vlan300 is a veth on its own bridge


def test_2000_endpoints_plan():
    from fabric import scale_fabric

    plan = plan_host(scale_fabric(2000), "bx00aa11")
    assert [b for b, _, _ in plan.bridges] == ["bx00aa11b0s0", "bx00aa11b0s1"]
    assert len(plan.joins) == 1 and len(plan.ports) == 2000
