"""The lab cluster's network, derived from the image's fabric: N copies of the image's VM node
on the fabric's VXLAN overlay, beside the overlay's router, and nothing else of the fabric.

Pure and deterministic: node k (1-based) is `<hostname>-k`, its MACs, IPv4 and IPv6 addresses
are the image node's plus k-1, and the derived fabric goes through the same validation as a
fabric file (addresses unique and inside their subnets, overlay on its underlay, MTU budget).
The overlay's IPv6 addresses are in the topology (the lab's plans read them there), but the
fabric does not configure them in the guests: the lab's own first step does (`without_lab_address`),
as a trainee does in VirtualBox.
"""

from __future__ import annotations

import dataclasses
import re

from ..core.errors import UserError
from ..fabric.model import Fabric, Interface, Node, Overlay
from ..fabric.validate import ResolvedNode, Topology, resolve
from .plan import HOSTNAME

MAX_NODES = 7


def _fail(topo: Topology, msg: str) -> UserError:
    return UserError(msg, file=str(topo.source) if topo.source else None, field="nodes")


def _mac_plus(mac: str, k: int) -> str:
    value = int(mac.replace(":", ""), 16) + k
    return ":".join(f"{value:012x}"[i:i + 2] for i in range(0, 12, 2))


def node_names(hostname: str, count: int) -> tuple[str, ...]:
    names = tuple(f"{hostname}-{k}" for k in range(1, count + 1))
    bad = [n for n in names if not re.match(HOSTNAME, n) or len(n) > 32]  # 32: a fabric node's name
    if bad:
        raise UserError(f"{bad[0]!r} is not a usable host name (from hostname {hostname!r})", field="hostname")
    return names


def cluster_topology(topo: Topology, vm_node: str, names: tuple[str, ...]) -> Topology:
    """`topo` with `vm_node` replaced by one VM node per name (see the module docstring)."""
    if not 3 <= len(names) <= MAX_NODES:
        raise _fail(topo, f"a lab cluster has 3 to {MAX_NODES} nodes, not {len(names)}")
    base = topo.node(vm_node)
    overlay_link = next((lk for lk in base.links if lk.is_overlay and lk.ipv6 is not None), None)
    if overlay_link is None:
        raise _fail(topo, f"node {vm_node} has no IPv6 address on an overlay: the lab needs one")
    overlay = overlay_link.net
    assert isinstance(overlay, Overlay)
    keep = {overlay.name, overlay.underlay}
    links = [lk for lk in base.links if lk.net.name in keep]
    used_macs = {lk.hw_id for n in topo.nodes for lk in n.links if lk.hw_id}

    def copy(k: int, name: str) -> Node:
        itfs = []
        for lk in links:
            mac = _mac_plus(lk.hw_id, k) if lk.hw_id else None
            if mac is not None and k and mac in used_macs:
                raise _fail(topo, f"{name}'s MAC {mac} (the image node's + {k}) is used by another node")
            itfs.append(Interface(attach=lk.net.name, port=lk.port, hw_id=mac,
                                  ipv4=lk.ipv4.ip + k if lk.ipv4 else None,
                                  ipv6=lk.ipv6.ip + k if lk.ipv6 else None))  # fmt: skip
        return Node(name=name, kind="vm", interfaces=tuple(itfs))

    others = [  # the overlay's router, without its AnyIP prefixes (not the lab's)
        n.model_copy(update={"interfaces": tuple(i for i in n.interfaces if i.attach in keep), "anyip": ()})
        for n in topo.fabric.nodes
        if n.name != vm_node and any(i.attach == overlay.name for i in n.interfaces)
    ]
    fabric = Fabric(
        name=f"{topo.fabric.name}-x{len(names)}"[:32],
        description=f"{topo.fabric.name}: {len(names)} copies of {vm_node} on {overlay.name}",
        segments=tuple(s for s in topo.fabric.segments if s.name in keep),
        overlays=tuple(o for o in topo.fabric.overlays if o.name == overlay.name),
        nodes=(*others, *(copy(k, n) for k, n in enumerate(names))),
        anyip_probes=topo.fabric.anyip_probes,
    )
    try:
        derived = resolve(fabric, topo.source)
    except UserError as e:
        raise _fail(topo, f"the {len(names)}-node lab network is invalid: {e}") from None
    # not the file's fabric: `builder fabric test FILE` must not take a live lab for the file's
    return dataclasses.replace(derived, source=None)


def without_lab_address(node: ResolvedNode) -> ResolvedNode:
    """The node as the fabric configures it: its overlay IPv6 address left to the lab's first step,
    and so no IPv6 route via the overlay (its gateway is not on-link before that address)."""
    overlays = {lk.device for lk in node.links if lk.is_overlay}
    return dataclasses.replace(
        node, links=tuple(dataclasses.replace(lk, ipv6=None) if lk.is_overlay else lk for lk in node.links),
        routes=tuple(r for r in node.routes if not (r.dev in overlays and r.prefix.version == 6)))


def vm_nodes(topo: Topology) -> tuple[str, ...]:
    return tuple(n.name for n in topo.nodes if n.kind == "vm")

