"""`builder vm`'s local publish: all or nothing, never over an existing version, only when every
suite passed; a concurrent run's staging directory survives the sweep."""

import json
from pathlib import Path

import pytest

from builder.build import Outcome
from builder.core.digests import sha256_file
from builder.core.errors import BuildFailed, UserError
from builder.core.results import CaseResult, Suite
from builder.job import publish_local
from builder.publish import local
from builder.publish.manifest import Manifest
from builder.spec import load_image
from tests.repo import IMAGES


class FakeRun:
    id = "bx0a0a0a"


def outcome(tmp_path: Path, fabric_passed: bool = True) -> Outcome:
    spec = load_image("minimal", IMAGES)
    export = tmp_path / "export"
    export.mkdir(parents=True)
    files = {}
    for fmt in ("qcow2", "vmdk", "ova"):
        p = export / f"minimal-0.1.0.{fmt}"
        p.write_bytes(fmt.encode() * 100)
        files[fmt] = {"name": p.name, "size": p.stat().st_size, "sha256": sha256_file(p)}
    ok = Suite(passed=True, cases=[CaseResult(name="systemd-multi-user", passed=True, evidence="running")])
    fabric = Suite(passed=fabric_passed, cases=[CaseResult(name="multipath-path-failure-under-io",
                                                           passed=fabric_passed, evidence="sha256 ...")])
    return Outcome(spec=spec, accelerator="tcg", keys={"export": "k" * 24}, paths={"export": export},
                   tests={"boot": ok, "fabric": fabric}, packages={"bash": "5.2"}, files=files,
                   tools={"packer": "Packer v1.6.6"}, version="0.1.0")


def manifest(o: Outcome) -> Manifest:
    return Manifest(name="minimal", version=o.version, input_hash="k" * 24, git_revision=None, built_at="now",
                    accelerator="tcg", tools=o.tools, packages=o.packages, files=[], stages={}, tests=o.tests,
                    content_hash="c" * 24)


def test_publishes_whole_version_with_sums_manifest_and_junit(tmp_path):
    out = tmp_path / "artifacts"
    o = outcome(tmp_path)
    final = publish_local(o, manifest(o), out, FakeRun(), False)
    assert final == out / "minimal" / "0.1.0"
    names = sorted(p.name for p in final.iterdir())
    assert names == ["SHA256SUMS", "junit.xml", "manifest.json", "minimal-0.1.0.ova", "minimal-0.1.0.qcow2",
                     "minimal-0.1.0.vmdk", "report.html"]
    sums = dict(reversed(line.split("  ")) for line in (final / "SHA256SUMS").read_text().splitlines())
    assert all(sha256_file(final / n) == d for n, d in sums.items()) and len(sums) == 6
    m = json.loads((final / "manifest.json").read_text())
    assert m["tests"]["fabric"]["cases"][0]["name"] == "multipath-path-failure-under-io"
    assert not list((out / "minimal").glob(".*"))  # no staging left
    assert local.published(out, "minimal") == {"0.1.0": "c" * 24}
    again = outcome(tmp_path / "again")
    with pytest.raises(UserError, match="never overwritten"):
        publish_local(again, manifest(again), out, FakeRun(), False)
    forced = outcome(tmp_path / "forced")
    publish_local(forced, manifest(forced), out, FakeRun(), True)


def test_a_failed_fabric_check_publishes_nothing(tmp_path):
    out = tmp_path / "artifacts"
    o = outcome(tmp_path, fabric_passed=False)
    with pytest.raises(BuildFailed, match="not published"):
        publish_local(o, manifest(o), out, FakeRun(), False)
    assert not (out / "minimal").exists() or not any((out / "minimal").iterdir())


def test_sweep_spares_a_live_runs_staging_directory(tmp_path):
    mine = local.staging_dir(tmp_path, "minimal", "0.1.0", "bx111111")
    dead = local.staging_dir(tmp_path, "minimal", "0.1.0", "bx222222")
    local.sweep_partials(tmp_path, {"bx111111"})
    assert mine.is_dir() and not dead.exists()
