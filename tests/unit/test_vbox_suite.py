"""The virtualbox suite's pure parts: VBoxManage argv plans, the machine-readable parser, the
comparison of the descriptor with what VirtualBox made, and the refusal without VirtualBox."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder import vbox_suite as vs
from builder.cli import main
from builder.core import runs
from builder.core.errors import UserError

# VBoxManage 7.0 showvminfo --machinereadable of an imported appliance, abridged
INFO = r'''name="bx1a2b3c-ova"
groups="/"
ostype="Debian (64-bit)"
UUID="8c1f4a3e-3d1c-4a49-9b0e-0f6d2e7b1c11"
CfgFile="/tmp/bx1a2b3c-vbox/bx1a2b3c-ova/bx1a2b3c-ova.vbox"
description="a \"quoted\" note"
memory=1024
vram=16
cpus=2
VMState="poweroff"
storagecontrollername0="SATA Controller"
storagecontrollertype0="IntelAhci"
storagecontrollerportcount0="3"
"SATA Controller-0-0"="/tmp/bx1a2b3c-vbox/bx1a2b3c-ova/minimal-0.1.0.vmdk"
"SATA Controller-ImageUUID-0-0"="2f0d4b0e-6b1a-4d54-8d8b-3f1c0a9e2d11"
"SATA Controller-2-0"="/tmp/bx1a2b3c-vbox/bx1a2b3c-ova/bx1a2b3c-ova-disk003.vmdk"
"SATA Controller-1-0"="/tmp/bx1a2b3c-vbox/bx1a2b3c-ova/bx1a2b3c-ova-disk002.vmdk"
storagecontrollername1="IDE Controller"
storagecontrollertype1="PIIX4"
"IDE Controller-0-0"="/elsewhere/other.vdi"
"IDE Controller-1-0"="emptydrive"
natnet1="nat"
nic1="nat"
nictype1="82540EM"
Forwarding(0)="ssh,tcp,127.0.0.1,2222,,22"
nic2="none"
uart1="0x03f8,4"
uartmode1="file,/tmp/bx1a2b3c-vbox/serial.log"
'''
BASE = Path("/tmp/bx1a2b3c-vbox")
VM = "bx1a2b3c-ova"


def test_parser_unquotes_keys_and_values():
    info = vs.parse_machinereadable(INFO)
    assert info["memory"] == "1024" and info["cpus"] == "2" and info["nic1"] == "nat"
    assert info["description"] == 'a "quoted" note'
    assert info["SATA Controller-0-0"].endswith("minimal-0.1.0.vmdk")
    assert info["Forwarding(0)"] == "ssh,tcp,127.0.0.1,2222,,22"


def test_attached_disks_are_the_sata_media_in_port_order():
    disks = vs.attached_disks(vs.parse_machinereadable(INFO))
    assert [slot for slot, _ in disks] == ["SATA Controller-0-0", "SATA Controller-1-0", "SATA Controller-2-0"]


def test_compare_passes_when_virtualbox_took_the_descriptor():
    expected = vs.Expected(cpus=2, memory_mib=1024, disks=3, network="NAT")
    cases = vs.compare(expected, vs.parse_machinereadable(INFO), BASE)
    assert [(c.name, c.passed) for c in cases] == [("cpus", True), ("memory", True), ("disks", True), ("nic1-nat", True)]


def test_compare_names_each_mismatch():
    info = vs.parse_machinereadable(INFO.replace("memory=1024", "memory=512").replace('nic1="nat"', 'nic1="bridged"'))
    expected = vs.Expected(cpus=2, memory_mib=1024, disks=2, network="NAT")
    failed = {c.name: c.evidence for c in vs.compare(expected, info, BASE) if not c.passed}
    assert set(failed) == {"memory", "disks", "nic1-nat"}
    assert "OVF 1024 MiB, VirtualBox memory=512" in failed["memory"]


def test_disks_outside_the_basefolder_fail():
    expected = vs.Expected(cpus=2, memory_mib=1024, disks=3, network="NAT")
    cases = vs.compare(expected, vs.parse_machinereadable(INFO), Path("/srv/other"))
    assert not next(c for c in cases if c.name == "disks").passed


def test_expected_values_come_from_the_ova_summary():
    summary = {"name": "lab", "cpus": 4, "memory_mib": 4096, "nics": [{"network": "NAT", "model": "E1000"}],
               "disks": [{"file": "lab.vmdk"}, {"file": None}, {"file": None}]}
    assert vs.expected_from(summary) == vs.Expected(4, 4096, 3, "NAT")


def test_console_case_checks_serial_file_and_forward():
    info = vs.parse_machinereadable(INFO)
    assert vs.console_case(info, BASE / "serial.log", 2222).passed
    assert not vs.console_case(info, BASE / "serial.log", 2223).passed


def test_argv_plans():
    ova = Path("/srv/dist/minimal-0.1.0.ova")
    assert vs.import_argv("VBoxManage", ova, VM, BASE) == [
        "VBoxManage", "import", "/srv/dist/minimal-0.1.0.ova", "--vsys", "0", "--vmname", VM,
        "--basefolder", "/tmp/bx1a2b3c-vbox"]
    assert vs.serial_argv("VBoxManage", VM, BASE / "serial.log")[2:] == [
        VM, "--uart1", "0x3F8", "4", "--uartmode1", "file", "/tmp/bx1a2b3c-vbox/serial.log"]
    assert vs.natpf_argv("VBoxManage", VM, 2222)[2:] == [VM, "--natpf1", "ssh,tcp,127.0.0.1,2222,,22"]
    assert vs.start_argv("VBoxManage", VM)[1:] == ["startvm", VM, "--type", "headless"]
    assert vs.poweroff_argv("VBoxManage", VM)[1:] == ["controlvm", VM, "poweroff"]
    assert vs.unregister_argv("VBoxManage", VM)[1:] == ["unregistervm", VM, "--delete"]
    assert vs.showvminfo_argv("VBoxManage", VM)[1:] == ["showvminfo", VM, "--machinereadable"]


def test_ssh_argv_keeps_the_password_out_and_quotes_the_command():
    argv = vs.ssh_argv("student", 2222, ["sh", "-c", "cat /etc/motd; echo 'x'"])
    assert argv[:3] == ["sshpass", "-e", "ssh"] and "student" not in " ".join(argv[:-2])
    assert argv[-2:] == ["student@127.0.0.1", "sh -c 'cat /etc/motd; echo '\"'\"'x'\"'\"''"]
    with pytest.raises(UserError):
        vs.ssh_argv("root; rm -rf /", 22, ["true"])


def test_sudo_check_reads_the_password_from_stdin():
    check = vs.smoke_checks("minimal", "0.1.0")[0]
    assert check.sudo and check.remote()[:4] == ["sudo", "-S", "-p", ""]


@pytest.mark.parametrize("bad", ["vm", "bx1a2b3c-ova; reboot", "bxZZZZZZ-ova"])
def test_vm_names_are_run_tags(bad):
    with pytest.raises(ValueError):
        vs.start_argv("VBoxManage", bad)


def test_paths_with_shell_or_option_characters_are_refused():
    with pytest.raises(UserError):
        vs.import_argv("VBoxManage", Path("/srv/my ova.ova"), VM, BASE)


def test_smoke_checks_judge_running_and_degraded():
    systemd, _, motd = vs.smoke_checks("minimal", "0.1.0")
    assert vs.judge(systemd, 0, "running\n", 1).passed
    assert vs.judge(systemd, 1, "degraded\nfoo.service loaded failed failed Foo\n", 1).passed
    assert not vs.judge(systemd, 1, "starting\n", 1).passed
    assert vs.judge(motd, 0, "Minimal VM\n  image minimal 0.1.0\n", 1).passed
    assert not vs.judge(motd, 0, "image minimal 0x1x0", 1).passed


def test_image_version_from_the_published_file_name():
    assert vs.image_version(Path("/d/minimal-0.1.0.ova"), "minimal", None) == "0.1.0"
    assert vs.image_version(Path("/d/x.ova"), "minimal", "2.0.0") == "2.0.0"
    with pytest.raises(UserError):
        vs.image_version(Path("/d/x.ova"), "minimal", None)


def test_the_vm_is_a_journal_kind():
    assert "virtualbox-vm" in runs.UNDO


def test_without_virtualbox_the_command_exits_2(tmp_path, monkeypatch, capsys):
    ova = tmp_path / "minimal-0.1.0.ova"
    ova.write_bytes(b"")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["ova", "test", str(ova)]) == 2
    assert "no VBoxManage on PATH" in capsys.readouterr().err


def test_a_broken_vboxmanage_exits_2(tmp_path, monkeypatch, capsys):
    tool = tmp_path / "VBoxManage"
    tool.write_text("#!/bin/sh\necho 'WARNING: The vboxdrv kernel module is not loaded.' >&2\nexit 1\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["ova", "test", str(tmp_path / "x.ova")]) == 2
    assert "vboxdrv kernel module is not loaded" in capsys.readouterr().err
