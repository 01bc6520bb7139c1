"""`builder ova ...` commands."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from ..console import emit_json
from ..image import ova


@click.group(
    name="ova",
    epilog="""\b
Examples:
  builder ova inspect dist/ceph-training-1.2.0.ova
  builder ova inspect exported-by-virtualbox.ovf --json""",
)
def group() -> None:
    """Read OVF descriptors and OVA packages (ours and VirtualBox exports)."""


def _table(path: Path, result: ova.Inspection) -> Table:
    s = result.summary
    t = Table(title=str(path), show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    t.add_row("name", str(s["name"]))
    t.add_row("os", str(s["os"]))
    t.add_row("cpus", str(s["cpus"]))
    t.add_row("memory", f"{s['memory_mib']} MiB")
    for i, d in enumerate(s["disks"]):
        t.add_row(f"disk {i}", f"{d['file']}  {d['capacity_bytes']} bytes  {d['format']}")
    for i, n in enumerate(s["nics"]):
        t.add_row(f"nic {i}", f"{n['model']} on {n['network']}")
    t.add_row("manifest", f"{len(result.verified)} digests verified" if result.verified else "none")
    return t


@group.command(
    name="inspect",
    epilog="""\b
Examples:
  builder ova inspect ceph-training-1.2.0.ova          table: name, OS, CPUs, memory, disks, NICs
  builder ova inspect ceph-training-1.2.0.ova --json   the same as JSON
  builder ova inspect exported/vm.ovf                  a bare descriptor (+ sibling .mf if any)

\b
Exit status: 0 read and every manifest digest matched; 1 a digest mismatch or a file
missing from the package; 2 not a tar / not XML / not an OVF envelope.""",
)
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON on stdout")
def inspect_cmd(file: Path, as_json: bool) -> None:
    """Summarise an OVF descriptor or OVA and verify its manifest digests."""
    result = ova.inspect(file)
    if as_json:
        emit_json(result.summary)
    else:
        Console(highlight=False).print(_table(file, result))


COMMANDS = [group]
