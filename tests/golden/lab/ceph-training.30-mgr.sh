#!/bin/sh
# Bring up your cluster, step 3: the manager.
set -eu
name=ceph-training
dir="/var/lib/ceph/mgr/ceph-$name"
install -d -o ceph -g ceph "$dir"
ceph auth get-or-create "mgr.$name" mon 'allow profile mgr' osd 'allow *' mds 'allow *' -o "$dir/keyring"
chown ceph:ceph "$dir/keyring"
systemctl unmask ceph-mgr.target
systemctl enable ceph-mgr.target "ceph-mgr@$name"
systemctl start "ceph-mgr@$name"
