"""The iSCSI plan (golden) and the parsers of iscsiadm and multipath output."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from builder.core.errors import UserError
from builder.core.runs import Run
from builder.fabric import iscsi, iscsi_checks, vmnode
from builder.fabric.model import Fabric
from builder.fabric.validate import load, resolve
from builder.spec import load_yaml, validate
from tests.goldens import assert_golden

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "fabrics/ceph-lab.yaml"
TOPO = load(LAB)


def test_plan_golden():
    p = iscsi.plan(TOPO)
    port = iscsi.control_port("f536dd")
    text = "\n".join([
        f"# control port {port}: {', '.join(map(str, iscsi.control_paths(port)))}",
        shlex.join(iscsi.tgtd_argv(p, port)),
        *(shlex.join(a) for a in iscsi.tgtadm_argvs(p, port, Path("/run/builder/f536dd/iscsi-lun.img"))),
        "# initiator",
        *(shlex.join(iscsi.discovery_argv(a)) for a in p.portals),
        *(shlex.join(a) for a in iscsi.node_update_argvs(p)),
        *(shlex.join(iscsi.login_argv(p, a)) for a in p.portals),
        iscsi.initiator_script(p),
    ])  # fmt: skip
    assert_golden("fabric/ceph-lab.iscsi", text)


def test_vm_network_script_golden():
    assert_golden("fabric/ceph-lab.vm-network.sh", vmnode.script(TOPO, TOPO.node("image")))


def test_iqns_derive_from_fabric_and_node_names():
    data = load_yaml(LAB)
    data["iscsi"]["target"].pop("iqn")
    p = iscsi.plan(resolve(validate(Fabric, data, LAB), LAB))
    assert (p.target_iqn, p.initiator_iqn) == ("iqn.2024-01.lab.builder:ceph-lab.storage",
                                               "iqn.2024-01.lab.builder:ceph-lab.image")  # fmt: skip
    assert (p.segments, p.devices) == (("sana", "sanb"), ("sana", "sanb"))


def test_control_port_in_tgtd_range():
    assert {iscsi.control_port(h) for h in ("000000", "ffffff", "007fff")} <= set(range(1, 32768))


def test_vm_nic_without_mac_is_refused():
    data = load_yaml(LAB)
    data["nodes"][2]["interfaces"][2].pop("hw_id")
    with pytest.raises(UserError) as e:
        resolve(validate(Fabric, data, LAB), LAB)
    assert e.value.field == "nodes[2].interfaces[2].hw_id"


def test_taps_follow_link_order_and_ports_find_segments():
    from builder.fabric.netns import plan_host

    hp = plan_host(TOPO, "bxabcdef")
    assert hp.taps("image") == ["bxabcdeft2i0", "bxabcdeft2i2", "bxabcdeft2i3"]
    assert hp.port("image", "sanb").host == "bxabcdeft2i3"


DISCOVERY = """172.16.0.1:3260,1 iqn.2009-11-11.widodh.storage:iscsi-001
172.16.1.1:3260,1 iqn.2009-11-11.widodh.storage:iscsi-001
"""

SESSIONS = """iSCSI Transport Class version 2.0-870
version 2.1.8
Target: iqn.2009-11-11.widodh.storage:iscsi-001 (non-flash)
	Current Portal: 172.16.0.1:3260,1
	Persistent Portal: 172.16.0.1:3260,1
		**********
		Interface
		**********
		Iface Name: default
		************************
		Attached SCSI devices:
		************************
		Host Number: 2	State: running
		scsi2 Channel 00 Id 0 Lun: 0
		scsi2 Channel 00 Id 0 Lun: 1
			Attached scsi disk sda		State: running
	Current Portal: 172.16.1.1:3260,1
	Persistent Portal: 172.16.1.1:3260,1
		Host Number: 3	State: running
		scsi3 Channel 00 Id 0 Lun: 0
		scsi3 Channel 00 Id 0 Lun: 1
			Attached scsi disk sdb		State: running
"""

MULTIPATH = """mpatha (360000000000000000e00000000010001) dm-0 IET,VIRTUAL-DISK
size=64M features='1 queue_if_no_path' hwhandler='0' wp=rw
`-+- policy='service-time 0' prio=1 status=active
  |- 2:0:0:1 sda 8:0  active ready running
  `- 3:0:0:1 sdb 8:16 failed faulty running
"""


def test_parsers():
    assert iscsi.parse_discovery(DISCOVERY) == {"iqn.2009-11-11.widodh.storage:iscsi-001": {"172.16.0.1", "172.16.1.1"}}
    assert iscsi.parse_sessions(SESSIONS) == {"172.16.0.1": "sda", "172.16.1.1": "sdb"}
    (m,) = iscsi.parse_multipath(MULTIPATH)
    assert (m.name, m.dm, [x.dev for x in m.paths]) == ("mpatha", "dm-0", ["sda", "sdb"])
    assert m.path("sda").active_ready and m.path("sdb").failed_faulty and not m.path("sdb").active_ready


def test_pattern_matches_the_guest_generator():
    import hashlib
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", iscsi_checks.PATTERN, "7", "2"], capture_output=True, check=True).stdout
    assert hashlib.sha256(out).hexdigest() == iscsi_checks.pattern_sha256(7, 2)


def test_iscsi_cases_run_after_the_others_and_skip_what_a_failure_blocks():
    from builder.fabric import checks

    calls = []

    def guest(argv, timeout):
        calls.append(argv)
        return (1, "", "iscsid.service not found") if argv[0] == "/bin/sh" else (0, "", "")

    ctx = checks.Context(TOPO, {"image": guest})
    cases = checks.run_all(ctx, (), serial=(iscsi_checks.cases,))
    assert [c.name for c in cases] == [name for name, _, _ in iscsi_checks.STEPS]
    assert not any(c.passed for c in cases) and "iscsid.service not found" in cases[0].evidence
    assert cases[1].evidence == "not run: iscsi-initiator-setup did not pass"
    assert len(calls) == 1  # nothing ran in the guest after the set-up failed


def _runs(tmp_path, *ids):
    return [Run(id=i, root=tmp_path / "runs").start() for i in ids]


def test_runs_on_the_same_preferred_port_claim_different_ones(tmp_path):
    tgtd = tmp_path / "tgtd"
    a, b = _runs(tmp_path, "000001", "008000")  # 0x8000 = 32768: both prefer port 2
    assert iscsi.control_port(a.id) == iscsi.control_port(b.id) == 2
    assert (iscsi.claim_control_port(a, tgtd), iscsi.claim_control_port(b, tgtd)) == (2, 3)
    a.teardown()  # a's files go, b's stay
    assert sorted(p.name for p in tgtd.iterdir()) == ["socket.3.lock"]
    b.teardown()
    assert list(tgtd.iterdir()) == []


def test_a_port_another_tgtd_holds_is_skipped_and_the_search_wraps(tmp_path):
    tgtd = tmp_path / "tgtd"
    tgtd.mkdir()
    (run,) = _runs(tmp_path, "007ffe")  # prefers the last port, 32767
    (tgtd / "socket.32767.lock").write_text("")  # a tgtd that is not ours
    assert iscsi.claim_control_port(run, tgtd) == 1
    run.teardown()
    assert (tgtd / "socket.32767.lock").exists() and not (tgtd / "socket.1.lock").exists()
