"""`builder ova ...` commands."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .. import vbox_suite
from ..console import emit_json, err
from ..core.errors import BuildFailed, UserError
from ..image import ova
from ..junit import to_junit
from .options import current_project


@click.group(
    name="ova",
    epilog="""\b
Examples:
  builder ova inspect dist/ceph-training-1.2.0.ova
  builder ova inspect exported-by-virtualbox.ovf --json
  builder ova test dist/minimal-0.1.0.ova""",
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


@group.command(
    name="test",
    epilog="""\b
Examples:
  builder ova test minimal-0.1.0.ova                      import, check, boot, SSH smoke checks
  builder ova test minimal-0.1.0.ova --json               the suite (cases with evidence) as JSON
  BUILDER_OVA_PASSWORD=secret builder ova test lab.ova --image-version 1.2.0 --user trainer
  builder ova test --from reports/minimal --junit reports/minimal/virtualbox.xml
                                                          the child pipeline's virtualbox job

\b
Runs where `VBoxManage --version` works (runners tagged `virtualbox`): imports the OVA into a
throw-away basefolder as VM `bx<run>-ova`, compares CPUs, memory, SATA disks and NIC 1 (NAT) with
the descriptor, adds a serial port to a file and an SSH port-forward, boots it headless, logs in
with the image user's password (sshpass) and runs the smoke checks, then powers the VM off and
deletes it, also on error or interrupt (a killed run's VM is removed by the next run).

\b
--from DIR (instead of FILE): DIR holds the proof a CI build job left (manifest.json). The OVA
it names is downloaded from the GitLab package registry (GITLAB_URL/GITLAB_PRIVATE_TOKEN or CI's
job token, as for `builder publish`), its sha256 checked, and tested with the image's own login
user; a version already released was tested before its release, and is not tested again.

\b
Exit status: 0 every case passed; 1 a case failed; 2 bad input or no VirtualBox on this host.""",
)
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False), required=False)
@click.option("--from", "proof", type=click.Path(path_type=Path, file_okay=False),
              help="test the OVA a CI build job uploaded (DIR holds its manifest.json), instead of FILE")
@click.option("--project", help="with --from: GitLab project ID or path (default: $CI_PROJECT_ID)")
@click.option("--gitlab", "gitlab_name", metavar="NAME", help="with --from: python-gitlab config section")
@click.option("--junit", type=click.Path(path_type=Path, dir_okay=False), help="also write the suite as JUnit XML")
@click.option("--user", default="student", show_default=True, help="the image's login user (from its spec)")
@click.option("--password", default="student", show_default=True, envvar="BUILDER_OVA_PASSWORD",
              help="that user's lab password (or $BUILDER_OVA_PASSWORD, kept out of ps); sudo for systemctl")
@click.option("--image-version", help="version /etc/motd must name [default: from NAME-VERSION.ova]")
@click.option("--boot-timeout", type=click.IntRange(30, 3600), default=600, show_default=True,
              help="seconds to wait for SSH after start")
@click.option("--workdir", type=click.Path(path_type=Path, file_okay=False),
              help="where the throw-away basefolder goes [default: the temp dir]")
@click.option("--json", "as_json", is_flag=True, help="print the suite as JSON on stdout")
def test_cmd(file: Path | None, proof: Path | None, project: str | None, gitlab_name: str | None,
             junit: Path | None, user: str, password: str, image_version: str | None, boot_timeout: int,
             workdir: Path | None, as_json: bool) -> None:
    """Prove an OVA in VirtualBox itself: import, hardware check, headless boot, SSH smoke checks."""
    if (file is None) == (proof is None):
        raise UserError("give the OVA FILE or --from DIR (a CI build job's proof), not both", field="FILE")
    if proof is not None:
        from ..publish.gitlab_target import resolve_target
        from ..vbox_job import test_uploaded

        vbox_suite.vbox_version("VBoxManage")  # before any download: no VirtualBox, nothing to do
        res = test_uploaded(proof, resolve_target(project=project, gitlab_name=gitlab_name), current_project(),
                            workdir=workdir, boot_timeout=boot_timeout,
                            progress=lambda line: err.print(line, markup=False))
        if res.suite is None:
            err.print(f"{res.name} {res.version} is released already: its OVA was tested before the release",
                      markup=False, soft_wrap=True)
            if as_json:
                emit_json({"name": res.name, "version": res.version, "state": res.state})
            return
        suite = res.suite
    else:
        assert file is not None
        suite = vbox_suite.run_suite(file, user=user, password=password, version=image_version,
                                     boot_timeout=boot_timeout, workdir=workdir)
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        junit.write_text(to_junit({vbox_suite.SUITE: suite.cases}))
    if as_json:
        emit_json({vbox_suite.SUITE: suite.model_dump()})
    else:
        for c in suite.cases:
            first = c.evidence.splitlines()[0] if c.evidence else ""
            verdict = "[green]pass[/]" if c.passed else "[red]FAIL[/]"
            err.print(f"{verdict} {escape(c.name)}  {escape(first)}", soft_wrap=True)
    if not suite.passed:
        raise BuildFailed(f"virtualbox suite: {', '.join(c.name for c in suite.cases if not c.passed)} failed")


COMMANDS = [group]
