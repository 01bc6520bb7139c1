"""The VBoxManage stand-in imports a real OVA with empty data disks (write_ova on qemu-img VMDKs)
and reports it the way the virtualbox suite reads it: the hardware checks pass, every disk lands
in the basefolder, and `unregistervm --delete` removes them. No boot: fast, no root."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from builder import vbox_suite as vs
from builder.image import ova
from builder.image.export import empty_vmdk_argv
from builder.image.ovf import Appliance, Disk, write_ova

TOOL = str(Path(__file__).resolve().parent.parent / "fakes" / "vboxmanage")
VM = "bx0a0b0c-ova"

pytestmark = pytest.mark.skipif(not shutil.which("qemu-img"), reason="qemu-utils not installed")


@pytest.fixture
def vbox(tmp_path, monkeypatch):
    state = tmp_path / "vbox"
    state.mkdir()
    (state / "version").write_text("7.0.20r163906\n")
    monkeypatch.setenv("FAKE_VBOX_STATE", str(state))
    return state


def vbm(argv: list[str]) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def test_import_with_data_disks_matches_the_descriptor(tmp_path, vbox):
    sizes = (64 << 20, 32 << 20, 16 << 20)
    vmdks = [tmp_path / f"disk{i}.vmdk" for i in range(3)]
    for vmdk, size in zip(vmdks, sizes, strict=True):
        subprocess.run(empty_vmdk_argv(vmdk, size), check=True)
    system, *data = (Disk(file=f"lab-disk00{i + 1}.vmdk", capacity_bytes=size) for i, size in enumerate(sizes))
    app = Appliance(name="lab", version="1.0.0", cpus=2, memory_mib=2048, disk=system, data_disks=tuple(data))
    package = write_ova(tmp_path / "lab-1.0.0.ova", app, vmdks[0], vmdks[1:])
    base = tmp_path / "base"

    out = vbm(vs.import_argv(TOOL, package, VM, base))
    assert out.rstrip().endswith("Successfully imported the appliance.")
    info = vs.parse_machinereadable(vbm(vs.showvminfo_argv(TOOL, VM)))
    cases = vs.compare(vs.expected_from(ova.inspect(package).summary), info, base)
    assert all(c.passed for c in cases), [c.evidence for c in cases if not c.passed]
    disks = [Path(m) for _, m in vs.attached_disks(info)]
    assert len(disks) == 3 and all(d.is_file() for d in disks)

    vbm(vs.serial_argv(TOOL, VM, base / "serial.log"))
    vbm(vs.natpf_argv(TOOL, VM, 2222))
    info = vs.parse_machinereadable(vbm(vs.showvminfo_argv(TOOL, VM)))
    assert vs.console_case(info, base / "serial.log", 2222).passed and info["VMState"] == "poweroff"

    assert f'"{VM}"' in vbm([TOOL, "list", "vms"])
    vbm(vs.unregister_argv(TOOL, VM))
    assert vbm([TOOL, "list", "vms"]) == "" and not any(d.exists() for d in disks) and not (base / VM).exists()
    assert os.listdir(vbox / "vms") == []
