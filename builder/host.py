"""What this host can do, found by trying rather than by asking.

KVM: `/dev/kvm` existing (or `kvm-ok`, or KVM_CREATE_VM succeeding) proves nothing on hosts
where a real guest then hangs. The probe boots a guest that needs nothing from the host but
QEMU: a 512-byte boot sector, built here, that writes a code to QEMU's isa-debug-exit port, so
QEMU itself exits with `(code << 1) | 1`. Under KVM that takes a fraction of a second, on the
broken hosts it hangs until the timeout. A hang counts as measured only when the same guest
passes under TCG; only measured answers are remembered, per boot of the host
(/proc/sys/kernel/random/boot_id).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .core import proc
from .core.errors import UserError

EXIT_CODE = 0x2A  # what the boot sector writes to the debug-exit port
QEMU_STATUS = (EXIT_CODE << 1) | 1
# mov al, 0x2a; out 0xf4, al; hlt; jmp $-1 — then padding and the BIOS boot signature
BOOT_SECTOR = bytes([0xB0, EXIT_CODE, 0xE6, 0xF4, 0xF4, 0xEB, 0xFD]).ljust(510, b"\0") + b"\x55\xaa"
PROBE_TIMEOUT = 20.0  # the guest exits in < 1 s under KVM or TCG
STATE = Path(os.environ.get("BUILDER_RUN_DIR", "/run/builder")).parent / "builder-kvm-probe.json"

TOOLS = {
    "qemu-system-x86_64": ["qemu-system-x86_64", "--version"],
    "qemu-img": ["qemu-img", "--version"],
    "packer": ["packer", "version"],
    "mmdebstrap": ["mmdebstrap", "--version"],
    "mkfs.ext4": ["mkfs.ext4", "-V"],
    "extlinux": ["extlinux", "--version"],
    "xmllint": ["xmllint", "--version"],
}


@dataclass(frozen=True)
class KvmProbe:
    usable: bool
    reason: str
    seconds: float
    measured: bool = True  # False: the probe could not run, so the answer is not remembered


def _boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def probe_argv(accel: str, image: Path) -> list[str]:
    return [
        "qemu-system-x86_64", "-accel", accel, "-m", "16", "-nodefaults", "-no-user-config", "-display", "none",
        "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-drive", f"file={image},format=raw,if=floppy",
        "-boot", "a",
    ]


def boot_probe(accel: str, timeout: float = PROBE_TIMEOUT) -> KvmProbe:
    """Boot the boot-sector guest under `accel`; usable when QEMU exits with the guest's code in time."""
    if shutil.which("qemu-system-x86_64") is None:
        return KvmProbe(False, "qemu-system-x86_64 not installed (apt-get install qemu-system-x86)", 0.0, False)
    with tempfile.TemporaryDirectory(prefix="builder-probe-") as d:
        image = Path(d) / "probe.img"
        image.write_bytes(BOOT_SECTOR)
        t0 = time.monotonic()
        try:
            p = proc.run(probe_argv(accel, image), timeout=timeout, check=False, merge_stderr=False)
        except proc.ToolTimeout:
            return KvmProbe(False, f"a {accel} guest did not run within {timeout:.0f} s "
                                   "(it hangs: the accelerator is present but not usable)", time.monotonic() - t0)
    dt = time.monotonic() - t0
    if p.returncode == QEMU_STATUS:
        return KvmProbe(True, f"a {accel} guest ran its boot sector in {dt:.1f} s", dt)
    last = (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]
    return KvmProbe(False, f"{accel} guest failed to start: {last}", dt)


def kvm_probe(refresh: bool = False) -> KvmProbe:
    if not os.path.exists("/dev/kvm"):
        return KvmProbe(False, "/dev/kvm does not exist (no KVM module or no VT-x/AMD-V)", 0.0)
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return KvmProbe(False, "/dev/kvm is not accessible to this user (add it to group kvm)", 0.0)
    boot_id = _boot_id()
    if not refresh:
        try:
            cached = json.loads(STATE.read_text())
            if cached.get("boot_id") == boot_id:
                return KvmProbe(**cached["probe"])
        except (OSError, ValueError, TypeError, KeyError):
            pass
    result = boot_probe("kvm")
    if not result.usable and result.measured:
        control = boot_probe("tcg")  # the same guest must run without KVM, or we measured nothing
        if not control.usable:
            result = KvmProbe(False, f"{result.reason}; the probe guest fails under TCG too ({control.reason}), "
                                     "so this says nothing about KVM", result.seconds, measured=False)
    if result.measured:
        try:
            STATE.parent.mkdir(parents=True, exist_ok=True)
            STATE.write_text(json.dumps({"boot_id": boot_id, "probe": asdict(result)}))
        except OSError:
            pass
    return result


def choose_accel(requested: str) -> tuple[str, str]:
    """`auto` boots the probe; `kvm` is honoured only if the probe says it works."""
    if requested == "tcg":
        return "tcg", "requested"
    if requested not in ("auto", "kvm"):
        raise UserError(f"unknown accelerator {requested!r} (auto, kvm or tcg)", field="--accel")
    probe = kvm_probe()
    if probe.usable:
        return "kvm", probe.reason
    if requested == "kvm":
        raise UserError(f"KVM requested but not usable: {probe.reason}", field="--accel")
    return "tcg", f"KVM not usable: {probe.reason}"


def tool_versions() -> dict[str, str]:
    out = {}
    for name, argv in TOOLS.items():
        if shutil.which(argv[0]) is None:
            out[name] = "missing"
            continue
        p = proc.run(argv, check=False, merge_stderr=False)
        text = (p.output or p.stderr).strip().splitlines()
        out[name] = text[0].strip() if text else "unknown"
    return out
