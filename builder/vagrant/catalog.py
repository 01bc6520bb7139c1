"""The box catalog `<name>.json`, in Vagrant's box-metadata format, so `vagrant box add URL`,
`vagrant box outdated` and `vagrant box update` work against wherever the boxes are published.

Plan: `update_catalog` merges one published version into the catalog read back from the store
(pure; old versions kept, the same version replaced). Apply: `publish_local_catalog` rewrites
`<output>/<name>.json` atomically under a lock, so two publishes of one image never lose a
version. The URL of each box is made by a builder passed in: `local_urls` (file:// into the
local store) or `publish.gitlab.gitlab_urls` (GitLab's generic package file URL).
"""

from __future__ import annotations

import fcntl
import functools
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..atomic import atomic_file
from ..core.errors import UserError

# Vagrant 2.3.4 (lib/vagrant/box_metadata.rb) turns every catalog version into
# Gem::Version.new(v) and rejects the whole catalog (BoxMetadataMalformedVersion) when one fails;
# `vagrant box add --box-version` / `box outdated` compare them with Gem::Requirement. RubyGems
# accepts dotted alphanumerics with an optional `-prerelease` (its VERSION_PATTERN) but no
# `+build` suffix, which our image versions otherwise allow. We take the plain subset: dotted
# numbers, optionally `-` and a pre-release (Gem reads 1.2.0-rc1 as 1.2.0.pre.rc1, older than
# 1.2.0). With no --box-version, `box add` takes the highest version, pre-releases included.
BOX_VERSION_RE = re.compile(r"^\d+(\.\d+)*(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$")
BOX_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
PROVIDER_RE = r"^[a-z0-9][a-z0-9_-]*$"
SHA256_RE = r"^[0-9a-f]{64}$"
MAX_CATALOG_BYTES = 16 << 20  # a catalog is read back from a store or a server: bound it

UrlFor = Callable[[str, str, str], str]  # (box name, version, file name) -> URL


def check_box_version(version: str, *, field: str = "version") -> str:
    if not BOX_VERSION_RE.match(version):
        raise UserError(f"{version!r} is not a Vagrant box version (dotted numbers, optional -prerelease, "
                        "e.g. 1.2.0 or 1.2.0-rc1)", field=field)
    return version


def _gem_segments(version: str) -> list[int | str]:
    """Gem::Version#canonical_segments: `-` means `.pre.`, runs of digits and letters are
    segments, trailing zeros of the numeric part and of the rest are dropped."""
    segs = [int(s) if s.isdigit() else s for s in re.findall(r"[0-9]+|[A-Za-z]+", version.replace("-", ".pre."))]
    cut = next((i for i, s in enumerate(segs) if isinstance(s, str)), len(segs))
    parts = [segs[:cut], segs[cut:]]
    for p in parts:
        while p and p[-1] == 0:
            p.pop()
    return parts[0] + parts[1]


def gem_compare(a: str, b: str) -> int:
    """Gem::Version#<=>: a string segment (a pre-release) sorts below any number."""
    left, right = _gem_segments(a), _gem_segments(b)
    for i in range(max(len(left), len(right))):
        x = left[i] if i < len(left) else 0
        y = right[i] if i < len(right) else 0
        if x == y:
            continue
        if isinstance(x, int) and isinstance(y, int):
            return -1 if x < y else 1
        if isinstance(x, str) and isinstance(y, str):
            return -1 if x < y else 1
        return -1 if isinstance(x, str) else 1  # a pre-release segment sorts below a number
    return 0


class _Open(BaseModel):
    # fields Vagrant or a later builder adds (architecture, status, ...) survive a rewrite
    model_config = ConfigDict(extra="allow")


class Provider(_Open):
    name: str = Field(pattern=PROVIDER_RE)
    url: str = Field(min_length=1)
    checksum_type: str | None = None
    checksum: str | None = None


class CatalogVersion(_Open):
    version: str
    providers: list[Provider] = Field(default_factory=list)


class Catalog(_Open):
    name: str
    description: str = ""
    versions: list[CatalogVersion] = Field(default_factory=list)


def providers_for(name: str, version: str, boxes: dict[str, tuple[str, str]], url_for: UrlFor) -> list[dict]:
    """Catalog provider entries from {provider: (file name, sha256)}."""
    return [{"name": p, "url": url_for(name, version, f), "checksum_type": "sha256", "checksum": digest}
            for p, (f, digest) in sorted(boxes.items())]


def update_catalog(existing: dict | None, name: str, version: str, providers: Iterable[dict],
                   description: str | None = None) -> dict:
    """The catalog with `version` holding exactly `providers`: appended when new, replaced when
    a version equal to it (by Gem::Version, so 1.0 == 1.0.0) is there; others kept; versions
    sorted oldest first. `existing` is what the store holds (None: no catalog yet)."""
    if not BOX_NAME_RE.match(name):
        raise UserError(f"{name!r} is not a Vagrant box name", field="name")
    check_box_version(version)
    try:
        new = CatalogVersion(version=version, providers=[Provider.model_validate(p) for p in providers])
    except ValidationError as e:
        raise UserError(f"bad provider entry: {e.errors()[0]['msg']}", field="providers") from None
    for p in new.providers:
        if p.checksum_type != "sha256" or not re.match(SHA256_RE, p.checksum or ""):
            raise UserError(f"provider {p.name}: want checksum_type sha256 and a hex sha256", field="providers")
    names = [p.name for p in new.providers]
    if not names or len(set(names)) != len(names):
        raise UserError(f"want one entry per provider, got {names}", field="providers")

    if existing is None:
        cat = Catalog(name=name, description=description or "")
    else:
        try:
            cat = Catalog.model_validate(existing)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            raise UserError(f"not a Vagrant box catalog: {where}: {first['msg']}", field="catalog") from None
        if cat.name != name:
            raise UserError(f"the catalog is for box {cat.name!r}, not {name!r}", field="catalog.name")
        for v in cat.versions:
            check_box_version(v.version, field="catalog.versions")
        if description is not None:
            cat.description = description
    kept = [v for v in cat.versions if gem_compare(v.version, version) != 0]
    new.providers.sort(key=lambda p: p.name)
    def order(a: CatalogVersion, b: CatalogVersion) -> int:
        return gem_compare(a.version, b.version)

    cat.versions = sorted([*kept, new], key=functools.cmp_to_key(order))
    return cat.model_dump(mode="json", exclude_none=True)


def parse_catalog(data: bytes | str, where: str) -> dict:
    """A catalog read back from a store or a server: bounded, JSON, an object."""
    if len(data) > MAX_CATALOG_BYTES:
        raise UserError(f"larger than {MAX_CATALOG_BYTES} bytes: not a box catalog", file=where)
    try:
        value = json.loads(data)
    except ValueError as e:
        raise UserError(f"not JSON: {e}", file=where) from None
    if not isinstance(value, dict):
        raise UserError("not a Vagrant box catalog: the top level is not an object", file=where)
    return value


def local_urls(output: Path) -> UrlFor:
    """file:// URLs into the local store `<output>/<name>/<version>/<file>` (absolute, percent-encoded)."""
    root = Path(output).resolve()
    return lambda name, version, file: (root / name / version / file).as_uri()


def catalog_path(output: Path, name: str) -> Path:
    """Beside the image's version directories, never inside one (those are immutable)."""
    return Path(output) / f"{name}.json"


def publish_local_catalog(output: Path, name: str, version: str, boxes: dict[str, tuple[str, str]],
                          description: str | None = None, url_for: UrlFor | None = None) -> Path:
    """Merge `version` into `<output>/<name>.json`: read, update, write to a temp file, rename."""
    path = catalog_path(output, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    providers = providers_for(name, version, boxes, url_for or local_urls(output))
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one read-modify-write at a time
        existing = None
        if path.exists():
            with open(path, "rb") as f:
                existing = parse_catalog(f.read(MAX_CATALOG_BYTES + 1), str(path))
        try:
            catalog = update_catalog(existing, name, version, providers, description)
        except UserError as e:
            raise UserError(e.message, file=str(path), field=e.field) from None
        with atomic_file(path) as f:
            f.write((json.dumps(catalog, indent=2) + "\n").encode())
    return path
