"""Typed, validated model of images/<name>/image.yaml.

Loaded once into a frozen object (mkosi's model); every error names the file and the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
IMAGES_DIR = REPO_ROOT / "images"

# Versions end up in file names, git tags and GitLab generic package versions: keep them to
# semver-ish dotted numbers with an optional pre-release / build suffix.
VERSION_RE = re.compile(r"^\d+(\.\d+){1,3}([-+][0-9A-Za-z][0-9A-Za-z.\-]*)?$")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
SIZE_RE = re.compile(r"^(\d+)\s*([MG])i?B?$", re.IGNORECASE)
# Data disks are created empty (sparse files, OVF disks without a file): bounded so a typo
# cannot ask for a petabyte, and few enough for one SATA controller beside the system disk.
MAX_DATA_DISKS = 8
DATA_DISK_MIB = (1024, 4096 * 1024)


def parse_size_mib(value: str | int) -> int:
    if isinstance(value, int):
        return value
    m = SIZE_RE.match(value.strip())
    if not m:
        raise ValueError(f"{value!r} is not a size like 2G or 512M")
    n, unit = int(m.group(1)), m.group(2).upper()
    return n * 1024 if unit == "G" else n


def check_version(version: str, *, file: str | None = None, field: str = "version") -> str:
    if not VERSION_RE.match(version):
        raise UserError(
            f"invalid version {version!r} (want e.g. 1.2.0 or 1.2.0-rc1)", file=file, field=field
        )
    return version


def _data_disk_size(v: str | int) -> str | int:
    if not DATA_DISK_MIB[0] <= parse_size_mib(v) <= DATA_DISK_MIB[1]:
        raise ValueError(f"data disk {v!r}: between 1G and 4096G")
    return v


DataDiskSize = Annotated[str | int, AfterValidator(_data_disk_size)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class User(_Model):
    name: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_-]{0,31}$")]
    password: str = Field(description="lab credential, documented to students; hashed in the image")
    sudo: bool = False
    ssh_authorized_keys: tuple[str, ...] = ()


class Check(_Model):
    """An in-guest smoke check: a command run through the guest agent."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
    run: str
    expect: str | None = Field(None, description="regex the output must match")


class BootTest(_Model):
    timeout: int = Field(300, ge=30, le=3600)
    checks: tuple[Check, ...] = ()


class ImageSpec(_Model):
    name: str
    version: str
    description: str = ""
    distribution: str = "bookworm"
    mirror: str = "http://deb.debian.org/debian"
    packages: tuple[str, ...] = ()
    disk_size: str | int = "4G"
    cpus: int = Field(2, ge=1, le=64)
    memory_mib: int = Field(1024, ge=256, le=262144)
    hostname: str | None = None
    users: tuple[User, ...] = ()
    provision: tuple[str, ...] = Field((), description="jinja2 templates rendered into shell scripts")
    boot_test: BootTest = BootTest()
    fabric: str | None = None
    data_disks: tuple[DataDiskSize, ...] = Field(
        (), max_length=MAX_DATA_DISKS, description="empty disks after the system disk, e.g. [20G, 20G, 20G]")
    # set by the loader, not by the file
    dir: Path = Field(Path("."), exclude=True)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError("lower-case letters, digits and dashes only")
        return v

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        if not VERSION_RE.match(v):
            raise ValueError(f"invalid version {v!r} (want e.g. 1.2.0 or 1.2.0-rc1)")
        return v

    @field_validator("disk_size")
    @classmethod
    def _disk(cls, v: str | int) -> str | int:
        mib = parse_size_mib(v)
        if mib < 512:
            raise ValueError("at least 512M")
        return v

    @field_validator("packages")
    @classmethod
    def _packages(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for p in v:
            if not re.match(r"^[a-z0-9][a-z0-9+.-]+(:[a-z0-9]+)?-?$", p):
                raise ValueError(f"{p!r} is not a Debian package name")
        return v

    @property
    def disk_mib(self) -> int:
        return parse_size_mib(self.disk_size)

    @property
    def data_disk_mibs(self) -> tuple[int, ...]:
        return tuple(parse_size_mib(d) for d in self.data_disks)

    @property
    def file(self) -> Path:
        return self.dir / "image.yaml"

    def template_path(self, rel: str) -> Path:
        return self.dir / rel


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError("no such file", file=str(path)) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else None
        raise UserError(f"not valid YAML: {getattr(e, 'problem', e)}", file=str(path), field=where) from None
    if not isinstance(data, dict):
        raise UserError("top level must be a mapping", file=str(path))
    return data


def validate(model: type[BaseModel], data: dict, path: Path, **extra) -> Any:
    """Validate data into model; the first error becomes one line naming file and field."""
    try:
        return model.model_validate({**data, **extra})
    except ValidationError as e:
        first = e.errors()[0]
        field = _loc(first["loc"]) or None
        msg = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            msg = "unknown key"
        raise UserError(msg, file=str(path), field=field) from None


def image_names(images_dir: Path = IMAGES_DIR) -> list[str]:
    return sorted(p.parent.name for p in images_dir.glob("*/image.yaml"))


def load_image(name: str, images_dir: Path = IMAGES_DIR, version: str | None = None) -> ImageSpec:
    d = images_dir / name
    f = d / "image.yaml"
    if not f.is_file():
        known = ", ".join(image_names(images_dir)) or "none"
        raise UserError(f"unknown image {name!r} (known: {known})", file=str(images_dir))
    data = load_yaml(f)
    if "dir" in data:
        raise UserError("unknown key", file=str(f), field="dir")
    if version is not None:
        check_version(version, field="--version")
        data["version"] = version
    spec: ImageSpec = validate(ImageSpec, data, f, dir=d)
    if spec.name != name:
        raise UserError(f"name {spec.name!r} differs from its folder {name!r}", file=str(f), field="name")
    for i, rel in enumerate(spec.provision):
        if not (d / rel).is_file():
            raise UserError(f"template {rel} not found", file=str(f), field=f"provision[{i}]")
    if spec.fabric is not None and not (d / spec.fabric).is_file():
        raise UserError(f"fabric file {spec.fabric} not found", file=str(f), field="fabric")
    return spec
