"""iproute2 commands that configure one Linux node (the seed's Ubuntu script).

`node_plan` returns argv lists; the text rendering joins them, the namespace realisation runs
them with `ip -n NS -batch` (so it drops the leading `ip`). With `vlan_devices=False` (this
host has no 8021q) a VLAN segment's device is expected to exist already, as a veth end.
"""

from __future__ import annotations

import ipaddress
import shlex

from ..model import Overlay
from ..validate import Link, ResolvedNode, Topology

Argv = list[str]


def node_plan(node: ResolvedNode, *, vlan_devices: bool = True, nodad: bool = False) -> list[Argv]:
    cmds: list[Argv] = []
    for lk in node.links:
        if isinstance(lk.net, Overlay):
            continue
        if vlan_devices and lk.parent:
            cmds.append(["ip", "link", "set", "dev", lk.parent, "mtu", str(lk.net.mtu), "up"])
            cmds.append(["ip", "link", "add", "link", lk.parent, "name", lk.device,
                         "type", "vlan", "id", str(lk.net.vlan)])
        cmds.append(["ip", "link", "set", "dev", lk.device, "mtu", str(lk.net.mtu), "up"])
        cmds += _addrs(lk.device, lk, nodad)
    for lk in node.links:
        o = lk.net
        if not isinstance(o, Overlay):
            continue
        under = node.attached(o.underlay)
        cmds.append(
            ["ip", "link", "add", o.name, "type", "vxlan", "id", str(o.vni), "dstport", str(o.dstport),
             "group", str(o.mcast_group), "dev", under.device, "ttl", str(o.ttl)]
        )  # fmt: skip
        cmds.append(["ip", "link", "set", "up", "dev", o.name])
        cmds += _addrs(o.name, lk, nodad)
        cmds.append(["ip", "link", "set", "dev", o.name, "mtu", str(o.mtu)])
    for p in node.anyip:
        cmds.append(["ip", f"-{p.version}", "route", "add", "local", str(p), "dev", "lo"])
    for r in node.routes:
        cmds.append(["ip", f"-{r.prefix.version}", "route", "add", str(r.prefix), "via", str(r.via), "dev", r.dev])
    return cmds


def _addrs(dev: str, lk: Link, nodad: bool) -> list[Argv]:
    out = []
    addrs: tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface | None, ...] = (lk.ipv4, lk.ipv6)
    for a in addrs:
        if a is not None:
            out.append(["ip", "addr", "add", str(a), "dev", dev] + (["nodad"] if nodad and a.version == 6 else []))
    return out


def render(topo: Topology, node: str | None = None) -> str:
    nodes = [topo.node(node)] if node else [n for n in topo.nodes if n.platform == "linux"]
    parts = []
    for n in nodes:
        lines = [f"# node {n.name}"] + [shlex.join(c) for c in node_plan(n)]
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)
