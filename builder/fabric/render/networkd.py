"""systemd-networkd files for a guest node (file name -> text).

On this host a VLAN segment is its own bridge, so a guest sees every segment untagged on its
own NIC, matched by MAC address (the link's hw_id) when given; VXLANs ride on those NICs.
"""

from __future__ import annotations

from ... import templates
from ..model import Overlay
from ..validate import ResolvedNode, Topology


def node_files(node: ResolvedNode) -> dict[str, str]:
    files: dict[str, str] = {}
    for lk in node.links:
        routes = [r for r in node.routes if r.dev == lk.device]
        if lk.is_overlay:
            files[f"30-{lk.net.name}.netdev"] = templates.render("fabric/networkd-vxlan.netdev.j2", node=node, o=lk.net)
            vxlans = []
        else:
            vxlans = [o.net for o in node.links if isinstance(o.net, Overlay) and o.net.underlay == lk.net.name]
        prio = 30 if lk.is_overlay else 20
        files[f"{prio}-{lk.device}.network"] = templates.render(
            "fabric/networkd-link.network.j2", node=node, lk=lk, vxlans=vxlans, routes=routes
        )
    if node.anyip:
        files["10-anyip.network"] = templates.render("fabric/networkd-anyip.network.j2", node=node)
    return dict(sorted(files.items()))


def render(topo: Topology, node: str | None = None) -> str:
    nodes = [topo.node(node)] if node else [n for n in topo.nodes if n.platform == "linux"]
    out = []
    for n in nodes:
        for name, text in node_files(n).items():
            out.append(f"### {n.name}/{name}\n{text}")
    return "\n".join(out)
