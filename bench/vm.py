#!/usr/bin/env python3
"""Benchmark `builder vm`: cold build, toolkit overhead against the raw tools, cache-hit rebuild.

    .venv/bin/python bench/vm.py                 # minimal: cold (fresh cache) + warm rebuild
    .venv/bin/python bench/vm.py ceph-training   # the same for the Ceph image (several minutes)

Cold means an empty stage cache; the downloaded .debs (`<cache>/debs`, which never change an
output) are hard-linked in from the default cache when it has them, as on any machine that has
built once (`--no-debs` measures the first build on a machine, downloads included).

Overhead is the wall time of `builder vm` not covered by any external tool (mmdebstrap, packer
and its QEMU, the boot-test QEMU, qemu-img, mkfs, ...): what builder itself costs. Figures are
printed, not asserted: this machine's speed varies.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.cli import main
from builder.core import proc
from builder.image.cache import DEFAULT_ROOT


def timed_vm(name: str, cache: Path, out: Path, *extra: str) -> tuple[float, float]:
    t0 = time.monotonic()
    rc = main(["vm", name, "--output", str(out), "--cache-dir", str(cache), "--quiet", *extra])
    wall = time.monotonic() - t0
    if rc != 0:
        sys.exit(f"builder vm {name} failed (exit {rc})")
    return wall, proc.tool_seconds(since=t0)


def main_() -> None:
    args = [a for a in sys.argv[1:] if a != "--no-debs"]
    name = args[0] if args else "minimal"
    with tempfile.TemporaryDirectory(prefix="bench-vm-", dir="/var/tmp") as d:
        cache, out = Path(d) / "cache", Path(d) / "out"
        debs = DEFAULT_ROOT / "debs"
        if "--no-debs" not in sys.argv and debs.is_dir():
            shutil.copytree(debs, cache / "debs", copy_function=os.link)
            print(f"(.debs linked in from {debs})")
        cold, cold_tools = timed_vm(name, cache, out)
        manifest = json.loads(next(out.glob(f"{name}/*/manifest.json")).read_text())
        # the same command again: every stage a cache hit, the published version current
        # (--force would rerun every stage since stages and verdicts have their own keys)
        warm, warm_tools = timed_vm(name, cache, out)
    over = cold - cold_tools
    print(f"image                      {name}")
    print(f"cold builder vm            {cold:7.1f} s   (target for minimal: <= 150 s)")
    print(f"  inside external tools    {cold_tools:7.1f} s")
    print(f"  toolkit overhead         {over:7.1f} s   ratio {over / cold:6.2%} of wall (target <= 5 %)")
    print(f"  builder / raw tools      {cold / cold_tools:7.3f}x")
    print("  stages                   " + ", ".join(f"{k} {v:.0f} s" for k, v in manifest["stages"].items()))
    print(f"cache-hit rebuild          {warm:7.1f} s   (target <= 5 s; tools {warm_tools:.1f} s)")
    print(f"  rebuild / cold           {warm / cold:7.3f}x")


if __name__ == "__main__":
    main_()
