"""`builder fabric render|up|test|down`."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UserError

FABRIC_ARG = click.argument("fabric", type=click.Path(path_type=Path, dir_okay=False))


def _load(path: Path):
    from ..fabric.validate import load

    return load(path)


@click.group(
    name="fabric",
    epilog="""\b
Examples:
  builder fabric render fabrics/seed-poc.yaml --format vyos
  builder fabric test fabrics/seed-poc.yaml --junit report.xml
  builder fabric down --all""",
)
def group() -> None:
    """Test fabric: VXLAN overlays, IPv6 RA + AnyIP, iSCSI multipath, in network namespaces."""


@group.command(
    epilog="""\b
Examples:
  builder fabric render fabrics/seed-poc.yaml --format vyos
  builder fabric render fabrics/seed-poc.yaml --format iproute2 --node ubuntu
  builder fabric render fabrics/seed-poc.yaml --format networkd --node ubuntu""",
)
@FABRIC_ARG
@click.option("--format", "fmt", type=click.Choice(["vyos", "iproute2", "radvd", "networkd"]), required=True)
@click.option("--node", help="render one node only")
def render(fabric: Path, fmt: str, node: str | None) -> None:
    """Render FABRIC's configuration for VyOS, iproute2, radvd or systemd-networkd."""
    from ..fabric.render import FORMATS

    topo = _load(fabric)
    if node is not None and node not in {n.name for n in topo.nodes}:
        raise UserError(f"no node named {node!r}", file=str(fabric), field="--node")
    click.echo(FORMATS[fmt](topo, node), nl=False)


COMMANDS = [group]
