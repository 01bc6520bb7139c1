"""Check a published version directory against its SHA256SUMS and manifest before it goes anywhere."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..core.digests import sha256_file
from ..core.errors import BuildFailed, UserError
from . import manifest as manifest_mod
from .manifest import MANIFEST, SUMS, Manifest

# Files a version directory carries that SHA256SUMS need not list (it cannot list itself).
UNLISTED_OK = frozenset({SUMS, MANIFEST, "junit.xml"})
REQUIRED_SUITES = ("boot", "fabric")
SUMS_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")


@dataclass(frozen=True)
class VerifiedVersion:
    directory: Path
    manifest: Manifest
    digests: dict[str, str]  # file name -> sha256, every file to publish

    def path(self, name: str) -> Path:
        return self.directory / name


def parse_sums(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise UserError("missing", file=str(path)) from None
    for i, line in enumerate(lines, 1):
        m = SUMS_LINE.match(line)
        if not m:
            raise UserError("not in `sha256sum` format", file=str(path), field=f"line {i}")
        out[m.group(2)] = m.group(1)
    return out


def require_passing(m: Manifest, path: Path) -> None:
    """Publishing needs boot and fabric suites recorded as passed; nothing bypasses this."""
    for suite in REQUIRED_SUITES:
        s = m.tests.get(suite)
        if s is None:
            raise BuildFailed(f"{path}: tests.{suite}: not recorded; refusing to publish an untested image")
        if not s.passed:
            failed = ", ".join(c.name for c in s.cases if not c.passed) or "failed"
            raise BuildFailed(f"{path}: tests.{suite}: did not pass ({failed}); refusing to publish")
    if not m.all_passed:
        bad = ", ".join(k for k, s in m.tests.items() if not s.passed)
        raise BuildFailed(f"{path}: tests: {bad} did not pass; refusing to publish")


def verify_version_dir(directory: Path, name: str, version: str) -> VerifiedVersion:
    if not directory.is_dir():
        raise UserError("no such version directory; build it with `builder vm`", file=str(directory))
    m = manifest_mod.load(directory)
    mpath = directory / MANIFEST
    for field, want in (("name", name), ("version", version)):
        if getattr(m, field) != want:
            raise UserError(f"is {getattr(m, field)!r}, expected {want!r}", file=str(mpath), field=field)
    sums = parse_sums(directory / SUMS)
    digests: dict[str, str] = {}
    for fname, want in sorted(sums.items()):
        p = directory / fname
        if "/" in fname or not p.is_file():
            raise BuildFailed(f"{directory / SUMS}: lists {fname}, which is missing")
        got = sha256_file(p)
        if got != want:
            raise BuildFailed(f"{p}: sha256 {got} does not match SHA256SUMS ({want})")
        digests[fname] = got
    for i, entry in enumerate(m.files):
        if sums.get(entry.name) != entry.sha256:
            raise BuildFailed(f"{mpath}: files[{i}]: {entry.name} does not match SHA256SUMS")
        if (directory / entry.name).stat().st_size != entry.size:
            raise BuildFailed(f"{mpath}: files[{i}]: {entry.name} size differs from the manifest")
    for p in sorted(directory.iterdir()):
        if p.name in digests:
            continue
        if p.name not in UNLISTED_OK or not p.is_file():
            raise BuildFailed(f"{p}: not listed in SHA256SUMS")
        digests[p.name] = sha256_file(p)
    return VerifiedVersion(directory, m, digests)
