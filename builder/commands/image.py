"""`builder image build NAME`, `builder image list`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from .. import preflight
from ..build import Build
from ..console import emit_json, err
from ..core.runs import Run
from ..progress import Reporter
from ..spec import image_names, load_image
from .options import build_options, current_project, options_from

EXAMPLES = """\b
Examples:
  builder image list
  builder image list --json
  builder image build minimal
  builder image build ceph-training --accel tcg --mirror http://deb.debian.org/debian
  builder image check minimal --render /tmp/rendered"""


@click.group(name="image", epilog=EXAMPLES)
def group() -> None:
    """Build images and list the ones this checkout defines (images/<name>/image.yaml)."""


@group.command(name="list", epilog=EXAMPLES)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(as_json: bool) -> None:
    """List the images of this project (images/<name>/image.yaml)."""
    project = current_project()
    specs = [load_image(n, project.images_dir) for n in image_names(project.images_dir)]
    rows: list[dict[str, Any]] = [{"name": s.name, "version": s.version, "description": s.description,
             "disk_mib": s.disk_mib, "cpus": s.cpus, "memory_mib": s.memory_mib} for s in specs]
    if as_json:
        emit_json(rows)
        return
    t = Table("name", "version", "disk", "cpus", "memory", "description", title=str(project.images_dir))
    for r in rows:
        t.add_row(r["name"], r["version"], f"{r['disk_mib']} MiB", str(r["cpus"]), f"{r['memory_mib']} MiB",
                  r["description"])
    err.print(t)


@group.command(name="build", epilog=EXAMPLES)
@click.argument("name")
@build_options
def build(name: str, version: str | None, **opts) -> None:
    """Build NAME up to the provisioned qcow2 (rootfs, bootable disk, packer); no tests, no export."""
    spec = load_image(name, current_project().images_dir, version=version)
    checked = preflight.check(spec, current_project().root, mirror=opts["mirror"],
                              stages=("rootfs", "disk", "provision"))
    with Run() as run:
        outcome = Build(spec, run, options_from(opts), Reporter(quiet=opts["quiet"]), archive=checked.archive).image()
    err.print(f"provisioned image: {outcome.paths['provision'] / 'image.qcow2'}")


@group.command(name="check", epilog="""\b
Examples:
  builder image check minimal
  builder image check ceph-training --render /tmp/rendered
  builder image check minimal --offline     skip the mirror look-up""")
@click.argument("name")
@click.option("--render", "render_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Write every rendered file here (customize hook, packer HCL, scripts, fabric configs, OVF).")
@click.option("--mirror", default=None, help="Debian mirror to check the suite on (default: image.yaml's).")
@click.option("--offline", is_flag=True, help="Do not ask the mirror whether it has the suite.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def check(name: str, render_dir: Path | None, mirror: str | None, offline: bool, as_json: bool) -> None:
    """Check NAME as `builder vm` does before its first stage; nothing is run or built (exit 2 on bad input)."""
    project = current_project()
    spec = load_image(name, project.images_dir)
    checked = preflight.check(spec, project.root, mirror=mirror, archive_state=not offline)
    written = preflight.render_all(spec, render_dir) if render_dir else []
    result = {"name": spec.name, "version": spec.version, "archive": checked.archive,
              "fabric": project.relative(checked.fabric_file), "vm_node": checked.vm_node,
              "rendered": [str(p) for p in written]}
    if as_json:
        emit_json(result)
        return
    err.print(f"{spec.name} {spec.version}: ok (fabric {result['fabric']}, VM node {checked.vm_node}"
              + "".join(f", {s} {d[:19]}" for s, d in checked.archive.items()) + ")")
    if written:
        err.print(f"rendered {len(written)} files into {render_dir}")


COMMANDS = [group]
