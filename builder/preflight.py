"""Everything a build needs, checked before its first stage — in seconds, not after the rootfs.

Like `packer validate`: the host tools every stage will run (a missing one names its Debian
package), the spec and its templates (rendered, confined to the image's folder), its fabric file
and VM node, and the Debian suite on the mirror (whose index digest is the archive state the
rootfs key records). Nothing is run or built. `render_all` writes every rendered file to a folder
for review (`builder image check --render DIR`).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .core.errors import UserError
from .fabric import validate as fabric_validate
from .fabric.render import FORMATS
from .image import archive, disk, export, ovf, packer, rootfs
from .spec import MIRROR_HELP, MIRROR_RE, ImageSpec
from .vagrant import box as vbox
from .vagrant import layer as vlayer

# stage -> (program, Debian package that provides it)
STAGE_TOOLS: dict[str, tuple[tuple[str, str], ...]] = {
    "rootfs": (("mmdebstrap", "mmdebstrap"), ("du", "coreutils")),
    "disk": (("sfdisk", "fdisk"), ("mkfs.ext4", "e2fsprogs"), ("losetup", "mount"), ("mount", "mount"),
             ("umount", "mount"), ("extlinux", "extlinux"), ("ssh-keygen", "openssh-client")),
    "provision": (("packer", "packer"), ("qemu-system-x86_64", "qemu-system-x86"), ("qemu-img", "qemu-utils")),
    "boot": (("qemu-system-x86_64", "qemu-system-x86"),),
    "fabric": (("ip", "iproute2"), ("ping", "iputils-ping"), ("tgtd", "tgt"), ("tgtadm", "tgt"),
               ("radvd", "radvd"), ("sysctl", "procps")),
    # offline since the box layer stopped booting: a raw copy, a loop mount and a chroot
    "box": (("qemu-img", "qemu-utils"), ("sfdisk", "fdisk"), ("losetup", "mount"), ("mount", "mount"),
            ("umount", "mount"), ("chroot", "coreutils")),
    "export": (("qemu-img", "qemu-utils"),),
}
STAGE_FILES: dict[str, tuple[tuple[Path, str], ...]] = {"disk": ((disk.MBR_BIN, "syslinux-common"),)}
# Debian installs losetup, sfdisk, tgtd, sysctl... here: on root's PATH (where a build runs), not on
# an unprivileged user's, whose `image check` must not call them missing
SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


@dataclass(frozen=True)
class Checked:
    spec: ImageSpec
    archive: dict[str, str]  # suite -> digest of its index on the mirror
    fabric_file: Path
    vm_node: str


def missing_tools(stages: tuple[str, ...] = tuple(STAGE_TOOLS)) -> list[tuple[str, str]]:
    """(tool, Debian package) for every program or file a stage needs and this host lacks."""
    missing: dict[str, str] = {}
    search = os.pathsep.join([os.environ.get("PATH", os.defpath), *SBIN])
    for stage in stages:
        for tool, package in STAGE_TOOLS.get(stage, ()):
            if shutil.which(tool, path=search) is None:
                missing.setdefault(tool, package)
        for path, package in STAGE_FILES.get(stage, ()):
            if not path.is_file():
                missing.setdefault(str(path), package)
    return sorted(missing.items())


def require_tools(stages: tuple[str, ...] = tuple(STAGE_TOOLS)) -> None:
    if missing := missing_tools(stages):
        packages = " ".join(sorted({p for _, p in missing}))
        raise UserError(f"missing {', '.join(t for t, _ in missing)}; install with: apt-get install {packages}",
                        field="host tools")


def fabric_of(spec: ImageSpec, project_root: Path | None = None) -> tuple[Path, fabric_validate.Topology, str]:
    """The image's fabric file (inside the project, when its root is given), loaded and validated,
    and the name of its VM node."""
    if spec.fabric is None:
        raise UserError("every image is tested in a fabric: set `fabric:`", file=str(spec.file), field="fabric")
    fabric_file = (spec.dir / spec.fabric).resolve()
    if project_root is not None and not fabric_file.is_relative_to(project_root.resolve()):
        raise UserError(f"{spec.fabric} lies outside the project", file=str(spec.file), field="fabric")
    topo = fabric_validate.load(fabric_file)
    vm = next((n.name for n in topo.nodes if n.kind == "vm"), None)
    if vm is None:
        raise UserError("the fabric has no `kind: vm` node for the image", file=str(fabric_file), field="nodes")
    return fabric_file, topo, vm


def rendered(spec: ImageSpec) -> dict[str, str]:
    """Every file the build renders from the spec, by a relative path for --render."""
    topo = fabric_of(spec)[1]
    scripts = packer.render_scripts(spec)
    files = {"rootfs/customize.sh": rootfs.customize_script(spec),
             "provision/image.pkr.hcl": packer.render_template(
                 spec, disk=Path("disk.raw"), output_dir=Path("out"), vm_name="image.qcow2", accelerator="tcg",
                 ssh_key=Path("packer_key"), scripts=[Path("scripts") / n for n in scripts],
                 console_log=Path("console.log"), ssh_port=2222, forward_port=2223)}  # ports: chosen per run
    files.update({f"provision/scripts/{n}": text for n, text in scripts.items()})
    for fmt, render in FORMATS.items():
        files[f"fabric/{topo.fabric.name}.{fmt}"] = render(topo, None)
    names = export.file_names(spec)
    files[f"export/{names['ova'].removesuffix('.ova')}.ovf"] = ovf.render_descriptor(
        export.appliance(spec, spec.disk_mib << 20, names["vmdk"], export.data_vmdks(spec)),
        [0] * (1 + len(spec.data_disks)))
    return files


def check(spec: ImageSpec, project_root: Path, *, mirror: str | None = None,
          stages: tuple[str, ...] = tuple(STAGE_TOOLS), archive_state: bool = True) -> Checked:
    """Everything `builder vm` checks before its first stage; raises UserError on bad input."""
    if mirror is not None and not MIRROR_RE.match(mirror):
        raise UserError(MIRROR_HELP, field="--mirror")
    require_tools(stages)
    fabric_file, _, vm = fabric_of(spec, project_root)
    rendered(spec)  # a template that does not render fails here, not after the rootfs
    if "provision" in stages:
        packer.check_run_root()
    if "box" in stages:
        vbox.plan_for(spec)  # the version must be one Vagrant accepts
        vlayer.read_public_key(vlayer.insecure_key_path())  # Debian's vagrant package ships it
    state = {spec.distribution: archive.suite_digest(mirror or spec.mirror, spec.distribution,
                                                     file=str(spec.file))} if archive_state else {}
    return Checked(spec, state, fabric_file, vm)


def render_all(spec: ImageSpec, dest: Path) -> list[Path]:
    out = []
    for rel, text in sorted(rendered(spec).items()):
        p = dest / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        out.append(p)
    return out
