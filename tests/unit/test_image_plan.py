"""Golden files for everything the image stages render or run (plan apart from apply)."""

import json
from pathlib import Path

import pytest

from builder.core.errors import UserError
from builder.guest import ExecResult
from builder.image import boottest, disk, loopmount, packer, rootfs
from builder.image.boot import NicPlan, VmPlan, qemu_argv
from builder.spec import load_image
from tests.goldens import assert_golden
from tests.repo import IMAGES

SPEC = load_image("minimal", IMAGES)


def test_mmdebstrap_argv_and_hook():
    argv = rootfs.mmdebstrap_argv(SPEC, Path("/c/root"), Path("/c/hook.sh"))
    assert_golden("image/mmdebstrap.argv.json", json.dumps(argv, indent=1) + "\n")
    assert_golden("image/customize.sh", rootfs.customize_script(SPEC))
    assert {"qemu-guest-agent", "linux-image-amd64", "sudo", "open-iscsi"} <= set(rootfs.packages(SPEC))


def test_disk_plan_files(tmp_path):
    (tmp_path / "boot").mkdir()
    for v in ("6.1.0-9-amd64", "6.1.0-10-amd64"):
        (tmp_path / "boot" / f"vmlinuz-{v}").touch()
    p = disk.plan(2048, "k1", tmp_path)
    assert p == disk.plan(2048, "k1", tmp_path)  # UUID follows inputs: reproducible disks
    assert p.uuid != disk.plan(2048, "k2", tmp_path).uuid
    assert p.kernel == "boot/vmlinuz-6.1.0-10-amd64"  # the newest kernel, compared as numbers
    files = disk.files(p, "ssh-ed25519 AAAA builder-packer\n")
    assert_golden("image/extlinux.conf", files["boot/extlinux/extlinux.conf"][0])
    assert_golden("image/fstab", files["etc/fstab"][0])
    assert files["root/.ssh/authorized_keys"][1] == 0o600
    assert_golden("image/disk.argv.json", json.dumps(
        {"sfdisk": disk.sfdisk_script(), "mkfs": disk.mkfs_argv(p, Path("/c/disk.raw"), Path("/c/root")),
         "losetup": loopmount.losetup_argv(Path("/c/disk.raw"), disk.OFFSET, p.fs_bytes)}, indent=1) + "\n")


def test_disk_smaller_than_rootfs_is_bad_input():
    with pytest.raises(UserError, match="disk_size.*smaller than the rootfs"):
        disk.check_fits(3 << 30, 2048, Path("images/minimal/image.yaml"))
    disk.check_fits(700 << 20, 2048, Path("images/minimal/image.yaml"))


def test_packer_template_and_scripts():
    scripts = packer.render_scripts(SPEC)
    # builder's GRUB step first (the image's scripts then run on the final boot setup), cleanup last
    assert list(scripts) == ["00-builder-grub.sh", "01-10-motd.sh", "02-builder-cleanup.sh"]
    assert "image minimal 0.1.0" in scripts["01-10-motd.sh"]
    assert_golden("image/grub.sh", scripts["00-builder-grub.sh"])
    hcl = packer.render_template(
        SPEC, disk=Path("/c/disk.raw"), output_dir=Path("/c/out"), vm_name="image.qcow2",
        accelerator="tcg", ssh_key=Path("/c/key"), scripts=[Path("/c/s/" + n) for n in scripts],
        console_log=Path("/c/console.log"), ssh_port=40001, forward_port=40002)
    assert_golden("image/packer.pkr.hcl", hcl)


def test_packer_machine_readable_parsing():
    ev = packer.parse_machine_readable(
        "1700000000,,ui,say,==> qemu.image: Copying%!(PACKER_COMMA) resizing disk")
    assert ev.type == "ui" and ev.message == "==> qemu.image: Copying, resizing disk"
    art = packer.parse_machine_readable("1700000001,qemu.image,artifact,0,files-count,1")
    assert art.target == "qemu.image" and art.data == ("0", "files-count", "1")
    assert packer.parse_machine_readable("not machine readable") is None
    out = "1,,ui,error,Build 'qemu.image' errored: Timeout waiting for SSH.\n1,,ui,say,done"
    assert packer.errors_from(out) == ["Build 'qemu.image' errored: Timeout waiting for SSH."]


def test_streaming_packer_reuses_packer_py_argv(tmp_path):
    p = packer.StreamingPacker(run=None, on_event=print, timeout=1, workdir=tmp_path, tmpdir=tmp_path / "t")
    argv = p.argv("build", "/c/image.pkr.hcl", force=True, var={"a": "b"})
    assert argv[1:] == ["build", "-machine-readable", "-force", "-var", "a=b", "/c/image.pkr.hcl"]


def test_packer_tmpdir_is_the_short_run_dir_and_refuses_what_a_socket_cannot_bind():
    """packer 1.6 panicked when its plugin socket path passed 107 bytes (a deep --cache-dir)."""
    assert packer.tmpdir_for(Path("/run/builder/9bcf70")) == Path("/run/builder/9bcf70/packer")
    deep = Path("/var/tmp/bench-vm-dp2pmgh8/cache/provision/.9bcf70.minimal-t929vm6n.partial")
    with pytest.raises(UserError, match="BUILDER_RUN_DIR"):
        packer.tmpdir_for(deep / "work")
    packer.check_run_root(Path("/run/builder"))
    with pytest.raises(UserError, match="107-byte"):
        packer.check_run_root(Path("/home/someone") / ("x" * 70))


def test_qemu_argv():
    plan = VmPlan(name="bxabcdefboot", disk=Path("/c/image.qcow2"), accel="tcg", cpus=2, memory_mib=1024,
                  workdir=Path("/run/x"), nics=(NicPlan(), NicPlan(tap="bxabcdeft0", mac="52:54:00:00:00:01")),
                  data_disk_mib=(20480, 20480))
    assert_golden("image/qemu.argv.json", json.dumps(qemu_argv(plan), indent=1) + "\n")


def test_boot_checks_judged():
    checks = {c.name: c for c in boottest.checks_for(SPEC)}
    assert checks["motd-names-version"].expect == "minimal 0.1.0"
    ok = boottest.judge(checks["motd-names-version"], ExecResult(0, "image minimal 0.1.0\n", ""), 0.1)
    assert ok.passed and "exit 0" in ok.evidence
    assert not boottest.judge(checks["motd-names-version"], ExecResult(0, "image minimal 0.2.0", ""), 0).passed
    degraded = boottest.judge(checks["systemd-multi-user"], ExecResult(1, "degraded\n", ""), 0)
    assert not degraded.passed
    assert not boottest.judge(checks["no-failed-units"], ExecResult(0, "x.service failed\n", ""), 0).passed


def test_run_checks_turns_exceptions_into_failures():
    def execute(argv, timeout):
        raise TimeoutError("agent gone")

    suite = boottest.run_checks(boottest.checks_for(SPEC)[:1], execute)
    assert not suite.passed and "agent gone" in suite.cases[0].evidence
    assert boottest.parse_packages("bash\t5.2-1\nbroken\n") == {"bash": "5.2-1"}
