"""Stage 2: a BIOS-bootable raw disk from the rootfs, with no partition scanning.

`losetup -P` makes no partition nodes on this host, so the ext4 root is made in place at a
1 MiB offset (`mkfs.ext4 -E offset=`), mounted through an offset loop device for extlinux, and
syslinux's MBR goes into the first 440 bytes. The disk boots by itself (no -kernel), as
VirtualBox boots it.
"""

from __future__ import annotations

import re
import uuid as uuidlib
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import UserError
from ..templates import render

OFFSET = 1 << 20  # partition 1 at sector 2048
MBR_BIN = Path("/usr/lib/syslinux/mbr/mbr.bin")


def version_key(name: str) -> list:
    """Numbers compare as numbers: vmlinuz-6.1.0-10 is newer than vmlinuz-6.1.0-9."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


@dataclass(frozen=True)
class DiskPlan:
    size_bytes: int
    uuid: str
    kernel: str  # paths relative to the root filesystem
    initrd: str

    @property
    def fs_bytes(self) -> int:
        return self.size_bytes - OFFSET


def plan(size_mib: int, input_key: str, rootfs: Path) -> DiskPlan:
    # The UUID follows the inputs, so an unchanged rebuild gives an identical disk.
    fs_uuid = str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"builder:{input_key}"))
    kernels = sorted((rootfs / "boot").glob("vmlinuz-*"), key=lambda p: version_key(p.name))
    if not kernels:
        raise UserError("rootfs has no kernel in /boot (is linux-image-amd64 installed?)", field="packages")
    version = kernels[-1].name.removeprefix("vmlinuz-")
    return DiskPlan(size_mib << 20, fs_uuid, f"boot/vmlinuz-{version}", f"boot/initrd.img-{version}")


def check_fits(rootfs_bytes: int, size_mib: int, spec_file: Path) -> None:
    # ext4 metadata, journal and reserved blocks take roughly a tenth; keep 128 MiB headroom.
    need = int(rootfs_bytes * 1.12) + (128 << 20) + OFFSET
    if need > size_mib << 20:
        raise UserError(
            f"disk of {size_mib} MiB is smaller than the rootfs needs ({need >> 20} MiB)",
            file=str(spec_file),
            field="disk_size",
        )


def sfdisk_script() -> str:
    return f"label: dos\nstart={OFFSET // 512}, type=83, bootable\n"


def mkfs_argv(p: DiskPlan, raw: Path, rootfs: Path) -> list[str]:
    return [
        "mkfs.ext4", "-q", "-F", "-L", "root", "-U", p.uuid,
        "-E", f"offset={OFFSET}", "-d", str(rootfs), str(raw), f"{p.fs_bytes // 1024}k",
    ]


def files(p: DiskPlan, authorized_key: str) -> dict[str, tuple[str, int]]:
    """Files written into the mounted root: path -> (content, mode)."""
    return {
        "etc/fstab": (render("image/fstab.j2", uuid=p.uuid), 0o644),
        "boot/extlinux/extlinux.conf": (
            render("image/extlinux.conf.j2", uuid=p.uuid, kernel=p.kernel, initrd=p.initrd),
            0o644,
        ),
        # packer's ephemeral build key; the cleanup provisioner removes it
        "root/.ssh/authorized_keys": (authorized_key, 0o600),
    }


def install_mbr(raw: Path, mbr: Path = MBR_BIN) -> None:
    code = mbr.read_bytes()[:440]
    with open(raw, "r+b") as f:
        f.write(code)
