set -e
# The fabric, not DHCP, configures these NICs. systemd-networkd-wait-online would wait 2 min
# for DHCP that never comes here, and any unit that wants network-online.target (iscsid does)
# pulls it in again, reviving networkd with it. Mask both for this boot, then stop them
# without waiting; once renamed, no .network file matches the NICs anyway.
units="systemd-networkd-wait-online.service systemd-networkd.socket systemd-networkd.service"
systemctl mask --runtime $units >/dev/null 2>&1 || true
systemctl --no-block stop $units 2>/dev/null || true
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
printf '%s\n' \
    'link set lo up' \
    'link set dev vlan300 addrgenmode none' \
    'link set dev sana addrgenmode none' \
    'link set dev sanb addrgenmode none' \
    'link set dev vlan300 mtu 9000 up' \
    'addr add 192.168.0.11/24 dev vlan300' \
    'link set dev sana mtu 1500 up' \
    'addr add 172.16.0.101/24 dev sana' \
    'link set dev sanb mtu 1500 up' \
    'addr add 172.16.1.101/24 dev sanb' \
    'link add vxlan1000 type vxlan id 1000 dstport 4789 group 239.0.3.232 dev vlan300 ttl 5' \
    'link set up dev vxlan1000' \
    'addr add 10.0.0.11/23 dev vxlan1000' \
    'addr add 2a00:f10:114:1000::101/64 dev vxlan1000 nodad' \
    'link set dev vxlan1000 mtu 1500' \
    'route add 2001:db8:100::/64 via 2a00:f10:114:1000::1 dev vxlan1000' \
    | ip -batch -
ip -br addr
