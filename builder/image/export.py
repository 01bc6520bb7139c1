"""The export stage: qcow2 (compressed), VMDK streamOptimized and an OVA that VirtualBox imports and
virt-v2v converts (the data disks inside it as empty VMDKs)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from ..atomic import place
from ..core import proc
from ..core.digests import sha256_file
from ..core.runs import Run
from ..spec import ImageSpec
from .ovf import Appliance, Disk, write_ova


def file_names(spec: ImageSpec) -> dict[str, str]:
    base = f"{spec.name}-{spec.version}"
    return {"qcow2": f"{base}.qcow2", "vmdk": f"{base}.vmdk", "ova": f"{base}.ova"}


def qcow2_argv(src: Path, dst: Path) -> list[str]:
    """zstd, not qcow2's default zlib: 3.4 s of CPU instead of 23 for the minimal image at 3 %
    more bytes. Readable by QEMU >= 5.1 (2020), so by every supported distribution's QEMU and
    libvirt, which is what opens a .qcow2 or a libvirt box."""
    return ["qemu-img", "convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd", str(src), str(dst)]


def vmdk_argv(src: Path, dst: Path) -> list[str]:
    return ["qemu-img", "convert", "-O", "vmdk", "-o", "subformat=streamOptimized", str(src), str(dst)]


def empty_vmdk_argv(dst: Path, capacity_bytes: int) -> list[str]:
    return ["qemu-img", "create", "-q", "-f", "vmdk", "-o", "subformat=streamOptimized", str(dst), str(capacity_bytes)]


def data_vmdks(spec: ImageSpec) -> list[tuple[str, int]]:
    """(member name, MiB) of the OVA's data disks, in SATA port order."""
    return [(f"{spec.name}-{spec.version}-data{i}.vmdk", mib) for i, mib in enumerate(spec.data_disk_mibs, 1)]


def convert(run: Run, *argvs: list[str]) -> None:
    """qemu-img compresses on one core per conversion: run them side by side."""
    with ThreadPoolExecutor(len(argvs)) as pool:
        for job in [pool.submit(proc.run, argv, run_ctx=run) for argv in argvs]:
            job.result()


def virtual_size(path: Path) -> int:
    info = json.loads(proc.output(["qemu-img", "info", "--output=json", str(path)]))
    return int(info["virtual-size"])


class Described(Protocol):
    """What an appliance is described from: an image spec, or a Vagrant box plan."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def cpus(self) -> int: ...
    @property
    def memory_mib(self) -> int: ...


def appliance(spec: Described, capacity: int, vmdk: str, data: Sequence[tuple[str, int]] = ()) -> Appliance:
    """`data`: (member name, MiB) of each empty data disk, in SATA port order."""
    return Appliance(
        name=spec.name,
        version=spec.version,
        description=spec.description,
        cpus=spec.cpus,
        memory_mib=spec.memory_mib,
        disk=Disk(file=vmdk, capacity_bytes=capacity),
        data_disks=tuple(Disk(file=name, capacity_bytes=mib << 20) for name, mib in data),
    )


# The convert stage's files: the provisioned image in the published formats, under names of no
# version (every version exported from the same image reuses them), with their digests.
CONVERTED = {"qcow2": "image.qcow2", "vmdk": "image.vmdk"}
DIGESTS = "digests.json"


def convert_image(provisioned: Path, out: Path, run: Run) -> None:
    qcow2, vmdk = (out / CONVERTED[k] for k in ("qcow2", "vmdk"))
    convert(run, qcow2_argv(provisioned, qcow2), vmdk_argv(provisioned, vmdk))
    with ThreadPoolExecutor(2) as pool:
        digests = dict(zip(CONVERTED, pool.map(sha256_file, (qcow2, vmdk)), strict=True))
    (out / DIGESTS).write_text(json.dumps(digests, indent=2))


def export(spec: ImageSpec, converted: Path, out: Path, run: Run) -> dict[str, dict]:
    """The convert stage's files named for spec's version in out/ (hard links), and the OVA around
    the VMDK; return {format: {name, size, sha256}}."""
    names = file_names(spec)
    digests = json.loads((converted / DIGESTS).read_text())
    for fmt, name in CONVERTED.items():
        place(converted / name, out / names[fmt])
    vmdk, ova = out / names["vmdk"], out / names["ova"]
    data = data_vmdks(spec)
    data_dir = run.dir / "export-data-disks"  # only inside the OVA: not published on their own
    data_dir.mkdir(parents=True, exist_ok=True)
    for name, mib in data:
        proc.run(empty_vmdk_argv(data_dir / name, mib << 20), run_ctx=run)
    write_ova(ova, appliance(spec, virtual_size(converted / CONVERTED["qcow2"]), vmdk.name, data), vmdk,
              [data_dir / name for name, _ in data])
    digests["ova"] = sha256_file(ova)
    return {fmt: {"name": name, "size": (out / name).stat().st_size, "sha256": digests[fmt]}
            for fmt, name in names.items()}
