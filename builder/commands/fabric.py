"""`builder fabric render|up|test|down`."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import click

from ..console import emit_json, err
from ..core.errors import UserError

FABRIC_ARG = click.argument("fabric", type=click.Path(path_type=Path, dir_okay=False))


def _load(path: Path):
    from ..fabric.validate import load

    return load(path)


@click.group(
    name="fabric",
    epilog="""\b
Examples:
  builder fabric render fabrics/seed-poc.yaml --format vyos
  builder fabric render fabrics/ceph-lab.yaml --format svg > ceph-lab.svg
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
  builder fabric render fabrics/seed-poc.yaml --format networkd --node ubuntu
  builder fabric render fabrics/ceph-lab.yaml --format svg > ceph-lab.svg
  builder fabric render fabrics/ceph-lab.yaml --format dot --failed multipath-two-active-paths""",
)
@FABRIC_ARG
@click.option("--format", "fmt", type=click.Choice(["vyos", "iproute2", "radvd", "networkd", "dot", "svg"]),
              required=True, help="a configuration, or the topology picture (Graphviz DOT or SVG)")
@click.option("--node", help="render one node only (configuration formats)")
@click.option("--failed", "failed", multiple=True, metavar="CHECK",
              help="dot/svg: draw the element this check tested as failed (repeatable)")
def render(fabric: Path, fmt: str, node: str | None, failed: tuple[str, ...]) -> None:
    """Render FABRIC's configuration for VyOS, iproute2, radvd or systemd-networkd, or its
    topology as a picture (nodes, segments, overlays with their MTU budget, AnyIP, iSCSI paths)."""
    from ..fabric.render import FORMATS, dot

    topo = _load(fabric)
    if fmt in ("dot", "svg"):
        if node is not None:
            raise UserError("--node applies to configuration formats, not the picture", field="--node")
        text = dot.fabric_dot(topo, set(failed))
        click.echo(dot.svg(text) if fmt == "svg" else text, nl=False)
        return
    if failed:
        raise UserError("--failed applies to --format dot or svg", field="--failed")
    if node is not None and node not in {n.name for n in topo.nodes}:
        raise UserError(f"no node named {node!r}", file=str(fabric), field="--node")
    click.echo(FORMATS[fmt](topo, node), nl=False)


def _report(cases, junit: Path | None, as_json: bool, name: str) -> None:
    from ..core.errors import BuildFailed
    from ..junit import summary, to_junit

    if junit:
        junit.write_text(to_junit({f"fabric.{name}": cases}))
    if as_json:
        emit_json([c.model_dump() for c in cases])
    else:
        err.print(summary(cases))
    failed = [c.name for c in cases if not c.passed]
    if failed:
        raise BuildFailed(f"{len(failed)} of {len(cases)} fabric checks failed: {', '.join(failed)}")


@group.command(
    epilog="""\b
Examples:
  builder fabric up fabrics/seed-poc.yaml            hold it up until Ctrl-C or `fabric down`
  builder fabric up fabrics/seed-poc.yaml --detach   return once it is up
  builder fabric up fabrics/ceph-lab.yaml --json""",
)
@FABRIC_ARG
@click.option("--detach", is_flag=True, help="keep it up in a background process and return")
@click.option("--json", "as_json", is_flag=True, help="print what was created as JSON")
def up(fabric: Path, detach: bool, as_json: bool) -> None:
    """Bring FABRIC up in network namespaces on this host (reaps dead runs' leftovers first)."""
    from ..core.runs import Run
    from ..fabric import session

    topo = _load(fabric)
    if detach:
        return _detach(fabric, as_json)
    with Run() as run:
        fab = session.up(topo, run)
        if as_json:
            emit_json(fab.describe())
        else:
            err.print(f"fabric {topo.fabric.name} up (run {run.id}, {fab.timings['up']:.2f} s): "
                      f"{len(fab.plan.netns)} namespaces, {len(fab.plan.bridges)} bridges; "
                      "Ctrl-C or `builder fabric down` tears it down")  # fmt: skip
        sys.stdout.flush()
        try:
            while True:
                signal.pause()
        except KeyboardInterrupt:  # SIGTERM from `fabric down` arrives as this (core/runs.py)
            pass


def _detach(fabric: Path, as_json: bool) -> None:
    from ..core import proc
    from ..core.errors import BuildFailed
    from ..fabric import session

    p = proc.detach([sys.executable, "-m", "builder.cli", "fabric", "up", str(fabric)])
    while p.poll() is None:
        st = [s for s in session.live(fabric) if s["pid"] == p.pid]
        if st:
            if as_json:
                emit_json(st[0])
            else:
                err.print(f"fabric up in the background (run {st[0]['run']}, pid {p.pid})")
            return
        time.sleep(0.05)
    _, stderr = p.communicate()
    raise BuildFailed(f"fabric up exited {p.returncode}: {stderr.decode().strip()}")


@group.command(
    epilog="""\b
Examples:
  builder fabric test fabrics/seed-poc.yaml --junit fabric.xml
  builder fabric test fabrics/seed-poc.yaml --json""",
)
@FABRIC_ARG
@click.option("--junit", type=click.Path(path_type=Path, dir_okay=False), help="write JUnit XML here")
@click.option("--json", "as_json", is_flag=True, help="print the cases as JSON")
def test(fabric: Path, junit: Path | None, as_json: bool) -> None:
    """Run FABRIC's checks: against it if it is up, else bring it up, check, tear down. Exit 1
    when any check fails."""
    from ..core.runs import Run
    from ..fabric import session

    topo = _load(fabric)
    with Run() as run:
        held = session.live(fabric)
        if held:
            cases = session.check(topo, held[0]["netns"], run)
        else:
            fab = session.up(topo, run)
            cases = session.check(topo, fab.plan.netns, run)
    _report(cases, junit, as_json, topo.fabric.name)


@group.command(
    epilog="""\b
Examples:
  builder fabric down fabrics/seed-poc.yaml   tear down the live run(s) of this fabric
  builder fabric down --all                   every live fabric, plus leftovers of dead runs""",
)
@click.argument("fabric", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--all", "everything", is_flag=True, help="every live fabric on this host")
@click.option("--json", "as_json", is_flag=True)
def down(fabric: Path | None, everything: bool, as_json: bool) -> None:
    """Tear FABRIC down (its owner process unwinds its journal) and reap dead runs' leftovers."""
    from ..core.errors import BuildFailed
    from ..core.runs import reap
    from ..fabric import session

    if fabric is None and not everything:
        raise UserError("name a fabric file or pass --all", field="FABRIC")
    states = session.live(None if everything else fabric)
    stopped = [s["run"] for s in states if session.stop(s)]
    reaped = reap()
    if as_json:
        emit_json({"stopped": stopped, "reaped": reaped})
    else:
        err.print(f"stopped {len(stopped)} fabric run(s), reaped {len(reaped)} dead run(s)")
    if len(stopped) < len(states):
        raise BuildFailed("some fabric runs did not tear down within 30 s")


COMMANDS = [group]
