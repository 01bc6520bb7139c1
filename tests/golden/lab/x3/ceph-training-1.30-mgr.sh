#!/bin/sh
# Bring up your cluster, step 3: the manager.
set -eu
name=ceph-training-1
dir="/var/lib/ceph/mgr/ceph-$name"
# the mgr's key comes from the monitors: they need a quorum (a majority of them running)
i=0
until ceph --connect-timeout 10 quorum_status >/dev/null; do
    i=$((i + 1))
    if [ "$i" -gt 60 ]; then
        echo "the monitors have no quorum" >&2; ceph daemon "mon.$name" mon_status >&2 || true; exit 1
    fi
    sleep 5
done
install -d -o ceph -g ceph "$dir"
ceph auth get-or-create "mgr.$name" mon 'allow profile mgr' osd 'allow *' mds 'allow *' -o "$dir/keyring"
chown ceph:ceph "$dir/keyring"
systemctl unmask ceph-mgr.target
systemctl enable ceph-mgr.target "ceph-mgr@$name"
systemctl start "ceph-mgr@$name"
