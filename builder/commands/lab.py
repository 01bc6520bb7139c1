"""`builder lab test NAME`: the image's lab as a cluster of several VMs (builder/lab/cluster.py).

It builds NAME up to the provisioned image (or reuses it from the stage cache) and runs the
cluster suite on copies of it; slow under TCG, so CI runs it on a schedule, not on every push.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import click

from .. import preflight
from ..build import Build, provenance
from ..console import emit_json, err
from ..core.errors import BuildFailed
from ..core.runs import Run
from ..junit import summary, to_junit
from ..lab import cluster
from ..progress import Reporter
from ..spec import load_image
from .options import build_options, current_project, options_from

EXAMPLES = """\b
Examples:
  builder lab test ceph-training                 3 VMs (lab.yaml's cluster.nodes), quorum, HEALTH_OK, drill
  builder lab test ceph-training --nodes 5       a 5-mon cluster
  builder lab test ceph-training --accel tcg --junit lab.xml --reports lab-reports
  builder lab test ceph-training --json          the result (cases, memory, wall time) as JSON"""


@click.group(name="lab", epilog=EXAMPLES)
def group() -> None:
    """The image's course lab (images/NAME/lab/) as a cluster of several VMs of the image."""


@group.command(name="test", epilog=EXAMPLES)
@click.argument("name")
@build_options
@click.option("--nodes", type=click.IntRange(3, 7), default=None,
              help="VMs in the cluster, each a mon, a mgr and OSD(s) (default: lab.yaml's cluster.nodes).")
@click.option("--seed", type=int, default=None, help="Seed of the object written and read back (default: random).")
@click.option("--junit", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the cases as JUnit XML here (on failure too).")
@click.option("--reports", type=click.Path(path_type=Path, file_okay=False),
              help="Write junit.xml and result.json (cases with evidence, memory, wall time) here.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def test(name: str, version: str | None, nodes: int | None, seed: int | None, junit: Path | None,
         reports: Path | None, as_json: bool, **opts) -> None:
    """Boot NAME's provisioned image as a cluster of VMs on its fabric's VXLAN overlay, run the
    lab's reference steps on every node, and prove it: a quorum of all mons, HEALTH_OK, an object
    through RADOS; then the last node powered off, a quorum of the rest and the object read back.

    Exit 0 when every case passes, 1 when one fails, 2 on bad input (nothing boots then).
    """
    project = current_project()
    spec = load_image(name, project.images_dir, version=version)
    checked = preflight.check(spec, project.root, mirror=opts["mirror"], stages=("rootfs", "disk", "provision"))
    _, topo, vm_node = preflight.fabric_of(spec, project.root)
    fsid = uuid.uuid4()
    cluster.prepare(spec, topo, vm_node, nodes, fsid)  # bad input exits 2 before any build
    rep = Reporter(quiet=opts["quiet"])

    def progress(line: str) -> None:  # every case, not rate-limited like Reporter.update
        if not opts["quiet"]:
            err.print(f"  {line}", markup=False, soft_wrap=True)

    with Run() as run:
        build = Build(spec, run, options_from(opts), rep, archive=checked.archive)
        disk = build.image().paths["provision"] / "image.qcow2"
        with rep.stage("lab-cluster", f"{name}: the lab on {nodes or 'lab.yaml cluster.nodes'} VMs"):
            res = cluster.run_cluster_suite(spec, topo, disk, run, vm_node=vm_node, nodes=nodes,
                                            accel=build.out.accelerator, ready_timeout=spec.boot_test.timeout,
                                            seed=seed, fsid=fsid, progress=progress)  # fmt: skip
        result = {**res.as_json(), "image": str(disk), "provenance": provenance(run, build.out.accelerator)}
    xml = to_junit({f"{spec.name}.lab-cluster": res.suite.cases}, name=spec.name)
    if junit:
        junit.write_text(xml)
    if reports:
        reports.mkdir(parents=True, exist_ok=True)
        (reports / "junit.xml").write_text(xml)
        (reports / "result.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    if as_json:
        emit_json(result)
    else:
        err.print(summary(res.suite.cases))
        peak = sum(m.get("qemu_peak_rss_mib", 0) for m in res.memory.values())
        err.print(f"{len(res.nodes)} nodes, {res.seconds:.0f} s; QEMU peak RSS {peak} MiB in all: "
                  + ", ".join(f"{n} {m}" for n, m in res.memory.items()), markup=False, soft_wrap=True)
    if not res.suite.passed:
        failed = [c.name for c in res.suite.cases if not c.passed] or ["(stopped early)"]
        raise BuildFailed(f"lab cluster of {len(res.nodes)} nodes failed: {', '.join(failed)}")


COMMANDS = [group]
