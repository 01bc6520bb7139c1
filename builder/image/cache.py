"""Stage cache keyed by a hash of each stage's inputs (mkosi's model).

An entry is a directory `<root>/<stage>/<key>/` that appears by rename once complete, so a killed
build never leaves a half entry that a later run would trust. Older entries of the same image
and stage are evicted once a newer one lands.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = Path(os.environ.get("BUILDER_CACHE", Path.home() / ".cache" / "builder"))
KEEP = 2  # entries kept per image and stage: the current one and the one before


def key(*parts: object) -> str:
    """Stable hash of JSON-able parts (dicts sorted); file contents go in as their text."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


@dataclass(frozen=True)
class Cache:
    root: Path = DEFAULT_ROOT

    def entry(self, stage: str, image: str, k: str) -> Path:
        return self.root / stage / f"{image}-{k}"

    def lookup(self, stage: str, image: str, k: str) -> Path | None:
        p = self.entry(stage, image, k)
        return p if (p / ".complete").exists() else None

    def staging(self, stage: str, image: str, run_id: str) -> Path:
        parent = self.root / stage
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{run_id}.{image}-", suffix=".partial", dir=parent))

    def commit(self, tmp: Path, stage: str, image: str, k: str) -> Path:
        (tmp / ".complete").touch()
        final = self.entry(stage, image, k)
        if final.exists():  # another run finished the same key first
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.rename(tmp, final)
        self._evict(stage, image, keep=final)
        return final

    def _evict(self, stage: str, image: str, keep: Path) -> None:
        entries = sorted(
            (p for p in (self.root / stage).glob(f"{image}-*") if p != keep and not p.name.startswith(".")),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        for old in entries[KEEP - 1 :]:
            shutil.rmtree(old, ignore_errors=True)

    def sweep_partials(self, live_run_ids: set[str]) -> None:
        """Staging dirs of runs that died mid-stage (their run id is not live any more)."""
        for p in self.root.glob("*/.*.partial"):
            if p.name[1:].split(".", 1)[0] not in live_run_ids:
                shutil.rmtree(p, ignore_errors=True)
