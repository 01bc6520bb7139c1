"""virt-v2v converts every published OVA for KVM: GRUB is found, the OVF has a Name, and the
ceph-training data disks (empty VMDKs in the package) come out as disks of the converted guest."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from builder.core.runs import Run
from tests.virt_v2v import TIMEOUT, assert_converted, convert

pytestmark = [pytest.mark.slow, pytest.mark.root,
              pytest.mark.skipif(not shutil.which("virt-v2v"), reason="virt-v2v not installed (ci/setup.sh)")]


# the conversion's own bound, plus the session's builds when they run first
@pytest.mark.timeout(TIMEOUT + 3600)
def test_virt_v2v_converts_every_published_ova(minimal_release: Path, ceph_release: Path, tmp_path: Path, no_leaks):
    """Side by side: each appliance spends most of its time in the guest's update-initramfs, about
    one core of TCG, so two conversions on this 2-core host take little more than one."""
    jobs = {"minimal": (minimal_release, 0), "ceph-training": (ceph_release, 3)}
    # the Run closes first: on a timeout or ^C its teardown kills both virt-v2v sessions, so the
    # pool's wait for its threads returns
    with ThreadPoolExecutor(len(jobs)) as pool, Run() as run:
        done = {name: pool.submit(convert, published / f"{name}-{published.name}.ova", tmp_path / name, name, run)
                for name, (published, _) in jobs.items()}
        results = {name: job.result() for name, job in done.items()}
    for name, (_, data_disks) in jobs.items():
        assert_converted(results[name], name, data_disks)
