#!/bin/sh
# Bring up your cluster, step 1 on the other nodes: join the cluster the first node created,
# from its bundle (15-share.sh), with this node's own ceph.conf (it differs in public_addr).
# Usage: sh 16-join.sh [BUNDLE]     default BUNDLE: /root/lab-cluster.tar
set -eu
bundle=${1:-/root/lab-cluster.tar}
fsid=5d0e7d0c-2f0a-4c1b-9d4e-0a1b2c3d4e5f
if [ -e /etc/ceph/ceph.conf ]; then
    echo "/etc/ceph/ceph.conf exists: this node already has a cluster" >&2
    exit 1
fi
tar -C / -xpf "$bundle" etc/ceph/ceph.client.admin.keyring var/lib/ceph/bootstrap-osd/ceph.keyring tmp/ceph.mon.keyring tmp/monmap
if ! monmaptool --print /tmp/monmap | grep -qx "fsid $fsid"; then
    echo "$bundle is not from the cluster $fsid:" >&2; monmaptool --print /tmp/monmap >&2; exit 1
fi
chown ceph:ceph /tmp/ceph.mon.keyring
chown -R ceph:ceph /var/lib/ceph/bootstrap-osd

install -d -m 0755 /etc/ceph
cat > /etc/ceph/ceph.conf <<'CONF'
# /etc/ceph/ceph.conf of ceph-training-2: rendered from the lab's ceph.conf.j2.
[global]
fsid = 5d0e7d0c-2f0a-4c1b-9d4e-0a1b2c3d4e5f
mon_initial_members = ceph-training-1, ceph-training-2, ceph-training-3
mon_host = [v2:[2a00:f10:114:1000::101]:3300,v1:[2a00:f10:114:1000::101]:6789],[v2:[2a00:f10:114:1000::102]:3300,v1:[2a00:f10:114:1000::102]:6789],[v2:[2a00:f10:114:1000::103]:3300,v1:[2a00:f10:114:1000::103]:6789]
# IPv6 only: with both families allowed, mon and mgr can bind to different ones
public_network = 2a00:f10:114:1000::/64
# this node's address on the overlay (Ceph skips lo when it searches public_network)
public_addr = 2a00:f10:114:1000::102
ms_bind_ipv6 = true
ms_bind_ipv4 = false
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
auth_allow_insecure_global_id_reclaim = false
osd_pool_default_size = 3
osd_pool_default_min_size = 2
# slow CPUs (QEMU without KVM) answer heartbeats late: a longer grace, not hidden warnings
osd_heartbeat_grace = 60

[osd]
osd_memory_target = 939524096
CONF
monmaptool --print /tmp/monmap
