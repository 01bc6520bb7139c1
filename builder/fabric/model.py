"""Typed model of a fabric file (fabrics/*.yaml): underlay segments, VXLAN overlays, nodes,
AnyIP prefixes and an iSCSI target/initiator pair.

Field-local rules (VNI range, multicast group, address families) live here as validators;
rules that span objects (references, subnets, MTU budget, bridge ports) live in validate.py.
"""

from __future__ import annotations

import ipaddress
from functools import cached_property
from typing import Annotated, Literal

from pydantic import Field, field_validator

from ..spec import StrictModel

IfName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9]{0,14}$")]
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")]
V4Net = ipaddress.IPv4Network
V6Net = ipaddress.IPv6Network
V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address

VNI_MAX = 2**24 - 1
VXLAN_OVERHEAD = {4: 50, 6: 70}  # outer Ethernet 14 + IP 20/40 + UDP 8 + VXLAN 8
BRIDGE_MAX_PORTS = 1023  # BR_PORT_BITS = 10, port 0 reserved


def default_group(vni: int) -> ipaddress.IPv4Address:
    """239.0.<VNI as 16 bits>: the seed's 1000 -> 239.0.3.232, 2000 -> 239.0.7.208."""
    if vni > 0xFFFF:
        # the seed's scheme has 16 bits; larger VNIs spill into the second octet
        return ipaddress.IPv4Address((239 << 24) | (vni & 0xFFFFFF))
    return ipaddress.IPv4Address((239 << 24) | vni)


class Segment(StrictModel):
    """An underlay L2 segment. On this host each one is a bridge (a VLAN too: no 8021q)."""

    name: IfName
    vlan: int | None = Field(None, ge=1, le=4094)
    mtu: int = Field(1500, ge=1280, le=9216)
    ipv4: V4Net | None = None
    ipv6: V6Net | None = None
    # rendered into VyOS config (quoted there when it has spaces): no quotes, braces, newlines
    description: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._,:/()+-]{0,254}$")] | None = None
    shard: bool = Field(False, description="allow spreading ports over several bridges")


class RaPrefix(StrictModel):
    prefix: V6Net
    autonomous: bool = True
    on_link: bool = True
    valid_lifetime: int = Field(2592000, ge=0)
    preferred_lifetime: int | None = Field(None, ge=0)


class RouterAdvert(StrictModel):
    """IPv6 router advertisement settings (the seed's VyOS `ipv6 router-advert`)."""

    prefixes: tuple[RaPrefix, ...] = Field((), description="default: the overlay's IPv6 subnet")
    name_servers: tuple[V6, ...] = ()
    link_mtu: int | None = Field(None, ge=1280)
    max_interval: int = Field(600, ge=4, le=1800)
    cur_hop_limit: int = Field(64, ge=0, le=255)
    managed: bool = False
    other_config: bool = False
    reachable_time: int = Field(0, ge=0)
    retrans_timer: int = Field(0, ge=0)
    solicited_unicast: bool = Field(True, description="radvd AdvRASolicitedUnicast; off: every "
                                    "solicitation is answered by one multicast RA all hosts see")


class Overlay(StrictModel):
    name: IfName
    vni: int
    underlay: str
    group: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    share_group: bool = Field(False, description="allow another VNI on the same group")
    dstport: int = Field(4789, ge=1, le=65535)
    ttl: int = Field(5, ge=1, le=255)
    mtu: int = Field(1500, ge=1280, le=9000)
    ipv4: V4Net | None = None
    ipv6: V6Net | None = None
    arp_accept: bool = False
    arp_announce: bool = False
    dad_transmits: int = Field(1, ge=0)
    ra: RouterAdvert | None = None

    @field_validator("vni")
    @classmethod
    def _vni(cls, v: int) -> int:
        if not 1 <= v <= VNI_MAX:
            raise ValueError(f"VNI {v} outside 1..{VNI_MAX} (24 bits, 0 reserved)")
        return v

    @field_validator("group")
    @classmethod
    def _group(cls, v: V4 | V6 | None) -> V4 | V6 | None:
        if v is not None and not v.is_multicast:
            raise ValueError(f"{v} is not a multicast address (224.0.0.0/4 or ff00::/8)")
        return v

    @property
    def mcast_group(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return self.group if self.group is not None else default_group(self.vni)

    @property
    def overhead(self) -> int:
        return VXLAN_OVERHEAD[self.mcast_group.version]

    @property
    def ra_prefixes(self) -> tuple[RaPrefix, ...]:
        if self.ra is None:
            return ()
        if self.ra.prefixes:
            return self.ra.prefixes
        return (RaPrefix(prefix=self.ipv6),) if self.ipv6 else ()


class Interface(StrictModel):
    """A node's attachment to a segment or overlay, with host addresses (prefix from the net)."""

    attach: str
    port: IfName | None = Field(None, description="physical port name (VyOS/iproute2 renderings)")
    hw_id: str | None = Field(None, pattern=r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
    ipv4: V4 | Literal["auto"] | None = None
    ipv6: V6 | Literal["auto"] | None = None


class Node(StrictModel):
    name: Name
    kind: Literal["netns", "vm"] = "netns"
    role: Literal["host", "router"] = "host"
    platform: Literal["linux", "vyos"] = "linux"
    replicas: int = Field(1, ge=1, le=100000, description="expand into name-1..name-N")
    interfaces: tuple[Interface, ...] = ()
    anyip: tuple[V4Net | V6Net, ...] = ()


class Portal(StrictModel):
    address: V4


Iqn = Annotated[str, Field(pattern=r"^iqn\.\d{4}-\d{2}[-.][A-Za-z0-9.:_-]+$")]


class IscsiTarget(StrictModel):
    node: str
    iqn: Iqn | None = Field(None, description="default: derived from the fabric and node names")
    portals: tuple[V4, ...] = Field(min_length=2, max_length=2)
    lun_size_mib: int = Field(64, ge=8, le=4096)


class IscsiInitiator(StrictModel):
    node: str
    iqn: Iqn | None = Field(None, description="default: derived from the fabric and node names")
    # net.ipv4.conf.<dev>.<key>: the key reaches a root shell in the guest
    sysctls: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")], int] = {
        "rp_filter": 0, "arp_ignore": 1, "arp_announce": 2}


class Iscsi(StrictModel):
    target: IscsiTarget
    initiator: IscsiInitiator


class Fabric(StrictModel):
    name: Name
    description: Annotated[str, Field(max_length=4096)] = ""
    segments: tuple[Segment, ...] = ()
    overlays: tuple[Overlay, ...] = ()
    nodes: tuple[Node, ...] = ()
    iscsi: Iscsi | None = None
    anyip_probes: int = Field(8, ge=1, le=1000, description="random AnyIP addresses to ping")

    @cached_property
    def nets(self) -> dict[str, Segment | Overlay]:
        nets: tuple[Segment | Overlay, ...] = (*self.segments, *self.overlays)
        return {n.name: n for n in nets}

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)
