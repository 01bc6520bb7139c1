#!/bin/sh
# mmdebstrap customize hook: runs on the host with the new root as $1.
set -eu
root="$1"
echo minimal > "$root/etc/hostname"
cat > "$root/etc/hosts" <<'HOSTS'
127.0.0.1	localhost
127.0.1.1	minimal
::1	localhost ip6-localhost ip6-loopback
HOSTS

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
echo student:student | chroot "$root" chpasswd
chroot "$root" usermod -aG sudo student
