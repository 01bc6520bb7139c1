"""The KVM probe needs nothing from the host but QEMU, and remembers only answers it measured."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from builder import host


@pytest.fixture
def fake_qemu(tmp_path: Path, monkeypatch) -> Callable[[str], None]:
    """A host with a usable /dev/kvm, the probe's state under tmp_path, and a stand-in QEMU
    (first on PATH, the system's tools after it) whose shell body the test gives."""
    monkeypatch.setattr(host, "STATE", tmp_path / "state.json")
    monkeypatch.setattr(host.os.path, "exists", lambda p: True)
    monkeypatch.setattr(host.os, "access", lambda p, m: True)

    def install(body: str) -> None:
        d = tmp_path / "bin"
        d.mkdir(exist_ok=True)
        q = d / "qemu-system-x86_64"
        q.write_text("#!/bin/sh\n" + body + "\n")
        q.chmod(0o755)
        monkeypatch.setenv("PATH", f"{d}:/usr/bin:/bin")

    return install


@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="needs qemu-system-x86_64")
def test_boot_sector_guest_runs_under_tcg_without_any_kernel():
    r = host.boot_probe("tcg")
    assert r.usable and r.measured, r.reason


def test_unmeasurable_answer_is_not_remembered(tmp_path, fake_qemu):
    fake_qemu("echo 'qemu: cannot start' >&2; exit 1")
    r = host.kvm_probe(refresh=True)
    assert not r.usable and not r.measured and "says nothing about KVM" in r.reason
    assert not (tmp_path / "state.json").exists()


def test_hang_with_a_working_tcg_control_is_remembered(fake_qemu, monkeypatch):
    monkeypatch.setattr(host, "PROBE_TIMEOUT", 1.0)
    # "kvm" hangs, "tcg" runs the guest: exit status (0x2a << 1) | 1
    fake_qemu('case "$*" in *"-accel kvm"*) exec sleep 30;; *) exit 85;; esac')
    r = host.boot_probe("kvm", timeout=1.0)
    assert not r.usable and r.measured and "hangs" in r.reason
    assert host.boot_probe("tcg").usable


def test_kvm_far_slower_than_tcg_is_not_usable(tmp_path, fake_qemu):
    """Seen on a host: the boot sector ran under KVM in 5.9 s against TCG's 0.11 s, and a Debian
    kernel then stalled for minutes after "Probing EDD"; the old probe called that usable."""
    fake_qemu('case "$*" in *"-accel kvm"*) sleep 2; exit 85;; *) exit 85;; esac')
    r = host.kvm_probe(refresh=True)
    assert not r.usable and r.measured and "slower than TCG" in r.reason
    assert (tmp_path / "state.json").exists()


def test_kvm_as_fast_as_tcg_is_usable(fake_qemu):
    fake_qemu("exit 85")
    assert host.kvm_probe(refresh=True).usable


@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="needs qemu-system-x86_64")
def test_probe_guest_reaches_long_mode_under_tcg(tmp_path):
    """The guest exits through the debug port only from its 64-bit code: a probe that passes has
    run the mode switches a kernel makes. Clearing EFER.LME (`or eax, 0x100` -> 0) makes the far
    jump land in a 64-bit segment without long mode, and QEMU must not report the exit code."""
    assert host.boot_probe("tcg").usable
    broken = bytearray(host.BOOT_SECTOR)
    at = broken.index(bytes.fromhex("660d00010000"))  # or eax, 0x100 (EFER.LME)
    broken[at + 2:at + 6] = bytes(4)
    image = tmp_path / "broken.img"
    image.write_bytes(bytes(broken))
    p = subprocess.run([*host.probe_argv("tcg", image), "-no-reboot"], capture_output=True, timeout=20)
    assert p.returncode != host.QEMU_STATUS
