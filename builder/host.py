"""What this host can do, found by trying rather than by asking.

KVM: `/dev/kvm` existing (or `kvm-ok`, or KVM_CREATE_VM succeeding) proves nothing on hosts
where a real guest then hangs. The probe boots a guest that needs nothing from the host but
QEMU: a boot sector, built here, that goes from real mode through PAE paging to long mode (as a
kernel does) and writes a code to QEMU's isa-debug-exit port, so QEMU itself exits with
`(code << 1) | 1`. It runs under TCG as the control, then under KVM. Two failures are seen on
such hosts: the KVM guest hangs until the timeout, or it finishes but far slower than TCG
(measured on one: 5.9 s against 0.11 s; every exit is emulated, and a Debian kernel then stalls
after "Probing EDD" for minutes). Either way KVM is not usable. An answer counts as measured
only when the same guest passes under TCG; only measured answers are remembered, per boot of
the host (/proc/sys/kernel/random/boot_id).
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
# The boot sector (nasm source in docs/kvm-probe.asm): cli; zero 3 pages at 0x1000 and build
# PML4 -> PDPT -> PD identity-mapping 2 MiB; CR4.PAE, CR3, EFER.LME, lgdt, CR0.PG|PE; far jump to
# a 64-bit code segment; mov al, 0x2a; out 0xf4, al; hlt. Then padding and the boot signature.
BOOT_SECTOR = bytes.fromhex(
    "fa31c08ed88ec0bf0010b9001831c0f3abc70600100320c70600200330c7060030830066b8200000000f22e066"
    "b8001000000f22d866b9800000c00f32660d000100000f300f0116787c0f20c0660d010000800f22c0ea5b7c08"
    "00b02ae6f4f4ebfd9090909090900000000000000000ffff0000009aaf000f00687c"
).ljust(510, b"\0") + b"\x55\xaa"
assert BOOT_SECTOR[0x5C] == EXIT_CODE  # the `mov al, imm8` operand
PROBE_TIMEOUT = 20.0  # the guest exits in < 1 s under TCG or a working KVM
# KVM slower than this many times TCG on the same guest (plus a margin for QEMU start-up noise)
# is not usable: working KVM is faster than TCG, the broken hosts were ~50x slower.
SLOWER_THAN_TCG = 3.0
STARTUP_MARGIN = 0.5
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
    control = boot_probe("tcg")  # the same guest must run without KVM, or we measured nothing
    result = boot_probe("kvm")
    if not control.usable:
        result = KvmProbe(False, f"{result.reason}; the probe guest fails under TCG too ({control.reason}), "
                                 "so this says nothing about KVM", result.seconds, measured=False)
    elif result.usable and result.seconds > SLOWER_THAN_TCG * control.seconds + STARTUP_MARGIN:
        result = KvmProbe(False, f"a kvm guest ran its boot sector in {result.seconds:.1f} s, "
                                 f"{result.seconds / control.seconds:.0f}x slower than TCG ({control.seconds:.2f} s): "
                                 "KVM is present but emulated, a real guest crawls", result.seconds)
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
