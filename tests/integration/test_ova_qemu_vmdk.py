"""write_ova on a VMDK made by the real qemu-img (as the export stage makes it), read back by inspect."""

from __future__ import annotations

import shutil
import subprocess
import tarfile

import pytest

from builder.image import ova
from builder.image.ovf import Appliance, Disk, write_ova

pytestmark = pytest.mark.skipif(not shutil.which("qemu-img"), reason="qemu-utils not installed")


def test_qemu_stream_optimized_vmdk_packs_and_reads_back(tmp_path):
    raw, vmdk = tmp_path / "disk.raw", tmp_path / "disk.vmdk"
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(raw), "64M"], check=True)
    raw.write_bytes(b"boot sector stand-in".ljust(512, b"\0") + raw.read_bytes()[512:])
    subprocess.run(
        ["qemu-img", "convert", "-O", "vmdk", "-o", "subformat=streamOptimized", str(raw), str(vmdk)], check=True
    )
    app = Appliance(name="tiny", version="0.1.0", disk=Disk(file="tiny-disk001.vmdk", capacity_bytes=64 << 20))

    dest = write_ova(tmp_path / "tiny-0.1.0.ova", app, vmdk)

    result = ova.inspect(dest)
    assert result.verified == ["tiny-0.1.0.ovf", "tiny-disk001.vmdk"]
    assert result.summary["disks"][0]["capacity_bytes"] == 64 << 20
    (tmp_path / "x").mkdir()
    with tarfile.open(dest) as tar, open(tmp_path / "x" / "tiny-disk001.vmdk", "wb") as out:
        shutil.copyfileobj(tar.extractfile("tiny-disk001.vmdk"), out)  # no extract(): Debian's 3.11.2 lacks filter=
    info = subprocess.run(
        ["qemu-img", "info", "--output=json", str(tmp_path / "x" / "tiny-disk001.vmdk")],
        check=True, capture_output=True, text=True,
    ).stdout
    assert '"virtual-size": 67108864' in info and "streamOptimized" in info
