"""OVF 1.0 descriptor and OVA package for VirtualBox.

Plan: `render_descriptor(app, file_sizes)` turns a frozen `Appliance` into descriptor text (golden-file
tested, valid against DMTF's OVF 1.1 schema). Data disks are empty streamOptimized VMDKs in the
package (2.6 MB for 20 GiB): VirtualBox would also create a `Disk` without `ovf:fileRef` empty on
import, but virt-v2v 2.2 refuses such a package ("error parsing disk fileRef"), and an OVA must
convert with it. Apply: `write_ova(dest, app, vmdk, data_vmdks)` packs descriptor, disks and
manifest into a ustar archive the way VirtualBox does, atomically.
"""

from __future__ import annotations

import hashlib
import io
import struct
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from .. import templates
from ..atomic import atomic_file
from ..core.digests import CHUNK
from ..core.errors import BuildFailed, UserError
from ..spec import StrictModel

STREAM_OPTIMIZED = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"
# ustar's 11 octal digits of size: VirtualBox writes USTAR, so we stay inside it rather than emit
# GNU base-256 sizes an older importer might not read.
USTAR_MAX_SIZE = 8**11 - 1
MANIFEST_DIGEST = "SHA256"


class GuestOS(StrictModel):
    vbox_type: str = Field("Debian_64", description="VirtualBox OS type id (vbox:OSType)")
    # CIM_OperatingSystem.OSType: 96 = "Debian 64-Bit" (VirtualBox's ovfreader.h, CIMOSType_CIMOS_Debian_64)
    cim_id: Annotated[int, Field(ge=0, le=65535)] = 96
    description: str = "Debian 64-Bit"


class Disk(StrictModel):
    file: str = Field(description="member name of the streamOptimized VMDK inside the package")
    capacity_bytes: Annotated[int, Field(gt=0)]
    populated_bytes: Annotated[int, Field(ge=0)] | None = None

    @field_validator("file")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        if not v or "/" in v or v in (".", "..") or len(v.encode()) > 100:
            raise ValueError("a plain file name of at most 100 bytes (a ustar member name)")
        return v


class Nic(StrictModel):
    network: str = "NAT"
    # E1000 is what VirtualBox writes for its Intel PRO/1000 MT Desktop (82540EM) and maps back to it.
    model: str = "E1000"


class Appliance(StrictModel):
    name: Annotated[str, Field(min_length=1)]
    version: Annotated[str, Field(min_length=1)]
    description: str = ""
    product: str = ""
    vendor: str = ""
    product_url: str = ""
    os: GuestOS = GuestOS()
    cpus: Annotated[int, Field(ge=1, le=64)] = 2
    memory_mib: Annotated[int, Field(ge=4, le=2097152)] = 1024
    disk: Disk
    # empty data disks on the SATA controller after the system disk; AHCI has 30 ports
    data_disks: Annotated[tuple[Disk, ...], Field(max_length=29)] = ()
    nic: Nic = Nic()

    @model_validator(mode="after")
    def _distinct_files(self) -> Appliance:
        names = [d.file for d in self.disks]
        if len(set(names)) != len(names):
            raise ValueError(f"two disks in one package share a member name: {names}")
        return self

    @property
    def disks(self) -> tuple[Disk, ...]:
        return (self.disk, *self.data_disks)


def render_descriptor(app: Appliance, file_sizes: Sequence[int]) -> str:
    """`file_sizes`: each disk's VMDK size in bytes, system disk first (References/File/@ovf:size)."""
    if len(file_sizes) != len(app.disks):
        raise ValueError(f"{len(app.disks)} disks, {len(file_sizes)} file sizes")
    return templates.render("ovf/descriptor.ovf.j2", app=app, disks=list(zip(app.disks, file_sizes, strict=True)),
                            disk_format=STREAM_OPTIMIZED)


def manifest_line(name: str, hexdigest: str) -> str:
    """The form VirtualBox and ovftool write: `SHA256(file)= hex`."""
    return f"{MANIFEST_DIGEST}({name})= {hexdigest}\n"


def check_stream_optimized(vmdk: Path, capacity_bytes: int) -> None:
    """Refuse a disk VirtualBox would reject after a long import: not a compressed sparse VMDK
    (a raw or qcow2 file passed by mistake) or a capacity that disagrees with the descriptor."""
    with open(vmdk, "rb") as f:
        header = f.read(80)
    if len(header) < 80 or header[:4] != b"KDMV":
        raise UserError("not a VMDK sparse extent (no KDMV magic)", file=str(vmdk))
    _version, flags, sectors = struct.unpack_from("<IIQ", header, 4)
    if not flags & (1 << 16):
        raise UserError("VMDK is not compressed, so not streamOptimized", file=str(vmdk))
    if sectors * 512 != capacity_bytes:
        raise UserError(
            f"VMDK capacity {sectors * 512} bytes differs from the appliance's {capacity_bytes}",
            file=str(vmdk),
            field="disk.capacity_bytes",
        )


class _HashingReader:
    """Hands chunks to tarfile while hashing them, so the disk is read once and never held whole."""

    def __init__(self, f):
        self._f, self.hash = f, hashlib.new(MANIFEST_DIGEST.lower())

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self.hash.update(data)
        return data


def _member(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, mtime, 0o644
    return info


def write_ova(dest: Path, app: Appliance, vmdk: Path, data_vmdks: Sequence[Path] = ()) -> Path:
    """Write dest: the .ovf first (OVF spec and VirtualBox read it first), then the disks in the
    descriptor's order, then the .mf. `data_vmdks` are the data disks' files, one per
    `app.data_disks`.

    Members carry the system disk's mtime, so the same inputs give the same bytes. The archive is
    built under a hidden name beside dest and renamed into place; on any error it is removed.
    """
    dest, paths = Path(dest), [Path(vmdk), *map(Path, data_vmdks)]
    if len(paths) != len(app.disks):
        raise ValueError(f"{len(app.disks)} disks in the appliance, {len(paths)} files")
    sizes = []
    for path, disk in zip(paths, app.disks, strict=True):
        if not path.is_file():
            raise UserError("no such file", file=str(path))
        sizes.append(path.stat().st_size)
        if sizes[-1] > USTAR_MAX_SIZE:
            raise BuildFailed(f"{path}: {sizes[-1]} bytes is beyond the ustar member limit of 8 GiB")
        check_stream_optimized(path, disk.capacity_bytes)
    descriptor = render_descriptor(app, sizes).encode()
    stem = dest.name.removesuffix(".ova")
    ovf_name, mf_name = f"{stem}.ovf", f"{stem}.mf"
    mtime = int(paths[0].stat().st_mtime)

    with atomic_file(dest) as out, tarfile.TarFile(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT,
                                                   copybufsize=CHUNK) as tar:
        tar.addfile(_member(ovf_name, len(descriptor), mtime), io.BytesIO(descriptor))
        manifest = manifest_line(ovf_name, hashlib.sha256(descriptor).hexdigest())
        for path, disk, size in zip(paths, app.disks, sizes, strict=True):
            with open(path, "rb") as f:
                reader = _HashingReader(f)
                tar.addfile(_member(disk.file, size, mtime), reader)
            manifest += manifest_line(disk.file, reader.hash.hexdigest())
        mf = manifest.encode()
        tar.addfile(_member(mf_name, len(mf), mtime), io.BytesIO(mf))
    return dest
