"""Fabric figures (printed, not asserted): the seed topology up + checks + down, a sharded
fabric of N namespace endpoints up + ping sample + down with its per-endpoint cost, and with
`--vm-image` the in-guest suite for one image under TCG (boot to results) on ceph-lab.

    python bench/fabric.py [--endpoints 2000] [--vm-image minimal-0.1.0.qcow2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from builder.core.runs import Run
from builder.fabric import checks, session
from builder.fabric.model import Fabric
from builder.fabric.validate import load, resolve
from builder.spec import validate

ROOT = Path(__file__).resolve().parents[1]


def scale_fabric(n: int):
    data = {
        "name": f"scale-{n}",
        "segments": [{"name": "lan", "mtu": 9000, "ipv4": "10.64.0.0/16", "shard": True}],
        "nodes": [{"name": "ep", "replicas": n, "interfaces": [{"attach": "lan", "ipv4": "auto"}]}],
    }
    return resolve(validate(Fabric, data, Path(f"scale-{n}.yaml")))


def timed(topo, checks_to_run) -> dict:
    t0 = time.monotonic()
    with Run() as run:
        fab = session.up(topo, run)
        t1 = time.monotonic()
        cases = checks.run_all(session.context(topo, fab.plan.netns, run), checks_to_run)
        t2 = time.monotonic()
    t3 = time.monotonic()
    return {"up": t1 - t0, "checks": t2 - t1, "down": t3 - t2, "total": t3 - t0,
            "passed": sum(c.passed for c in cases), "cases": len(cases), "bridges": len(fab.plan.bridges)}  # fmt: skip


def vm_suite(disk: Path) -> None:
    t0 = time.monotonic()
    with Run() as run:
        cases = session.run_image_vm(load(ROOT / "fabrics/ceph-lab.yaml"), disk, run)
    total = time.monotonic() - t0
    for c in cases:
        print(f"  {'pass' if c.passed else 'FAIL'} {c.seconds:6.1f} s  {c.name}")
    print(f"in-guest suite under TCG, boot to results: {total:.1f} s (budget 120 s, ratio {total / 120:.2f}); "
          f"{sum(c.passed for c in cases)}/{len(cases)} passed")  # fmt: skip
    print(next(c.evidence for c in cases if c.name == "multipath-path-failure-under-io"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoints", type=int, default=2000)
    ap.add_argument("--vm-image", type=Path, help="a built qcow2 to run as ceph-lab's VM node")
    a = ap.parse_args()
    if a.vm_image:
        return vm_suite(a.vm_image)
    seed = timed(load(ROOT / "fabrics/seed-poc.yaml"), checks.ALL)
    print(f"seed-poc: up {seed['up']:.2f} s, checks {seed['checks']:.2f} s, down {seed['down']:.2f} s, "
          f"total {seed['total']:.2f} s (budget 5 s, ratio {seed['total'] / 5:.2f}); "
          f"{seed['passed']}/{seed['cases']} passed")  # fmt: skip
    s = timed(scale_fabric(a.endpoints), (checks.ping_segments,))
    n = a.endpoints
    print(f"{n} endpoints on {s['bridges']} bridges: up {s['up']:.1f} s ({1000 * s['up'] / n:.1f} ms/endpoint), "
          f"down {s['down']:.1f} s ({1000 * s['down'] / n:.1f} ms/endpoint), up+down {s['up'] + s['down']:.1f} s "
          f"(budget 60 s, ratio {(s['up'] + s['down']) / 60:.2f}); ping sample {s['passed']}/{s['cases']}")  # fmt: skip


if __name__ == "__main__":
    main()
