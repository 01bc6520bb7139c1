"""`builder image build NAME`, `builder image list`."""

from __future__ import annotations

import click
from rich.table import Table

from ..console import emit_json, err
from ..spec import IMAGES_DIR, image_names, load_image
from .options import build_options, run_build

EXAMPLES = """\b
Examples:
  builder image list
  builder image list --json
  builder image build minimal
  builder image build ceph-training --accel tcg --mirror http://deb.debian.org/debian"""


@click.group(name="image", epilog=EXAMPLES)
def group() -> None:
    """Build images and list the ones this checkout defines (images/<name>/image.yaml)."""


@group.command(name="list", epilog=EXAMPLES)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(as_json: bool) -> None:
    """List the images under images/."""
    specs = [load_image(n) for n in image_names()]
    rows = [{"name": s.name, "version": s.version, "description": s.description,
             "disk_mib": s.disk_mib, "cpus": s.cpus, "memory_mib": s.memory_mib} for s in specs]
    if as_json:
        emit_json(rows)
        return
    t = Table("name", "version", "disk", "cpus", "memory", "description", title=str(IMAGES_DIR))
    for r in rows:
        t.add_row(r["name"], r["version"], f"{r['disk_mib']} MiB", str(r["cpus"]), f"{r['memory_mib']} MiB",
                  r["description"])
    err.print(t)


@group.command(name="build", epilog=EXAMPLES)
@click.argument("name")
@build_options
def build(name: str, version: str | None, **opts) -> None:
    """Build NAME up to the provisioned qcow2 (rootfs, bootable disk, packer); no tests, no export."""
    spec = load_image(name, version=version)
    outcome = run_build(spec, opts, lambda b: b.image())
    err.print(f"provisioned image: {outcome.paths['provision'] / 'image.qcow2'}")


COMMANDS = [group]
