"""`builder publish NAME VERSION --to local|gitlab`."""

from __future__ import annotations

from pathlib import Path

import click

from ..console import emit_json, err
from ..core.errors import UserError
from ..publish import manifest as manifest_mod
from ..publish.local import version_dir
from ..publish.manifest import MANIFEST
from ..publish.verify import require_passing, verify_version_dir
from ..spec import NAME_RE, check_version
from .options import current_project


@click.command(
    name="publish",
    epilog="""\b
Examples:
  builder publish ceph-training 1.2.0 --to local            verify artifacts/ceph-training/1.2.0
  builder publish ceph-training 1.2.0 --to gitlab --project training/images
  builder publish ceph-training 1.2.0 --to gitlab --gitlab work --project 42 --json
  builder publish ceph-training --to gitlab --release-only --from reports/ceph-training
\b
Credentials: --gitlab NAME (a python-gitlab config section), else GITLAB_URL and
GITLAB_PRIVATE_TOKEN, else CI_SERVER_URL and CI_JOB_TOKEN inside GitLab CI.""",
)
@click.argument("name")
@click.argument("version", required=False)
@click.option("--to", "dest", type=click.Choice(["local", "gitlab"]), default="local", show_default=True)
@click.option("--output", type=click.Path(path_type=Path, file_okay=False),
              help="local store holding NAME/VERSION/ (default: the project's artifacts/)")
@click.option("--release-only", is_flag=True, help="with --to gitlab: the files are in the registry already "
              "(a CI build job uploaded them); check them against --from and create the release")
@click.option("--from", "proof", type=click.Path(path_type=Path, file_okay=False),
              help="with --release-only: the folder holding the build's manifest.json and SHA256SUMS")
@click.option("--project", help="GitLab project ID or path (default: $CI_PROJECT_ID)")
@click.option("--gitlab", "gitlab_name", metavar="NAME", help="python-gitlab config section to use")
@click.option("--ref", help="commit or branch to tag when the release tag does not exist yet "
              "(default: the manifest's git revision)")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON on stdout")
def publish(name: str, version: str | None, dest: str, output: Path | None, release_only: bool, proof: Path | None,
            project: str | None, gitlab_name: str | None, ref: str | None, as_json: bool) -> None:
    """Verify a built version and publish it to the local store or to GitLab.

    A version is published only if its manifest records passing boot and fabric checks and
    every file matches SHA256SUMS. Publishing to GitLab again with identical files uploads
    nothing; with different content it is refused (exit 1).
    """
    if not NAME_RE.fullmatch(name):  # NAME becomes a directory and a package name: `..` must not
        raise UserError(f"{name!r} is not an image name (lower-case letters, digits and dashes)", field="NAME")
    if release_only:
        if dest != "gitlab" or proof is None:
            raise UserError("--release-only goes with --to gitlab and --from DIR", field="--release-only")
        from ..publish.gitlab import release_uploaded
        from ..publish.gitlab_target import resolve_target

        m = manifest_mod.parse_manifest(proof / MANIFEST)
        if m.name != name or (version is not None and m.version != version):
            raise UserError(f"holds {m.name} {m.version}, not {name} {version or ''}".rstrip(),
                            file=str(proof / MANIFEST))
        res = release_uploaded(proof, resolve_target(project=project, gitlab_name=gitlab_name), ref=ref,
                               progress=lambda line: err.print(line, markup=False))
        _show(res.as_dict(), as_json, f"{name} {m.version}: release {res.tag} {res.release}")
        return
    if version is None:
        raise UserError("VERSION is required (unless --release-only)", field="VERSION")
    check_version(version, field="VERSION")
    d = version_dir(output or current_project().artifacts_dir, name, version)
    if dest == "local":
        vv = verify_version_dir(d, name, version)
        require_passing(vv.manifest, d / MANIFEST)
        result = {
            "name": name, "version": version, "directory": str(d), "files": vv.digests,
            "tests": {k: s.passed for k, s in vv.manifest.tests.items()},
        }
        _show(result, as_json, f"{name} {version}: {len(vv.digests)} files verified in {d}; tests passed")
        return

    from ..publish.gitlab import publish_gitlab
    from ..publish.gitlab_target import resolve_target

    target = resolve_target(project=project, gitlab_name=gitlab_name)
    res = publish_gitlab(d, target, ref=ref, progress=lambda line: err.print(line, markup=False))
    _show(res.as_dict(), as_json, f"{name} {version}: {len(res.uploaded)} uploaded, {len(res.unchanged)} "
                                  f"unchanged; release {res.tag} {res.release}")


def _show(result: dict, as_json: bool, line: str) -> None:
    if as_json:
        emit_json(result)
    else:
        err.print(line, soft_wrap=True)


COMMANDS = [publish]
