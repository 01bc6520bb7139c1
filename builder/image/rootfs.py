"""Stage 1: the base root filesystem, built by mmdebstrap from Debian packages."""

from __future__ import annotations

from pathlib import Path

from ..spec import ImageSpec
from ..templates import render
from . import debcache

# What every image needs for the pipeline itself: boot (grub-pc: installed to the disk during
# provisioning; in mmdebstrap's chroot its postinst finds no core.img and touches no device),
# the test channel (qemu-guest-agent on virtio-serial), packer's SSH, and networkd (minbase has
# no DHCP client). zstd: initramfs-tools compresses with it (Recommends, which minbase leaves
# out; without it gzip -9 runs, slower and 20 % larger).
BASE_PACKAGES = ("systemd-sysv", "udev", "linux-image-amd64", "grub-pc", "openssh-server", "qemu-guest-agent", "zstd")

# While the packages go in, the kernel's postinst and then initramfs-tools' trigger each build
# the initramfs (19 s apiece under MODULES=most). update-initramfs is diverted to a no-op after
# the essential set (before initramfs-tools is unpacked); customize.sh.j2 puts it back and builds
# the initramfs once, as the last package step: the recipe of mmdebstrap's eatmydata hook for dpkg.
UPDATE_INITRAMFS = "/usr/sbin/update-initramfs"
DEFER_INITRAMFS = (
    f'--essential-hook=chroot "$1" dpkg-divert --quiet --local --rename --divert {UPDATE_INITRAMFS}.builder '
    f'--add {UPDATE_INITRAMFS} && printf "#!/bin/sh\\nexit 0\\n" > "$1{UPDATE_INITRAMFS}" '
    f'&& chmod 0755 "$1{UPDATE_INITRAMFS}"'
)


def packages(spec: ImageSpec) -> list[str]:
    extra = ["sudo"] if any(u.sudo for u in spec.users) else []
    return sorted(set(BASE_PACKAGES) | set(spec.packages) | set(extra))


def customize_script(spec: ImageSpec) -> str:
    return render("image/customize.sh.j2", spec=spec, update_initramfs=UPDATE_INITRAMFS)


def mmdebstrap_argv(spec: ImageSpec, target: Path, hook: Path, mirror: str | None = None,
                    debs: tuple[Path, Path] | None = None) -> list[str]:
    """`debs`: (the shared .deb cache, where this build's debs go) — see debcache."""
    return [
        "mmdebstrap",
        "--variant=minbase",
        "--format=directory",
        f"--include={','.join(packages(spec))}",
        *(debcache.mmdebstrap_options(*debs) if debs else ()),
        DEFER_INITRAMFS,
        f"--customize-hook=sh {hook} \"$1\"",
        spec.distribution,
        str(target),
        mirror or spec.mirror,
    ]
