"""Load a fabric file and resolve it into a Topology: references checked, replicas expanded,
`auto` addresses allocated, AnyIP routes derived. Every rule failure is a UserError naming the
file, the field and why (exit 2)."""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from ..core.errors import UserError
from ..spec import load_yaml, validate
from .model import BRIDGE_MAX_PORTS, Fabric, Interface, Node, Overlay, Segment

Net = ipaddress.IPv4Network | ipaddress.IPv6Network
Addr = ipaddress.IPv4Interface | ipaddress.IPv6Interface


@dataclass(frozen=True)
class Link:
    """A node's resolved attachment; `ifname` is the device name inside the node."""

    net: Segment | Overlay
    port: str | None = None
    hw_id: str | None = None
    ipv4: ipaddress.IPv4Interface | None = None
    ipv6: ipaddress.IPv6Interface | None = None

    @property
    def device(self) -> str:
        """L3 device inside the node: a VLAN device is named after its segment (the seed's
        vlan300), an untagged segment uses the port (eth0), an overlay its own name."""
        if isinstance(self.net, Segment) and self.net.vlan is None and self.port:
            return self.port
        return self.net.name

    @property
    def parent(self) -> str | None:
        """Port carrying a VLAN segment (eth5 for eth5.300); None when untagged."""
        return self.port if isinstance(self.net, Segment) and self.net.vlan else None

    @property
    def is_overlay(self) -> bool:
        return isinstance(self.net, Overlay)

    def addr(self, version: int) -> Addr | None:
        return self.ipv4 if version == 4 else self.ipv6


@dataclass(frozen=True)
class Route:
    prefix: Net
    via: ipaddress.IPv4Address | ipaddress.IPv6Address
    dev: str


@dataclass(frozen=True)
class ResolvedNode:
    name: str
    kind: str
    role: str
    platform: str
    links: tuple[Link, ...]
    anyip: tuple[Net, ...] = ()
    routes: tuple[Route, ...] = ()

    def link(self, net: str) -> Link | None:
        return next((lk for lk in self.links if lk.net.name == net), None)

    def attached(self, net: str) -> Link:
        """The link on `net` where validation guarantees one (an overlay member's underlay)."""
        lk = self.link(net)
        if lk is None:
            raise KeyError(f"node {self.name} has no link on {net}")
        return lk


@dataclass(frozen=True)
class Topology:
    fabric: Fabric
    nodes: tuple[ResolvedNode, ...]
    source: Path | None = None
    _by_name: dict[str, ResolvedNode] = field(default_factory=dict, compare=False, repr=False)

    def node(self, name: str) -> ResolvedNode:
        if not self._by_name:
            self._by_name.update((n.name, n) for n in self.nodes)
        return self._by_name[name]

    def members(self, net: str) -> list[tuple[ResolvedNode, Link]]:
        return [(n, lk) for n in self.nodes for lk in n.links if lk.net.name == net]

    def ports(self, segment: str) -> list[tuple[ResolvedNode, Link]]:
        """Bridge ports a segment needs: one per node link on it (VM taps included)."""
        return self.members(segment)


def load(path: Path) -> Topology:
    fabric: Fabric = validate(Fabric, load_yaml(path), path)
    return resolve(fabric, path)


def resolve(fabric: Fabric, path: Path | None = None) -> Topology:
    c = _Checker(fabric, str(path) if path else None)
    c.nets()
    nodes = c.nodes()
    nodes = c.routes(nodes)
    topo = Topology(fabric, tuple(nodes), path)
    c.ports(topo)
    c.iscsi(topo)
    c.routers(topo)
    return topo


class _Checker:
    def __init__(self, fabric: Fabric, file: str | None):
        self.f, self.file = fabric, file

    def fail(self, msg: str, where: str) -> NoReturn:
        raise UserError(msg, file=self.file, field=where)

    def nets(self) -> None:
        f = self.f
        seen: dict[str, str] = {}
        owners: list[tuple[Net, str]] = []
        groups: dict[object, tuple[Overlay, str]] = {}
        kinds: tuple[tuple[str, tuple[Segment | Overlay, ...]], ...] = (
            ("segments", f.segments), ("overlays", f.overlays))
        for kind, items in kinds:
            for i, n in enumerate(items):
                where = f"{kind}[{i}]"
                if n.name in seen:
                    self.fail(f"name {n.name!r} already used by {seen[n.name]}", f"{where}.name")
                seen[n.name] = where
                for fam in ("ipv4", "ipv6"):
                    net = getattr(n, fam)
                    if net is None:
                        continue
                    for other, owner in owners:
                        if other.version == net.version and other.overlaps(net):
                            self.fail(f"{net} overlaps {other} of {owner}", f"{where}.{fam}")
                    owners.append((net, where))
        for i, o in enumerate(f.overlays):
            where = f"overlays[{i}]"
            under = f.nets.get(o.underlay)
            if not isinstance(under, Segment):
                self.fail(f"underlay {o.underlay!r} is not a segment", f"{where}.underlay")
            need = o.mtu + o.overhead
            if need > under.mtu:
                fam = f"IPv{o.mcast_group.version}"
                self.fail(
                    f"overlay MTU {o.mtu} + {o.overhead} VXLAN over {fam} = {need} exceeds "
                    f"underlay {under.name} MTU {under.mtu}",
                    f"{where}.mtu",
                )
            g = o.mcast_group
            if getattr(under, f"ipv{g.version}") is None:
                self.fail(f"group {g} is IPv{g.version} but underlay {under.name} has no IPv{g.version} subnet",
                          f"{where}.group")
            if g in groups:
                sharer, owner = groups[g]
                if not (o.share_group and sharer.share_group):
                    self.fail(
                        f"group {g} already carries VNI {sharer.vni} ({owner}); give each VNI "
                        "its own group or set share_group on both",
                        f"{where}.group",
                    )
            groups[g] = (o, where)
            for j, p in enumerate(o.ra.prefixes if o.ra else ()):
                if o.ipv6 is None or not p.prefix.subnet_of(o.ipv6):
                    self.fail(f"RA prefix {p.prefix} is not inside {o.ipv6}", f"{where}.ra.prefixes[{j}]")
            if o.ra and not o.ra_prefixes:
                self.fail("router-advert needs an IPv6 subnet or prefixes", f"{where}.ra")

    def nodes(self) -> list[ResolvedNode]:
        f = self.f
        used: dict[object, str] = {}
        pools: dict[tuple[str, int], Iterator[ipaddress.IPv4Address | ipaddress.IPv6Address]] = {}
        # explicit addresses first, so `auto` never hands one of them out
        for i, n in enumerate(f.nodes):
            for j, itf in enumerate(n.interfaces):
                where = f"nodes[{i}].interfaces[{j}]"
                net = f.nets.get(itf.attach)
                if net is None:
                    self.fail(f"{itf.attach!r} is neither a segment nor an overlay", f"{where}.attach")
                if n.kind == "vm" and isinstance(net, Segment) and itf.hw_id is None:
                    self.fail("a VM's NIC needs a MAC: the guest finds its interface by it", f"{where}.hw_id")
                if n.platform == "vyos" and isinstance(net, Segment) and itf.port is None:
                    self.fail("a VyOS node names the port of each segment (eth0, eth5, ...)", f"{where}.port")
                if isinstance(net, Overlay) and not any(o.attach == net.underlay for o in n.interfaces):
                    self.fail(f"node {n.name} is on overlay {net.name} but not on its underlay {net.underlay}",
                              f"{where}.attach")
                for fam in ("ipv4", "ipv6"):
                    a = getattr(itf, fam)
                    if a is None or a == "auto":
                        continue
                    subnet = getattr(net, fam)
                    if subnet is None:
                        self.fail(f"{net.name} has no {fam} subnet", f"{where}.{fam}")
                    reserved = subnet.version == 4 and a in (subnet.network_address, subnet.broadcast_address)
                    if a not in subnet or reserved:
                        self.fail(f"{a} is not a host address of {net.name} {subnet}", f"{where}.{fam}")
                    if n.replicas > 1:
                        self.fail("a replicated node needs `auto` addresses", f"{where}.{fam}")
                    if a in used:
                        self.fail(f"{a} already used by {used[a]}", f"{where}.{fam}")
                    used[a] = where
        names: dict[str, str] = {}
        out = []
        for i, n in enumerate(f.nodes):
            for r in range(n.replicas):
                name = n.name if n.replicas == 1 else f"{n.name}-{r + 1}"
                if name in names:
                    self.fail(f"node name {name!r} already used by {names[name]}", f"nodes[{i}].name")
                names[name] = f"nodes[{i}]"
                links = tuple(self._link(n, i, j, itf, used, pools) for j, itf in enumerate(n.interfaces))
                out.append(ResolvedNode(name, n.kind, n.role, n.platform, links, n.anyip))
            self._anyip(n, i)
        return out

    def _link(self, n: Node, i: int, j: int, itf: Interface, used: dict[object, str],
              pools: dict[tuple[str, int], Iterator[ipaddress.IPv4Address | ipaddress.IPv6Address]]) -> Link:
        net = self.f.nets[itf.attach]
        addrs: dict[str, Addr | None] = {}
        for fam in ("ipv4", "ipv6"):
            a, subnet = getattr(itf, fam), getattr(net, fam)
            if a is None:
                addrs[fam] = None
                continue
            if a == "auto":
                if subnet is None:
                    self.fail(f"{net.name} has no {fam} subnet", f"nodes[{i}].interfaces[{j}].{fam}")
                pool = pools.setdefault((net.name, subnet.version), subnet.hosts())
                a = next((h for h in pool if h not in used), None)
                if a is None:
                    self.fail(f"{net.name} {subnet} has no free address left", f"nodes[{i}].interfaces[{j}].{fam}")
                used[a] = f"nodes[{i}]"
            addrs[fam] = ipaddress.ip_interface(f"{a}/{subnet.prefixlen}")
        # each family's address was taken from that family's subnet
        v4, v6 = addrs["ipv4"], addrs["ipv6"]
        return Link(net, itf.port, itf.hw_id, v4 if isinstance(v4, ipaddress.IPv4Interface) else None,
                    v6 if isinstance(v6, ipaddress.IPv6Interface) else None)

    def _anyip(self, n: Node, i: int) -> None:
        for k, p in enumerate(n.anyip):
            for name, net in self.f.nets.items():
                sub = getattr(net, f"ipv{p.version}")
                if sub is not None and sub.overlaps(p):
                    self.fail(f"AnyIP prefix {p} overlaps {name} {sub}", f"nodes[{i}].anyip[{k}]")

    def routes(self, nodes: list[ResolvedNode]) -> list[ResolvedNode]:
        """Each AnyIP prefix is routed via its owner's address on the first net shared with a peer."""
        extra: dict[str, list[Route]] = {n.name: [] for n in nodes}
        for owner in (n for n in nodes if n.anyip):
            for p, peer in itertools.product(owner.anyip, nodes):
                if peer is owner:
                    continue
                # prefer an overlay, so AnyIP traffic crosses the VXLAN the fabric is about
                for lk in sorted(owner.links, key=lambda lk: not lk.is_overlay):
                    mine, theirs = lk.addr(p.version), peer.link(lk.net.name)
                    if mine is not None and theirs is not None and theirs.addr(p.version) is not None:
                        extra[peer.name].append(Route(p, mine.ip, theirs.device))
                        break
        return [
            ResolvedNode(n.name, n.kind, n.role, n.platform, n.links, n.anyip, tuple(extra[n.name]))
            for n in nodes
        ]

    def ports(self, topo: Topology) -> None:
        for i, s in enumerate(self.f.segments):
            count = len(topo.ports(s.name))
            if count > BRIDGE_MAX_PORTS and not s.shard:
                self.fail(
                    f"{count} ports exceed the Linux bridge limit of {BRIDGE_MAX_PORTS} ports "
                    "(BR_PORT_BITS=10, port 0 reserved); set `shard: true` to spread them over "
                    "bridges joined by veth",
                    f"segments[{i}]",
                )

    def iscsi(self, topo: Topology) -> None:
        sc = self.f.iscsi
        if sc is None:
            return
        names = {n.name for n in topo.nodes}
        for role in ("target", "initiator"):
            if getattr(sc, role).node not in names:
                self.fail(f"no node named {getattr(sc, role).node!r}", f"iscsi.{role}.node")
        tgt, ini = topo.node(sc.target.node), topo.node(sc.initiator.node)
        segs = []
        for k, addr in enumerate(sc.target.portals):
            lk = next((lk for lk in tgt.links if lk.ipv4 and lk.ipv4.ip == addr), None)
            if lk is None:
                self.fail(f"{addr} is not an address of node {tgt.name}", f"iscsi.target.portals[{k}]")
            mirror = ini.link(lk.net.name)
            if mirror is None or mirror.ipv4 is None:
                self.fail(
                    f"initiator {ini.name} has no IPv4 address on {lk.net.name}", "iscsi.initiator.node"
                )
            segs.append(lk.net.name)
        if segs[0] == segs[1]:
            self.fail("the two portals must sit on two different subnets", "iscsi.target.portals")

    def routers(self, topo: Topology) -> None:
        for i, o in enumerate(self.f.overlays):
            if o.ra and not any(n.role == "router" and (lk := n.link(o.name)) is not None and lk.ipv6
                                for n, _ in topo.members(o.name)):
                self.fail("router-advert needs a router node with an IPv6 address on it", f"overlays[{i}].ra")
