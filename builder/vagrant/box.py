"""Vagrant box files, one per provider, from the box image (the provisioned image plus the box layer).

`<name>-<version>.libvirt.box`: box.img (qcow2), metadata.json {provider, format, virtual_size}
and a Vagrantfile. `<name>-<version>.virtualbox.box`: box.ovf (our OVF writer), the
streamOptimized VMDK it references, metadata.json {provider} and a Vagrantfile. Both disks come
from the box stage (`layer.make_box_image`).

Plan (pure): `BoxPlan`, `metadata`, `vagrantfile`, `members`. Apply: `write_box` streams the
members into an uncompressed tar (both disks are compressed already; gzip would only spend a
core), hashing the archive as it goes, under a temp name renamed into place.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import tarfile
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from .. import templates
from ..atomic import atomic_file
from ..core.digests import CHUNK
from ..image import export, ovf
from ..spec import NAME_RE, ImageSpec
from .catalog import check_box_version

GIB = 1 << 30
PROVIDERS = ("libvirt", "virtualbox")
VMDK_MEMBER = "box-disk001.vmdk"  # the name VirtualBox and packer give a box's disk

Member = tuple[str, Path | bytes]


class BoxPlan(BaseModel):
    """What the box files say about the VM: taken from the image spec."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=NAME_RE.pattern)]
    version: str
    description: str = ""
    cpus: Annotated[int, Field(ge=1, le=64)]
    memory_mib: Annotated[int, Field(ge=256)]
    data_disk_mibs: tuple[Annotated[int, Field(gt=0)], ...] = ()


def plan_for(spec: ImageSpec) -> BoxPlan:
    check_box_version(spec.version)
    return BoxPlan(name=spec.name, version=spec.version, description=spec.description, cpus=spec.cpus,
                   memory_mib=spec.memory_mib, data_disk_mibs=spec.data_disk_mibs)


def file_name(box: BoxPlan, provider: str) -> str:
    return f"{box.name}-{box.version}.{provider}.box"


def metadata(provider: str, virtual_size_bytes: int) -> dict:
    if provider == "libvirt":
        # vagrant-libvirt reads virtual_size in GiB; round up so the volume holds the whole disk
        return {"provider": "libvirt", "format": "qcow2", "virtual_size": math.ceil(virtual_size_bytes / GIB)}
    return {"provider": provider}


def vagrantfile(box: BoxPlan, provider: str) -> str:
    return templates.render(f"vagrant/Vagrantfile.{provider}.j2", box=box)


def _json(value: dict) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode()


def members(box: BoxPlan, provider: str, disk: Path, virtual_size_bytes: int, disk_size_bytes: int) -> list[Member]:
    """Archive members in order; `disk` is the qcow2 (libvirt) or the streamOptimized VMDK (virtualbox)."""
    head: list[Member] = [("metadata.json", _json(metadata(provider, virtual_size_bytes))),
                          ("Vagrantfile", vagrantfile(box, provider).encode())]
    if provider == "libvirt":
        return [*head, ("box.img", disk)]
    # box.ovf describes the boot disk only: the Vagrantfile creates and attaches the data disks
    # beside the project's .vagrant/, where `vagrant destroy` deletes them with the VM
    app = export.appliance(box, virtual_size_bytes, VMDK_MEMBER)
    return [*head, ("box.ovf", ovf.render_descriptor(app, [disk_size_bytes]).encode()), (VMDK_MEMBER, disk)]


class _HashingWriter:
    """The archive's sha256, taken while it is written: a GB-sized box is never read back."""

    def __init__(self, f):
        self._f, self.hash = f, hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        return self._f.write(data)

    def tell(self) -> int:
        return self._f.tell()


def write_box(dest: Path, items: list[Member]) -> str:
    """Write dest atomically (temp name beside it, fsync, rename); return its sha256.

    Files are streamed in chunks; members carry the first file's mtime, so equal inputs give
    equal bytes."""
    dest = Path(dest)
    files = [v for _, v in items if isinstance(v, Path)]
    mtime = int(files[0].stat().st_mtime) if files else 0
    with atomic_file(dest) as out:
        writer = _HashingWriter(out)
        with tarfile.TarFile(fileobj=writer, mode="w", format=tarfile.PAX_FORMAT,  # type: ignore[arg-type]
                             copybufsize=CHUNK) as tar:  # a write-only stream that hashes: no seek
            for name, value in items:
                info = tarfile.TarInfo(name)
                info.mtime, info.mode = mtime, 0o644
                if isinstance(value, Path):
                    info.size = value.stat().st_size
                    with open(value, "rb") as f:
                        tar.addfile(info, f)
                else:
                    info.size = len(value)
                    tar.addfile(info, io.BytesIO(value))
    return writer.hash.hexdigest()


def write_boxes(box: BoxPlan, box_qcow2: Path, box_vmdk: Path, out: Path) -> dict[str, dict]:
    """Both providers' boxes into out/; {"<provider>.box": {name, size, sha256}} for the manifest."""
    capacity = export.virtual_size(box_qcow2)
    ovf.check_stream_optimized(box_vmdk, capacity)
    files = {}
    for provider, disk in zip(PROVIDERS, (box_qcow2, box_vmdk), strict=True):
        dest = out / file_name(box, provider)
        digest = write_box(dest, members(box, provider, disk, capacity, disk.stat().st_size))
        files[f"{provider}.box"] = {"name": dest.name, "size": dest.stat().st_size, "sha256": digest}
    return files
