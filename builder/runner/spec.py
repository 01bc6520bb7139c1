"""Typed model of a runner spec (ci/runners/<name>.yaml): one GitLab runner VM."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from ..core.errors import UserError
from ..publish.versions import sort_key
from ..spec import NAME_RE, StrictModel, load_yaml, parse_size_mib, validate

TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")  # GitLab runner tag


class Network(StrictModel):
    """An existing libvirt network the runner's virtio NIC joins (NAT or bridged)."""

    name: str = "default"
    mac: str | None = Field(None, pattern=r"^52:54:00(:[0-9a-f]{2}){3}$")


class VirtualBox(StrictModel):
    series: str = Field("7.0", pattern=r"^\d+\.\d+$", description="Oracle's virtualbox-X.Y package")
    user: str = Field("builder", description="added to vboxusers")


class RunnerSpec(StrictModel):
    # also the guest's hostname and the libvirt domain's name
    name: Annotated[str, Field(pattern=NAME_RE.pattern)]
    image: Path = Field(description="an image of this project (its newest local build) or a qcow2 path "
                                    "relative to the spec file")
    cpus: int = Field(2, ge=1, le=64)
    memory: str | int = "2G"
    disk_size: str | int = "20G"
    network: Network = Network()
    pool: str = Field("default", description="libvirt storage pool (type dir) for overlay and seed")
    accel: Literal["auto", "kvm", "tcg"] = "auto"
    user: str = Field("builder", pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    ssh_authorized_keys: tuple[str, ...] = Field(min_length=1)
    tags: tuple[Annotated[str, Field(pattern=TAG_RE.pattern)], ...] = ()
    setup: tuple[str, ...] = Field((), description="shell commands cloud-init runs once (runcmd)")
    virtualbox: VirtualBox = VirtualBox()
    log_dir: Path = Path("/var/log/builder/runners")

    @field_validator("memory", "disk_size")
    @classmethod
    def _size(cls, v: str | int) -> str | int:
        parse_size_mib(v)
        return v

    @property
    def memory_mib(self) -> int:
        return parse_size_mib(self.memory)

    @property
    def disk_mib(self) -> int:
        return parse_size_mib(self.disk_size)


def newest_build(artifacts: Path, name: str) -> Path | None:
    """The qcow2 of the newest version of `name` in a local store (`builder vm`'s output)."""
    builds = [d / f"{name}-{d.name}.qcow2" for d in (artifacts / name).glob("[0-9]*")]
    builds = [b for b in builds if b.is_file()]
    return max(builds, key=lambda b: sort_key(b.parent.name)) if builds else None


def load_runner(path: Path, artifacts: Path | None = None) -> RunnerSpec:
    """`image: NAME` resolves to the newest build of that image in `artifacts` (the project's store)."""
    data = load_yaml(path)
    spec: RunnerSpec = validate(RunnerSpec, data, path)
    declared = str(spec.image)
    if NAME_RE.match(declared) and artifacts is not None:
        image = newest_build(artifacts, declared)
        if image is None:
            raise UserError(f"no local build of image {declared!r} in {artifacts}; run `builder vm {declared}` "
                            "first, or give a qcow2 path", file=str(path), field="image")
        return spec.model_copy(update={"image": image.resolve()})
    if not spec.image.is_absolute():
        spec = spec.model_copy(update={"image": (path.parent / spec.image).resolve()})
    return spec
