set -eu
cd /root/lab-check
rm -f object.again
rados -p lab get lab-object object.again
echo "read $(sha256sum < object.again | cut -d' ' -f1)"
