"""Stage 4: boot the provisioned disk standalone and run smoke checks in the guest.

Readiness is the guest agent answering on its virtio-serial port, then systemd reporting the
boot finished. Each check is one command through the agent; its output is the evidence.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..core.results import CaseResult, Suite
from ..guest import ExecResult
from ..spec import ImageSpec
from ..templates import render_string


@dataclass(frozen=True)
class GuestCheck:
    name: str
    argv: tuple[str, ...]
    expect: str | None = None  # regex over stdout+stderr
    timeout: float = 120


GRUB_PROOF = (
    'disk=$(lsblk -n -d -o PKNAME "$(findmnt -n -o SOURCE /)") && '
    "grep -q '^BOOT_IMAGE=/boot/vmlinuz-' /proc/cmdline && ! grep -q ' initrd=' /proc/cmdline && "
    'test -f /boot/grub/grub.cfg && test ! -e /boot/extlinux && '
    'head -c 440 "/dev/$disk" | grep -aq "GRUB " && echo "grub on /dev/$disk"'
)

# Checks every image gets, before the image's own.
BUILTIN = (
    # --wait blocks until boot finished; "running" means no failed units ("degraded" otherwise)
    GuestCheck("systemd-multi-user", ("systemctl", "is-system-running", "--wait"), r"^running\s*$", 300),
    GuestCheck("no-failed-units", ("systemctl", "--failed", "--no-legend", "--plain"), r"\A\s*\Z"),
    GuestCheck("network-up", ("sh", "-c", "ip -j -4 addr show scope global | grep -q '\"local\"' "
                                         "&& ip -4 route show default | grep -q ."), None, 60),
    GuestCheck("root-on-uuid", ("sh", "-c", "grep -o 'root=UUID=[0-9a-f-]*' /proc/cmdline"), r"root=UUID="),
    # GRUB booted, the only bootloader: its boot.img ("GRUB " in the MBR's code), its BOOT_IMAGE=
    # on the command line without SYSLINUX's initrd=, grub.cfg present and extlinux's files gone.
    GuestCheck("booted-by-grub", ("sh", "-c", GRUB_PROOF), r"^grub on /dev/\w+$"),
)

PACKAGES_ARGV = ("dpkg-query", "-W", "-f", "${Package}\t${Version}\n")


def checks_for(spec: ImageSpec) -> list[GuestCheck]:
    own = [
        GuestCheck(c.name, ("sh", "-c", render_string(c.run, version=spec.version, spec=spec)),
                   render_string(c.expect, version=spec.version, spec=spec) if c.expect else None)
        for c in spec.boot_test.checks
    ]
    return [*BUILTIN, *own]


def judge(check: GuestCheck, res: ExecResult, seconds: float) -> CaseResult:
    out = res.output.strip()
    ok = res.rc == 0 or check.name == "systemd-multi-user" and res.stdout.strip() == "running"
    if check.expect is not None:
        ok = ok and re.search(check.expect, res.stdout + res.stderr, re.MULTILINE) is not None
    evidence = f"$ {' '.join(check.argv)}\nexit {res.rc}\n{out[-2000:]}"
    return CaseResult(name=check.name, passed=ok, seconds=round(seconds, 2), evidence=evidence)


def run_checks(checks: list[GuestCheck], execute: Callable[[list[str], float], ExecResult]) -> Suite:
    cases = []
    for c in checks:
        t0 = time.monotonic()
        try:
            res = execute(list(c.argv), c.timeout)
        except Exception as e:  # a check that cannot run is a failed check, with the reason
            res = ExecResult(-1, "", f"{type(e).__name__}: {e}")
        cases.append(judge(c, res, time.monotonic() - t0))
    return Suite(passed=all(c.passed for c in cases), cases=cases)


def parse_packages(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        name, _, version = line.partition("\t")
        if name and version:
            out[name] = version
    return out
