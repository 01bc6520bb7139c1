"""Downloaded .debs kept across rootfs builds, so a cold build of a new recipe pays for the
packages it has not seen before and not for the rest.

mmdebstrap's own recipe (its man page, "sync-in and sync-out special hooks"): the cached files
are copied into the chroot's /var/cache/apt/archives before the first download, and whatever is
there after the last install is copied out again. apt verifies every file it finds there
against the archive's index (name, version, size and sha256) and downloads only what is missing
or differs, so a stale or foreign file can never enter an image: the cache is not an input of
the rootfs key. mmdebstrap empties the archives directory of the chroot before it finishes.

One directory per distribution, shared by every image and concurrent build: files land by
rename, and files no build has used for `MAX_AGE_DAYS` (or beyond `MAX_BYTES`, oldest first)
are deleted.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

MAX_AGE_DAYS = 14
MAX_BYTES = 6 << 30
ARCHIVES = "/var/cache/apt/archives"
# mmdebstrap splits a special hook's arguments on white space and hands them to tar: only plain paths
SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/+-]+$")
DEB = re.compile(r"^[A-Za-z0-9.+~%_:-]+\.deb$")


def usable(*dirs: Path) -> bool:
    return all(SAFE_PATH.fullmatch(str(d)) for d in dirs)


def mmdebstrap_options(cached: Path, fresh: Path) -> list[str]:
    """Fill the chroot's archives from `cached`; copy the debs it used into `fresh` at the end."""
    return [
        "--skip=essential/unlink",  # keep the essential set's debs for sync-out too
        f'--setup-hook=mkdir -p "$1"{ARCHIVES}/',
        f"--setup-hook=sync-in {cached} {ARCHIVES}/",
        f"--customize-hook=sync-out {ARCHIVES} {fresh}",
    ]


def keep(fresh: Path, cached: Path, now: float | None = None) -> tuple[int, int]:
    """Move the debs a build used from `fresh` into `cached` (by rename), mark them used, and
    prune; returns (files kept from this build, files pruned)."""
    now = time.time() if now is None else now
    kept = 0
    for f in fresh.iterdir():
        if f.is_file() and DEB.fullmatch(f.name):
            os.replace(f, cached / f.name)
            os.utime(cached / f.name, (now, now))
            kept += 1
    return kept, prune(cached, now)


def prune(cached: Path, now: float) -> int:
    files = sorted((f for f in cached.iterdir() if f.is_file()), key=lambda f: f.stat().st_mtime, reverse=True)
    total, pruned = 0, 0
    for f in files:
        st = f.stat()
        total += st.st_size
        if now - st.st_mtime > MAX_AGE_DAYS * 86400 or total > MAX_BYTES or not DEB.fullmatch(f.name):
            f.unlink(missing_ok=True)
            pruned += 1
    return pruned
