"""Shared pieces of the OVF/OVA tests: a sample appliance and a VMDK header that passes the checks."""

from __future__ import annotations

import os
import struct
from pathlib import Path

from builder.image.ovf import Appliance, Disk

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden" / "ovf"
FIXTURES = REPO / "tests" / "fixtures" / "ovf"


def schema_path() -> Path:
    """DMTF OVF 1.1 schema: $BUILDER_OVF_SCHEMA, else ../shared/ovf-schema beside the repo (as in CI)."""
    env = os.environ.get("BUILDER_OVF_SCHEMA")
    return Path(env) if env else REPO.parent / "shared" / "ovf-schema" / "dsp8023_1.1.1.xsd"


def sample_appliance(capacity_bytes: int = 8 << 30, data_disks: int = 0) -> Appliance:
    return Appliance(
        name="ceph-training",
        version="1.2.0",
        description="Ceph training VM: three OSD disks, multipath iSCSI",
        product="Ceph training",
        vendor="Infrastructure labs",
        product_url="https://labs.example.org/ceph",
        cpus=2,
        memory_mib=2048,
        disk=Disk(file="ceph-training-1.2.0-disk001.vmdk", capacity_bytes=capacity_bytes, populated_bytes=1 << 30),
        data_disks=tuple(Disk(file=f"ceph-training-1.2.0-disk{i:03d}.vmdk", capacity_bytes=20 << 30)
                         for i in range(2, data_disks + 2)),
    )


def fake_stream_vmdk(path: Path, capacity_bytes: int, payload: bytes = b"") -> Path:
    """A sparse-extent header as qemu-img writes for subformat=streamOptimized (version 3,
    flags newline-test|compressed|markers), followed by arbitrary bytes."""
    header = b"KDMV" + struct.pack("<IIQ", 3, 0x30003, capacity_bytes // 512)
    path.write_bytes(header.ljust(512, b"\0") + payload)
    return path
