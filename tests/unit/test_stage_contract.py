"""The stage contract: keys follow every input and the stage's own code; the archive state and the
export version are volatile (in the key, not in the recipe behind content_hash); a miss says what
changed; release notes list package changes since the previous version."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from builder import build, templates
from builder.build import CODE, METHODS, Build, Outcome, Stage, method_digest
from builder.core import proc
from builder.core.errors import BuildFailed
from builder.core.runs import Run
from builder.image.cache import Cache, changes, summarise
from builder.publish.manifest import Manifest
from builder.spec import load_image
from tests.repo import IMAGES


def bare_build(tmp_path: Path, archive: str) -> Build:
    """A Build with only what stage_keys needs (no host probing)."""
    b = Build.__new__(Build)
    b.spec = load_image("minimal", IMAGES)
    b.out = Outcome(b.spec, "tcg", archive={"bookworm": archive})
    return b


def rootfs_stage(b: Build) -> Stage:
    return Stage("rootfs", "x", {"packages": ["a"], **{f"archive.{k}": v for k, v in b.out.archive.items()}},
                 volatile=frozenset(f"archive.{k}" for k in b.out.archive))


def test_archive_state_changes_the_key_but_not_the_recipe(tmp_path):
    old, new = bare_build(tmp_path, "sha256:old"), bare_build(tmp_path, "sha256:new")
    k_old, r_old, _ = old.stage_keys(rootfs_stage(old))
    k_new, r_new, _ = new.stage_keys(rootfs_stage(new))
    assert k_old != k_new and r_old == r_new


def test_later_stages_chain_keys_and_recipes(tmp_path):
    keys = {}
    for archive in ("sha256:old", "sha256:new"):
        b = bare_build(tmp_path, archive)
        b.out.keys["rootfs"], b.out.recipes["rootfs"] = b.stage_keys(rootfs_stage(b))[:2]
        keys[archive] = b.stage_keys(Stage("disk", "x", {"disk_mib": 2048}, after=("rootfs",)))[:2]
    assert keys["sha256:old"][0] != keys["sha256:new"][0]  # the disk is rebuilt on a new archive
    assert keys["sha256:old"][1] == keys["sha256:new"][1]  # but its recipe is the same


def test_every_stage_hashes_its_own_code():
    assert set(CODE) == set(METHODS)
    assert all(len(method_digest(m)) == 16 for m in METHODS.values())
    assert method_digest(METHODS["boot"]) != method_digest(METHODS["fabric"])


def test_every_code_glob_names_files():
    """A glob left behind by a move would match nothing, and its stage would stop following the code."""
    package = Path(build.__file__).parent
    assert [(st, g) for st, globs in CODE.items() for g in globs if not any(package.glob(g))] == []


def test_a_miss_says_which_inputs_changed(tmp_path):
    cache = Cache(tmp_path)
    tmp = cache.staging("rootfs", "minimal", "abc123")
    cache.commit(tmp, "rootfs", "minimal", "k1", summarise({"mmdebstrap": "1.3.5", "customize": "x" * 500}))
    old = cache.latest_inputs("rootfs", "minimal")
    assert old is not None
    assert changes(old, summarise({"mmdebstrap": "1.3.6", "customize": "y" * 500})) == [
        "customize changed", "mmdebstrap 1.3.5 → 1.3.6"]


def test_release_notes_list_package_changes():
    m = Manifest(name="x", version="1.0.0.1", input_hash="a", git_revision=None, built_at="t", accelerator="tcg",
                 tools={}, packages={}, files=[], stages={}, tests={}, previous_version="1.0.0",
                 package_changes={"added": {"new": "1"}, "removed": {"old": "2"},
                                  "upgraded": {"ceph": ["16.2.11", "16.2.15"]}, "downgraded": {}})
    text = templates.render("publish/release.md.j2", m=m)
    assert "Packages since 1.0.0:" in text and "- upgraded ceph 16.2.11 → 16.2.15" in text
    assert "- added new 1" in text and "- removed old (was 2)" in text


def test_alongside_runs_its_stages_while_the_body_runs(tmp_path):
    b = bare_build(tmp_path, "sha256:a")
    started, order = threading.Event(), []

    def box():
        started.set()
        order.append("box")

    with b.alongside(box, lambda: order.append("convert")):
        assert started.wait(10)  # the worker is at work before the body ends
        order.append("body")
    assert order.index("box") < order.index("convert")


def test_alongside_raises_the_workers_failure_after_the_body(tmp_path):
    b = bare_build(tmp_path, "sha256:a")
    body_done = []

    def broken():
        raise BuildFailed("qemu-img convert failed")

    with pytest.raises(BuildFailed, match="qemu-img"), b.alongside(broken):
        body_done.append(True)
    assert body_done


def test_a_failed_body_stops_the_worker_after_its_stage_and_wins(tmp_path):
    b = bare_build(tmp_path, "sha256:a")
    in_first, release, ran = threading.Event(), threading.Event(), []

    def first():
        in_first.set()
        release.wait(10)
        ran.append("first")

    def failing_body():
        with b.alongside(first, lambda: ran.append("second")):
            assert in_first.wait(10)
            threading.Timer(0.2, release.set).start()
            raise BuildFailed("boot test failed")

    with pytest.raises(BuildFailed, match="boot test"):
        failing_body()
    assert ran == ["first"]  # waited for; the next one never started


def test_alongside_stages_and_their_processes_run_at_the_lowest_priority(tmp_path):
    b = bare_build(tmp_path, "sha256:a")
    seen, mine = {}, os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def probe():
        seen["thread"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        # a child in a session (and so an autogroup) of its own: its nice and its group's
        seen["child"] = proc.run(["sh", "-c", "cut -d' ' -f19 /proc/self/stat; cat /proc/self/autogroup"]).output

    with b.alongside(probe):
        pass
    assert seen["thread"] == build.BACKGROUND_NICE
    assert seen["child"].split()[0] == str(build.BACKGROUND_NICE)
    if Path("/proc/self/autogroup").exists():
        assert seen["child"].rstrip().endswith(f"nice {build.BACKGROUND_NICE}")
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine  # the caller keeps its own


def test_a_signal_interrupts_the_worker_which_unwinds_before_the_teardown(tmp_path):
    """SIGTERM during the tests: the worker's tool is killed at once, it creates nothing more,
    and it has unwound before the Run tears down (no object made behind the teardown's back)."""
    b = bare_build(tmp_path, "sha256:a")
    unwound, later = threading.Event(), []

    def worker_stage():
        try:
            proc.run(["sleep", "60"], run_ctx=b.run)
        finally:
            unwound.set()

    with Run(root=tmp_path / "runs") as b.run:
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt), b.alongside(worker_stage, lambda: later.append(1)):
            time.sleep(0.5)
            raise KeyboardInterrupt("signal 15")
        assert unwound.is_set() and time.monotonic() - t0 < 10
        with pytest.raises(BuildFailed, match="ending"):
            b.run.record("path", path=str(tmp_path / "x"))
    assert not later
