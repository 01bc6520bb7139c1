"""End to end: `builder lab test ceph-training --nodes 3` on real QEMU (TCG) — three VMs of the
provisioned image on the VXLAN overlay, a 3-mon cluster over IPv6, then one node powered off.

20-40 minutes under TCG on two cores: `nightly` (the scheduled pipeline runs it; every other
CI run deselects it with `-m "not nightly"`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builder.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.nightly, pytest.mark.root]

NODES = ("ceph-training-1", "ceph-training-2", "ceph-training-3")


def test_three_node_lab_keeps_quorum_and_data_with_a_node_off(tmp_path: Path, test_cache: Path, capsys, no_leaks):
    rc = main(["lab", "test", "ceph-training", "--nodes", "3", "--accel", "tcg", "--cache-dir", str(test_cache),
               "--json", "--quiet", "--reports", str(tmp_path)])
    res = json.loads(capsys.readouterr().out)
    cases = {c["name"]: c for c in res["suite"]["cases"]}
    failed = {n: c["evidence"][-800:] for n, c in cases.items() if not c["passed"]}
    assert rc == 0 and res["suite"]["passed"], failed
    assert tuple(res["nodes"]) == NODES
    # every reference step ran on every node; the first node created the cluster, the others joined it
    for node in NODES:
        for step in ("00-node.sh", "20-mon.sh", "30-mgr.sh", "40-osds.sh"):
            assert f"step/{node}/{step}" in cases
        assert node in cases[f"step/{node}/00-node.sh"]["evidence"]  # `hostname` printed by the step
    assert {"step/ceph-training-1/10-config.sh", "step/ceph-training-1/15-share.sh"} <= set(cases)
    assert "received /root/lab-cluster.tar" in cases["step/ceph-training-2/16-join.sh"]["evidence"]
    assert "quorum 3 of 3" in cases["quorum-3"]["evidence"]
    assert "HEALTH_OK" in cases["health-ok"]["evidence"]
    assert "quorum 2 of 3: ceph-training-1, ceph-training-2" in cases["drill/ceph-training-3-off-quorum-2-of-3"][
        "evidence"]
    read_back = cases["drill/ceph-training-3-off-degraded-data-reads"]["evidence"]
    assert "PG_DEGRADED" in read_back and "seeded object sha256" in read_back
    assert set(res["memory"]) == set(NODES)
    assert all(m["qemu_peak_rss_mib"] > 0 for m in res["memory"].values())
    junit = (tmp_path / "junit.xml").read_text()
    assert 'name="ceph-training.lab-cluster"' in junit and "<failure" not in junit
    assert json.loads((tmp_path / "result.json").read_text())["suite"]["passed"]
