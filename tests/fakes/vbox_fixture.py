"""The VBoxManage stand-in (tests/fakes/vboxmanage) on PATH with fresh state, for any test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FAKE = Path(__file__).resolve().parent / "vboxmanage"


@pytest.fixture
def vbox(tmp_path, monkeypatch) -> Path:
    """The stand-in on PATH as VBoxManage with fresh state; returns the state directory."""
    bindir, state = tmp_path / "bin", tmp_path / "vbox"
    bindir.mkdir()
    state.mkdir()
    (bindir / "VBoxManage").symlink_to(FAKE)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_VBOX_STATE", str(state))
    (state / "version").write_text("7.0.20r163906\n")
    return state
