"""Shared set-up for the GitLab tests: a version directory as `builder vm` leaves it."""

from __future__ import annotations

from pathlib import Path

from builder.core.digests import sha256_file
from builder.core.results import CaseResult, Suite
from builder.publish.gitlab_target import GitLabTarget, RetryPolicy
from builder.publish.local import sha256sums
from builder.publish.manifest import FileEntry, Manifest


class Sleeps(list):
    """Records the waits tenacity asks for instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def fast_policy(**kw) -> RetryPolicy:
    return RetryPolicy(**{"attempts": 6, "budget": 60.0, "initial": 0.01, "maximum": 0.05, "sleep": Sleeps(), **kw})


def make_version(
    output: Path,
    name: str = "ceph-training",
    version: str = "1.2.0",
    *,
    payload: bytes = b"disk",
    tests: dict | None = None,
    sparse_size: int = 0,
    boxes: bool = False,
) -> Path:
    d = output / name / version
    d.mkdir(parents=True)
    entries = []
    for fmt in ("qcow2", "vmdk", "ova", *(("libvirt.box", "virtualbox.box") if boxes else ())):
        p = d / f"{name}-{version}.{fmt}"
        with open(p, "wb") as f:
            f.write(payload + fmt.encode())
            if sparse_size:
                f.truncate(sparse_size)
        entries.append(FileEntry(name=p.name, size=p.stat().st_size, sha256=sha256_file(p), format=fmt))
    (d / "junit.xml").write_text('<testsuites name="ceph-training"/>\n')
    (d / "SHA256SUMS").write_text(sha256sums({e.name: e.sha256 for e in entries}))
    if tests is None:
        tests = {
            "boot": Suite(passed=True, cases=[CaseResult(name="reaches-multi-user", passed=True, seconds=41.0)]),
            "fabric": Suite(passed=True, cases=[CaseResult(name="vxlan1000-v6-ping", passed=True, seconds=1.5)]),
        }
    m = Manifest(
        name=name, version=version, input_hash="f" * 64, git_revision="0123abcd", built_at="2024-05-01T10:00:00Z",
        accelerator="tcg", tools={"qemu": "7.2", "packer": "1.6.6"}, packages={"ceph-common": "16.2.11"},
        files=entries, stages={"rootfs": 80.0}, tests=tests,
    )
    (d / "manifest.json").write_text(m.dumps())
    return d


def target(server, token: str | None = None, kind: str = "private") -> GitLabTarget:
    return GitLabTarget(server.url, server.project.path_with_namespace, token or server.token, kind)
