"""Throughput and memory of write_ova + inspect on a synthetic streamOptimized VMDK.

Usage: .venv/bin/python bench/ova_pack.py [SIZE_MIB]   (default 512)
Prints MiB/s for packing (one read + SHA256 + tar write) and for inspect (SHA256 verify), and the
peak RSS, which must stay flat in SIZE since the disk is streamed, never held whole.
"""

from __future__ import annotations

import os
import resource
import struct
import sys
import tempfile
import time
from pathlib import Path

from builder.image import ova
from builder.image.ovf import Appliance, Disk, write_ova


def main() -> None:
    size_mib = int(sys.argv[1]) if len(sys.argv) > 1 else 512
    with tempfile.TemporaryDirectory() as d:
        vmdk = Path(d) / "disk.vmdk"
        with open(vmdk, "wb") as f:
            f.write((b"KDMV" + struct.pack("<IIQ", 3, 0x30003, (size_mib << 20) // 512)).ljust(512, b"\0"))
            block = os.urandom(1 << 20)
            for _ in range(size_mib):
                f.write(block)
        app = Appliance(name="bench", version="0.0.1", disk=Disk(file="bench.vmdk", capacity_bytes=size_mib << 20))
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t = time.perf_counter()
        dest = write_ova(Path(d) / "bench.ova", app, vmdk)
        pack = time.perf_counter() - t
        t = time.perf_counter()
        ova.inspect(dest)
        check = time.perf_counter() - t
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"disk {size_mib} MiB")
    print(f"write_ova   {pack:6.2f} s  {size_mib / pack:7.1f} MiB/s")
    print(f"inspect     {check:6.2f} s  {size_mib / check:7.1f} MiB/s (SHA256 verify)")
    print(f"peak RSS    {rss1 / 1024:6.1f} MiB (before packing {rss0 / 1024:.1f} MiB)")


if __name__ == "__main__":
    main()
