#!/usr/bin/env python3
"""Benchmark `builder vm`: cold build, toolkit overhead against the raw tools, cache-hit rebuild.

    .venv/bin/python bench/vm.py                 # minimal: cold (fresh cache) + warm rebuild
    .venv/bin/python bench/vm.py ceph-training   # the same for the Ceph image (several minutes)

Overhead is the wall time of `builder vm` not covered by any external tool (mmdebstrap, packer
and its QEMU, the boot-test QEMU, qemu-img, mkfs, ...): what builder itself costs. Figures are
printed, not asserted: this machine's speed varies.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.cli import main
from builder.core import proc


def timed_vm(name: str, cache: Path, out: Path, *extra: str) -> tuple[float, float]:
    t0 = time.monotonic()
    rc = main(["vm", name, "--output", str(out), "--cache-dir", str(cache), "--quiet", *extra])
    wall = time.monotonic() - t0
    if rc != 0:
        sys.exit(f"builder vm {name} failed (exit {rc})")
    return wall, proc.tool_seconds(since=t0)


def main_() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "minimal"
    with tempfile.TemporaryDirectory(prefix="bench-vm-") as d:
        cache, out = Path(d) / "cache", Path(d) / "out"
        cold, cold_tools = timed_vm(name, cache, out)
        warm, warm_tools = timed_vm(name, cache, out, "--force")
    over = cold - cold_tools
    print(f"image                      {name}")
    print(f"cold builder vm            {cold:7.1f} s   (target for minimal: <= 180 s)")
    print(f"  inside external tools    {cold_tools:7.1f} s")
    print(f"  toolkit overhead         {over:7.1f} s   ratio {over / cold:6.2%} of wall (target <= 5 %)")
    print(f"  builder / raw tools      {cold / cold_tools:7.3f}x")
    print(f"cache-hit rebuild          {warm:7.1f} s   (target <= 5 s; tools {warm_tools:.1f} s)")
    print(f"  rebuild / cold           {warm / cold:7.3f}x")


if __name__ == "__main__":
    main_()
