"""The three-node lab, pure parts: the derived network (N copies of the image's VM node on the
overlay, golden), the steps rendered for every node in the order they run (golden), and the
values that would reach a script or the host validated before anything boots."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import subprocess
import uuid

import pytest
import yaml
from pydantic import ValidationError

from builder.core.errors import UserError
from builder.fabric import validate as fabric_validate
from builder.fabric import vmnode
from builder.fabric.model import Interface
from builder.lab import cluster
from builder.lab import plan as labplan
from builder.lab import topology as labtopo
from builder.spec import load_image
from tests.goldens import assert_golden
from tests.repo import IMAGES

SPEC = load_image("ceph-training", IMAGES)
FSID = uuid.UUID("5d0e7d0c-2f0a-4c1b-9d4e-0a1b2c3d4e5f")
NAMES = ("ceph-training-1", "ceph-training-2", "ceph-training-3")


def fabric() -> fabric_validate.Topology:
    return fabric_validate.load((SPEC.dir / SPEC.fabric).resolve())


def test_derived_network_golden():
    topo = labtopo.cluster_topology(fabric(), "image", labtopo.node_names("ceph-training", 3))
    dumped = topo.fabric.model_dump(mode="json", exclude_defaults=True)
    assert_golden("lab/ceph-training.x3.fabric.yaml", yaml.safe_dump(dumped, sort_keys=False))
    assert labtopo.vm_nodes(topo) == NAMES
    assert {n.name for n in topo.nodes} == {"router", *NAMES}  # no storage, no iSCSI: not the lab's
    v6 = [topo.node(n).link("vxlan1000").ipv6.ip for n in NAMES]
    assert v6 == [ipaddress.IPv6Address(f"2a00:f10:114:1000::{h}") for h in (101, 102, 103)]
    macs = [topo.node(n).link("vlan300").hw_id for n in NAMES]
    assert macs == ["52:54:00:00:03:00", "52:54:00:00:03:01", "52:54:00:00:03:02"]


def test_the_fabric_leaves_the_lab_address_to_the_lab():
    topo = labtopo.cluster_topology(fabric(), "image", NAMES)
    node = labtopo.without_lab_address(topo.node(NAMES[1]))
    assert node.link("vxlan1000").ipv6 is None and str(node.link("vxlan1000").ipv4) == "10.0.0.12/23"
    assert node.link("vlan300") == topo.node(NAMES[1]).link("vlan300")
    script = vmnode.script(topo, node)
    assert "2a00:f10:114:1000::102" not in script and "route add" not in script
    # the single-node lab on the file's fabric too: no route via the router before 00-node.sh
    single = labtopo.without_lab_address(fabric().node("image"))
    assert single.routes == () and "2a00:f10:114:1000::101" not in vmnode.script(fabric(), single)


def test_three_node_steps_golden_in_order_and_valid_shell():
    p = cluster.prepare(SPEC, fabric(), "image", 3, FSID)
    assert [(NAMES[k], name) for k, name, _ in p.steps] == [
        *((n, "00-node.sh") for n in NAMES),
        (NAMES[0], "10-config.sh"), (NAMES[0], "15-share.sh"),
        (NAMES[1], "16-join.sh"), (NAMES[2], "16-join.sh"),
        *((n, s) for s in ("20-mon.sh", "30-mgr.sh", "40-osds.sh") for n in NAMES),
    ]
    for k, name, text in p.steps:
        assert_golden(f"lab/x3/{NAMES[k]}.{name}", text)
        r = subprocess.run(["sh", "-n"], input=text, text=True, capture_output=True)
        assert r.returncode == 0, f"{name}: {r.stderr}"


def test_three_node_ceph_conf_three_mons_ipv6_only():
    lab = labplan.load_lab(SPEC)
    topo = labtopo.cluster_topology(fabric(), "image", NAMES)
    plans = labplan.plan_cluster(lab, topo, NAMES, NAMES, FSID)
    confs = [labplan.ceph_conf(lab, p) for p in plans]
    assert_golden("lab/x3/ceph-training-2.ceph.conf", confs[1])
    for i, text in enumerate(confs):
        assert "mon_initial_members = ceph-training-1, ceph-training-2, ceph-training-3\n" in text
        assert text.count("[v2:[2a00:f10:114:1000::") == 3
        assert "ms_bind_ipv6 = true\nms_bind_ipv4 = false\n" in text
        assert f"public_addr = 2a00:f10:114:1000::{101 + i}\n" in text
        assert "osd_crush_chooseleaf_type" not in text  # three hosts: replicas across hosts
    monmap = next(s for _, n, s in labplan.cluster_steps(lab, plans) if n == "10-config.sh")
    assert monmap.count("--addv ") == 3


@pytest.mark.parametrize("count", [1, 2, 8])
def test_node_count_outside_3_to_7_refused(count):
    with pytest.raises(UserError, match="3 to 7"):
        labtopo.cluster_topology(fabric(), "image", tuple(f"n{i}" for i in range(count)))


def test_an_address_taken_by_another_node_is_refused():
    """The router moved onto the second copy's overlay address: the derived network fails validation."""
    topo = fabric()
    f = topo.fabric
    router = f.node("router")
    moved = router.model_copy(update={"interfaces": (
        router.interfaces[0], Interface(attach="vxlan1000", ipv4="10.0.0.1", ipv6="2a00:f10:114:1000::102"))})
    topo = fabric_validate.resolve(f.model_copy(update={"nodes": tuple(
        moved if n.name == "router" else n for n in f.nodes)}), topo.source)
    with pytest.raises(UserError, match="2a00:f10:114:1000::102 already used"):
        labtopo.cluster_topology(topo, "image", NAMES)


def test_a_copy_whose_mac_is_taken_is_refused():
    topo = fabric()
    f = topo.fabric
    img = f.node("image")
    sana = img.interfaces[2].model_copy(update={"hw_id": "52:54:00:00:03:01"})
    topo = fabric_validate.resolve(f.model_copy(update={"nodes": tuple(
        n.model_copy(update={"interfaces": (*img.interfaces[:2], sana, img.interfaces[3])}) if n.name == "image"
        else n for n in f.nodes)}), topo.source)
    with pytest.raises(UserError, match="MAC 52:54:00:00:03:01"):
        labtopo.cluster_topology(topo, "image", NAMES)


def test_host_names_are_checked():
    with pytest.raises(UserError, match="host name"):
        labtopo.node_names("x" * 40, 3)
    with pytest.raises(UserError, match="host name"):
        labtopo.node_names("Bad_Name", 3)


@pytest.mark.parametrize("bad", [
    {"nodes": 2}, {"nodes": 9}, {"memory_mib": 1536}, {"osds_per_node": 2, "memory_mib": 2560},
    {"bundle": ["../etc/shadow"]}, {"bundle": ["/etc/ceph/x"]}, {"bundle": ["etc/ceph/$(reboot)"]},
    {"share": "share.sh"},
])
def test_cluster_spec_rejects(bad):
    good = {"first": ["10-config.sh.j2"], "share": "15-share.sh.j2", "join": "16-join.sh.j2",
            "bundle": ["etc/ceph/ceph.client.admin.keyring"]}
    labplan.ClusterSpec.model_validate(good)
    with pytest.raises(ValidationError):
        labplan.ClusterSpec.model_validate({**good, **bad})


def test_two_mons_with_one_address_are_refused():
    node = {"name": "n1", "address": "2001:db8::1"}
    with pytest.raises(ValidationError, match="share a name or an address"):
        labplan.LabPlan.model_validate({
            "fsid": str(FSID), "public_network": "2001:db8::/64", "node": node, "device": "eth0",
            "mons": [node, {"name": "n2", "address": "2001:db8::1"}], "osd_count": 1,
            "osd_memory_target_mib": 896, "heartbeat_grace": 60})


def test_quorum_reads_names_and_survives_garbage():
    assert cluster.quorum(lambda argv, t: (0, '{"quorum_names": ["b", "a"]}', "")) == ["a", "b"]
    assert cluster.quorum(lambda argv, t: (0, "not json", "")) == []
    assert cluster.quorum(lambda argv, t: (1, "", "timed out")) == []


def test_the_bundle_travels_through_the_guest_agents_byte_for_byte():
    from types import SimpleNamespace

    from builder.guest import ExecResult

    bundle = bytes(range(256)) * 8  # binary: a tar is not text
    got = {}

    def first_exec(argv, timeout=60, input=None):
        assert argv == ["base64", "-w0", cluster.BUNDLE]
        return ExecResult(0, base64.b64encode(bundle).decode(), "")

    def other_exec(argv, timeout=60, input=None):
        got["argv"], got["data"] = argv, input
        return ExecResult(0, "", "")

    first, other = (SimpleNamespace(agent=SimpleNamespace(exec=f)) for f in (first_exec, other_exec))
    evidence = cluster.receive_bundle(first, other)
    assert got["data"] == bundle and "umask 077" in got["argv"][-1]
    assert hashlib.sha256(bundle).hexdigest() in evidence
