"""iSCSI multipath with the image under test as the initiator: tgtd in the fabric's storage
namespace, the minimal image booted under QEMU on the fabric's taps, a path pulled under I/O."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from builder.core import proc, runs
from builder.core.runs import Run
from builder.fabric import iscsi, session
from builder.fabric.validate import load

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[2]
CEPH_LAB = load(ROOT / "fabrics/ceph-lab.yaml")
ISCSI_CASES = ("iscsi-initiator-setup", "iscsi-discovery", "iscsi-login-both-portals",
               "multipath-two-active-paths", "multipath-path-failure-under-io", "multipath-path-restored")  # fmt: skip


def _control_port(run: Run) -> int:
    return json.loads((run.dir / session.STATE).read_text())["tgtd_control_port"]


def test_target_serves_both_portals_from_its_namespace(no_leaks):
    with Run() as run:
        fab = session.up(CEPH_LAB, run)
        port = _control_port(run)
        show = subprocess.run(["tgtadm", "-C", str(port), "--lld", "iscsi", "--mode", "target", "--op", "show"],
                              capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert "iqn.2009-11-11.widodh.storage:iscsi-001" in show and "iqn.2024-01.lab.builder:ceph-lab.image" in show
        assert "Size: 67 MB" in show  # the 64 MiB sparse LUN
        rc, out, _ = fab.exec("storage")(["ss", "-Hltn"], 10)
        assert {"172.16.0.1:3260", "172.16.1.1:3260"} <= {line.split()[3] for line in out.splitlines()}
        assert all(p.exists() for p in iscsi.control_paths(port))
    assert not any(p.exists() for p in iscsi.control_paths(port))


def _tgtds() -> set[int]:
    """Live tgtd pids (a killed one may linger as a zombie under a pid 1 that does not reap). Read
    from /proc/PID/comm, one name a file: split `ps` output misreads a name with spaces."""
    pids = set()
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and (d / "comm").read_text().rstrip("\n") == "tgtd":
                pids.add(int(d.name))
        except OSError:  # gone meanwhile
            continue
    return {pid for pid in pids if proc.alive(pid, None)}


def test_two_targets_side_by_side(no_leaks):
    with Run() as a, Run() as b:
        session.up(CEPH_LAB, a), session.up(CEPH_LAB, b)
        ports = {_control_port(r) for r in (a, b)}
        assert len(ports) == 2 and all(p.exists() for port in ports for p in iscsi.control_paths(port))


def test_sigkilled_fabric_up_leaves_its_target_to_the_reaper(no_leaks):
    before = _tgtds()
    p = subprocess.Popen([sys.executable, "-m", "builder.cli", "fabric", "up", str(ROOT / "fabrics/ceph-lab.yaml")],
                         cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    while not [s for s in session.live() if s["pid"] == p.pid]:
        assert p.poll() is None
        time.sleep(0.05)
    (st,) = [s for s in session.live() if s["pid"] == p.pid]
    port = st["tgtd_control_port"]
    assert _tgtds() - before and iscsi.control_paths(port)[0].exists()
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert st["run"] in runs.reap()
    assert _tgtds() == before and not any(x.exists() for x in iscsi.control_paths(port))


@pytest.mark.slow
def test_image_suite_in_vm_with_path_failure_under_io(minimal_qcow2, no_leaks):
    """The whole ceph-lab suite with the image as its VM node, the iSCSI cases included."""
    with Run() as run:
        cases = session.run_image_vm(CEPH_LAB, minimal_qcow2, run)
    report = json.dumps([c.model_dump() for c in cases], indent=1)
    names = [c.name for c in cases]
    assert names[0] == "setup/image/network" and names[-len(ISCSI_CASES):] == list(ISCSI_CASES), report
    assert {"ping/v4/vxlan1000/image->router", "ping/v6/vxlan1000/image->router", "ra/vxlan1000/image",
            "ping/v4/sana/image->storage"} <= set(names), report  # fmt: skip
    assert all(c.passed for c in cases), report
    failure = next(c for c in cases if c.name == "multipath-path-failure-under-io").evidence
    assert "failed faulty: True" in failure and "writer rc 0" in failure
