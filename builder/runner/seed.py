"""cloud-init NoCloud seed: user-data, meta-data and network-config on an ISO labelled `cidata`."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

from .. import templates
from ..core import proc
from ..core.runs import Run
from .spec import RunnerSpec

LABEL = "cidata"  # NoCloud finds its seed by this volume label


def instance_id(spec: RunnerSpec) -> str:
    """Stable for an unchanged spec, so re-provisioning never re-runs first-boot modules."""
    digest = hashlib.sha256(json.dumps(spec.model_dump(mode="json"), sort_keys=True).encode())
    return f"{spec.name}-{digest.hexdigest()[:12]}"


def seed_files(spec: RunnerSpec) -> dict[str, str]:
    return {
        "user-data": templates.render("runner/user-data.j2", spec=spec),
        "meta-data": templates.render("runner/meta-data.j2", spec=spec, instance_id=instance_id(spec)),
        "network-config": templates.render("runner/network-config.j2", spec=spec),
    }


def build_iso(files: dict[str, str], out: Path, run: Run | None = None) -> Path:
    with tempfile.TemporaryDirectory(prefix="seed.") as d:
        for name, text in files.items():
            (Path(d) / name).write_text(text)
        proc.run(
            ["genisoimage", "-quiet", "-output", out, "-volid", LABEL, "-joliet", "-rock",
             *(Path(d) / n for n in sorted(files))],
            run_ctx=run, timeout=60,
        )
    return out
