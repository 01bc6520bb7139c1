#!/bin/sh
# Bring up your cluster, step 2: the monitor.
set -eu
name=ceph-training-2
install -d -o ceph -g ceph "/var/lib/ceph/mon/ceph-$name"
runuser -u ceph -- ceph-mon --mkfs -i "$name" --monmap /tmp/monmap --keyring /tmp/ceph.mon.keyring

# the image masks the ceph targets so nothing starts before this exercise
systemctl unmask ceph.target ceph-mon.target
systemctl enable ceph.target ceph-mon.target "ceph-mon@$name"
systemctl start "ceph-mon@$name"

i=0
# its admin socket answers without a quorum: with several mons, the others may not run yet
until ceph daemon "mon.$name" mon_status >/dev/null 2>&1; do
    i=$((i + 1))
    if [ "$i" -gt 30 ]; then
        echo "the monitor does not answer" >&2
        journalctl -u "ceph-mon@$name" --no-pager | tail -n 20 >&2
        exit 1
    fi
    sleep 2
done
