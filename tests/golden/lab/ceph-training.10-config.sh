#!/bin/sh
# Bring up your cluster, step 1 (the first node): configuration, keys and the initial monitor
# map with every monitor of the cluster. Run 00-node.sh first: it sets the address the mon binds to.
set -eu
fsid=5d0e7d0c-2f0a-4c1b-9d4e-0a1b2c3d4e5f
if [ -e /etc/ceph/ceph.conf ]; then
    echo "/etc/ceph/ceph.conf exists: this node already has a cluster" >&2
    exit 1
fi

install -d -m 0755 /etc/ceph
cat > /etc/ceph/ceph.conf <<'CONF'
# /etc/ceph/ceph.conf of ceph-training: rendered from the lab's ceph.conf.j2.
[global]
fsid = 5d0e7d0c-2f0a-4c1b-9d4e-0a1b2c3d4e5f
mon_initial_members = ceph-training
mon_host = [v2:[2a00:f10:114:1000::101]:3300,v1:[2a00:f10:114:1000::101]:6789]
# IPv6 only: with both families allowed, mon and mgr can bind to different ones
public_network = 2a00:f10:114:1000::/64
# this node's address on the overlay (Ceph skips lo when it searches public_network)
public_addr = 2a00:f10:114:1000::101
ms_bind_ipv6 = true
ms_bind_ipv4 = false
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
auth_allow_insecure_global_id_reclaim = false
osd_pool_default_size = 3
osd_pool_default_min_size = 2
# all OSDs on one host: place replicas on different OSDs, not hosts
osd_crush_chooseleaf_type = 0
# slow CPUs (QEMU without KVM) answer heartbeats late: a longer grace, not hidden warnings
osd_heartbeat_grace = 60

[osd]
osd_memory_target = 939524096
CONF

ceph-authtool --create-keyring /tmp/ceph.mon.keyring --gen-key -n mon. --cap mon 'allow *'
ceph-authtool --create-keyring /etc/ceph/ceph.client.admin.keyring --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *'
install -d -o ceph -g ceph /var/lib/ceph/bootstrap-osd
ceph-authtool --create-keyring /var/lib/ceph/bootstrap-osd/ceph.keyring --gen-key -n client.bootstrap-osd \
    --cap mon 'profile bootstrap-osd' --cap mgr 'allow r'
ceph-authtool /tmp/ceph.mon.keyring --import-keyring /etc/ceph/ceph.client.admin.keyring
ceph-authtool /tmp/ceph.mon.keyring --import-keyring /var/lib/ceph/bootstrap-osd/ceph.keyring
chown ceph:ceph /tmp/ceph.mon.keyring

monmaptool --create --fsid "$fsid" \
    --addv ceph-training '[v2:[2a00:f10:114:1000::101]:3300,v1:[2a00:f10:114:1000::101]:6789]' \
    /tmp/monmap
monmaptool --print /tmp/monmap
