"""End to end: `builder vm` on real tools (mmdebstrap, extlinux, packer, QEMU TCG, qemu-img)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from builder.cli import main
from builder.core.runs import Run, reap
from builder.image import loopmount
from builder.image.boot import VmPlan, boot
from builder.vagrant import layer as vlayer
from tests.fakes.gitlab_server import gitlab_server  # noqa: F401  (fixture)

pytestmark = [pytest.mark.slow, pytest.mark.root]

REPO = Path(__file__).resolve().parents[2]
SCHEMA = Path(os.environ.get("BUILDER_OVF_SCHEMA", REPO.parent / "shared" / "ovf-schema" / "dsp8023_1.1.1.xsd"))


def test_release_is_complete_and_verifiable(minimal_release: Path):
    names = sorted(p.name for p in minimal_release.iterdir())
    assert names == ["SHA256SUMS", "junit.xml", "manifest.json", "minimal-0.1.0.libvirt.box", "minimal-0.1.0.ova",
                     "minimal-0.1.0.qcow2", "minimal-0.1.0.virtualbox.box", "minimal-0.1.0.vmdk", "report.html"]
    catalog = json.loads((minimal_release.parent.parent / "minimal.json").read_text())
    assert [v["version"] for v in catalog["versions"]] == ["0.1.0"]
    assert {p["name"] for p in catalog["versions"][0]["providers"]} == {"libvirt", "virtualbox"}
    subprocess.run(["sha256sum", "--check", "--quiet", "SHA256SUMS"], cwd=minimal_release, check=True)
    m = json.loads((minimal_release / "manifest.json").read_text())
    assert m["name"] == "minimal" and m["version"] == "0.1.0" and m["accelerator"] in ("tcg", "kvm")
    assert set(m["tests"]) == {"boot", "fabric"} and all(s["passed"] for s in m["tests"].values())
    fabric_cases = {c["name"] for c in m["tests"]["fabric"]["cases"]}
    assert any(n.startswith("multipath") for n in fabric_cases) and any(n.startswith("ping/") for n in fabric_cases)
    junit = (minimal_release / "junit.xml").read_text()
    assert 'name="minimal.boot"' in junit and 'name="minimal.fabric"' in junit and "<failure" not in junit
    assert {"linux-image-amd64", "qemu-guest-agent", "open-iscsi"} <= set(m["packages"])
    assert set(m["stages"]) >= {"rootfs", "disk", "provision", "boot", "export"}
    assert m["tools"]["packer"].startswith("Packer v")
    assert m["archive"]["bookworm"].startswith("sha256:") and m["content_hash"]
    assert set(m["verdicts"]) == {"boot", "fabric"}
    for v in m["verdicts"].values():  # judged in this build, or reused from a run that is named
        made = v if v["ran"] else v["reused_from"]
        assert made["run_id"] and made["host"] and made["at"]
    sums = dict(reversed(line.split("  ")) for line in (minimal_release / "SHA256SUMS").read_text().splitlines())
    assert {f["name"]: f["sha256"] for f in m["files"]}.items() <= sums.items()
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(minimal_release / "minimal-0.1.0.qcow2")],
                                     capture_output=True, text=True, check=True).stdout)
    assert info["format"] == "qcow2" and info["virtual-size"] == 2 << 30
    assert info["format-specific"]["data"]["compression-type"] == "zstd"


def test_published_image_holds_no_build_keys(minimal_release: Path, tmp_path: Path, no_leaks):
    """packer's key and the host keys the disk stage made for packer's boot never ship."""
    raw = tmp_path / "image.raw"
    subprocess.run(vlayer.raw_argv(minimal_release / "minimal-0.1.0.qcow2", raw), check=True)
    table = subprocess.run(["sfdisk", "--json", str(raw)], capture_output=True, text=True, check=True).stdout
    offset, size = vlayer.root_partition(json.loads(table))
    with Run() as run, loopmount.mounted(run, raw, offset, size, tmp_path / "mnt") as mnt:
        assert (mnt / "etc/ssh/sshd_config").is_file()
        assert not sorted((mnt / "etc/ssh").glob("ssh_host_*"))
        assert not (mnt / "root/.ssh/authorized_keys").exists()


def test_ova_is_virtualbox_shaped_and_schema_valid(minimal_release: Path, tmp_path: Path, capsys):
    ova = minimal_release / "minimal-0.1.0.ova"
    with tarfile.open(ova) as t:
        members = t.getmembers()
        assert [m.name for m in members] == ["minimal-0.1.0.ovf", "minimal-0.1.0.vmdk", "minimal-0.1.0.mf"]
        assert all(m.isreg() for m in members)
        (tmp_path / members[0].name).write_bytes(t.extractfile(members[0]).read())
    r = subprocess.run(["xmllint", "--noout", "--nonet", "--schema", str(SCHEMA), str(tmp_path / "minimal-0.1.0.ovf")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert main(["ova", "inspect", str(ova), "--json"]) == 0  # also verifies the .mf digests
    got = json.loads(capsys.readouterr().out)
    assert got["cpus"] == 2 and got["memory_mib"] == 1024
    assert got["disks"] == [{"file": "minimal-0.1.0.vmdk", "capacity_bytes": 2 << 30,
                             "format": "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"}]


def test_exported_qcow2_boots_without_kernel(minimal_qcow2: Path, no_leaks):
    """The published file itself boots through its own MBR + GRUB, as VirtualBox would, and a kernel
    upgrade inside it (a new vmlinuz + Debian's postinst hook) becomes GRUB's default entry."""
    with Run() as run:
        plan = VmPlan(name=run.name("exp"), disk=minimal_qcow2, accel="tcg", cpus=2, memory_mib=1024,
                      workdir=run.dir / "exp")
        with boot(run, plan) as vm:
            vm.agent.wait_ready(240, alive=vm.alive)
            assert "image minimal 0.1.0" in vm.agent.exec(["cat", "/etc/motd"]).stdout
            upgrade = vm.agent.exec(["sh", "-c", UPGRADE_KERNEL], timeout=300)
            assert upgrade.rc == 0, upgrade.output
            assert "linux /boot/vmlinuz-6.1.0-999-amd64 root=UUID=" in upgrade.stdout
            assert vm.poweroff()
        console = plan.console_log.read_text(errors="replace")
        assert "GNU GRUB" in console and "SYSLINUX" not in console


# What a kernel package's postinst does for GRUB: Debian's update-grub hook (snapshot=on: the
# published file is not changed); the first `linux` line of grub.cfg is the default entry's.
UPGRADE_KERNEL = """set -e
v=$(uname -r); new=6.1.0-999-amd64
cp /boot/vmlinuz-$v /boot/vmlinuz-$new && cp /boot/initrd.img-$v /boot/initrd.img-$new
/etc/kernel/postinst.d/zz-update-grub $new /boot/vmlinuz-$new 2>/dev/null
grep -m1 -o 'linux[[:space:]]*/boot/vmlinuz-[^ ]* root=UUID=' /boot/grub/grub.cfg | tr -s '[:space:]' ' '
"""


def test_unchanged_rebuild_is_current_and_publishes_to_gitlab(
        minimal_release: Path, test_cache: Path, capsys, monkeypatch, gitlab_server):
    """Rebuild with nothing changed: every stage is a cache hit, the version is current (exit 0, as a
    nightly schedule needs), and --publish gitlab uploads it through the real python-gitlab client."""
    monkeypatch.setenv("GITLAB_URL", gitlab_server.url)
    monkeypatch.setenv("GITLAB_PRIVATE_TOKEN", gitlab_server.token)
    out = minimal_release.parent.parent
    argv = ["vm", "minimal", "--output", str(out), "--cache-dir", str(test_cache), "--json",
            "--publish", "gitlab", "--project", "training/images"]
    assert main(argv) == 0
    got = capsys.readouterr()
    m = json.loads(got.out)
    assert m["state"] == "current" and m["version"] == "0.1.0"
    for stage in ("rootfs", "disk", "provision", "boot", "fabric", "box"):
        assert f"✓ {stage} (cached" in got.err
    assert "is current" in got.err
    subprocess.run(["sha256sum", "--check", "--quiet", "SHA256SUMS"], cwd=minimal_release, check=True)
    assert main(["publish", "minimal", "0.1.0", "--to", "gitlab", "--output", str(out),
                 "--project", "training/images", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["uploaded"] == [] and len(again["unchanged"]) == 9  # idempotent: nothing re-sent


def test_retest_judges_cached_images_again(minimal_release: Path, test_cache: Path, tmp_path: Path, capsys):
    """--retest reuses the built image but boots it again: the verdicts say they ran in this build."""
    assert main(["vm", "minimal", "--output", str(tmp_path), "--cache-dir", str(test_cache), "--retest",
                 "--json", "--quiet"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["state"] == "published" and {"rootfs", "disk", "provision"} <= set(m["cached_stages"])
    assert not {"boot", "fabric"} & set(m["cached_stages"])
    assert all(v["ran"] for v in m["verdicts"].values())
    first = json.loads((minimal_release / "manifest.json").read_text())
    assert m["content_hash"] == first["content_hash"]


def _start(argv: list[str], env_extra: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "builder.cli", *argv], env={**os.environ, **env_extra},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def _wait_for_process(pattern: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if subprocess.run(["pgrep", "-f", pattern], capture_output=True).returncode == 0:
            return
        time.sleep(0.5)
    raise AssertionError(f"no process matching {pattern!r} within {timeout} s")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killed_build_leaves_nothing(sig, minimal_release, test_cache, tmp_path, no_leaks):
    """Kill `builder vm` while packer's QEMU runs: SIGTERM tears down at once; after SIGKILL the
    next run's reaper does. Either way no process, mount, loop device, staging dir or version remains."""
    version = "0.1.1" if sig == signal.SIGTERM else "0.1.2"  # new motd → the provision stage really runs
    p = _start(["vm", "minimal", "--version", version, "--output", str(tmp_path), "--cache-dir", str(test_cache)], {})
    try:
        _wait_for_process("qemu-system-x86_64.*hostfwd", 240)
        os.kill(p.pid, sig)
        p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    if sig == signal.SIGKILL:
        reap()
    assert not (tmp_path / "minimal" / version).exists()
    assert not list(test_cache.glob("*/.*.partial"))
    # the reaper waits for packer itself; the rest of its process group may trail it under load
    deadline = time.monotonic() + 20
    while subprocess.run(["pgrep", "-f", "packer build"], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "packer still running 20 s after the reap"
        time.sleep(0.2)


def test_ceph_training_end_to_end(tmp_path, test_cache, capsys):
    """The product's main job on its embedded defaults, published to a local directory."""
    assert main(["vm", "ceph-training", "--output", str(tmp_path), "--cache-dir", str(test_cache),
                 "--json", "--quiet"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert {"ceph-mon", "ceph-osd", "ceph-mgr", "ceph-common", "cloud-init"} <= set(m["packages"])
    cases = {c["name"]: c for c in m["tests"]["boot"]["cases"]}
    assert cases["ceph-version"]["passed"] and "ceph version" in cases["ceph-version"]["evidence"]
    assert (tmp_path / "ceph-training" / "1.0.0" / "ceph-training-1.0.0.ova").is_file()
    # the course's first exercise, proven on this image: a cluster over IPv6 on the VXLAN overlay
    lab = {c["name"]: c for c in m["tests"]["lab"]["cases"]}
    assert m["tests"]["lab"]["passed"] and m["verdicts"]["lab"]
    assert {"health-ok", "rados-put-get", "rbd-krbd-roundtrip", "drill/osd-down-degraded-data-reads",
            "drill/osd-up-health-ok"} <= set(lab)
    assert "HEALTH_OK" in lab["health-ok"]["evidence"]
    assert main(["ova", "inspect", str(tmp_path / "ceph-training" / "1.0.0" / "ceph-training-1.0.0.ova"),
                 "--json"]) == 0
    disks = json.loads(capsys.readouterr().out)["disks"]
    assert [d["file"] for d in disks[1:]] == [f"ceph-training-1.0.0-data{i}.vmdk" for i in (1, 2, 3)]
    assert all(d["capacity_bytes"] == 20 << 30 for d in disks[1:])
