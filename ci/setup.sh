#!/bin/sh
# Everything builder needs on a fresh Debian bookworm machine: system tools from Debian
# (apt-get update first), then builder and its test dependencies in .venv.
# Idempotent: a machine that already has them only pays for the checks.
# --no-install-recommends matters for vagrant-libvirt: it recommends nfs-kernel-server and
# libguestfs-tools, which the Vagrant test does not use (no nfsd on this host kernel).
# virt-v2v (the OVA conversion test) needs no Recommends, but nbdkit and nbdcopy (libnbd-bin), which Debian's package
# does not declare, write its output (-o local), and libguestfs boots its appliance from the
# host's kernel in /boot: a container or CI image without one gets linux-image-amd64.
set -eu
cd "$(dirname "$0")/.."

PACKAGES="qemu-system-x86 qemu-utils packer mmdebstrap extlinux syslinux-common e2fsprogs fdisk
  mount util-linux kmod openssh-client libxml2-utils
  iproute2 iputils-ping radvd tgt open-iscsi multipath-tools procps psmisc
  libvirt-daemon-system dnsmasq-base libvirt-dev pkg-config genisoimage python3-venv python3-dev gcc git
  graphviz chromium fonts-dejavu-core vagrant vagrant-libvirt sshpass virt-v2v nbdkit libnbd-bin"
ls /boot/vmlinuz-* >/dev/null 2>&1 || PACKAGES="$PACKAGES linux-image-amd64"

missing=$(dpkg-query -W -f '${Package} ${db:Status-Status}\n' $PACKAGES 2>/dev/null | awk '$2!="installed"{print $1}')
for p in $PACKAGES; do dpkg-query -W "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$(echo $missing)" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends $missing
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'
