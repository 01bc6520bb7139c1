"""The local directory store: `<output>/<name>/<version>/`, filled atomically.

A version directory appears whole or not at all: files are written to a hidden staging
directory beside it and renamed into place. An existing version is never overwritten unless
forced, and then the old one is swapped out only after the new one is complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..core.errors import UserError
from .manifest import MANIFEST, parse_manifest


def sha256sums(entries: dict[str, str]) -> str:
    """coreutils `sha256sum` format, so `sha256sum -c SHA256SUMS` verifies the directory."""
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(entries.items()))


def version_dir(output: Path, name: str, version: str) -> Path:
    return output / name / version


def staging_dir(output: Path, name: str, version: str, run_id: str) -> Path:
    """A hidden directory beside the final one (same filesystem, so the rename is atomic), named
    for its run so that only a dead run's leftovers are ever swept."""
    parent = output / name
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{run_id}.{version}.", suffix=".partial", dir=parent))


def check_free(output: Path, name: str, version: str, force: bool) -> None:
    final = version_dir(output, name, version)
    if final.exists() and not force:
        raise UserError(
            f"{final} already exists; versions are never overwritten (use --force to replace)",
            field="version",
        )


def commit(staging: Path, output: Path, name: str, version: str, force: bool) -> Path:
    """Rename a complete staging directory into place."""
    final = version_dir(output, name, version)
    check_free(output, name, version, force)
    os.chmod(staging, 0o755)
    if final.exists():
        old = final.with_name(f".{version}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.rename(final, old)
        os.rename(staging, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(staging, final)
    return final


def sweep_partials(output: Path, live_run_ids: set[str]) -> None:
    """Remove staging directories left by killed runs; a live run's (another build's) stays."""
    for p in output.glob("*/.*.partial"):
        if p.name[1:].split(".", 1)[0] not in live_run_ids:
            shutil.rmtree(p, ignore_errors=True)


def published(output: Path, name: str) -> dict[str, str | None]:
    """Versions of `name` in the store -> their content hash (None where the manifest has none)."""
    out: dict[str, str | None] = {}
    for d in sorted((output / name).glob("[0-9]*")):
        if (d / MANIFEST).is_file():
            out[d.name] = parse_manifest(d / MANIFEST).content_hash
    return out
