#!/bin/sh
# Bring up your cluster, step 1b (first node, when there are several): bundle what the other
# nodes need to join — the admin and bootstrap-osd keyrings, the mon keyring and the initial
# monmap (with every mon) — into /root/lab-cluster.tar. It holds the cluster's secrets.
set -eu
umask 077
tar -C / -cf /root/lab-cluster.tar etc/ceph/ceph.client.admin.keyring var/lib/ceph/bootstrap-osd/ceph.keyring tmp/ceph.mon.keyring tmp/monmap
tar -tvf /root/lab-cluster.tar
sha256sum /root/lab-cluster.tar
