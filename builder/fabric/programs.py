"""Small stdlib-only Python programs run on a node (`python3 -c SRC args...`), in a namespace or
through the guest agent: they need nothing installed but python3."""

# Send a router solicitation on IFACE, print the first RA as JSON: prefixes, RDNSS, MTU, flags.
RA_PROBE = r"""
import json, socket, struct, sys, time
iface, wait = sys.argv[1], float(sys.argv[2])
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
idx = socket.if_nametoindex(iface)
end = time.monotonic() + wait
while time.monotonic() < end:
    # solicit again each second: the router may not have been listening yet
    s.sendto(struct.pack("!BBHI", 133, 0, 0, 0), ("ff02::2", 0, 0, idx))
    s.settimeout(1.0)
    try:
        data, src = s.recvfrom(4096)
    except socket.timeout:
        continue
    if data[0] != 134:
        continue
    ra = {"router": src[0].split("%")[0], "hop_limit": data[4], "managed": bool(data[5] & 0x80),
          "other": bool(data[5] & 0x40), "prefixes": [], "rdnss": [], "mtu": None}
    i = 16
    while i + 2 <= len(data) and data[i + 1]:
        t, ln = data[i], data[i + 1] * 8
        o = data[i:i + ln]
        if t == 3:
            ra["prefixes"].append({"prefix": socket.inet_ntop(socket.AF_INET6, o[16:32]) + "/" + str(o[2]),
                                   "on_link": bool(o[3] & 0x80), "autonomous": bool(o[3] & 0x40),
                                   "valid_lifetime": struct.unpack("!I", o[4:8])[0]})
        elif t == 5:
            ra["mtu"] = struct.unpack("!I", o[4:8])[0]
        elif t == 25:
            ra["rdnss"] += [socket.inet_ntop(socket.AF_INET6, o[j:j + 16]) for j in range(8, ln, 16)]
        i += ln
    print(json.dumps(ra))
    sys.exit(0)
sys.exit("no router advertisement on " + iface)
"""

# Listen on ADDR:PORT with IP_FREEBIND (the address is only covered by an AnyIP local route),
# answer one connection with TOKEN.
TCP_SERVER = r"""
import socket, sys
addr, port, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_IP, 15, 1)  # IP_FREEBIND, honoured for IPv6 sockets too
s.bind((addr, port))
s.listen(1)
print("ready", flush=True)
s.settimeout(30)
c, peer = s.accept()
c.sendall((token + " " + peer[0] + "\n").encode())
c.close()
"""

TCP_CLIENT = r"""
import socket, sys, time
addr, port = sys.argv[1], int(sys.argv[2])
for _ in range(50):
    try:
        c = socket.create_connection((addr, port), timeout=3)
        break
    except ConnectionRefusedError:
        time.sleep(0.1)
print(c.makefile().readline().strip())
"""
