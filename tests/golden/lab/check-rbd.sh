set -eu
# an RBD image through the kernel client: map, mkfs, write, unmap, map again and read back
cd /root/lab-check
rbd create lab/disk --size 256
dev=$(rbd map lab/disk)
echo "mapped $dev"
mkfs.ext4 -q "$dev"
install -d /mnt/lab-rbd
mount "$dev" /mnt/lab-rbd
cp object /mnt/lab-rbd/object
umount /mnt/lab-rbd
rbd unmap "$dev"
dev=$(rbd map lab/disk)
mount -o ro "$dev" /mnt/lab-rbd
echo "read $(sha256sum < /mnt/lab-rbd/object | cut -d' ' -f1)"
umount /mnt/lab-rbd
rbd unmap "$dev"
