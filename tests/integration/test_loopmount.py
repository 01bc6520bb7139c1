"""The journalled loop mount the disk and box stages share, on a small real disk image: the
filesystem at an offset is writable, /dev is bound for a chroot, and leaving (also by an error)
unmounts and detaches everything. Seconds, no guest."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from builder.core.runs import Run
from builder.image import loopmount

pytestmark = pytest.mark.root

OFFSET, SIZE = 1 << 20, 8 << 20


def _disk(tmp_path: Path) -> Path:
    raw = tmp_path / "disk.raw"
    with open(raw, "wb") as f:
        f.truncate(OFFSET + SIZE)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-E", f"offset={OFFSET}", str(raw), f"{SIZE // 1024}k"], check=True)
    return raw


def _mounted(path: Path) -> bool:
    return any(line.split()[1] == str(path) for line in Path("/proc/self/mounts").read_text().splitlines())


def test_mounts_the_filesystem_at_the_offset_and_undoes_it(tmp_path, no_leaks):
    raw = _disk(tmp_path)
    with Run() as run:
        with loopmount.mounted(run, raw, OFFSET, SIZE, run.dir / "mnt") as mnt:
            assert _mounted(mnt)
            (mnt / "dev").mkdir()  # as in an image: the chroot's /dev is bound onto it
            (mnt / "hello").write_text("x")
        assert not _mounted(mnt)
        with pytest.raises(RuntimeError), loopmount.mounted(run, raw, OFFSET, SIZE, mnt, bind_dev=True):
            assert (mnt / "hello").read_text() == "x" and (mnt / "dev" / "null").exists()
            raise RuntimeError("a stage fails inside")
        assert not _mounted(mnt) and not _mounted(mnt / "dev")
