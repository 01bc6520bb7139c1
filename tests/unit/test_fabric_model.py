"""Fabric validation: each rule's error names the file, the field and why."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from builder.core.errors import UserError
from builder.fabric.model import Fabric, default_group
from builder.fabric.validate import resolve
from builder.spec import validate

ROOT = Path(__file__).resolve().parents[2]
SEED = yaml.safe_load((ROOT / "fabrics/seed-poc.yaml").read_text())
F = Path("f.yaml")


def _resolve(data):
    return resolve(validate(Fabric, data, F), F)


def _err(mutate) -> UserError:
    data = copy.deepcopy(SEED)
    mutate(data)
    with pytest.raises(UserError) as e:
        _resolve(data)
    assert e.value.file == "f.yaml"
    return e.value


def test_default_group_from_vni():
    assert str(default_group(1000)) == "239.0.3.232"
    assert str(default_group(2000)) == "239.0.7.208"
    topo = _resolve(SEED)
    assert [str(o.mcast_group) for o in topo.fabric.overlays] == ["239.0.3.232", "239.0.7.208"]


def test_group_overridable():
    data = copy.deepcopy(SEED)
    data["overlays"][0]["group"] = "239.1.1.1"
    assert str(_resolve(data).fabric.overlays[0].mcast_group) == "239.1.1.1"


@pytest.mark.parametrize("vni", [0, 16777216])
def test_vni_range(vni):
    e = _err(lambda d: d["overlays"][0].update(vni=vni))
    assert e.field == "overlays[0].vni" and "1..16777215" in e.message


def test_group_must_be_multicast():
    e = _err(lambda d: d["overlays"][0].update(group="10.1.1.1"))
    assert e.field == "overlays[0].group" and "not a multicast" in e.message


def test_two_vnis_one_group_refused_unless_asked():
    e = _err(lambda d: d["overlays"][1].update(group="239.0.3.232"))
    assert e.field == "overlays[1].group" and "VNI 1000" in e.message
    data = copy.deepcopy(SEED)
    data["overlays"][1]["group"] = "239.0.3.232"
    for o in data["overlays"]:
        o["share_group"] = True
    _resolve(data)


def test_mtu_budget_ipv4_underlay():
    e = _err(lambda d: d["segments"][1].update(mtu=1549))
    assert e.field == "overlays[0].mtu" and "1500 + 50" in e.message and "1549" in e.message
    data = copy.deepcopy(SEED)
    data["segments"][1]["mtu"] = 1550
    _resolve(data)


def test_mtu_budget_ipv6_underlay():
    def m(d):
        d["segments"][1]["mtu"] = 1550
        d["overlays"][0]["group"] = "ff05::3e8"

    e = _err(m)
    assert "1500 + 70" in e.message and "IPv6" in e.message


def test_duplicate_address():
    e = _err(lambda d: d["nodes"][2]["interfaces"][0].update(ipv4="192.168.0.11"))
    assert e.field == "nodes[2].interfaces[0].ipv4" and "already used" in e.message


def test_out_of_subnet_address():
    e = _err(lambda d: d["nodes"][1]["interfaces"][1].update(ipv4="10.0.2.1"))
    assert e.field == "nodes[1].interfaces[1].ipv4" and "10.0.0.0/23" in e.message


def test_overlapping_prefixes():
    e = _err(lambda d: d["overlays"][1].update(ipv4="10.0.1.0/24"))
    assert e.field == "overlays[1].ipv4" and "overlaps 10.0.0.0/23" in e.message


def test_anyip_overlapping_link_subnet():
    e = _err(lambda d: d["nodes"][3].update(anyip=["192.168.0.0/24"]))
    assert e.field == "nodes[3].anyip[0]" and "vlan300" in e.message


def test_unknown_attach_and_underlay():
    e = _err(lambda d: d["nodes"][1]["interfaces"][0].update(attach="nope"))
    assert e.field == "nodes[1].interfaces[0].attach"
    e = _err(lambda d: d["overlays"][0].update(underlay="vxlan2000"))
    assert e.field == "overlays[0].underlay"


def _many(d, n, shard):
    d["segments"][1]["shard"] = shard
    d["nodes"].append({"name": "ep", "replicas": n, "interfaces": [{"attach": "vlan300", "ipv4": "auto"}]})
    d["segments"][1]["ipv4"] = "192.168.0.0/20"


def test_bridge_port_limit_needs_sharding():
    e = _err(lambda d: _many(d, 1020, False))  # + 4 seed nodes = 1024 ports
    assert e.field == "segments[1]" and "1024 ports" in e.message and "1023" in e.message
    data = copy.deepcopy(SEED)
    _many(data, 1020, True)
    topo = _resolve(data)
    assert len(topo.ports("vlan300")) == 1024
    assert str(topo.node("ep-1").links[0].ipv4) == "192.168.0.2/20"  # .1 .11 .12 .13 are taken


def test_auto_pool_exhausted():
    def m(d):
        d["segments"][0]["ipv4"] = "31.25.96.128/30"
        d["nodes"].append({"name": "x", "replicas": 2, "interfaces": [{"attach": "internet", "ipv4": "auto"}]})

    e = _err(m)
    assert "no free address" in e.message


def test_iscsi_portals_on_two_subnets():
    def m(d):
        d["iscsi"] = {
            "target": {"node": "router", "iqn": "iqn.2009-11-11.widodh.storage:iscsi-001",
                       "portals": ["192.168.0.1", "10.0.0.1"]},
            "initiator": {"node": "ubuntu"},
        }  # fmt: skip

    _resolve_ok = copy.deepcopy(SEED)
    m(_resolve_ok)
    _resolve(_resolve_ok)
    e = _err(lambda d: (m(d), d["iscsi"]["target"].update(portals=["192.168.0.1", "192.168.0.9"])))
    assert e.field == "iscsi.target.portals[1]"


def test_anyip_routes_prefer_overlay():
    topo = _resolve(SEED)
    r = {str(x.prefix): x for x in topo.node("ubuntu").routes}
    assert str(r["192.168.100.0/24"].via) == "10.0.0.21" and r["192.168.100.0/24"].dev == "vxlan1000"
    # web2000 shares only the underlay with the AnyIP node
    assert [str(x.via) for x in topo.node("web2000").routes] == ["192.168.0.13"]


def test_ceph_lab_fabric_is_valid():
    from builder.fabric.validate import load

    topo = load(ROOT / "fabrics/ceph-lab.yaml")
    assert topo.node("image").kind == "vm" and topo.fabric.iscsi.target.portals[1].exploded == "172.16.1.1"
