set -eu
# a pool for the lab's data, then a seeded object through RADOS and back
ceph osd pool create lab 16
rbd pool init lab
install -d -m 0700 /root/lab-check
cd /root/lab-check
python3 -c 'import random, sys; sys.stdout.buffer.write(random.Random(7).randbytes(16777216))' > object
rados -p lab put lab-object object
rados -p lab get lab-object object.back
echo "written $(sha256sum < object | cut -d' ' -f1)"
echo "read $(sha256sum < object.back | cut -d' ' -f1)"
