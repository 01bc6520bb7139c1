"""Boot a disk in QEMU with the guest-agent test channel; used by the boot test and the fabric.

The disk boots through its own bootloader (no -kernel), opened with snapshot=on so a test run
never changes the image it tests. The image's data disks are fresh sparse qcow2 files per boot,
in the run's directory, so every boot starts from the same empty disks the OVA describes.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..core import proc
from ..core.errors import BuildFailed
from ..core.runs import Run
from ..guest import GuestAgent


@dataclass(frozen=True)
class NicPlan:
    """A virtio NIC: on QEMU's user-mode network (`tap=None`) or on a host tap device."""

    tap: str | None = None
    mac: str | None = None


@dataclass(frozen=True)
class VmPlan:
    name: str
    disk: Path
    accel: str
    cpus: int
    memory_mib: int
    workdir: Path
    nics: tuple[NicPlan, ...] = (NicPlan(),)
    snapshot: bool = True
    data_disk_mib: tuple[int, ...] = ()  # empty disks after the system disk (vdb, vdc, ...)

    @property
    def qga_socket(self) -> Path:
        return self.workdir / f"{self.name}.qga"

    @property
    def console_log(self) -> Path:
        return self.workdir / f"{self.name}.console.log"

    @property
    def data_disks(self) -> tuple[Path, ...]:
        return tuple(self.workdir / f"{self.name}.data{i}.qcow2" for i in range(len(self.data_disk_mib)))


def data_disk_argv(path: Path, size_mib: int) -> list[str]:
    return ["qemu-img", "create", "-q", "-f", "qcow2", str(path), f"{size_mib}M"]


def disk_format(path: Path) -> str:
    return "qcow2" if path.suffix == ".qcow2" else "raw"


def qemu_argv(p: VmPlan) -> list[str]:
    argv = [
        "qemu-system-x86_64",
        "-name", p.name,
        "-accel", p.accel,
        "-cpu", "host" if p.accel == "kvm" else "max",
        "-smp", str(p.cpus),
        "-m", str(p.memory_mib),
        "-nodefaults", "-no-user-config",
        "-display", "none",
        "-vga", "none",
        "-drive", f"file={p.disk},if=virtio,format={disk_format(p.disk)},snapshot={'on' if p.snapshot else 'off'}",
        *[a for d in p.data_disks for a in ("-drive", f"file={d},if=virtio,format=qcow2,discard=unmap")],
        "-serial", f"file:{p.console_log}",
        "-chardev", f"socket,id=qga0,path={p.qga_socket},server=on,wait=off",
        "-device", "virtio-serial-pci",
        "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
    ]
    for i, nic in enumerate(p.nics):
        mac = f",mac={nic.mac}" if nic.mac else ""
        if nic.tap is None:
            argv += ["-netdev", f"user,id=n{i}", "-device", f"virtio-net-pci,netdev=n{i}{mac}"]
        else:
            argv += [
                "-netdev", f"tap,id=n{i},ifname={nic.tap},script=no,downscript=no",
                "-device", f"virtio-net-pci,netdev=n{i}{mac}",
            ]
    return argv


@dataclass
class Vm:
    plan: VmPlan
    process: subprocess.Popen
    agent: GuestAgent = field(init=False)

    def __post_init__(self) -> None:
        self.agent = GuestAgent(self.plan.qga_socket)

    def alive(self) -> bool:
        return self.process.poll() is None

    def console_tail(self, lines: int = 20) -> str:
        try:
            text = self.plan.console_log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def poweroff(self, timeout: float = 60) -> bool:
        """Clean shutdown through the agent; True when the guest powered itself off in time."""
        if not self.alive():
            return True
        with contextlib.suppress(OSError, BuildFailed):
            self.agent.poweroff()
        try:
            self.process.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False


@contextlib.contextmanager
def boot(run: Run, plan: VmPlan) -> Iterator[Vm]:
    """Start QEMU; on any exit the process is killed (journaled, so a reaper gets it too)."""
    plan.workdir.mkdir(parents=True, exist_ok=True)
    for path, mib in zip(plan.data_disks, plan.data_disk_mib, strict=True):
        run.record("path", path=str(path))
        proc.run(data_disk_argv(path, mib), run_ctx=run)
    with open(plan.workdir / f"{plan.name}.qemu.log", "wb") as log:  # QEMU keeps its own copy of the fd
        p, rec = proc.spawn(run, qemu_argv(plan), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    t0 = time.monotonic()
    vm = Vm(plan, p)
    try:
        time.sleep(0.2)
        if p.poll() is not None:
            raise BuildFailed(
                "qemu exited at start: " + (plan.workdir / f"{plan.name}.qemu.log").read_text()[-800:]
            )
        yield vm
    finally:
        vm.agent.close()
        run.release(rec)
        p.wait()
        log.close()
        proc.TOOL_SPANS.append(("qemu-system-x86_64", t0, time.monotonic()))
