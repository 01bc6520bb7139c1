"""The image's lab as data: `lab/lab.yaml` beside image.yaml names the course's reference steps
(jinja2 templates), and a `LabPlan` of validated values renders them into shell scripts and
ceph.conf. Pure: the same text a trainer reads is what the build runs.

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


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabSpec(_Frozen):
    """lab/lab.yaml: which templates make up the exercise, and its tunables."""

    steps: Annotated[tuple[Annotated[str, Field(pattern=r"^[0-9]{2}-[a-z0-9-]+\.sh\.j2$")], ...],
                     Field(min_length=1, max_length=20)]
    ceph_conf: Annotated[str, Field(pattern=r"^[a-z0-9.-]+\.j2$")]
    osd_memory_target_mib: Annotated[int, Field(ge=MIN_OSD_MEMORY_MIB, le=65536)] = MIN_OSD_MEMORY_MIB
    heartbeat_grace: Annotated[int, Field(ge=20, le=600)] = 20
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
    """One node's view of the lab cluster: its own name and address, all mons, its OSD count."""

    fsid: uuid.UUID
    public_network: ipaddress.IPv6Network
    node: LabNode
    mons: Annotated[tuple[LabNode, ...], Field(min_length=1, max_length=7)]
    osd_count: Annotated[int, Field(ge=1, le=8)]
    osd_memory_target_mib: Annotated[int, Field(ge=MIN_OSD_MEMORY_MIB)]
    heartbeat_grace: Annotated[int, Field(ge=20, le=600)]

    @model_validator(mode="after")
    def _on_network(self) -> LabPlan:
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
    for i, rel in enumerate((*lab.steps, lab.ceph_conf)):
        if not (lab.dir / rel).is_file():
            field = f"steps[{i}]" if i < len(lab.steps) else "ceph_conf"
            raise UserError(f"template {rel} not found", file=str(path), field=field)
    if len(spec.data_disks) == 0:
        raise UserError("the lab puts an OSD on each data disk: set `data_disks`", file=str(spec.file),
                        field="data_disks")
    for i, mib in enumerate(spec.data_disk_mibs):
        if mib < MIN_OSD_DISK_MIB:
            raise UserError("ceph-volume refuses devices under 5 GB", file=str(spec.file), field=f"data_disks[{i}]")
    return lab


def overlay_node(topo: Topology, node: ResolvedNode, name: str) -> tuple[LabNode, ipaddress.IPv6Network]:
    """The node's IPv6 address on the fabric's VXLAN overlay, and the overlay's prefix."""
    for link in node.links:
        if link.is_overlay and link.ipv6 is not None:
            return LabNode(name=name, address=link.ipv6.ip), link.ipv6.network
    src = str(topo.source) if topo.source else None
    raise UserError(f"node {node.name} has no IPv6 address on an overlay: the lab needs one", file=src, field="nodes")


def plan_one_node(spec: ImageSpec, lab: LabSpec, topo: Topology, vm_node: str, fsid: uuid.UUID) -> LabPlan:
    """1 mon + 1 mgr + an OSD per data disk on the image's node, bound to its overlay address."""
    node, network = overlay_node(topo, topo.node(vm_node), spec.hostname or spec.name)
    return LabPlan(fsid=fsid, public_network=network, node=node, mons=(node,), osd_count=len(spec.data_disks),
                   osd_memory_target_mib=lab.osd_memory_target_mib, heartbeat_grace=lab.heartbeat_grace)


def ceph_conf(lab: LabSpec, plan: LabPlan) -> str:
    return render(lab.ceph_conf, lab.dir, lab=plan)


def render_steps(lab: LabSpec, plan: LabPlan) -> dict[str, str]:
    """Step name (the template's name without .j2) -> script text, in order."""
    conf = ceph_conf(lab, plan)
    return {rel.removesuffix(".j2"): render(rel, lab.dir, lab=plan, ceph_conf=conf) for rel in lab.steps}
