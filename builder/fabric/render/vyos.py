"""VyOS `interfaces { ... }` configuration for router nodes (the seed's block)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ... import templates
from ..model import Overlay, Segment
from ..validate import Link, ResolvedNode, Topology


@dataclass
class _Port:
    name: str | None  # validation names every port of a VyOS node; a Linux one (--node) may lack them
    hw_id: str | None = None
    mtu: int = 1500
    addresses: list[str] = field(default_factory=list)
    vifs: list[Link] = field(default_factory=list)


def _ports(node: ResolvedNode) -> list[_Port]:
    ports: dict[str | None, _Port] = {}
    for lk in node.links:
        if lk.is_overlay:
            continue
        p = ports.setdefault(lk.port, _Port(lk.port))
        p.hw_id = p.hw_id or lk.hw_id
        p.mtu = max(p.mtu, lk.net.mtu)
        if lk.parent:
            p.vifs.append(lk)
        else:
            p.addresses += [str(a) for a in (lk.ipv4, lk.ipv6) if a]
    return sorted(ports.values(), key=lambda p: p.name or "")


def render_node(topo: Topology, node: ResolvedNode) -> str:
    overlays = []
    for lk in node.links:
        if isinstance(lk.net, Overlay):
            under = node.attached(lk.net.underlay)
            seg = under.net
            link = f"{under.parent}.{seg.vlan}" if under.parent and isinstance(seg, Segment) else under.device
            overlays.append((lk, link))
    return templates.render("fabric/vyos.j2", node=node, ports=_ports(node), overlays=overlays)


def render(topo: Topology, node: str | None = None) -> str:
    nodes = [topo.node(node)] if node else [n for n in topo.nodes if n.platform == "vyos"]
    return "\n".join(render_node(topo, n) for n in nodes)
