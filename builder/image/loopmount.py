"""A filesystem inside a raw disk image, mounted through an offset loop device and journalled.

`losetup -P` makes no partition nodes on this host, so a partition is reached by offset and size
instead. The loop device and the mount (and /dev bound into it, for a chroot) are recorded in the
run before they exist, so an error, Ctrl-C or a kill followed by the next run's reap unmounts and
detaches them. The disk stage mounts its fresh root this way for extlinux, the box stage the
provisioned root for its chroot.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..core import proc
from ..core.runs import Run


def losetup_argv(raw: Path, offset: int, size: int) -> list[str]:
    return ["losetup", "--find", "--show", "-o", str(offset), "--sizelimit", str(size), str(raw)]


@contextmanager
def mounted(run: Run, raw: Path, offset: int, size: int, mnt: Path, *, bind_dev: bool = False) -> Iterator[Path]:
    """`mnt` holding the filesystem at `offset` (`size` bytes) of `raw`; with `bind_dev`, the host's
    /dev bound at mnt/dev. All of it undone on leaving, innermost first."""
    mnt.mkdir(exist_ok=True)
    loop_dev = proc.output(losetup_argv(raw, offset, size)).strip()
    recs = [run.record("loop", device=loop_dev), run.record("mount", path=str(mnt))]
    try:
        proc.run(["mount", loop_dev, str(mnt)])
        if bind_dev:
            recs.append(run.record("mount", path=str(mnt / "dev")))
            proc.run(["mount", "--bind", "/dev", str(mnt / "dev")])
        yield mnt
    finally:
        for rec in reversed(recs):
            run.release(rec)
