#!/bin/sh
# Bring up your cluster, step 4: one OSD on each empty data disk (BlueStore on LVM).
set -eu
# whole disks with neither partitions nor a filesystem: the data disks (sdb.. in VirtualBox, vdb.. in QEMU)
disks=$(lsblk -dnpo NAME,TYPE,FSTYPE,PTTYPE | awk '$2 == "disk" && NF == 2 {print $1}')
count=$(printf '%s\n' "$disks" | grep -c . || true)
if [ "$count" -ne 1 ]; then
    echo "want 1 empty data disks, found $count:" $disks >&2
    exit 1
fi
systemctl unmask ceph-osd.target
systemctl enable ceph-osd.target
for dev in $disks; do
    ceph-volume lvm create --bluestore --data "$dev"
done
ceph osd tree
