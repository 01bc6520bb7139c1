"""Publish a verified version directory to GitLab: generic packages, then a release linking them.

Idempotent by comparing sha256 digests with what the registry already holds: identical files are
not uploaded again, a file of the same name with other content stops the publish before any
upload. Each upload streams the file from disk (python-gitlab hands the open file to requests)
and is retried by tenacity; before a retry we look again whether the previous attempt landed, so
an interrupted publish, re-run, leaves exactly one copy of every file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import gitlab

from .. import templates
from ..core.errors import BuildFailed, UserError
from ..vagrant import catalog
from .gitlab_target import GitLabTarget, RetryPolicy, api_errors
from .manifest import MANIFEST, SUMS, FileEntry, Manifest, parse_manifest
from .verify import VerifiedVersion, parse_sums, require_passing, verify_version_dir

MAX_PROOF_BYTES = 4 << 20  # manifest.json / SHA256SUMS read back from the registry
CATALOG_VERSION = "catalog"  # the generic package version holding an image's Vagrant box catalog

# GitLab's rules for generic packages (docs: user/packages/generic_packages, "Publish a package file").
PACKAGE_NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")
FILE_NAME_RE = PACKAGE_NAME_RE
# GitLab's generic package version rule (no two dots in a row; letters, digits, _ + - .) with no
# leading or trailing dot, written without nested quantifiers: the old `(\.?[\w+-]+\.?)+`
# backtracked exponentially on `1.0.0-aaaa...a...` (30 s and more).
PACKAGE_VERSION_RE = re.compile(r"^(?!\.)(?!.*\.\.)[\w+.-]{1,255}(?<!\.)\Z", re.ASCII)
IMAGE_SUFFIXES = (".qcow2", ".vmdk", ".ova", ".box")
T = TypeVar("T")


def check_names(name: str, version: str, files: list[str] | tuple[str, ...] = ()) -> None:
    """Refuse names GitLab would reject, before any request."""
    if not PACKAGE_NAME_RE.match(name):
        raise UserError(f"{name!r}: GitLab package names allow only A-Z a-z 0-9 . - _", field="package name")
    if not PACKAGE_VERSION_RE.match(version):
        raise UserError(f"{version!r}: not a valid GitLab generic package version", field="version")
    for f in files:
        if not FILE_NAME_RE.match(f) or f in (".", ".."):
            raise UserError(f"{f!r}: GitLab file names allow only A-Z a-z 0-9 . - _", field="file name")


def release_tag(name: str, version: str) -> str:
    return f"{name}-{version}"


def release_ref(explicit: str | None, git_revision: str | None) -> str | None:
    """What a new release tag points at: --ref, else the pipeline's commit, else the build's
    revision (a `-dirty` build has no commit to tag)."""
    rev = git_revision if git_revision and not git_revision.endswith("-dirty") else None
    return explicit or os.environ.get("CI_COMMIT_SHA") or rev


def package_file_url(target: GitLabTarget, name: str, version: str, file_name: str) -> str:
    return f"{target.project_api_path()}/packages/generic/{name}/{version}/{file_name}"


def gitlab_urls(target: GitLabTarget) -> catalog.UrlFor:
    """Box URLs in the catalog: GitLab's generic package file URL,
    `<api>/projects/<id>/packages/generic/<name>/<version>/<file>`."""
    return functools.partial(package_file_url, target)


@dataclass
class PublishResult:
    name: str
    version: str
    tag: str
    uploaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    release: str = ""  # created | updated | unchanged

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def remote_files(project: Any, name: str, version: str, policy: RetryPolicy) -> dict[str, list[str]]:
    """file name -> sha256 of every copy the registry holds for this package version."""

    def fetch() -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for pkg in project.packages.list(package_type="generic", package_name=name, iterator=True):
            if pkg.name != name or pkg.version != version:
                continue  # package_name filters by substring
            for f in pkg.package_files.list(iterator=True):
                out.setdefault(f.file_name, []).append(f.file_sha256)
        return out

    return policy.retrying()(fetch)


def _conflicts(digests: dict[str, str], remote: dict[str, list[str]]) -> list[str]:
    return sorted(f for f, d in digests.items() if any(r != d for r in remote.get(f, ())))


def _upload(project: Any, vv: VerifiedVersion, file_name: str, policy: RetryPolicy) -> bool:
    """Upload one file; False when it turned out to be there already (a lost response, a race)."""
    name, version, digest = vv.manifest.name, vv.manifest.version, vv.digests[file_name]
    attempts = 0

    def landed() -> bool:
        copies = remote_files(project, name, version, policy).get(file_name, [])
        if any(c != digest for c in copies):
            raise BuildFailed(f"{file_name}: the registry holds different content for {name} {version}")
        return bool(copies)

    def attempt() -> bool:
        nonlocal attempts
        attempts += 1
        if attempts > 1 and landed():
            return False
        with open(vv.path(file_name), "rb") as fh:  # reopened per attempt: starts from byte 0
            try:
                pf = project.generic_packages.upload(name, version, file_name, data=fh, select="package_file")
            except gitlab.GitlabHttpError as e:
                if e.response_code == 400 and landed():  # duplicates disallowed, same content: done
                    return False
                raise
        got = getattr(pf, "file_sha256", None)
        if got and got != digest:
            raise BuildFailed(f"{file_name}: GitLab stored sha256 {got}, expected {digest}")
        return True

    return policy.retrying()(attempt)


def _sync_release(
    project: Any, target: GitLabTarget, vv: VerifiedVersion, ref: str | None, policy: RetryPolicy
) -> str:
    m = vv.manifest
    tag = release_tag(m.name, m.version)
    title = f"{m.name} {m.version}"
    description = templates.render("publish/release.md.j2", m=m)
    links = [
        {
            "name": f,
            "url": package_file_url(target, m.name, m.version, f),
            "link_type": "image" if f.endswith(IMAGE_SUFFIXES) else "other",
            "direct_asset_path": f"/{f}",
        }
        for f in sorted(vv.digests)
    ]
    data: dict[str, Any] = {"tag_name": tag, "name": title, "description": description, "assets": {"links": links}}
    if ref:
        data["ref"] = ref
    call = policy.retrying()
    try:
        call(project.releases.create, data)
        return "created"
    except gitlab.GitlabCreateError as e:
        if e.response_code != 409:  # 409: the release exists; bring it in line below
            raise
    release = call(project.releases.get, tag)
    changed = False
    if release.description != description or release.name != title:
        release.description, release.name = description, title
        call(release.save)
        changed = True
    have = {link.name: link for link in call(lambda: list(release.links.list(iterator=True)))}
    for want in links:
        link = have.get(want["name"])
        if link is None:
            call(release.links.create, want)
        elif (link.url, link.link_type) != (want["url"], want["link_type"]):
            link.url, link.link_type = want["url"], want["link_type"]
            call(link.save)
        else:
            continue
        changed = True
    return "updated" if changed else "unchanged"


def publish_gitlab(
    version_dir: Path,
    target: GitLabTarget,
    *,
    ref: str | None = None,
    release: bool = True,
    policy: RetryPolicy = RetryPolicy(),
    progress: Callable[[str], None] = lambda line: None,
) -> PublishResult:
    """Upload `<output>/<name>/<version>/`, then (unless `release=False`) create or update its
    release `<name>-<version>`."""
    name, version = version_dir.parent.name, version_dir.name
    check_names(name, version, tuple(p.name for p in version_dir.iterdir()) if version_dir.is_dir() else ())
    vv = verify_version_dir(version_dir, name, version)
    require_passing(vv.manifest, version_dir / MANIFEST)
    result = PublishResult(name, version, release_tag(name, version))
    project = target.connect().projects.get(target.project, lazy=True)
    with api_errors(target, f"publishing {name} {version} to {target.base_url}"):
        remote = remote_files(project, name, version, policy)
        if conflicts := _conflicts(vv.digests, remote):
            raise BuildFailed(
                f"{name} {version} is already published with different content ({', '.join(conflicts)}); "
                "versions are never overwritten: bump the version"
            )
        for f in sorted(vv.digests):
            if f in remote or not _upload(project, vv, f, policy):
                result.unchanged.append(f)
                progress(f"unchanged {f}")
            else:
                result.uploaded.append(f)
                progress(f"uploaded  {f}")
        if release:
            result.release = _sync_release(project, target, vv, release_ref(ref, vv.manifest.git_revision), policy)
            progress(f"release {result.tag} {result.release}")
    if release:
        sync_catalog(target, vv.manifest, vv.digests, policy, progress)
    return result


def release_uploaded(
    proof_dir: Path,
    target: GitLabTarget,
    *,
    ref: str | None = None,
    policy: RetryPolicy = RetryPolicy(),
    progress: Callable[[str], None] = lambda line: None,
) -> PublishResult:
    """Create or update the release of a version whose files a build job already uploaded.

    `proof_dir` holds only the small proof (manifest.json, SHA256SUMS) that travelled as job
    artifacts; the registry must hold every file SHA256SUMS lists, with exactly that digest."""
    m = parse_manifest(proof_dir / MANIFEST)
    sums = parse_sums(proof_dir / SUMS)
    check_names(m.name, m.version, tuple(sums))
    require_passing(m, proof_dir / MANIFEST)
    result = PublishResult(m.name, m.version, release_tag(m.name, m.version))
    project = target.connect().projects.get(target.project, lazy=True)
    with api_errors(target, f"releasing {m.name} {m.version} on {target.url}"):
        remote = remote_files(project, m.name, m.version, policy)
        for f, digest in sorted(sums.items()):
            if digest not in remote.get(f, []):
                raise BuildFailed(f"{f}: the registry holds no copy with sha256 {digest} for {m.name} "
                                  f"{m.version}; the build job's upload is missing")
        missing = [f for f in (MANIFEST, SUMS) if f not in remote]
        if missing:
            raise BuildFailed(f"{', '.join(missing)}: not in the registry for {m.name} {m.version}")
        # link every file the version holds in the registry (the images, the proof, junit.xml)
        vv = VerifiedVersion(proof_dir, m, {f: d[-1] for f, d in remote.items()})
        result.unchanged = sorted(vv.digests)
        result.release = _sync_release(project, target, vv, release_ref(ref, m.git_revision), policy)
        progress(f"release {result.tag} {result.release}")
    sync_catalog(target, m, sums, policy, progress)
    return result


def sync_catalog(target: GitLabTarget, m: Manifest, digests: dict[str, str], policy: RetryPolicy,
                 progress: Callable[[str], None]) -> None:
    """Merge a released version's Vagrant boxes into the image's box catalog in the registry
    (generic package NAME, version `catalog`), so `vagrant box add|outdated|update` see it.
    The publish jobs of one image run one at a time (resource_group), so read-merge-write is safe."""
    boxes = {f.removesuffix(".box").rsplit(".", 1)[-1]: (f, d) for f, d in digests.items() if f.endswith(".box")}
    if not boxes:
        return
    file_name = f"{m.name}.json"
    raw = remote_file(target, m.name, CATALOG_VERSION, file_name, policy)
    existing = catalog.parse_catalog(raw, f"{m.name}/{CATALOG_VERSION}/{file_name}") if raw is not None else None
    updated = catalog.update_catalog(existing, m.name, m.version,
                                     catalog.providers_for(m.name, m.version, boxes, gitlab_urls(target)))
    data = (json.dumps(updated, indent=2) + "\n").encode()
    if data == raw:
        progress(f"box catalog {file_name} unchanged")
        return
    project = target.connect().projects.get(target.project, lazy=True)
    with api_errors(target, f"updating the box catalog of {m.name} on {target.url}"):
        policy.retrying()(project.generic_packages.upload, m.name, CATALOG_VERSION, file_name, data=data)
    progress(f"box catalog {file_name}: {m.version} added "
             f"(vagrant box add {package_file_url(target, m.name, CATALOG_VERSION, file_name)})")


def remote_versions(target: GitLabTarget, name: str, policy: RetryPolicy = RetryPolicy()) -> list[str]:
    """Every version of the generic package `name` in the project's registry."""
    project = target.connect().projects.get(target.project, lazy=True)
    with api_errors(target, f"listing {name} versions on {target.url}"):
        def fetch() -> list[str]:
            return sorted({p.version for p in project.packages.list(package_type="generic", package_name=name,
                                                                     iterator=True) if p.name == name})
        return policy.retrying()(fetch)


def _or_none(get: Callable[[], T]) -> T | None:
    """`get()`, or None where GitLab answers 404 (no such package file or release)."""
    try:
        return get()
    except gitlab.GitlabGetError as e:
        if e.response_code == 404:
            return None
        raise


def _package_chunks(project: Any, name: str, version: str, file_name: str, cap: int,
                    too_large: str) -> Iterator[bytes]:
    """A package file's bytes as they arrive (streamed, never held whole), BuildFailed past `cap`."""
    size = 0
    for chunk in project.generic_packages.download(name, version, file_name, streamed=True, iterator=True,
                                                   chunk_size=1 << 20):
        size += len(chunk)
        if size > cap:
            raise BuildFailed(f"{name} {version} {file_name}: {too_large}")
        yield chunk


def remote_file(target: GitLabTarget, name: str, version: str, file_name: str,
                policy: RetryPolicy = RetryPolicy()) -> bytes | None:
    """A small package file (manifest, SHA256SUMS) read back, bounded; None when absent."""
    check_names(name, version, (file_name,))
    project = target.connect().projects.get(target.project, lazy=True)

    def fetch() -> bytes | None:
        return _or_none(lambda: b"".join(_package_chunks(project, name, version, file_name, MAX_PROOF_BYTES,
                                                         f"larger than {MAX_PROOF_BYTES} bytes")))

    with api_errors(target, f"reading {name} {version} {file_name} from {target.url}"):
        return policy.retrying()(fetch)


def download_file(target: GitLabTarget, name: str, version: str, entry: FileEntry, dest: Path,
                  policy: RetryPolicy = RetryPolicy()) -> Path:
    """A package file streamed to `dest`, bounded by the size the manifest records and checked
    against its sha256 (what another runner uploaded is all this runner shares with it)."""
    check_names(name, version, (entry.name,))
    project = target.connect().projects.get(target.project, lazy=True)
    part = dest.with_name(dest.name + ".part")

    def fetch() -> None:
        h = hashlib.sha256()
        with open(part, "wb") as f:
            for chunk in _package_chunks(project, name, version, entry.name, entry.size,
                                         f"the registry sends more than the {entry.size} bytes the manifest records"):
                h.update(chunk)
                f.write(chunk)
        if h.hexdigest() != entry.sha256:
            raise BuildFailed(f"{entry.name}: sha256 {h.hexdigest()} in the registry, {entry.sha256} in the "
                              f"manifest of {name} {version}")

    try:
        with api_errors(target, f"downloading {name} {version} {entry.name} from {target.url}"):
            policy.retrying()(fetch)
        part.rename(dest)
    finally:
        part.unlink(missing_ok=True)
    return dest


def release_exists(target: GitLabTarget, name: str, version: str, policy: RetryPolicy = RetryPolicy()) -> bool:
    project = target.connect().projects.get(target.project, lazy=True)
    tag = release_tag(name, version)
    with api_errors(target, f"reading the release of {name} {version} on {target.url}"):
        return policy.retrying()(lambda: _or_none(lambda: project.releases.get(tag)) is not None)


def remote_manifest(target: GitLabTarget, name: str, version: str) -> Manifest | None:
    data = remote_file(target, name, version, MANIFEST)
    return None if data is None else parse_manifest(data, where=f"{target.url} {name} {version} {MANIFEST}")
