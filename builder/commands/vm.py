"""`builder vm NAME`: the main job — build, boot test, fabric test, export, publish."""

from __future__ import annotations

import datetime
import shutil
import subprocess
from pathlib import Path

import click
from rich.table import Table

from ..build import Build, Outcome
from ..console import emit_json, err
from ..errors import BuildFailed
from ..junit import to_junit
from ..lab.plan import has_lab
from ..publish import local
from ..publish.gitlab import publish_gitlab
from ..publish.gitlab_target import resolve_target
from ..publish.manifest import JUNIT, MANIFEST, SUMS, FileEntry, Manifest
from ..spec import REPO_ROOT, ImageSpec, load_image
from .options import build_options, run_build

EXAMPLES = """\b
Examples:
  builder vm ceph-training                    build, test, export, publish to artifacts/
  builder vm minimal --output /srv/images     publish somewhere else
  builder vm minimal --version 0.2.0 --force  replace an existing version
  builder vm minimal --accel tcg --json       skip the KVM probe, print the summary as JSON
  builder vm minimal --junit report.xml       JUnit for GitLab's artifacts:reports:junit
  builder vm ceph-training --publish gitlab --project training/images"""


def git_revision() -> str | None:
    p = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if p.returncode != 0:
        return None
    dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return p.stdout.strip() + ("-dirty" if dirty else "")


def make_manifest(o: Outcome, durations: dict[str, float]) -> Manifest:
    return Manifest(
        name=o.spec.name,
        version=o.spec.version,
        input_hash=o.keys["export"],
        git_revision=git_revision(),
        built_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        accelerator=o.accelerator,
        tools=o.tools,
        packages=o.packages,
        files=[FileEntry(name=f["name"], size=f["size"], sha256=f["sha256"], format=fmt)
               for fmt, f in o.files.items()],
        stages=durations,
        cached_stages=o.cached,
        tests=o.tests,
    )


def junit_xml(o: Outcome) -> str:
    return to_junit({f"{o.spec.name}.{k}": suite.cases for k, suite in o.tests.items()}, name=o.spec.name)


def publish_local(o: Outcome, output: Path, force: bool, durations: dict[str, float]) -> tuple[Path, Manifest]:
    s = o.spec
    manifest = make_manifest(o, durations)
    required = {"boot", "fabric"} | ({"lab"} if has_lab(s) else set())
    if not manifest.all_passed or set(manifest.tests) != required:
        raise BuildFailed(f"not published: {', '.join(sorted(required))} tests must all pass")
    local.check_free(output, s.name, s.version, force)  # again: another run may have published meanwhile
    staging = local.staging_dir(output, s.name, s.version)
    try:
        for f in o.files.values():
            local.place(o.paths["export"] / f["name"], staging / f["name"])
        (staging / MANIFEST).write_text(manifest.dumps())
        (staging / JUNIT).write_text(junit_xml(o))
        sums = {f["name"]: f["sha256"] for f in o.files.values()}
        sums.update((n, local.sha256_file(staging / n)) for n in (MANIFEST, JUNIT))
        (staging / SUMS).write_text(local.sha256sums(sums))
        return local.commit(staging, output, s.name, s.version, force), manifest
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def summary(final: Path, m: Manifest) -> Table:
    t = Table("file", "size", "sha256", title=f"{m.name} {m.version} → {final}")
    for f in m.files:
        t.add_row(f.name, f"{f.size / 2**20:.1f} MiB", f.sha256[:16])
    t.caption = "stages: " + ", ".join(
        f"{k} {'cached' if k in m.cached_stages else f'{v:.0f}s'}" for k, v in m.stages.items())
    return t


@click.command(name="vm", epilog=EXAMPLES)
@click.argument("name")
@build_options
@click.option("--output", type=click.Path(path_type=Path), default=Path("artifacts"), show_default=True,
              help="Local store: files land in OUTPUT/NAME/VERSION/.")
@click.option("--force", is_flag=True, help="Replace an existing version in the store.")
@click.option("--publish", "publish_to", type=click.Choice(["local", "gitlab"]), default="local",
              show_default=True, help="After the local store, also upload to GitLab (packages + release).")
@click.option("--project", help="GitLab project ID or path (default: $CI_PROJECT_ID).")
@click.option("--gitlab", "gitlab_name", metavar="NAME", help="python-gitlab config section.")
@click.option("--junit", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write the boot and fabric results as JUnit XML here (written on failure too).")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def vm(name: str, version: str | None, output: Path, force: bool, publish_to: str, project: str | None,
       gitlab_name: str | None, junit: Path | None, as_json: bool, **opts) -> None:
    """Build NAME, boot-test it, export qcow2 + VMDK + OVA and publish to a local directory.

    Nothing is published unless every check passes (exit 1 otherwise).
    """
    spec: ImageSpec = load_image(name, version=version)
    local.check_free(output, spec.name, spec.version, force)  # fail before an hour of work
    target = resolve_target(project=project, gitlab_name=gitlab_name) if publish_to == "gitlab" else None
    local.sweep_partials(output)

    def body(b: Build) -> tuple[Path, Manifest]:
        try:
            b.image()
            b.boot_test()
            b.fabric_test()
            b.lab_test()
        finally:
            if junit is not None and b.out.tests:
                junit.write_text(junit_xml(b.out))
        b.export()
        return publish_local(b.out, output, force, b.rep.durations)

    final, manifest = run_build(spec, opts, body)
    if target is not None:
        res = publish_gitlab(final, target, progress=lambda line: err.print(line, markup=False))
        err.print(f"GitLab: {len(res.uploaded)} uploaded, {len(res.unchanged)} unchanged; release {res.tag}")
    if as_json:
        emit_json(manifest.model_dump(mode="json"))
    else:
        err.print(summary(final, manifest))


COMMANDS = [vm]
