"""virt-v2v converts the session's `builder vm minimal` OVA for KVM: GRUB is found, the OVF has a Name."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.virt_v2v import TIMEOUT, assert_converted, convert

pytestmark = [pytest.mark.slow, pytest.mark.root,
              pytest.mark.skipif(not shutil.which("virt-v2v"), reason="virt-v2v not installed (ci/setup.sh)")]


@pytest.mark.timeout(TIMEOUT + 1800)  # the conversion's own bound, plus the session's build when it runs first
def test_virt_v2v_converts_minimal_ova(minimal_release: Path, tmp_path: Path, no_leaks):
    c = convert(minimal_release / "minimal-0.1.0.ova", tmp_path / "v2v", "minimal")
    assert_converted(c, "minimal")
