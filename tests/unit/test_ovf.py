"""OVF descriptor (golden file, DMTF schema) and OVA packing (member order, manifest, atomicity)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import xml.etree.ElementTree as ET

import pytest
from ovf_helpers import GOLDEN, fake_stream_vmdk, sample_appliance, schema_path
from pydantic import ValidationError

from builder.core.errors import UserError
from builder.image import ova, ovf
from builder.image.ovf import Appliance, render_descriptor, write_ova
from tests.goldens import assert_golden


def xmllint(path) -> subprocess.CompletedProcess:
    assert shutil.which("xmllint"), "xmllint missing: apt-get install libxml2-utils"
    schema = schema_path()
    assert schema.is_file(), f"OVF schema not found at {schema} (set BUILDER_OVF_SCHEMA)"
    return subprocess.run(
        ["xmllint", "--noout", "--nonet", "--schema", str(schema), str(path)], capture_output=True, text=True
    )


def odd_appliance() -> Appliance:
    """Markup characters everywhere text lands, and the largest values the model allows."""
    odd = {
        "name": 'lab & <"odd"> \'vm\'',
        "version": "9.9.9-rc1+build.7",
        "description": 'a&b <c> "d" \'e\'',
        "vendor": "R&D <labs>",
        "product_url": "https://x.example/?a=1&b=2",
        "cpus": 64,
        "memory_mib": 2097152,
        "disk": {"file": "disk&<1>.vmdk", "capacity_bytes": 64 << 40},
        "nic": {"network": 'Net "A" & <B>'},
    }
    return Appliance.model_validate({**sample_appliance().model_dump(), **odd})


def test_descriptor_matches_golden():
    text = render_descriptor(sample_appliance(data_disks=3), [1_234_567_890, 2686976, 2686976, 2686976])
    assert_golden("ovf/ceph-training.ovf", text)


def test_data_disks_are_files_and_sit_on_sata_after_the_system_disk():
    """Every Disk has a File (virt-v2v refuses one without fileRef); data disks follow on SATA."""
    ns = {"ovf": "http://schemas.dmtf.org/ovf/envelope/1",
          "rasd": "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"}
    root = ET.fromstring(render_descriptor(sample_appliance(data_disks=3), [1, 2, 3, 4]))
    attr = lambda e, a: e.get(f"{{{ns['ovf']}}}{a}")
    disks = root.findall("ovf:DiskSection/ovf:Disk", ns)
    assert [(attr(d, "diskId"), attr(d, "fileRef"), attr(d, "capacity")) for d in disks] == [
        ("vmdisk1", "file1", str(8 << 30)), *[(f"vmdisk{i}", f"file{i}", str(20 << 30)) for i in (2, 3, 4)]]
    files = root.findall("ovf:References/ovf:File", ns)
    assert [(attr(f, "id"), attr(f, "href"), attr(f, "size")) for f in files] == [
        (f"file{i}", f"ceph-training-1.2.0-disk{i:03d}.vmdk", str(i)) for i in (1, 2, 3, 4)]
    items = root.findall(".//ovf:VirtualHardwareSection/ovf:Item", ns)
    on_sata = [(i.findtext("rasd:HostResource", None, ns), i.findtext("rasd:AddressOnParent", None, ns))
               for i in items if i.findtext("rasd:ResourceType", None, ns) == "17"]
    assert on_sata == [(f"ovf:/disk/vmdisk{n + 1}", str(n)) for n in range(4)]
    assert all(i.findtext("rasd:Parent", None, ns) == "3" for i in items
               if i.findtext("rasd:ResourceType", None, ns) == "17")
    ids = [i.findtext("rasd:InstanceID", None, ns) for i in items]
    assert len(ids) == len(set(ids))


def test_golden_descriptor_validates_against_ovf_schema():
    r = xmllint(GOLDEN / "ceph-training.ovf")
    assert r.returncode == 0, r.stderr


def test_unusual_values_are_escaped_and_validate(tmp_path):
    f = tmp_path / "odd.ovf"
    f.write_text(render_descriptor(odd_appliance(), [2**41]))
    r = xmllint(f)
    assert r.returncode == 0, r.stderr
    summary = ova.inspect(f).summary
    assert summary["name"] == 'lab & <"odd"> \'vm\''
    assert summary["cpus"] == 64 and summary["memory_mib"] == 2097152
    assert summary["disks"] == [{"file": "disk&<1>.vmdk", "capacity_bytes": 64 << 40, "format": ovf.STREAM_OPTIMIZED}]
    assert summary["nics"] == [{"network": 'Net "A" & <B>', "model": "E1000"}]


def test_schema_check_is_not_vacuous(tmp_path):
    """Drop a required rasd:InstanceID: the same xmllint call must reject it."""
    text = render_descriptor(sample_appliance(), [1]).replace("<rasd:InstanceID>4</rasd:InstanceID>", "")
    f = tmp_path / "broken.ovf"
    f.write_text(text)
    assert xmllint(f).returncode != 0


@pytest.mark.parametrize(
    "bad",
    [
        {"cpus": 0},
        {"cpus": 65},
        {"disk": {"file": "../x.vmdk", "capacity_bytes": 1}},
        {"disk": {"file": "x.vmdk", "capacity_bytes": 0}},
        {"surprise": 1},
    ],
)
def test_appliance_rejects_bad_values(bad):
    data = {"name": "a", "version": "1.0", "disk": {"file": "x.vmdk", "capacity_bytes": 512}, **bad}
    with pytest.raises(ValidationError):
        Appliance.model_validate(data)


def test_write_ova_round_trip(tmp_path):
    app = sample_appliance(capacity_bytes=64 << 20)
    payload = os.urandom(3 << 20)  # crosses the streaming chunk boundary of tarfile's copy
    vmdk = fake_stream_vmdk(tmp_path / "built.vmdk", 64 << 20, payload)
    dest = tmp_path / "out" / "ceph-training-1.2.0.ova"

    assert write_ova(dest, app, vmdk) == dest
    assert sorted(p.name for p in dest.parent.iterdir()) == [dest.name]  # no temp file left

    with tarfile.open(dest) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == [
            "ceph-training-1.2.0.ovf",
            "ceph-training-1.2.0-disk001.vmdk",
            "ceph-training-1.2.0.mf",
        ]
        descriptor = tar.extractfile(members[0]).read()
        assert tar.extractfile(members[1]).read() == vmdk.read_bytes()
        manifest = tar.extractfile(members[2]).read().decode()
    raw = dest.read_bytes()
    assert raw[257:263] == b"ustar\0"  # POSIX ustar, as VirtualBox writes OVAs
    assert descriptor.decode() == render_descriptor(app, [vmdk.stat().st_size])
    assert manifest == (
        f"SHA256(ceph-training-1.2.0.ovf)= {hashlib.sha256(descriptor).hexdigest()}\n"
        f"SHA256(ceph-training-1.2.0-disk001.vmdk)= {hashlib.sha256(vmdk.read_bytes()).hexdigest()}\n"
    )

    result = ova.inspect(dest)
    assert result.verified == ["ceph-training-1.2.0.ovf", "ceph-training-1.2.0-disk001.vmdk"]
    assert result.summary == {
        "name": "ceph-training",
        "os": "Debian_64",
        "cpus": 2,
        "memory_mib": 2048,
        "disks": [
            {"file": "ceph-training-1.2.0-disk001.vmdk", "capacity_bytes": 64 << 20, "format": ovf.STREAM_OPTIMIZED}
        ],
        "nics": [{"network": "NAT", "model": "E1000"}],
    }


def test_write_ova_packs_data_disks_in_port_order_with_the_manifest(tmp_path):
    app = sample_appliance(capacity_bytes=1 << 20, data_disks=2)
    system = fake_stream_vmdk(tmp_path / "s.vmdk", 1 << 20, b"s" * 100)
    data = [fake_stream_vmdk(tmp_path / f"d{i}.vmdk", 20 << 30) for i in (1, 2)]
    dest = write_ova(tmp_path / "ceph-training-1.2.0.ova", app, system, data)
    names = [d.file for d in app.disks]
    with tarfile.open(dest) as tar:
        assert tar.getnames() == ["ceph-training-1.2.0.ovf", *names, "ceph-training-1.2.0.mf"]
    result = ova.inspect(dest)
    assert result.verified == ["ceph-training-1.2.0.ovf", *names]
    assert [(d["file"], d["capacity_bytes"]) for d in result.summary["disks"]] == [
        (names[0], 1 << 20), (names[1], 20 << 30), (names[2], 20 << 30)]


def test_write_ova_wants_one_file_per_disk_and_distinct_names(tmp_path):
    system = fake_stream_vmdk(tmp_path / "s.vmdk", 1 << 20)
    with pytest.raises(ValueError, match="2 disks in the appliance, 1 files"):
        write_ova(tmp_path / "x.ova", sample_appliance(capacity_bytes=1 << 20, data_disks=1), system)
    with pytest.raises(ValueError, match="2 disks, 1 file sizes"):
        render_descriptor(sample_appliance(data_disks=1), [1])
    twin = sample_appliance().disk
    with pytest.raises(ValidationError, match="share a member name"):
        Appliance.model_validate({**sample_appliance().model_dump(), "data_disks": [twin.model_dump()]})


def test_write_ova_is_reproducible(tmp_path):
    app = sample_appliance(capacity_bytes=1 << 20)
    vmdk = fake_stream_vmdk(tmp_path / "d.vmdk", 1 << 20, b"x" * 1000)
    a = write_ova(tmp_path / "a" / "x.ova", app, vmdk).read_bytes()
    b = write_ova(tmp_path / "b" / "x.ova", app, vmdk).read_bytes()
    assert a == b


@pytest.mark.parametrize(
    "content, message",
    [
        (b"QFI\xfb" + b"\0" * 600, "no KDMV magic"),
        (b"KDMV" + (3).to_bytes(4, "little") + (0).to_bytes(4, "little") + (2048).to_bytes(8, "little") + b"\0" * 600,
         "not compressed"),
        (None, "capacity"),
    ],
)
def test_write_ova_refuses_wrong_disks(tmp_path, content, message):
    app = sample_appliance(capacity_bytes=1 << 20)
    vmdk = tmp_path / "d.vmdk"
    if content is None:
        fake_stream_vmdk(vmdk, 2 << 20)
    else:
        vmdk.write_bytes(content)
    out = tmp_path / "out"
    with pytest.raises(UserError, match=message):
        write_ova(out / "x.ova", app, vmdk)
    assert not out.exists() or not any(out.iterdir())


def test_write_ova_leaves_nothing_on_failure(tmp_path, monkeypatch):
    app = sample_appliance(capacity_bytes=1 << 20)
    vmdk = fake_stream_vmdk(tmp_path / "d.vmdk", 1 << 20, b"y" * 5000)
    dest = tmp_path / "out" / "x.ova"
    dest.parent.mkdir()
    dest.write_bytes(b"previous release")

    def boom(*_a):
        raise OSError("disk full")

    monkeypatch.setattr(ovf, "manifest_line", boom)
    with pytest.raises(OSError, match="disk full"):
        write_ova(dest, app, vmdk)
    assert [p.name for p in dest.parent.iterdir()] == ["x.ova"]
    assert dest.read_bytes() == b"previous release"  # the old file is untouched until the new one is whole
