"""virt-v2v converts every published OVA for KVM: GRUB is found, the OVF has a Name, and the
ceph-training data disks (empty VMDKs in the package) come out as disks of the converted guest."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.virt_v2v import TIMEOUT, assert_converted, convert

pytestmark = [pytest.mark.slow, pytest.mark.root,
              pytest.mark.skipif(not shutil.which("virt-v2v"), reason="virt-v2v not installed (ci/setup.sh)")]


@pytest.mark.timeout(TIMEOUT + 1800)  # the conversion's own bound, plus the session's build when it runs first
@pytest.mark.parametrize("release, name, data_disks", [("minimal_release", "minimal", 0),
                                                       ("ceph_release", "ceph-training", 3)])
def test_virt_v2v_converts_published_ova(release: str, name: str, data_disks: int, request, tmp_path: Path,
                                         no_leaks):
    published: Path = request.getfixturevalue(release)
    c = convert(published / f"{name}-{published.name}.ova", tmp_path / "v2v", name)
    assert_converted(c, name, data_disks)
