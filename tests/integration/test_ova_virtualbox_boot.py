"""`builder ova test` on the published minimal OVA against the VBoxManage stand-in, which imports
the package and really boots the imported disk with QEMU TCG: the suite's own logic (import,
hardware check, serial file, NAT forward, SSH smoke checks, poweroff, delete) meets a live guest."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from builder.cli import main
from builder.core import proc, runs
from tests.fakes.vbox_fixture import vbox  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parent.parent.parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="the minimal OVA is built as root (loop devices, mmdebstrap)"),
    pytest.mark.skipif(not shutil.which("qemu-system-x86_64"), reason="QEMU not installed"),
    pytest.mark.skipif(not shutil.which("sshpass"), reason="sshpass not installed (ci/setup.sh installs it)"),
]



def registered(state: Path) -> list[str]:
    return sorted(p.stem for p in (state / "vms").glob("*.json"))


def suite_of(capsys) -> dict:
    return json.loads(capsys.readouterr().out)["virtualbox"]


def test_minimal_ova_passes_in_virtualbox_and_leaves_nothing(minimal_release, vbox, tmp_path, capsys, no_leaks):
    work = tmp_path / "work"
    rc = main(["ova", "test", str(minimal_release / "minimal-0.1.0.ova"), "--workdir", str(work), "--json"])
    suite = suite_of(capsys)
    failed = [c for c in suite["cases"] if not c["passed"]]
    assert rc == 0 and suite["passed"] and not failed, failed
    names = [c["name"] for c in suite["cases"]]
    assert names == ["import", "showvminfo", "cpus", "memory", "disks", "nic1-nat", "serial-port", "nat-forward",
                     "serial-and-ssh-forward", "start-headless", "ssh-answers", "systemd-state", "network-up",
                     "motd-names-version", "poweroff", "unregister-delete", "nothing-left"]
    evidence = {c["name"]: c["evidence"] for c in suite["cases"]}
    assert "Successfully imported the appliance." in evidence["import"]
    assert "minimal 0.1.0" in evidence["motd-names-version"]
    assert registered(vbox) == [] and list(work.iterdir()) == []


def test_a_wrong_memory_size_fails_the_check_and_still_cleans_up(minimal_release, vbox, tmp_path, capsys, no_leaks):
    (vbox / "report-memory").write_text("512\n")
    work = tmp_path / "work"
    rc = main(["ova", "test", str(minimal_release / "minimal-0.1.0.ova"), "--workdir", str(work), "--json"])
    suite = suite_of(capsys)
    assert rc == 1 and not suite["passed"]
    failed = {c["name"]: c["evidence"] for c in suite["cases"] if not c["passed"]}
    assert list(failed) == ["memory"] and "OVF 1024 MiB, VirtualBox memory=512" in failed["memory"]
    assert registered(vbox) == [] and list(work.iterdir()) == []


def test_after_a_kill_the_next_run_removes_the_vm(minimal_release, vbox, tmp_path, no_leaks):
    work = tmp_path / "work"
    p = subprocess.Popen([sys.executable, "-m", "builder.cli", "ova", "test", str(minimal_release / "minimal-0.1.0.ova"),
                          "--workdir", str(work)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and p.poll() is None:  # killed once the VM runs
            vms = list((vbox / "vms").glob("*.json"))
            if vms and json.loads(vms[0].read_text()).get("pid"):
                break
            time.sleep(0.5)
        assert p.poll() is None, "the run ended before its VM was started"
        pid = json.loads(vms[0].read_text())["pid"]
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    assert registered(vbox) and any(work.iterdir())  # the kill left them behind
    runs.reap()
    assert registered(vbox) == [] and list(work.iterdir()) == []
    assert not proc.alive(pid, None), f"QEMU {pid} still runs"
