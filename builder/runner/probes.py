"""Host probes for runner hosts: CPU virtualisation flags, nested KVM, and whether KVM holds
VT-x/AMD-V so that VirtualBox cannot start. Pure functions over what the kernel exposes, plus
one thin reader; `builder doctor` merges `probe_host()` into its JSON.

The KVM *usable* probe (boot a tiny guest) lives in builder/host.py: device checks lie here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

KVM_VENDOR_MODULES = {"vmx": "kvm_intel", "svm": "kvm_amd"}
# Linux 6.12 made KVM enable virtualisation when its module loads (not when the first guest
# starts); from then on VirtualBox's vboxdrv fails with VERR_VMX_IN_VMX_ROOT_MODE/SVM_IN_USE.
VIRT_AT_LOAD_SINCE = (6, 12)


def virt_flag(cpuinfo: str) -> str | None:
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return "vmx" if "vmx" in flags else "svm" if "svm" in flags else None
    return None


def kernel_version(release: str) -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", release)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def parse_bool_param(text: str | None) -> bool | None:
    """Kernel bool parameters read back as Y/N (or 1/0 for kvm_amd's int `nested`)."""
    if text is None:
        return None
    return text.strip() in ("Y", "y", "1")


def loaded_modules(proc_modules: str | None) -> set[str] | None:
    """Module names from /proc/modules or `lsmod` output; None when neither could be read."""
    if proc_modules is None:
        return None
    names = {line.split()[0] for line in proc_modules.splitlines() if line.strip()}
    names.discard("Module")  # lsmod's header
    return names


def module_state(name: str, modules: set[str] | None, sys_module: set[str]) -> str:
    """'module' (unloadable), 'builtin', 'present' (in the kernel, kind unknown) or 'absent'."""
    if modules is not None and name in modules:
        return "module"
    if name in sys_module:
        return "builtin" if modules is not None else "present"
    return "absent"


def vbox_kvm_conflict(*, release: str, kvm: str, vendor_module: str | None,
                      enable_virt_at_load: bool | None) -> dict:
    """Can VirtualBox start next to KVM on this host, and if not, exactly what to do."""
    if kvm == "absent":
        return {"conflict": False, "reason": "KVM is not loaded", "fix": []}
    at_load = enable_virt_at_load
    if at_load is None:  # the parameter arrived with the behaviour
        at_load = kernel_version(release) >= VIRT_AT_LOAD_SINCE
    if not at_load:
        return {
            "conflict": False,
            "reason": "KVM takes VT-x/AMD-V only while a KVM guest runs; do not run KVM guests "
                      "and VirtualBox VMs at the same time",
            "fix": [],
        }
    vendor = vendor_module or "kvm_intel"
    unload = [
        "echo 'options kvm enable_virt_at_load=0' > /etc/modprobe.d/kvm-virtualbox.conf",
        f"modprobe -r {vendor} kvm && modprobe {vendor}",
    ]
    boot = [
        "add kvm.enable_virt_at_load=0 to GRUB_CMDLINE_LINUX in /etc/default/grub",
        "update-grub && reboot",
    ]
    unsure = unload + ["if kvm is built into the kernel: " + boot[0], boot[1]]
    fix = {"module": unload, "builtin": boot}.get(kvm, unsure)
    reason = (f"Linux {release} loads KVM with virtualisation enabled (kvm.enable_virt_at_load=Y): "
              "VirtualBox cannot start its VMs while KVM holds VT-x/AMD-V")
    return {"conflict": True, "reason": reason, "fix": fix}


def probe(*, cpuinfo: str, release: str, proc_modules: str | None, sys_module: set[str],
          params: dict[str, str | None]) -> dict:
    """params maps 'kvm_intel.nested', 'kvm_amd.nested', 'kvm.enable_virt_at_load' to the
    text of /sys/module/<mod>/parameters/<param> (None when absent)."""
    flag = virt_flag(cpuinfo)
    mods = loaded_modules(proc_modules)
    vendor = KVM_VENDOR_MODULES.get(flag) if flag else None
    nested_mod = vendor or next(
        (m for m in ("kvm_intel", "kvm_amd") if params.get(f"{m}.nested") is not None), None)
    nested = parse_bool_param(params.get(f"{nested_mod}.nested")) if nested_mod else None
    return {
        "cpu_virt_flag": flag,
        "nested": nested,
        "nested_param": f"/sys/module/{nested_mod}/parameters/nested" if nested_mod else None,
        "kvm_module": module_state("kvm", mods, sys_module),
        "vboxdrv_module": module_state("vboxdrv", mods, sys_module),
        "virtualbox_kvm": vbox_kvm_conflict(
            release=release,
            kvm=module_state("kvm", mods, sys_module),
            vendor_module=vendor,
            enable_virt_at_load=parse_bool_param(params.get("kvm.enable_virt_at_load")),
        ),
    }


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def probe_host() -> dict:
    sys_module = {m for m in ("kvm", "kvm_intel", "kvm_amd", "vboxdrv") if Path(f"/sys/module/{m}").exists()}
    params = {
        f"{mod}.{p}": _read(f"/sys/module/{mod}/parameters/{p}")
        for mod, p in (("kvm_intel", "nested"), ("kvm_amd", "nested"), ("kvm", "enable_virt_at_load"))
    }
    return probe(
        cpuinfo=_read("/proc/cpuinfo") or "",
        release=os.uname().release,
        proc_modules=_read("/proc/modules"),
        sys_module=sys_module,
        params=params,
    )
