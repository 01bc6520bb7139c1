"""Typed, validated model of images/<name>/image.yaml.

Loaded once into a frozen object (mkosi's model); every error names the file and the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar

import jinja2
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from . import yamlio
from .core.errors import UserError

# Versions end up in file names, git tags and GitLab generic package versions: keep them to
# semver-ish dotted numbers with an optional pre-release / build suffix.
VERSION_RE = re.compile(r"^\d+(\.\d+){1,4}([-+][0-9A-Za-z][0-9A-Za-z.\-]*)?\Z")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# reaches mmdebstrap's argv and the apt sources: a plain http(s) URL, or a file:// mirror on this host
MIRROR_RE = re.compile(
    r"^(https?://([A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?|file://)(/[A-Za-z0-9._~%/+-]*)?\Z")
MIRROR_HELP = "want a plain http(s):// or file:// URL (letters, digits, . _ ~ % / + - in the path)"
SIZE_RE = re.compile(r"^(\d+)\s*([MG])i?B?$", re.IGNORECASE)
# Data disks are created empty (sparse files; empty VMDKs in the OVA): bounded so a typo
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


class StrictModel(BaseModel):
    """The base of every model read from a user's file: unknown fields are errors, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class User(StrictModel):
    name: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_-]{0,31}$")]
    # one chpasswd line: no newline or other control character can start a second one
    password: Annotated[str, Field(pattern=r"^[^\x00-\x1f\x7f]{1,256}$")] = Field(
        description="lab credential, documented to students; hashed in the image")
    sudo: bool = False
    # one authorized_keys line each: type, base64 blob, optional printable comment
    ssh_authorized_keys: tuple[Annotated[str, Field(max_length=16384, pattern=(
        r"^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com"
        r"|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}( [\x20-\x7e]*)?$"))], ...] = ()


class Check(StrictModel):
    """An in-guest smoke check: a command run through the guest agent."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
    run: Annotated[str, Field(min_length=1, max_length=65536, pattern=r"^[^\x00]*$")]
    expect: str | None = Field(None, max_length=4096, description="regex the output must match")

    @field_validator("run", "expect")
    @classmethod
    def _template(cls, v: str | None) -> str | None:
        # both are rendered (sandboxed) before use: a syntax error is bad input now, not a failed boot test
        from .templates import sandboxed

        if v is not None:
            try:
                sandboxed().parse(v)
            except jinja2.TemplateSyntaxError as e:
                raise ValueError(f"not a valid template: {e.message} (line {e.lineno})") from None
        return v

    @field_validator("expect")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as e:
                raise ValueError(f"not a valid regex: {e}") from None
        return v


class BootTest(StrictModel):
    timeout: int = Field(300, ge=30, le=3600)
    checks: tuple[Check, ...] = ()


class ImageSpec(StrictModel):
    name: str
    version: str
    description: Annotated[str, Field(max_length=4096)] = ""
    # both reach mmdebstrap's argv and the apt sources: a suite name, a plain http(s) URL
    distribution: Annotated[str, Field(pattern=r"^[a-z][a-z0-9.-]{0,31}$")] = "bookworm"
    mirror: Annotated[str, Field(max_length=2048)] = "http://deb.debian.org/debian"
    packages: tuple[str, ...] = ()
    disk_size: str | int = "4G"
    cpus: int = Field(2, ge=1, le=64)
    memory_mib: int = Field(1024, ge=256, le=262144)
    hostname: Annotated[str, Field(pattern=r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")] | None = Field(
        None, description="an RFC 1123 label")
    users: tuple[User, ...] = ()
    provision: tuple[str, ...] = Field((), description="jinja2 templates rendered into shell scripts")
    boot_test: BootTest = BootTest()
    fabric: str | None = None
    data_disks: tuple[DataDiskSize, ...] = Field(
        (), max_length=MAX_DATA_DISKS, description="empty disks after the system disk, e.g. [20G, 20G, 20G]")
    # set by the loader, not by the file
    dir: Path = Field(Path("."), exclude=True)

    MAX_DISK_MIB: ClassVar[int] = 2 << 20  # 2 TiB

    @field_validator("mirror")
    @classmethod
    def _mirror(cls, v: str) -> str:
        if not MIRROR_RE.match(v):
            raise ValueError(MIRROR_HELP)
        return v

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
        if mib > cls.MAX_DISK_MIB:
            raise ValueError("at most 2T (2048G)")
        return v

    @field_validator("provision")
    @classmethod
    def _provision(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for i, rel in enumerate(v):
            parts = Path(rel).parts
            if not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_./-]{0,254}\Z", rel) or ".." in parts:
                raise ValueError(f"[{i}] {rel!r}: a relative path inside the image directory "
                                 "(letters, digits, . _ - /; no ..)")
        return v

    @model_validator(mode="after")
    def _inside_dir(self) -> ImageSpec:
        # a symlink may still lead out: compare the resolved paths
        root = self.dir.resolve()
        for i, rel in enumerate(self.provision):
            if not (root / rel).resolve().is_relative_to(root):
                raise ValueError(f"provision[{i}] {rel!r} resolves outside the image directory")
        return self

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


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_yaml(path: Path) -> dict:
    return yamlio.load_mapping(path)


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


def image_names(images_dir: Path) -> list[str]:
    return sorted(p.parent.name for p in images_dir.glob("*/image.yaml"))


def load_image(name: str, images_dir: Path, version: str | None = None) -> ImageSpec:
    d = images_dir / name
    f = d / "image.yaml"
    if not NAME_RE.fullmatch(name) or not f.is_file():
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
