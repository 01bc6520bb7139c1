#!/usr/bin/env python3
"""Benchmark the rootfs stage's .deb cache: mmdebstrap with an empty cache, then with the cache
the first run filled (what a cold build of a changed recipe pays), against raw mmdebstrap.

    .venv/bin/python bench/rootfs.py [IMAGE]      # default: minimal; needs root and the mirror

Prints wall times and ratios (figures vary with the mirror and the machine's load; not asserted).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.core import proc
from builder.image import debcache, rootfs
from builder.project import find
from builder.spec import load_image


def timed(argv: list[str]) -> float:
    t0 = time.monotonic()
    proc.run(argv, timeout=3600)
    return time.monotonic() - t0


def main() -> None:
    spec = load_image(sys.argv[1] if len(sys.argv) > 1 else "minimal", find().images_dir)
    with tempfile.TemporaryDirectory(prefix="bench-rootfs-", dir="/var/tmp") as d:
        base = Path(d)
        hook = base / "customize.sh"
        hook.write_text(rootfs.customize_script(spec))
        cached = base / "debs"
        cached.mkdir()
        times = {}
        for run in ("raw", "empty-cache", "warm-cache"):
            target, fresh = base / run, base / f"{run}-debs"
            fresh.mkdir()
            debs = None if run == "raw" else (cached, fresh)
            times[run] = timed(rootfs.mmdebstrap_argv(spec, target, hook, debs=debs))
            if debs:
                debcache.keep(fresh, cached)
            left = list((target / "var/cache/apt/archives").glob("*.deb"))
            assert not left, f"{run}: {len(left)} debs left in the image"
            shutil.rmtree(target)
        n = len(list(cached.iterdir()))
    print(f"rootfs {spec.name}: raw mmdebstrap {times['raw']:.1f} s, with an empty .deb cache "
          f"{times['empty-cache']:.1f} s ({times['empty-cache'] / times['raw']:.2f}x), with the warm cache "
          f"{times['warm-cache']:.1f} s ({times['warm-cache'] / times['raw']:.2f}x); {n} debs cached")


if __name__ == "__main__":
    main()
