"""`builder vm NAME`: the main job — arguments in, results shown; the work is in builder/job.py."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from ..console import emit_json, err
from ..job import JobRequest, JobResult, run_vm
from ..progress import Reporter
from ..publish.gitlab_target import resolve_target
from .options import build_options, current_project, options_from

EXAMPLES = """\b
Examples:
  builder vm ceph-training                    build, test, export, publish to ./artifacts
  builder vm minimal                          again: exits 0 "current" when nothing changed
  builder vm minimal --output /srv/images     publish somewhere else
  builder vm minimal --version 0.2.0          publish exactly this version
  builder vm minimal --force                  rebuild every stage, replace the newest version
  builder vm minimal --retest                 reuse cached images, run the tests again
  builder vm minimal --accel tcg --json       skip the KVM probe, print the manifest as JSON
  builder vm minimal --junit report.xml       JUnit for GitLab's artifacts:reports:junit
  builder vm ceph-training --publish gitlab --project training/images
  builder -C ~/src/my-images vm my-image      an images project elsewhere"""


def summary(res: JobResult) -> Table:
    m = res.manifest
    where = res.directory or "GitLab"
    t = Table("file", "size", "sha256", title=f"{m.name} {m.version} → {where}")
    for f in m.files:
        t.add_row(f.name, f"{f.size / 2**20:.1f} MiB", f.sha256[:16])
    t.caption = "stages: " + ", ".join(
        f"{k} {'cached' if k in m.cached_stages else f'{v:.0f}s'}" for k, v in m.stages.items())
    return t


@click.command(name="vm", epilog=EXAMPLES)
@click.argument("name")
@build_options
@click.option("--output", type=click.Path(path_type=Path, file_okay=False),
              help="Local store: files land in OUTPUT/NAME/VERSION/ (default: the project's artifacts/).")
@click.option("--force", is_flag=True, help="Rebuild every stage and replace the version in the store.")
@click.option("--retest", is_flag=True, help="Run the boot and fabric tests again on cached images.")
@click.option("--publish", "publish_to", type=click.Choice(["local", "gitlab"]), default="local",
              show_default=True, help="After the local store, also upload to GitLab (packages + release).")
@click.option("--no-release", is_flag=True, help="With --publish gitlab: upload only; a later "
              "`builder publish --release-only` creates the release.")
@click.option("--project", help="GitLab project ID or path (default: $CI_PROJECT_ID).")
@click.option("--gitlab", "gitlab_name", metavar="NAME", help="python-gitlab config section.")
@click.option("--junit", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write the boot and fabric results as JUnit XML here (written on failure too).")
@click.option("--reports", type=click.Path(path_type=Path, file_okay=False),
              help="Write the small proof here for CI artifacts: junit.xml (always), manifest.json, SHA256SUMS.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def vm(name: str, version: str | None, output: Path | None, force: bool, retest: bool, publish_to: str,
       no_release: bool, project: str | None, gitlab_name: str | None, junit: Path | None, reports: Path | None,
       as_json: bool, **opts) -> None:
    """Build NAME, test it, export qcow2 + VMDK + OVA and publish it to a local directory.

    Nothing is published unless every check passes (exit 1 otherwise). A rebuild whose content
    is unchanged publishes nothing and exits 0; changed content gets image.yaml's version, or
    VERSION.N when that one is already published.
    """
    proj = current_project()
    target = resolve_target(project=project, gitlab_name=gitlab_name) if publish_to == "gitlab" else None
    req = JobRequest(project=proj, name=name, output=output or proj.artifacts_dir,
                     options=options_from(opts, force=force, retest=retest),
                     version=version, force=force, gitlab=target, release=not no_release, junit=junit,
                     reports=reports)
    res = run_vm(req, Reporter(quiet=opts["quiet"]), progress=lambda line: err.print(line, markup=False))
    if res.gitlab is not None:
        g = res.gitlab
        err.print(f"GitLab: {len(g.uploaded)} uploaded, {len(g.unchanged)} unchanged"
                  + (f"; release {g.tag} {g.release}" if g.release else ""))
    if res.state == "current":
        err.print(f"{res.manifest.name} {res.manifest.version} is current: {res.decision.reason}; nothing to publish",
                  soft_wrap=True, markup=False)
    if as_json:
        emit_json({**res.manifest.model_dump(mode="json"), "state": res.state})
    elif res.state == "published":
        err.print(summary(res))


COMMANDS = [vm]
