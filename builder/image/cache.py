"""Stage cache keyed by a hash of each stage's inputs (mkosi's model).

An entry is a directory `<root>/<stage>/<image>-<key>/` that appears by rename once complete, so a
killed build never leaves a half entry that a later run would trust. Each entry keeps its input
manifest (`inputs.json`: input name -> value or digest), so a miss can say what changed since the
newest entry. Older entries of the same image and stage are evicted once a newer one lands.
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
INPUTS = "inputs.json"
SHOWN = 80  # input values up to this long are kept as they are; longer ones as a digest


def key(*parts: object) -> str:
    """Stable hash of JSON-able parts (dicts sorted); file contents go in as their text."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def digest(value: object) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def summarise(inputs: dict[str, object]) -> dict[str, object]:
    """What inputs.json records: short scalars as they are, everything else as a digest."""
    return {k: v if isinstance(v, (str, int, float, bool, type(None))) and len(str(v)) <= SHOWN else digest(v)
            for k, v in inputs.items()}


def changes(old: dict[str, object], new: dict[str, object]) -> list[str]:
    """`name old → new` (or `name changed` for digests) for every input that differs."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if a == b:
            continue
        if isinstance(a, str) and a.startswith("sha256:") or isinstance(b, str) and b.startswith("sha256:"):
            out.append(f"{k} changed")
        else:
            out.append(f"{k} {a} → {b}")
    return out


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

    def latest_inputs(self, stage: str, image: str) -> dict | None:
        """The input manifest of the newest complete entry of this image and stage."""
        entries = [p for p in (self.root / stage).glob(f"{image}-*")
                   if not p.name.startswith(".") and (p / ".complete").exists()]
        for p in sorted(entries, key=lambda p: p.stat().st_mtime, reverse=True):
            try:
                return json.loads((p / INPUTS).read_text())
            except (OSError, ValueError):
                continue
        return None

    def commit(self, tmp: Path, stage: str, image: str, k: str, inputs: dict, replace: bool = False) -> Path:
        """Rename a finished staging dir into place; `replace` swaps out an entry of the same key
        (a re-run test stage), otherwise the entry that got there first wins."""
        (tmp / INPUTS).write_text(json.dumps(inputs, indent=2, sort_keys=True))
        (tmp / ".complete").touch()
        final = self.entry(stage, image, k)
        if final.exists() and replace:
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        elif final.exists():  # another run finished the same key first
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
