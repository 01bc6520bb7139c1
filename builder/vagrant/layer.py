"""The box-only layer: Vagrant's conventions added to a copy of the provisioned image.

A `vagrant` user with passwordless sudo (validated by visudo in the guest) and Vagrant's insecure
public key, sshd enabled. The published qcow2/VMDK/OVA stay without it; only the boxes carry it.
The layer boots an overlay of the provisioned qcow2 with the pipeline's own VM machinery (guest
agent on virtio-serial), runs the layer script and the image's cleanup (machine-id, host keys),
powers off and flattens the overlay into a standalone compressed qcow2.

Cached as the `box` stage: `stage_inputs` lists what decides its output.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Callable
from pathlib import Path

from ..core import proc
from ..core.digests import sha256_file
from ..core.errors import BuildFailed, UserError
from ..core.runs import Run
from ..image import export
from ..image.boot import NicPlan, VmPlan, boot
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


def overlay_argv(base: Path, overlay: Path) -> list[str]:
    return ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(Path(base).resolve()), str(overlay)]


def make_box_image(run: Run, provisioned_qcow2: Path, dest_qcow2: Path, accel: str, *, cpus: int = 2,
                   memory_mib: int = 1024, key_file: Path | None = None, ready_timeout: float = 300,
                   on_line: Callable[[str], None] = lambda line: None) -> Path:
    """Write dest_qcow2: the provisioned image plus the box layer, flattened and compressed."""
    key = read_public_key(insecure_key_path(key_file))
    dest_qcow2 = Path(dest_qcow2)
    overlay = dest_qcow2.with_name(f".{dest_qcow2.name}.{run.id}.overlay.qcow2")
    rec = run.record("path", path=str(overlay))  # a killed run leaves no overlay behind
    try:
        proc.run(overlay_argv(provisioned_qcow2, overlay), run_ctx=run)
        plan = VmPlan(name=run.name("box"), disk=overlay, accel=accel, cpus=cpus, memory_mib=memory_mib,
                      workdir=run.dir / "box", nics=(NicPlan(),), snapshot=False)
        with boot(run, plan) as vm:
            on_line("waiting for the guest agent")
            try:
                vm.agent.wait_ready(ready_timeout, alive=vm.alive)
                # first-boot work (host keys, machine-id) must be done before the cleanup undoes it
                vm.agent.exec(["systemctl", "is-system-running", "--wait"], timeout=ready_timeout)
                for what, script, stdin in (("box layer", layer_script(), key.encode() + b"\n"),
                                            ("cleanup", cleanup_script(), None)):
                    on_line(f"running the {what} script")
                    res = vm.agent.exec(["/bin/sh", "-c", script], timeout=300, input=stdin)
                    if res.rc != 0:
                        raise BuildFailed(f"{what} script failed (exit {res.rc}):\n{res.output[-1500:]}")
                vm.agent.exec(["sync"], timeout=120)
            except BuildFailed as e:
                raise BuildFailed(f"{e}\nconsole:\n{vm.console_tail()}") from None
            on_line("powering off")
            if not vm.poweroff(timeout=120):
                raise BuildFailed(f"the box VM did not power off\nconsole:\n{vm.console_tail()}")
        on_line("flattening into a compressed qcow2")
        proc.run(export.qcow2_argv(overlay, dest_qcow2), run_ctx=run)
    finally:
        run.release(rec)
    return dest_qcow2
