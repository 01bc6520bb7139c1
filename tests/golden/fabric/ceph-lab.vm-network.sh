set -e
# The fabric, not DHCP, configures these NICs. Right after boot, systemd-networkd-wait-online
# is still waiting (2 min) for DHCP that never comes here, and any systemctl job queued behind
# network-online.target (a networkd stop, an iscsid restart) would hang the check: stop it all
# without waiting. Once renamed, no .network file matches the NICs.
systemctl --no-block stop systemd-networkd-wait-online.service systemd-networkd.socket \
    systemd-networkd.service 2>/dev/null || true
sysctl -qw net.ipv6.conf.default.accept_dad=0
nic() {
    for d in /sys/class/net/*; do
        [ "$(cat "$d/address")" = "$1" ] && { echo "${d##*/}"; return 0; }
    done
    echo "no NIC with MAC $1" >&2; return 1
}
d=$(nic 52:54:00:00:03:00); ip link set dev "$d" down; ip link set dev "$d" name vlan300
d=$(nic 52:54:00:16:00:65); ip link set dev "$d" down; ip link set dev "$d" name sana
d=$(nic 52:54:00:16:01:65); ip link set dev "$d" down; ip link set dev "$d" name sanb
ip -batch - <<'BATCH'
link set lo up
link set dev vlan300 addrgenmode none
link set dev sana addrgenmode none
link set dev sanb addrgenmode none
link set dev vlan300 mtu 9000 up
addr add 192.168.0.11/24 dev vlan300
link set dev sana mtu 1500 up
addr add 172.16.0.101/24 dev sana
link set dev sanb mtu 1500 up
addr add 172.16.1.101/24 dev sanb
link add vxlan1000 type vxlan id 1000 dstport 4789 group 239.0.3.232 dev vlan300 ttl 5
link set up dev vxlan1000
addr add 10.0.0.11/23 dev vxlan1000
addr add 2a00:f10:114:1000::101/64 dev vxlan1000 nodad
link set dev vxlan1000 mtu 1500
route add 2001:db8:100::/64 via 2a00:f10:114:1000::1 dev vxlan1000
BATCH
ip -br addr
