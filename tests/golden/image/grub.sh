#!/bin/sh
# First provisioner (builder's): the image boots with GRUB, Debian's default and the bootloader
# virt-v2v and other converters understand. The disk stage's extlinux only boots this first
# (packer's) boot: inside the guest the disk is a real block device with partition nodes, so
# grub-install works as on any Debian. It runs before the image's own scripts, so a kernel they
# install goes through Debian's update-grub hook like every later kernel upgrade.
set -eu
t0=$(date +%s)
src=$(findmnt -n -o SOURCE /)
disk=$(lsblk -n -d -o PKNAME "$src")
case "$disk" in
  '' | *[!a-z0-9]*) echo "builder: no whole disk found for / (source '$src', parent '$disk')" >&2; exit 1 ;;
esac
[ -b "/dev/$disk" ] || { echo "builder: /dev/$disk is not a block device" >&2; exit 1; }

# A drop-in, not an edit of /etc/default/grub (ucf-managed: a local edit prompts on upgrades).
# Screen and serial, and the kernel's console on ttyS0: the build reads the boot log there.
install -d /etc/default/grub.d
cat > /etc/default/grub.d/50-builder.cfg <<'CFG'
# Written by builder: boot menu and kernel log on the screen and on the serial console.
GRUB_TIMEOUT=1
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200n8 net.ifnames=1"
GRUB_TERMINAL="console serial"
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
CFG

# A copy of the image sees its disk under another name (sda in VirtualBox, vda in KVM): on a
# grub-pc upgrade keep the installed boot code instead of failing on a device that is gone.
debconf-set-selections <<'SEL'
grub-pc grub-pc/install_devices multiselect
grub-pc grub-pc/install_devices_empty boolean true
SEL

grub-install --target=i386-pc "/dev/$disk"
update-grub
uuid=$(findmnt -n -o UUID /)
grep -q "root=UUID=$uuid " /boot/grub/grub.cfg || { echo "builder: grub.cfg does not boot root=UUID=$uuid" >&2; exit 1; }

# Exactly one bootloader: GRUB's boot.img replaced SYSLINUX's MBR; its files go too
# (extlinux marks ldlinux.sys immutable).
chattr -i /boot/extlinux/ldlinux.sys
rm -rf /boot/extlinux
echo "builder: GRUB installed on /dev/$disk in $(( $(date +%s) - t0 )) s"
