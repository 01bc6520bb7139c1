#!/bin/sh
# mmdebstrap customize hook: runs on the host with the new root as $1.
# Every value is a quoted argument: files with data are written by printf, never a heredoc.
set -eu
root="$1"

# update-initramfs was a no-op while the packages went in (rootfs.py): put it back, build once.
rm -f "$root/usr/sbin/update-initramfs"
chroot "$root" dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs
chroot "$root" update-initramfs -c -k all
printf '%s\n' minimal > "$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' minimal > "$root/etc/hosts"

# DHCP on every wired NIC: minbase has no DHCP client, systemd-networkd does it.
cat > "$root/etc/systemd/network/80-dhcp.network" <<'NET'
[Match]
Name=en* eth*

[Network]
DHCP=yes
NET
chroot "$root" systemctl enable systemd-networkd.service

# Host keys are made on each VM's first boot, never shared between copies of the image.
rm -f "$root"/etc/ssh/ssh_host_*
install -d "$root/etc/systemd/system/ssh.service.d"
cat > "$root/etc/systemd/system/ssh.service.d/10-hostkeys.conf" <<'UNIT'
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
UNIT
: > "$root/etc/machine-id"

chroot "$root" useradd --create-home --shell /bin/bash student
printf '%s\n' student:student | chroot "$root" chpasswd
chroot "$root" usermod -aG sudo student
