"""`virt-v2v -i ova` on a published OVA: how a user moves the appliance to KVM, oVirt or OpenStack.

libguestfs boots its appliance directly (no libvirtd: LIBGUESTFS_BACKEND=direct) under TCG (KVM is
not usable here: force_tcg), from the host's kernel in /boot (ci/setup.sh installs one). virt-v2v
runs in its own session through the caller's run journal, so a timeout or an interrupted test
kills the appliance's qemu with it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from builder.core import proc
from builder.core.runs import Run

TIMEOUT = 3600  # the conversion rebuilds the guest's initramfs in the TCG appliance: 20+ min under load


@dataclass(frozen=True)
class Conversion:
    returncode: int
    output: str
    disk: Path  # -o local: NAME-sda beside NAME.xml, NAME being the OVF's VirtualSystem Name
    xml: Path


def convert(ova: Path, out: Path, name: str, run: Run, timeout: float = TIMEOUT) -> Conversion:
    (out / "tmp").mkdir(parents=True)
    # temporary overlays in the test's directory; the supermin appliance in libguestfs's usual
    # cache, built once per host package set as a user's first run builds it
    env = {**os.environ, "LIBGUESTFS_BACKEND": "direct", "LIBGUESTFS_BACKEND_SETTINGS": "force_tcg",
           "TMPDIR": str(out / "tmp"), "LIBGUESTFS_CACHEDIR": "/var/tmp"}
    res = proc.run(["virt-v2v", "-i", "ova", str(ova), "-o", "local", "-os", str(out), "-of", "qcow2"],
                   run_ctx=run, timeout=timeout, check=False, env=env, what="virt-v2v")
    return Conversion(res.returncode, res.output, out / f"{name}-sda", out / f"{name}.xml")


# virt-v2v can set the default kernel only through grubby or Perl Bootloader::Tools, which Debian
# has neither of: documented in virt-v2v(1), "Debian and Ubuntu", for every GRUB 2 Debian guest.
# The default kernel stays what update-grub made it.
KNOWN_WARNINGS = ("virt-v2v: warning: could not determine a way to update the configuration of Grub2",)


def assert_converted(c: Conversion, name: str, data_disks: int = 0) -> None:
    """Exit 0, no warning but the known one (a missing Name, an unknown bootloader), a qcow2 disk
    per OVF disk and the libvirt domain XML that boots the first and attaches the rest."""
    assert c.returncode == 0, c.output[-3000:]
    assert "no bootloader detected" not in c.output
    warnings = [line for line in c.output.splitlines() if "warning" in line.lower() and line not in KNOWN_WARNINGS]
    assert not warnings, c.output[-3000:]
    assert c.disk.is_file() and c.xml.is_file(), sorted(p.name for p in c.disk.parent.iterdir())
    assert proc.output(["qemu-img", "info", "--output=json", str(c.disk)]).count('"format": "qcow2"') == 1
    dom = etree.parse(str(c.xml))
    assert dom.findtext("name") == name and dom.getroot().get("type") == "kvm"
    sources = [d.get("file") for d in dom.findall("devices/disk/source")]
    assert sources == [str(c.disk), *(str(c.disk)[:-1] + chr(ord("b") + i) for i in range(data_disks))], sources
