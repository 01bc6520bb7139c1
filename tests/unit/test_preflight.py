"""Fail before work: missing host tools, a suite the mirror lacks, a bad fabric — exit 2 in seconds,
before any stage ran; `builder image check` renders everything without building."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from builder.cli import main
from builder.image import archive
from tests.repo import REPO


def project(tmp_path: Path, **overrides: str) -> Path:
    """A copy of builder's own images project with image.yaml lines overridden."""
    root = tmp_path / "proj"
    shutil.copytree(REPO / "images", root / "images")
    shutil.copytree(REPO / "fabrics", root / "fabrics")
    f = root / "images" / "minimal" / "image.yaml"
    lines = [ln for ln in f.read_text().splitlines() if ln.split(":")[0] not in overrides]
    f.write_text("\n".join(lines + [f"{k}: {v}" for k, v in overrides.items()]) + "\n")
    return root


@pytest.fixture
def mirror(tmp_path: Path) -> str:
    """A file:// mirror holding only bookworm's index."""
    d = tmp_path / "mirror" / "dists" / "bookworm"
    d.mkdir(parents=True)
    (d / "InRelease").write_text("Suite: bookworm\n")
    return (tmp_path / "mirror").as_uri()


def run(argv: list[str], capsys) -> tuple[int, str, float]:
    t0 = time.monotonic()
    rc = main(argv)
    return rc, capsys.readouterr().err, time.monotonic() - t0


def test_missing_host_tool_names_its_package(tmp_path, capsys, monkeypatch, mirror):
    root = project(tmp_path, mirror=mirror)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    rc, err, _ = run(["-C", str(root), "vm", "minimal", "--cache-dir", str(tmp_path / "c")], capsys)
    assert rc == 2 and "extlinux" in err and "apt-get install" in err and "Traceback" not in err
    assert not (tmp_path / "c").exists()  # not a single stage started


def test_unknown_suite_is_bad_input_naming_distribution(tmp_path, capsys, mirror):
    root = project(tmp_path, mirror=mirror, distribution="trixie")
    rc, err, _ = run(["-C", str(root), "image", "check", "minimal"], capsys)
    assert rc == 2 and "distribution" in err and "trixie" in err


def test_archive_state_is_the_digest_of_the_suite_index(mirror):
    assert archive.suite_digest(mirror, "bookworm").startswith("sha256:")
    with pytest.raises(Exception, match="not a Debian suite"):
        archive.suite_digest(mirror, "../etc")


def test_fabric_without_vm_node_fails_before_work(tmp_path, capsys, mirror):
    root = project(tmp_path, mirror=mirror)
    fabric = root / "fabrics" / "ceph-lab.yaml"
    fabric.write_text(fabric.read_text().replace("kind: vm", "kind: host"))
    rc, err, _ = run(["-C", str(root), "image", "check", "minimal"], capsys)
    assert rc == 2 and ("vm" in err) and "Traceback" not in err


def test_fabric_outside_the_project_is_refused(tmp_path, capsys, mirror):
    root = project(tmp_path, mirror=mirror, fabric="../../../outside.yaml")
    shutil.copy(REPO / "fabrics" / "ceph-lab.yaml", tmp_path / "outside.yaml")
    rc, err, _ = run(["-C", str(root), "image", "check", "minimal"], capsys)
    assert rc == 2 and "outside the project" in err


def test_image_check_renders_every_file(tmp_path, capsys, mirror):
    root = project(tmp_path, mirror=mirror)
    out = tmp_path / "rendered"
    rc, err, _ = run(["-C", str(root), "image", "check", "minimal", "--render", str(out)], capsys)
    assert rc == 0, err
    got = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert {"rootfs/customize.sh", "provision/image.pkr.hcl", "export/minimal-0.1.0.ovf",
            "fabric/ceph-lab.vyos", "fabric/ceph-lab.networkd"} <= got
    assert any(p.startswith("provision/scripts/") for p in got)
