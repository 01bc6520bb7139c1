"""Box layout: metadata, Vagrantfiles (golden, Ruby syntax, nothing of the build host's
accelerator), the OVF inside the VirtualBox box, the tar writer, the layer script."""

from __future__ import annotations

import glob
import hashlib
import json
import shutil
import subprocess
import tarfile
from types import SimpleNamespace

import pytest
from ovf_helpers import fake_stream_vmdk, schema_path

from builder.core.errors import UserError
from builder.spec import load_image, parse_size_mib
from builder.vagrant import box, layer
from builder.vagrant.box import BoxPlan
from tests.goldens import assert_golden
from tests.repo import IMAGES

PLAN = BoxPlan(name="ceph-training", version="1.2.0", description="Ceph lab", cpus=2, memory_mib=3072,
               data_disk_mibs=(20480, 10240))


def spec_like(**over):
    base = dict(name="minimal", version="0.1.0", description="d", cpus=2, memory_mib=1024)
    merged = {**base, **over}
    merged["data_disk_mibs"] = tuple(parse_size_mib(d) for d in merged.pop("data_disks", ()))
    return SimpleNamespace(**merged)


def test_plan_from_the_minimal_image_spec():
    p = box.plan_for(load_image("minimal", IMAGES))
    assert (p.name, p.version, p.cpus, p.memory_mib, p.data_disk_mibs) == ("minimal", "0.1.0", 2, 1024, ())
    assert box.file_name(p, "libvirt") == "minimal-0.1.0.libvirt.box"


def test_plan_takes_optional_data_disks_and_refuses_versions_vagrant_cannot_read():
    assert box.plan_for(spec_like(data_disks=["20G", "512M"])).data_disk_mibs == (20480, 512)
    with pytest.raises(UserError, match="Vagrant box version"):
        box.plan_for(spec_like(version="1.0.0+build.7"))


def test_metadata():
    assert box.metadata("libvirt", 2 << 30) == {"provider": "libvirt", "format": "qcow2", "virtual_size": 2}
    assert box.metadata("libvirt", (2 << 30) + 1)["virtual_size"] == 3  # never smaller than the disk
    assert box.metadata("virtualbox", 2 << 30) == {"provider": "virtualbox"}


@pytest.mark.parametrize("provider", box.PROVIDERS)
@pytest.mark.parametrize("disks", [(), (20480, 10240)], ids=["no-data-disks", "data-disks"])
def test_vagrantfile_golden(provider, disks):
    text = box.vagrantfile(PLAN.model_copy(update={"data_disk_mibs": disks}), provider)
    assert_golden(f"vagrant/Vagrantfile.{provider}{'-data' if disks else ''}", text)
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    # never the build host's accelerator or CPU: a box must run under KVM on a trainee's machine
    for word in ("driver", "qemu", "tcg", "cpu_mode", "cpu_model"):
        assert word not in code


@pytest.mark.skipif(not shutil.which("ruby"), reason="ruby not installed (comes with Debian's vagrant)")
@pytest.mark.parametrize("provider", box.PROVIDERS)
def test_vagrantfile_is_valid_ruby(provider, tmp_path):
    f = tmp_path / "Vagrantfile"
    f.write_text(box.vagrantfile(PLAN, provider))
    r = subprocess.run(["ruby", "-c", str(f)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_virtualbox_members_carry_a_valid_ovf_naming_the_vmdk(tmp_path):
    vmdk = fake_stream_vmdk(tmp_path / "disk.vmdk", 2 << 30, b"x" * 1000)
    items = box.members(PLAN, "virtualbox", vmdk, 2 << 30, vmdk.stat().st_size)
    assert [n for n, _ in items] == ["metadata.json", "Vagrantfile", "box.ovf", box.VMDK_MEMBER]
    ovf_text = dict(items)["box.ovf"]
    (tmp_path / "box.ovf").write_bytes(ovf_text)
    r = subprocess.run(["xmllint", "--noout", "--nonet", "--schema", str(schema_path()), str(tmp_path / "box.ovf")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f'ovf:href="{box.VMDK_MEMBER}"'.encode() in ovf_text
    assert f'ovf:size="{vmdk.stat().st_size}"'.encode() in ovf_text
    assert b'ovf:capacity="2147483648"' in ovf_text
    # the boot disk only: the Vagrantfile attaches PLAN's two data disks, box.ovf must not add two more
    assert ovf_text.count(b"<Disk ") == 1 and ovf_text.count(b"<File ") == 1


def test_write_box_streams_members_in_order_and_returns_the_archive_digest(tmp_path):
    disk = tmp_path / "box.qcow2"
    disk.write_bytes(b"QFI\xfb" + b"\0" * 5_000_000)
    dest = tmp_path / "out" / "minimal-0.1.0.libvirt.box"
    digest = box.write_box(dest, box.members(PLAN, "libvirt", disk, 2 << 30, disk.stat().st_size))
    assert digest == hashlib.sha256(dest.read_bytes()).hexdigest()
    with tarfile.open(dest) as tar:
        assert tar.getnames() == ["metadata.json", "Vagrantfile", "box.img"]
        assert json.load(tar.extractfile("metadata.json")) == box.metadata("libvirt", 2 << 30)
        assert tar.extractfile("box.img").read() == disk.read_bytes()
        assert {m.mtime for m in tar.getmembers()} == {int(disk.stat().st_mtime)}
    assert [p.name for p in dest.parent.iterdir()] == [dest.name]


def test_write_box_leaves_nothing_on_failure(tmp_path):
    gone = tmp_path / "missing.qcow2"
    with pytest.raises(FileNotFoundError):
        box.write_box(tmp_path / "x.box", [("metadata.json", b"{}"), ("box.img", gone)])
    assert list(tmp_path.iterdir()) == []


def test_layer_script_makes_the_vagrant_user_sudo_and_key_and_validates_sudoers():
    s = layer.layer_script()
    assert "useradd --create-home --user-group --shell /bin/bash vagrant" in s
    assert "visudo -c -q -f" in s and "/etc/sudoers.d/vagrant" in s
    assert "NOPASSWD: ALL" in s and "systemctl enable ssh.service" in s
    r = subprocess.run(["sh", "-n"], input=s, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_stage_inputs_follow_the_key(tmp_path):
    a, b = tmp_path / "a.pub", tmp_path / "b.pub"
    a.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO7k6b0OAeJbXOPy6iNmEBlWXdOM2UAfq0CeTrL7QwDl a\n")
    b.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO7k6b0OAeJbXOPy6iNmEBlWXdOM2UAfq0CeTrL7QwDl b\n")
    assert layer.stage_inputs(a) == layer.stage_inputs(a)
    assert layer.stage_inputs(a) != layer.stage_inputs(b)


@pytest.mark.parametrize("text", ["", "not a key", "ssh-rsa AAAA\nssh-rsa BBBB", "ssh-rsa AAAA'; rm -rf /"])
def test_public_key_is_one_checked_line(tmp_path, text):
    f = tmp_path / "k.pub"
    f.write_text(text)
    with pytest.raises(UserError, match="k.pub"):
        layer.read_public_key(f)


@pytest.mark.skipif(not glob.glob(layer.KEY_GLOB), reason="Debian's vagrant package is not installed")
def test_debians_insecure_key_is_found_and_accepted():
    assert layer.read_public_key(layer.insecure_key_path()).endswith("vagrant insecure public key")
