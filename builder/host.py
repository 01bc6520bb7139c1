"""What this host can do, found by trying rather than by asking.

KVM: `/dev/kvm` existing (or `kvm-ok`, or KVM_CREATE_VM succeeding) proves nothing on hosts
where a real guest then hangs. The probe boots a tiny guest (a Debian kernel and a busybox
initramfs that prints a marker and powers off) under KVM with a timeout. The answer is
remembered per boot of the host (keyed on /proc/sys/kernel/random/boot_id).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import UserError

MARKER = "BUILDER-KVM-PROBE-OK"
PROBE_TIMEOUT = 20.0  # a KVM guest reaches the marker in ~1 s; TCG in ~4 s
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


def _boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def probe_kernel() -> Path | None:
    kernels = sorted(Path("/boot").glob("vmlinuz-*"))
    return kernels[-1] if kernels else None


def _probe_initramfs(workdir: Path) -> Path:
    busybox = shutil.which("busybox")
    if busybox is None:
        raise FileNotFoundError("busybox")
    root = workdir / "root"
    (root / "bin").mkdir(parents=True)
    (root / "dev").mkdir()
    shutil.copy(busybox, root / "bin" / "busybox")
    init = root / "init"
    # no /dev/console in the archive: mount devtmpfs to reach the serial port
    init.write_text(
        "#!/bin/busybox sh\n/bin/busybox mount -t devtmpfs dev /dev\n"
        f"/bin/busybox echo {MARKER} > /dev/ttyS0\n/bin/busybox poweroff -f\n"
    )
    init.chmod(0o755)
    out = workdir / "probe.cpio"
    names = "\n".join(str(p.relative_to(root)) for p in sorted(root.rglob("*"))) + "\n"
    with open(out, "wb") as f:
        subprocess.run(["cpio", "-o", "-H", "newc"], input=names.encode(), cwd=root, stdout=f,
                       stderr=subprocess.DEVNULL, check=True)
    return out


def probe_argv(accel: str, kernel: Path, initrd: Path) -> list[str]:
    return [
        "qemu-system-x86_64", "-accel", accel, "-m", "128", "-nodefaults", "-no-user-config",
        "-display", "none", "-serial", "stdio", "-no-reboot",
        "-kernel", str(kernel), "-initrd", str(initrd), "-append", "console=ttyS0 quiet panic=-1",
    ]


def boot_probe(accel: str, timeout: float = PROBE_TIMEOUT) -> KvmProbe:
    """Boot the tiny guest under `accel`; usable when the marker appears within timeout."""
    kernel = probe_kernel()
    if kernel is None:
        return KvmProbe(False, "no kernel in /boot to boot a probe guest (install linux-image-amd64)", 0.0)
    if shutil.which("qemu-system-x86_64") is None:
        return KvmProbe(False, "qemu-system-x86_64 not installed", 0.0)
    with tempfile.TemporaryDirectory(prefix="builder-probe-") as d:
        try:
            initrd = _probe_initramfs(Path(d))
        except (FileNotFoundError, subprocess.CalledProcessError):
            return KvmProbe(False, "busybox/cpio missing: cannot build the probe guest", 0.0)
        t0 = time.monotonic()
        try:
            p = subprocess.run(probe_argv(accel, kernel, initrd), capture_output=True, text=True,
                               timeout=timeout, errors="replace")
        except subprocess.TimeoutExpired:
            return KvmProbe(False, f"a {accel} guest did not boot within {timeout:.0f} s "
                                   "(it hangs: the accelerator is present but not usable)",
                            time.monotonic() - t0)
        dt = time.monotonic() - t0
    if MARKER in p.stdout:
        return KvmProbe(True, f"a {accel} guest booted to userspace in {dt:.1f} s", dt)
    last = (p.stderr.strip().splitlines() or ["no output"])[-1]
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
        p = subprocess.run(argv, capture_output=True, text=True, errors="replace")
        text = (p.stdout or p.stderr).strip().splitlines()
        out[name] = text[0].strip() if text else "unknown"
    return out
