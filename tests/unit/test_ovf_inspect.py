"""`builder ova inspect` on VirtualBox-shaped exports, damaged packages and non-OVF input."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile

import pytest
from ovf_helpers import FIXTURES, fake_stream_vmdk, sample_appliance

from builder.cli import main
from builder.image.ova import unit_bytes
from builder.image.ovf import STREAM_OPTIMIZED, write_ova

EXPECTED = {
    "vbox-4.3.ovf": {
        "name": "trusty-lab", "os": "Ubuntu_64", "cpus": 1, "memory_mib": 2048,
        "disks": [{"file": "trusty-lab-disk1.vmdk", "capacity_bytes": 10 << 30, "format": STREAM_OPTIMIZED}],
        "nics": [{"network": "NAT", "model": "E1000"}],
    },
    "vbox-5.2.ovf": {
        "name": "stretch-ceph", "os": "Debian_64", "cpus": 2, "memory_mib": 4096,
        "disks": [
            {"file": "stretch-ceph-disk001.vmdk", "capacity_bytes": 20 << 30, "format": STREAM_OPTIMIZED},
            {"file": "stretch-ceph-disk002.vmdk", "capacity_bytes": 5 << 30, "format": STREAM_OPTIMIZED},
        ],
        "nics": [{"network": "NAT", "model": "E1000"}, {"network": "HostOnly", "model": "PCNet32"}],
    },
    "vbox-6.1.ovf": {
        "name": "centos8-worker", "os": "RedHat_64", "cpus": 4, "memory_mib": 8192,
        "disks": [{"file": "centos8-worker-disk001.vmdk", "capacity_bytes": 64 << 30, "format": STREAM_OPTIMIZED}],
        "nics": [{"network": "Bridged", "model": None}],
    },
    "vbox-7.1.ovf": {
        "name": "bookworm-lab", "os": "Debian12_64", "cpus": 2, "memory_mib": 3072,
        "disks": [{"file": "bookworm-lab-disk001.vmdk", "capacity_bytes": 20 << 30, "format": STREAM_OPTIMIZED}],
        "nics": [{"network": "NAT", "model": "E1000"}],
    },
}  # fmt: skip


def run(capsys, *argv):
    code = main(["ova", "inspect", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def make_ova(path, members: dict[str, bytes]):
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def fixture_ova(tmp_path, fixture: str, disk=b"disk bytes", manifest=None):
    """An OVA around a VirtualBox-shaped descriptor; manifest defaults to correct SHA1 lines."""
    ovf = (FIXTURES / fixture).read_bytes()
    disk_name = EXPECTED[fixture]["disks"][0]["file"]
    if manifest is None:
        manifest = (
            f"SHA1 ({fixture}) = {hashlib.sha1(ovf).hexdigest()}\n"
            f"SHA1 ({disk_name}) = {hashlib.sha1(disk).hexdigest()}\n"
        )
    return make_ova(tmp_path / "vm.ova", {fixture: ovf, disk_name: disk, "vm.mf": manifest.encode()})


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
def test_inspect_virtualbox_descriptors(capsys, fixture):
    code, out, _ = run(capsys, FIXTURES / fixture, "--json")
    assert code == 0
    assert json.loads(out) == EXPECTED[fixture]


def test_inspect_virtualbox_ova_with_sha1_manifest(tmp_path, capsys):
    code, out, _ = run(capsys, fixture_ova(tmp_path, "vbox-4.3.ovf"), "--json")
    assert code == 0
    assert json.loads(out) == EXPECTED["vbox-4.3.ovf"]


def test_table_output(capsys):
    code, out, _ = run(capsys, FIXTURES / "vbox-5.2.ovf")
    assert code == 0
    for text in ("stretch-ceph", "Debian_64", "4096 MiB", "PCNet32 on HostOnly", "stretch-ceph-disk002.vmdk"):
        assert text in out


def test_digest_mismatch_exits_1_naming_the_file(tmp_path):
    ovf = (FIXTURES / "vbox-7.1.ovf").read_bytes()
    bad = "0" * 64
    manifest = f"SHA256(vbox-7.1.ovf)= {hashlib.sha256(ovf).hexdigest()}\nSHA256(bookworm-lab-disk001.vmdk)= {bad}\n"
    path = fixture_ova(tmp_path, "vbox-7.1.ovf", manifest=manifest)
    code = main(["ova", "inspect", str(path)])
    assert code == 1


def test_digest_mismatch_message(tmp_path, capsys):
    path = fixture_ova(tmp_path, "vbox-6.1.ovf", manifest="SHA1(centos8-worker-disk001.vmdk)= " + "a" * 40 + "\n")
    code, out, err = run(capsys, path, "--json")
    assert code == 1 and out == ""
    assert "digest mismatch for centos8-worker-disk001.vmdk" in err and "Traceback" not in err


def test_file_listed_in_manifest_but_missing_exits_1(tmp_path, capsys):
    path = fixture_ova(tmp_path, "vbox-4.3.ovf", manifest="SHA256(trusty-lab-disk2.vmdk)= " + "b" * 64 + "\n")
    code, _, err = run(capsys, path)
    assert code == 1 and "trusty-lab-disk2.vmdk" in err and "missing" in err


def test_referenced_disk_missing_from_ova_exits_1(tmp_path, capsys):
    path = make_ova(tmp_path / "vm.ova", {"vm.ovf": (FIXTURES / "vbox-5.2.ovf").read_bytes()})
    code, _, err = run(capsys, path)
    assert code == 1 and "stretch-ceph-disk001.vmdk" in err


def test_bare_ovf_checks_sibling_manifest(tmp_path, capsys):
    """VirtualBox's 'export to .ovf' writes descriptor, disk and .mf side by side."""
    shutil.copy(FIXTURES / "vbox-6.1.ovf", tmp_path / "vm.ovf")
    (tmp_path / "centos8-worker-disk001.vmdk").write_bytes(b"abc")
    (tmp_path / "vm.mf").write_text(f"SHA256 (centos8-worker-disk001.vmdk) = {hashlib.sha256(b'abc').hexdigest()}\n")
    assert run(capsys, tmp_path / "vm.ovf")[0] == 0
    (tmp_path / "centos8-worker-disk001.vmdk").write_bytes(b"abd")
    assert run(capsys, tmp_path / "vm.ovf")[0] == 1


def test_our_ova_reads_back(tmp_path, capsys):
    app = sample_appliance(capacity_bytes=32 << 20)
    dest = write_ova(tmp_path / "ceph.ova", app, fake_stream_vmdk(tmp_path / "d.vmdk", 32 << 20, b"z" * 4096))
    code, out, _ = run(capsys, dest, "--json")
    assert code == 0
    got = json.loads(out)
    assert (got["cpus"], got["memory_mib"], got["disks"][0]["capacity_bytes"]) == (2, 2048, 32 << 20)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("garbage.ova", b"\x00\x01 definitely not a tar", "not a tar archive"),
        ("garbage.ovf", b"\x89PNG\r\n\x1a\n", "not XML"),
        ("empty.ovf", b"", "not XML"),
        ("other.xml", b"<html><body/></html>", "not an OVF envelope"),
        ("novs.ovf", b'<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"><References/></Envelope>',
         "no VirtualSystem"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, name, content, message):
    f = tmp_path / name
    f.write_bytes(content)
    code, out, err = run(capsys, f)
    assert code == 2 and out == ""
    assert message in err and str(f) in err
    assert len(err.strip().splitlines()) == 1


def test_ova_without_descriptor_exits_2(tmp_path, capsys):
    code, _, err = run(capsys, make_ova(tmp_path / "x.ova", {"readme.txt": b"hi"}))
    assert code == 2 and "no .ovf descriptor" in err


def test_missing_file_exits_2(tmp_path, capsys):
    assert run(capsys, tmp_path / "nope.ova")[0] == 2


def test_unknown_memory_units_exit_2(tmp_path, capsys):
    text = (FIXTURES / "vbox-7.1.ovf").read_text().replace("byte * 2^20", "furlongs")
    (tmp_path / "u.ovf").write_text(text)
    code, _, err = run(capsys, tmp_path / "u.ovf")
    assert code == 2 and "furlongs" in err and "AllocationUnits" in err


@pytest.mark.parametrize(
    "units, factor",
    [("MegaBytes", 1 << 20), ("MB", 1 << 20), ("byte * 2^20", 1 << 20), ("byte*2^30", 1 << 30),
     ("GigaBytes", 1 << 30), ("byte", 1), ("byte * 1024", 1024), ("KiloBytes", 1024)],
)  # fmt: skip
def test_unit_bytes(units, factor):
    assert unit_bytes(units) == factor
