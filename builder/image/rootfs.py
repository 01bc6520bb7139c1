"""Stage 1: the base root filesystem, built by mmdebstrap from Debian packages."""

from __future__ import annotations

from pathlib import Path

from ..spec import ImageSpec
from ..templates import render
from . import debcache

# What every image needs for the pipeline itself: boot (grub-pc: installed to the disk during
# provisioning; in mmdebstrap's chroot its postinst finds no core.img and touches no device),
# the test channel (qemu-guest-agent on virtio-serial), packer's SSH, and networkd (minbase has
# no DHCP client).
BASE_PACKAGES = ("systemd-sysv", "udev", "linux-image-amd64", "grub-pc", "openssh-server", "qemu-guest-agent")


def packages(spec: ImageSpec) -> list[str]:
    extra = ["sudo"] if any(u.sudo for u in spec.users) else []
    return sorted(set(BASE_PACKAGES) | set(spec.packages) | set(extra))


def customize_script(spec: ImageSpec) -> str:
    return render("image/customize.sh.j2", spec=spec)


def mmdebstrap_argv(spec: ImageSpec, target: Path, hook: Path, mirror: str | None = None,
                    debs: tuple[Path, Path] | None = None) -> list[str]:
    """`debs`: (the shared .deb cache, where this build's debs go) — see debcache."""
    return [
        "mmdebstrap",
        "--variant=minbase",
        "--format=directory",
        f"--include={','.join(packages(spec))}",
        *(debcache.mmdebstrap_options(*debs) if debs else ()),
        f"--customize-hook=sh {hook} \"$1\"",
        spec.distribution,
        str(target),
        mirror or spec.mirror,
    ]
