"""The image's lab as data: `lab/lab.yaml` beside image.yaml names the course's reference steps
(jinja2 templates), and a `LabPlan` of validated values renders them into shell scripts and
ceph.conf, for one node or for each node of a cluster (`cluster_steps`, in the order a trainer
runs them across the VMs). Pure: the same text a trainer reads is what the build runs.

Every value that reaches a script is typed here (a host name by pattern, addresses and the
network by `ipaddress`, the fsid as a UUID) and shell-quoted by the templates.
"""

from __future__ import annotations

import ipaddress
import uuid
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..core.errors import UserError
from ..fabric.validate import ResolvedNode, Topology
from ..spec import ImageSpec, load_yaml, validate
from ..templates import render

LAB_FILE = "lab/lab.yaml"
MIN_OSD_MEMORY_MIB = 896  # Ceph refuses a lower osd_memory_target
MIN_OSD_DISK_MIB = 5 * 1000**3 // 2**20 + 1  # ceph-volume refuses devices under 5 GB
HOSTNAME = r"^[a-z][a-z0-9-]{0,62}$"
STEP = r"^[0-9]{2}-[a-z0-9-]+\.sh\.j2$"
Step = Annotated[str, Field(pattern=STEP)]
# a path of the first node's tree the others receive (relative to /, no `..`, no shell syntax)
BundlePath = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.-]*(/[a-z0-9_][a-z0-9_.-]*)+$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClusterSpec(_Frozen):
    """lab.yaml `cluster`: the exercise on several VMs of the image, a mon + mgr + OSDs on each."""

    nodes: Annotated[int, Field(ge=3, le=7)] = 3  # 3 or more: one may fail with a quorum left
    first: Annotated[tuple[Step, ...], Field(min_length=1)]  # steps only the first node runs
    share: Step  # the first node, after `first`: bundles what the others need
    join: Step  # the other nodes, instead of `first`
    bundle: Annotated[tuple[BundlePath, ...], Field(min_length=1, max_length=20)]
    osds_per_node: Annotated[int, Field(ge=1, le=3)] = 1
    memory_mib: Annotated[int, Field(ge=2048, le=65536)] = 3072
    cpus: Annotated[int, Field(ge=1, le=16)] = 1

    @model_validator(mode="after")
    def _memory(self) -> ClusterSpec:
        # a mon and a mgr (~1 GiB together) beside each OSD's osd_memory_target
        if self.memory_mib < 1024 + MIN_OSD_MEMORY_MIB * self.osds_per_node:
            raise ValueError(f"memory_mib {self.memory_mib} is too little for a mon, a mgr and "
                             f"{self.osds_per_node} OSD(s) of {MIN_OSD_MEMORY_MIB} MiB")
        return self


class LabSpec(_Frozen):
    """lab/lab.yaml: which templates make up the exercise, and its tunables."""

    steps: Annotated[tuple[Step, ...], Field(min_length=1, max_length=20)]
    ceph_conf: Annotated[str, Field(pattern=r"^[a-z0-9.-]+\.j2$")]
    osd_memory_target_mib: Annotated[int, Field(ge=MIN_OSD_MEMORY_MIB, le=65536)] = MIN_OSD_MEMORY_MIB
    heartbeat_grace: Annotated[int, Field(ge=20, le=600)] = 20
    cluster: ClusterSpec | None = None
    # set by the loader
    dir: Path = Field(Path("."), exclude=True)


class LabNode(_Frozen):
    name: Annotated[str, Field(pattern=HOSTNAME)]
    address: ipaddress.IPv6Address

    @field_validator("address")
    @classmethod
    def _global(cls, v: ipaddress.IPv6Address) -> ipaddress.IPv6Address:
        if v.is_link_local or v.is_multicast or v.is_unspecified:
            raise ValueError("a global or unique-local IPv6 address, not link-local or multicast")
        return v


class LabPlan(_Frozen):
    """One node's view of the lab cluster: its own name and address (on `device`), all mons, its
    OSD count. The first mon is the cluster's first node (it creates it and keeps its time)."""

    fsid: uuid.UUID
    public_network: ipaddress.IPv6Network
    node: LabNode
    device: Annotated[str, Field(pattern=r"^[a-z][a-z0-9]{0,14}$")]
    mons: Annotated[tuple[LabNode, ...], Field(min_length=1, max_length=7)]
    osd_count: Annotated[int, Field(ge=1, le=8)]
    osd_memory_target_mib: Annotated[int, Field(ge=MIN_OSD_MEMORY_MIB)]
    heartbeat_grace: Annotated[int, Field(ge=20, le=600)]

    @model_validator(mode="after")
    def _on_network(self) -> LabPlan:
        if len({m.name for m in self.mons}) != len(self.mons) or len({m.address for m in self.mons}) != len(self.mons):
            raise ValueError("two mons share a name or an address")
        for n in (self.node, *self.mons):
            if n.address not in self.public_network:
                raise ValueError(f"{n.name}'s address {n.address} is outside public_network {self.public_network}")
        return self

    @property
    def osd_memory_target_bytes(self) -> int:
        return self.osd_memory_target_mib << 20


def has_lab(spec: ImageSpec) -> bool:
    return (spec.dir / LAB_FILE).is_file()


def load_lab(spec: ImageSpec) -> LabSpec:
    path = spec.dir / LAB_FILE
    lab: LabSpec = validate(LabSpec, load_yaml(path), path, dir=path.parent)
    c = lab.cluster
    named = [*((f"steps[{i}]", rel) for i, rel in enumerate(lab.steps)), ("ceph_conf", lab.ceph_conf),
             *((("cluster.share", c.share), ("cluster.join", c.join)) if c else ())]
    for field, rel in named:
        if not (lab.dir / rel).is_file():
            raise UserError(f"template {rel} not found", file=str(path), field=field)
    for i, rel in enumerate(c.first if c else ()):
        if rel not in lab.steps:
            raise UserError(f"{rel} is not one of `steps`", file=str(path), field=f"cluster.first[{i}]")
    if len(spec.data_disks) == 0:
        raise UserError("the lab puts an OSD on each data disk: set `data_disks`", file=str(spec.file),
                        field="data_disks")
    for i, mib in enumerate(spec.data_disk_mibs):
        if mib < MIN_OSD_DISK_MIB:
            raise UserError("ceph-volume refuses devices under 5 GB", file=str(spec.file), field=f"data_disks[{i}]")
    return lab


def overlay_node(topo: Topology, node: ResolvedNode, name: str) -> tuple[LabNode, ipaddress.IPv6Network, str]:
    """The node's IPv6 address on the fabric's VXLAN overlay, the overlay's prefix and device."""
    for link in node.links:
        if link.is_overlay and link.ipv6 is not None:
            return LabNode(name=name, address=link.ipv6.ip), link.ipv6.network, link.device
    src = str(topo.source) if topo.source else None
    raise UserError(f"node {node.name} has no IPv6 address on an overlay: the lab needs one", file=src, field="nodes")


def plan_one_node(spec: ImageSpec, lab: LabSpec, topo: Topology, vm_node: str, fsid: uuid.UUID) -> LabPlan:
    """1 mon + 1 mgr + an OSD per data disk on the image's node, bound to its overlay address."""
    node, network, device = overlay_node(topo, topo.node(vm_node), spec.hostname or spec.name)
    return LabPlan(fsid=fsid, public_network=network, node=node, device=device, mons=(node,),
                   osd_count=len(spec.data_disks), osd_memory_target_mib=lab.osd_memory_target_mib,
                   heartbeat_grace=lab.heartbeat_grace)


def plan_cluster(lab: LabSpec, topo: Topology, vm_nodes: tuple[str, ...], names: tuple[str, ...],
                 fsid: uuid.UUID) -> tuple[LabPlan, ...]:
    """Each cluster node's plan: every node a mon, `cluster.osds_per_node` OSDs each."""
    if lab.cluster is None:
        raise UserError("the lab has no `cluster` section", file=str(lab.dir / "lab.yaml"), field="cluster")
    found = [overlay_node(topo, topo.node(v), n) for v, n in zip(vm_nodes, names, strict=True)]
    mons = tuple(node for node, _, _ in found)
    return tuple(LabPlan(fsid=fsid, public_network=net, node=node, device=dev, mons=mons,
                         osd_count=lab.cluster.osds_per_node, osd_memory_target_mib=lab.osd_memory_target_mib,
                         heartbeat_grace=lab.heartbeat_grace) for node, net, dev in found)  # fmt: skip


def ceph_conf(lab: LabSpec, plan: LabPlan) -> str:
    return render(lab.ceph_conf, lab.dir, lab=plan)


def _render(lab: LabSpec, rel: str, plan: LabPlan) -> str:
    bundle = lab.cluster.bundle if lab.cluster else ()
    return render(rel, lab.dir, lab=plan, ceph_conf=ceph_conf(lab, plan), bundle=bundle)


def render_steps(lab: LabSpec, plan: LabPlan) -> dict[str, str]:
    """Step name (the template's name without .j2) -> script text, in order."""
    return {rel.removesuffix(".j2"): _render(lab, rel, plan) for rel in lab.steps}


def cluster_order(lab: LabSpec, count: int) -> list[tuple[int, str]]:
    """(node index, template) in the order they run: each step on every node in turn, except
    `cluster.first` on node 0 only, followed by `share` there and `join` on the others. Step by
    step across nodes because a mon with peers in its monmap waits for them before a quorum."""
    assert lab.cluster is not None
    c, out = lab.cluster, []
    last_first = max(lab.steps.index(rel) for rel in c.first)
    for i, rel in enumerate(lab.steps):
        out += [(0, rel)] if rel in c.first else [(n, rel) for n in range(count)]
        if i == last_first:
            out += [(0, c.share), *((n, c.join) for n in range(1, count))]
    return out


def cluster_steps(lab: LabSpec, plans: tuple[LabPlan, ...]) -> list[tuple[int, str, str]]:
    """(node index, step name, script text) of the whole cluster, in `cluster_order`."""
    return [(n, rel.removesuffix(".j2"), _render(lab, rel, plans[n])) for n, rel in cluster_order(lab, len(plans))]
