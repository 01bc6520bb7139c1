"""radvd.conf for each router node: one `interface` stanza per overlay with RA settings."""

from __future__ import annotations

from ... import templates
from ..model import Overlay
from ..validate import Link, ResolvedNode, Topology


def ra_links(node: ResolvedNode) -> list[Link]:
    return [lk for lk in node.links if isinstance(lk.net, Overlay) and lk.net.ra and lk.ipv6 and node.role == "router"]


def render_node(topo: Topology, node: ResolvedNode) -> str:
    return templates.render("fabric/radvd.conf.j2", fabric=topo.fabric.name, node=node, links=ra_links(node))


def render(topo: Topology, node: str | None = None) -> str:
    nodes = [topo.node(node)] if node else [n for n in topo.nodes if ra_links(n)]
    return "\n".join(render_node(topo, n) for n in nodes)
