"""The rootfs stage's .deb cache: mmdebstrap's sync-in/sync-out recipe, files kept by rename,
unused ones pruned; a path mmdebstrap's hooks cannot take disables it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from builder.image import debcache, rootfs
from builder.spec import load_image
from tests.goldens import assert_golden
from tests.repo import IMAGES

SPEC = load_image("minimal", IMAGES)


def test_mmdebstrap_argv_with_the_cache():
    argv = rootfs.mmdebstrap_argv(SPEC, Path("/c/root"), Path("/c/hook.sh"), debs=(Path("/c/debs"), Path("/c/new")))
    assert_golden("image/mmdebstrap-debcache.argv.json", json.dumps(argv, indent=1) + "\n")
    # the debs are copied out before the image's own customize hook (which runs apt-get clean)
    assert argv.index("--customize-hook=sync-out /var/cache/apt/archives /c/new") < argv.index(
        '--customize-hook=sh /c/hook.sh "$1"')


def test_paths_with_blanks_or_shell_characters_are_not_used():
    assert debcache.usable(Path("/root/.cache/builder/debs/bookworm"), Path("/x/y.partial/debs"))
    assert not debcache.usable(Path("/home/a b/.cache/debs"))
    assert not debcache.usable(Path("relative/debs"))
    assert not debcache.usable(Path("/tmp/$(reboot)"))


def test_keep_moves_this_builds_debs_and_prunes_old_ones(tmp_path):
    cached, fresh = tmp_path / "debs", tmp_path / "fresh"
    cached.mkdir()
    fresh.mkdir()
    now = 1_800_000_000.0
    old, recent = cached / "old_1.0_amd64.deb", cached / "recent_2.0_amd64.deb"
    for f, age_days in ((old, debcache.MAX_AGE_DAYS + 1), (recent, 1)):
        f.write_bytes(b"x")
        os.utime(f, (now - age_days * 86400, now - age_days * 86400))
    (cached / "lock").write_text("")  # anything that is not a deb goes
    (fresh / "new_3.0_amd64.deb").write_bytes(b"y")
    (fresh / "partial").mkdir()  # apt's partial/ directory is not a deb
    kept, pruned = debcache.keep(fresh, cached, now=now)
    assert (kept, pruned) == (1, 2)
    assert sorted(p.name for p in cached.iterdir()) == ["new_3.0_amd64.deb", "recent_2.0_amd64.deb"]
    assert (cached / "new_3.0_amd64.deb").stat().st_mtime == now


def test_prune_keeps_the_newest_within_the_size_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(debcache, "MAX_BYTES", 10)
    for i in range(4):
        f = tmp_path / f"p{i}_1_amd64.deb"
        f.write_bytes(b"12345")
        os.utime(f, (1000 + i, 1000 + i))
    assert debcache.prune(tmp_path, now=2000) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p2_1_amd64.deb", "p3_1_amd64.deb"]
