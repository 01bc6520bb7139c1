"""The box-only layer: Vagrant's conventions added to a copy of the provisioned image.

A `vagrant` user with passwordless sudo (validated by visudo) and Vagrant's insecure public key,
sshd enabled. The published qcow2/VMDK/OVA stay without it; only the boxes carry it.

Applied offline, with no boot: a raw copy of the provisioned disk, its root partition on an
offset loop device (as the disk stage does; no partition scanning here), the layer script and the
image's cleanup run by `chroot` with the guest's own tools (/dev bound for them, no /proc, so no
tool reaches the host's mounts), then flattened into a compressed qcow2 (the libvirt box's disk) and,
on the other core, a streamOptimized VMDK (the VirtualBox box's). The provisioned image was
already cleaned by its last provisioner, and nothing boots here, so no host key or machine-id
appears that the cleanup would have to undo. Booting once cost a whole TCG boot per build.

Cached as the `box` stage: `stage_inputs` lists what decides its output.
"""

from __future__ import annotations

import glob
import json
import re
from collections.abc import Callable
from pathlib import Path

from ..core import proc
from ..core.digests import sha256_file
from ..core.errors import BuildFailed, UserError
from ..core.runs import Run
from ..image import export, loopmount
from ..templates import render

USER = "vagrant"
# Debian's vagrant package ships the insecure key pair inside its gem directory.
KEY_GLOB = "/usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub"
PUBKEY_RE = re.compile(r"^(ssh-rsa|ssh-ed25519|ecdsa-sha2-nistp256) [A-Za-z0-9+/]+={0,3}( [ -~]{0,200})?$")
MAX_KEY_BYTES = 16 << 10


def insecure_key_path(explicit: Path | None = None) -> Path:
    """The key file: `explicit`, else the one Debian's vagrant package installed (newest version)."""
    if explicit is not None:
        return Path(explicit)
    found = sorted(glob.glob(KEY_GLOB))
    if not found:
        raise UserError("Vagrant's insecure public key not found: apt-get install vagrant", file=KEY_GLOB)
    return Path(found[-1])


def read_public_key(path: Path) -> str:
    """One OpenSSH public key line, checked before it reaches the guest."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_KEY_BYTES + 1)
    except OSError as e:
        raise UserError(f"cannot read: {e.strerror}", file=str(path)) from None
    text = data.decode("ascii", "replace").strip()
    if len(data) > MAX_KEY_BYTES or "\n" in text or not PUBKEY_RE.match(text):
        raise UserError("not one OpenSSH public key line", file=str(path))
    return text


def layer_script() -> str:
    return render("vagrant/layer.sh.j2", user=USER)


def cleanup_script() -> str:
    """The image's own last provisioner: no machine-id, host keys or apt lists in the box."""
    return render("image/cleanup.sh.j2")


def stage_inputs(key_file: Path) -> dict[str, str]:
    """What decides the box image besides the provisioned image (the stage it follows): both
    scripts and the key."""
    return {"layer": layer_script(), "cleanup": cleanup_script(), "key": sha256_file(key_file)}


def raw_argv(src: Path, dst: Path) -> list[str]:
    return ["qemu-img", "convert", "-O", "raw", str(src), str(dst)]


def root_partition(table: dict) -> tuple[int, int]:
    """(offset, size) in bytes of the disk's first partition, from `sfdisk --json`."""
    pt = table["partitiontable"]
    sector = int(pt.get("sectorsize", 512))
    first = pt["partitions"][0]
    return int(first["start"]) * sector, int(first["size"]) * sector


def chroot_argv(root: Path) -> list[str]:
    return ["chroot", str(root), "/bin/sh", "-c"]


def make_box_image(run: Run, provisioned_qcow2: Path, dest_qcow2: Path, dest_vmdk: Path, *,
                   key_file: Path | None = None, on_line: Callable[[str], None] = lambda line: None) -> None:
    """Write dest_qcow2 and dest_vmdk: the provisioned image plus the box layer, flattened and
    compressed, each from the raw copy (cheaper to read than a compressed qcow2)."""
    key = read_public_key(insecure_key_path(key_file))
    dest_qcow2 = Path(dest_qcow2)
    raw = dest_qcow2.with_name(f".{dest_qcow2.name}.{run.id}.raw")
    rec = run.record("path", path=str(raw))  # a killed run leaves no raw copy behind
    try:
        on_line("raw copy of the provisioned disk")
        proc.run(raw_argv(provisioned_qcow2, raw), run_ctx=run)
        offset, size = root_partition(json.loads(proc.output(["sfdisk", "--json", str(raw)])))
        with loopmount.mounted(run, raw, offset, size, run.dir / "box-root", bind_dev=True) as mnt:
            for what, script, stdin in (("box layer", layer_script(), key.encode() + b"\n"),
                                        ("cleanup", cleanup_script(), None)):
                on_line(f"running the {what} script in the image (chroot)")
                res = proc.run([*chroot_argv(mnt), script], stdin_data=stdin, check=False, timeout=300)
                if res.returncode != 0:
                    raise BuildFailed(f"{what} script failed (exit {res.returncode}):\n{res.output[-1500:]}")
        on_line("flattening into a compressed qcow2 and a streamOptimized VMDK")
        export.convert(run, export.qcow2_argv(raw, dest_qcow2), export.vmdk_argv(raw, dest_vmdk))
    finally:
        run.release(rec)
