"""`builder vm`'s local publish: all or nothing, never over an existing version, only when every
suite passed."""

import json
from pathlib import Path

import pytest

from builder.build import Outcome
from builder.commands.vm import publish_local
from builder.errors import BuildFailed, UserError
from builder.publish.local import sha256_file
from builder.publish.manifest import CaseResult, Suite
from builder.spec import load_image


def outcome(tmp_path: Path, fabric_passed: bool = True) -> Outcome:
    spec = load_image("minimal")
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
                   tools={"packer": "Packer v1.6.6"})


def test_publishes_whole_version_with_sums_manifest_and_junit(tmp_path):
    out = tmp_path / "artifacts"
    final, manifest = publish_local(outcome(tmp_path), out, False, {"rootfs": 1.0})
    assert final == out / "minimal" / "0.1.0"
    names = sorted(p.name for p in final.iterdir())
    assert names == ["SHA256SUMS", "junit.xml", "manifest.json", "minimal-0.1.0.ova", "minimal-0.1.0.qcow2",
                     "minimal-0.1.0.vmdk"]
    sums = dict(reversed(line.split("  ")) for line in (final / "SHA256SUMS").read_text().splitlines())
    assert all(sha256_file(final / n) == d for n, d in sums.items()) and len(sums) == 5
    m = json.loads((final / "manifest.json").read_text())
    assert m["tests"]["fabric"]["cases"][0]["name"] == "multipath-path-failure-under-io"
    assert not list((out / "minimal").glob(".*"))  # no staging left
    with pytest.raises(UserError, match="never overwritten"):
        publish_local(outcome(tmp_path / "again"), out, False, {})
    publish_local(outcome(tmp_path / "forced"), out, True, {})


def test_a_failed_fabric_check_publishes_nothing(tmp_path):
    out = tmp_path / "artifacts"
    with pytest.raises(BuildFailed, match="not published"):
        publish_local(outcome(tmp_path, fabric_passed=False), out, False, {})
    assert not (out / "minimal").exists() or not any((out / "minimal").iterdir())
