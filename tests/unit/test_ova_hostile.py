"""Issue 13, `builder ova inspect` on hostile packages: bounded reads, range-checked numbers,
truncation detected; plus empty data disks (a Disk with a capacity and no fileRef)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile

import pytest
from ovf_helpers import FIXTURES

from builder.cli import main
from builder.image import ova

VBOX = (FIXTURES / "vbox-7.1.ovf").read_text()
DISK = "bookworm-lab-disk001.vmdk"


def run(capsys, *argv):
    code = main(["ova", "inspect", *map(str, argv)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def tar_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def package(ovf: str = VBOX, disk: bytes = b"disk", manifest: bytes | None = None) -> dict[str, bytes]:
    if manifest is None:
        manifest = (f"SHA256 (vm.ovf) = {hashlib.sha256(ovf.encode()).hexdigest()}\n"
                    f"SHA256 ({DISK}) = {hashlib.sha256(disk).hexdigest()}\n").encode()
    return {"vm.ovf": ovf.encode(), DISK: disk, "vm.mf": manifest}


def test_a_good_package_reads(tmp_path, capsys):
    f = tmp_path / "vm.ova"
    f.write_bytes(tar_bytes(package()))
    code, out, _ = run(capsys, f, "--json")
    assert code == 0 and json.loads(out)["cpus"] == 2


def test_compressed_ova_is_refused_without_reading_it(tmp_path, capsys):
    # the case: a gzip'd OVA whose .mf inflates to a gigabyte; 32 MiB of zeros here
    f = tmp_path / "vm.ova"
    members = package()
    members["vm.mf"] = bytes(32 << 20)
    f.write_bytes(gzip.compress(tar_bytes(members), compresslevel=1))
    assert f.stat().st_size < 1 << 20
    code, _, err = run(capsys, f)
    assert code == 2 and "gzip-compressed" in err


def test_oversized_manifest_and_descriptor_are_bad_input(tmp_path, capsys):
    f = tmp_path / "vm.ova"
    f.write_bytes(tar_bytes(package(manifest=b"SHA1 (x) = 00\n" * ((ova.MAX_MANIFEST // 14) + 1))))
    code, _, err = run(capsys, f)
    assert code == 2 and "vm.mf" in err and "larger than" in err
    f.write_bytes(tar_bytes(package(ovf=VBOX + " " * ova.MAX_DESCRIPTOR)))
    code, _, err = run(capsys, f)
    assert code == 2 and "vm.ovf" in err and "larger than" in err


@pytest.mark.parametrize("old, new, field", [
    ('ovf:capacityAllocationUnits="byte * 2^30"', 'ovf:capacityAllocationUnits="byte * 10^30000000"',
     "capacityAllocationUnits"),
    ('ovf:capacityAllocationUnits="byte * 2^30"', 'ovf:capacityAllocationUnits="byte * 10^999"',
     "capacityAllocationUnits"),
    ('ovf:capacityAllocationUnits="byte * 2^30"', 'ovf:capacityAllocationUnits="byte * 0"', "capacityAllocationUnits"),
    ('ovf:capacity="20"', 'ovf:capacity="' + "9" * 40 + '"', "Disk/@capacity"),
    ('ovf:capacity="20"', 'ovf:capacity="-20"', "Disk/@capacity"),
    ('ovf:capacity="20"', 'ovf:capacity="' + "9" * 100000 + '"', "Disk/@capacity"),
    ("<rasd:VirtualQuantity>2</rasd:VirtualQuantity>", "<rasd:VirtualQuantity>-2</rasd:VirtualQuantity>",
     "VirtualQuantity"),
    ("<rasd:VirtualQuantity>2</rasd:VirtualQuantity>", "<rasd:VirtualQuantity>99999999</rasd:VirtualQuantity>",
     "VirtualQuantity"),
    ("<rasd:VirtualQuantity>3072</rasd:VirtualQuantity>", "<rasd:VirtualQuantity>-3072</rasd:VirtualQuantity>",
     "VirtualQuantity"),
    ("<rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>",
     "<rasd:AllocationUnits>byte * 2^50</rasd:AllocationUnits>", "VirtualQuantity"),
])
def test_absurd_numbers_are_bad_input(tmp_path, capsys, old, new, field):
    assert old in VBOX
    f = tmp_path / "vm.ovf"
    f.write_text(VBOX.replace(old, new, 1))
    code, _, err = run(capsys, f)
    assert code == 2 and field in err


def test_unit_bytes_bounds():
    assert ova.unit_bytes("byte * 2^30") == 1 << 30
    assert ova.unit_bytes("byte * 1024") == 1024
    for bad in ("byte * 10^30000000", "byte * 2^51", "byte * 0"):
        with pytest.raises(ValueError):
            ova.unit_bytes(bad)


def test_ova_truncated_before_its_manifest_fails(tmp_path, capsys):
    data = tar_bytes(package())
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        mf_header = tar.getmember("vm.mf").offset
    f = tmp_path / "vm.ova"
    f.write_bytes(data[:mf_header])  # cut exactly at a header boundary: tarfile alone sees a clean end
    code, _, err = run(capsys, f)
    assert code == 1 and "truncated" in err


def test_ova_truncated_inside_a_member_fails(tmp_path, capsys):
    members = package(disk=b"x" * 4096)
    data = tar_bytes(members)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        disk = tar.getmember(DISK)
    f = tmp_path / "vm.ova"
    f.write_bytes(data[: disk.offset_data + 100])
    code, _, err = run(capsys, f)
    assert code == 1 and "truncated" in err


def test_non_utf8_manifest_is_bad_input(tmp_path, capsys):
    f = tmp_path / "vm.ova"
    f.write_bytes(tar_bytes(package(manifest=b"SHA1 (vm.ovf) = \xff\xfe\n")))
    code, _, err = run(capsys, f)
    assert code == 2 and "vm.mf" in err and "UTF-8" in err
    bare = tmp_path / "bare.ovf"
    bare.write_text(VBOX)
    (tmp_path / "bare.mf").write_bytes(b"\xff\xfe")
    code, _, err = run(capsys, bare)
    assert code == 2 and "bare.mf" in err


def test_too_many_members_is_bad_input(tmp_path, capsys):
    members = package()
    members.update({f"junk{i}": b"" for i in range(ova.MAX_MEMBERS)})
    f = tmp_path / "vm.ova"
    f.write_bytes(tar_bytes(members))
    code, _, err = run(capsys, f)
    assert code == 2 and "members" in err


def test_empty_data_disk_is_listed_with_its_capacity(tmp_path, capsys):
    """A Disk with ovf:capacity and no ovf:fileRef: VirtualBox creates it empty on import."""
    extra_disk = ('<Disk ovf:capacity="10" ovf:capacityAllocationUnits="byte * 2^30" ovf:diskId="vmdisk2" '
                  'ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>')
    extra_item = ("<StorageItem><sasd:AddressOnParent>1</sasd:AddressOnParent><sasd:Caption>disk2</sasd:Caption>"
                  "<sasd:HostResource>/disk/vmdisk2</sasd:HostResource><sasd:InstanceID>9</sasd:InstanceID>"
                  "<sasd:Parent>3</sasd:Parent><sasd:ResourceType>17</sasd:ResourceType></StorageItem>")
    text = VBOX.replace("</DiskSection>", extra_disk + "</DiskSection>", 1)
    text = text.replace("<EthernetPortItem>", extra_item + "<EthernetPortItem>", 1)
    assert text != VBOX
    f = tmp_path / "vm.ova"
    f.write_bytes(tar_bytes(package(ovf=text)))
    code, out, _ = run(capsys, f, "--json")
    assert code == 0
    disks = json.loads(out)["disks"]
    assert disks[1] == {"file": None, "capacity_bytes": 10 << 30,
                        "format": "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"}
    code, out, _ = run(capsys, f)
    assert code == 0 and "disk 1" in out and str(10 << 30) in out
