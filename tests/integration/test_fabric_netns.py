"""The fabric on this host's real kernel: namespaces, bridges, VXLAN, radvd. Every test asserts
the host is left as it was (namespaces, links, processes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lxml import etree

from builder.core import runs
from builder.fabric import netns, session
from builder.fabric.validate import load

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "fabrics/seed-poc.yaml"


@pytest.fixture(autouse=True)
def private_runs(no_leaks, tmp_path, monkeypatch):
    """Each test's runs journal under its own dir; no_leaks (first, so it checks last) covers the host."""
    run_dir = tmp_path / "runs"
    monkeypatch.setenv("BUILDER_RUN_DIR", str(run_dir))
    monkeypatch.setattr(runs, "RUN_ROOT", run_dir)
    yield run_dir


def _builder(*args, **kw):
    return subprocess.run([sys.executable, "-m", "builder.cli", *args], capture_output=True, text=True, cwd=ROOT, **kw)


def test_fabric_test_cli_passes_and_writes_junit(tmp_path):
    junit = tmp_path / "fabric.xml"
    p = _builder("fabric", "test", str(SEED), "--junit", str(junit), "--json")
    assert p.returncode == 0, p.stderr
    cases = json.loads(p.stdout)
    names = {c["name"] for c in cases}
    for want in ("ping/v4/vxlan1000/ubuntu->router", "ping/v6/vxlan2000/web2000->router",
                 "isolation/vxlan1000-x-vxlan2000", "mtu/v4/vxlan1000/df-1472-passes-1473-fails",
                 "ra/vxlan1000/ubuntu", "anyip/2001:db8:100::/64/tcp-freebind/router"):  # fmt: skip
        assert want in names
    assert all(c["passed"] for c in cases), [c for c in cases if not c["passed"]]
    ra = next(c for c in cases if c["name"] == "ra/vxlan1000/ubuntu")["evidence"]
    assert "2a00:f10:ff04:153::53" in ra and "SLAAC: 2a00:f10:114:1000:" in ra
    tree = etree.parse(str(junit))
    assert tree.getroot().get("tests") == str(len(cases)) and tree.getroot().get("failures") == "0"


def test_a_failing_check_fails_the_run(tmp_path):
    """Shrink the router's underlay bridge port to 1500: VXLAN frames of a full 1500-byte
    overlay packet (1550) are dropped, so the DF check must fail on VNI 1000 and 2000."""
    topo = load(SEED)
    with runs.Run(root=runs.RUN_ROOT) as run:
        fab = session.up(topo, run)
        port = next(p.host for p in fab.plan.ports if p.node == "router" and p.device == "vlan300")
        subprocess.run(["ip", "link", "set", port, "mtu", "1500"], check=True)
        from builder.fabric import checks

        cases = checks.run_all(session.context(topo, fab.plan.netns, run), (checks.mtu,))
    bad = {c.name: c for c in cases if not c.passed}
    assert "mtu/v4/vxlan1000/df-1472-passes-1473-fails" in bad
    assert "mtu/v6/vxlan2000/df-1452-passes-1453-fails" in bad
    assert "100% packet loss" in bad["mtu/v4/vxlan1000/df-1472-passes-1473-fails"].evidence


def test_two_fabrics_side_by_side():
    topo = load(SEED)
    with runs.Run(root=runs.RUN_ROOT) as a, runs.Run(root=runs.RUN_ROOT) as b:
        fa, fb = session.up(topo, a), session.up(topo, b)
        assert set(fa.plan.netns.values()).isdisjoint(fb.plan.netns.values())
        for fab, run in ((fa, a), (fb, b)):
            from builder.fabric import checks

            cases = checks.run_all(session.context(topo, fab.plan.netns, run), (checks.ping_overlays, checks.vni_isolation))
            assert all(c.passed for c in cases), [c for c in cases if not c.passed]


def test_up_down_detached_and_test_against_it():
    p = _builder("fabric", "up", str(SEED), "--detach", "--json")
    assert p.returncode == 0, p.stderr
    st = json.loads(p.stdout)
    assert session.live(SEED)[0]["run"] == st["run"]
    t = _builder("fabric", "test", str(SEED), "--json")
    assert t.returncode == 0, t.stderr
    d = _builder("fabric", "down", str(SEED), "--json")
    assert d.returncode == 0 and json.loads(d.stdout)["stopped"] == [st["run"]]


@pytest.mark.parametrize("delay", [0.0, 0.15, None])
def test_sigkill_mid_up_is_reaped_by_next_run(delay):
    """SIGKILL `builder fabric up` at some point (None: once it is fully up); the next
    `fabric down --all` must leave the host clean — and a live fabric alongside untouched."""
    keep = _builder("fabric", "up", str(SEED), "--detach", "--json")
    assert keep.returncode == 0
    kept = json.loads(keep.stdout)
    p = subprocess.Popen([sys.executable, "-m", "builder.cli", "fabric", "up", str(SEED)], cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    if delay is None:
        while len(session.live(SEED)) < 2:
            time.sleep(0.05)
    else:
        time.sleep(0.3 + delay)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    reaped = runs.reap()
    assert kept["run"] not in reaped
    # the surviving fabric still works
    assert subprocess.run(["ip", "netns", "exec", kept["netns"]["ubuntu"], "ping", "-c1", "-W1", "10.0.0.1"],
                          capture_output=True).returncode == 0  # fmt: skip
    assert _builder("fabric", "down", "--all").returncode == 0


def test_bridge_port_limit_is_named():
    """The kernel refuses a bridge's 1024th port ("exchange full"); the error names the limit."""


    from builder.fabric.model import Fabric
    from builder.fabric.validate import resolve
    from builder.spec import validate

    data = {"name": "full", "segments": [{"name": "lan", "ipv4": "10.9.0.0/21", "shard": True}],
            "nodes": [{"name": "ep", "replicas": 1024, "interfaces": [{"attach": "lan", "ipv4": "auto"}]}]}  # fmt: skip
    topo = resolve(validate(Fabric, data, Path("full.yaml")))
    with runs.Run(root=runs.RUN_ROOT) as run, pytest.raises(netns.BridgeFull, match="at most 1023 ports"):
        netns.up(topo, run, limit=1024)  # pretend the bridge could take it: the kernel says no



@pytest.mark.slow
def test_2000_endpoints_sharded_up_ping_down():
    sys.path.insert(0, str(ROOT / "bench"))
    from fabric import scale_fabric

    from builder.fabric import checks

    topo = scale_fabric(2000)
    with runs.Run(root=runs.RUN_ROOT) as run:
        fab = session.up(topo, run)
        assert len(fab.plan.bridges) == 2 and len(fab.plan.netns) == 2000
        cases = checks.run_all(session.context(topo, fab.plan.netns, run), (checks.ping_segments,))
    assert len(cases) == 8 and all(c.passed for c in cases), [c.evidence for c in cases if not c.passed]
