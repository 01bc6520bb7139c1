#!/bin/sh
# Bring up your cluster, step 0 (every node): this node's identity — its host name and its IPv6
# address on the lab network (kept across reboots), every lab node's name in /etc/hosts, and
# one clock for all monitors: the first node serves its time to the others (a classroom
# network has no NTP server, and monitors whose clocks differ by 50 ms warn MON_CLOCK_SKEW).
# Usage: sh 00-node.sh [DEVICE]     DEVICE: the NIC on the lab network (VirtualBox: enp0s3)
set -eu
name=ceph-training
addr=2a00:f10:114:1000::101
prefixlen=64
dev=${1:-vxlan1000}
case $dev in
    *[!a-z0-9]* | "") echo "not a network device name: $dev" >&2; exit 2 ;;
esac
if ! ip link show dev "$dev" >/dev/null 2>&1; then
    echo "no network device $dev; the NICs here:" >&2; ip -br link >&2; exit 1
fi

echo "$name" > /etc/hostname
hostname "$name"
sed -i -e '/ # lab$/d' -e "s/^127\.0\.1\.1[[:space:]].*/127.0.1.1 $name/" /etc/hosts
echo '2a00:f10:114:1000::101 ceph-training # lab' >> /etc/hosts

# now, and from the next boot on through systemd-networkd
cat > "/etc/systemd/network/10-lab-$dev.network" <<NET
[Match]
Name=$dev

[Network]
DHCP=yes
Address=$addr/$prefixlen
NET
ip link set dev "$dev" up
ip -6 addr replace "$addr/$prefixlen" dev "$dev"

# The mon binds to this address: it must be out of duplicate address detection first,
# or ceph-mon starts before it can bind.
i=0
until ip -6 -o addr show to "$addr/128" -tentative | grep -q .; do
    if ip -6 -o addr show to "$addr/128" dadfailed | grep -q .; then
        echo "$addr: duplicate address detection failed (another node has it)" >&2; exit 1
    fi
    i=$((i + 1))
    if [ "$i" -gt 60 ]; then
        echo "$addr is still tentative after 60 s" >&2; exit 1
    fi
    sleep 1
done

# the first node keeps the lab's time and serves it to the lab network
cat > /etc/chrony/conf.d/lab.conf <<'CONF'
local stratum 8
allow 2a00:f10:114:1000::/64
CONF
systemctl restart chrony
hostname
ip -6 -br addr show dev "$dev"
