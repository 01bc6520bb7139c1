"""manifest.json: what was built, from what, with which tools, and how it tested.

Publishers read it back (`load`) and refuse a version whose checks did not all pass.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ..core.errors import UserError
from ..core.results import Suite

MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
JUNIT = "junit.xml"


class FileEntry(BaseModel):
    name: str
    size: int
    sha256: str
    format: str | None = None  # qcow2 | vmdk | ova | None for metadata


class Manifest(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    version: str
    input_hash: str
    git_revision: str | None
    built_at: str
    accelerator: str
    tools: dict[str, str]
    packages: dict[str, str]
    files: list[FileEntry]
    stages: dict[str, float]  # stage name -> seconds (0 on a cache hit)
    cached_stages: list[str] = Field(default_factory=list)
    tests: dict[str, Suite]  # "boot", "fabric"
    # what the image is made of whatever its version (see Build.content_hash); decides rebuild versions
    content_hash: str | None = None
    archive: dict[str, str] = Field(default_factory=dict)  # Debian suite -> digest of its InRelease
    verdicts: dict[str, dict] = Field(default_factory=dict)  # suite -> judged in this build, or reused from
    previous_version: str | None = None
    package_changes: dict[str, dict] = Field(default_factory=dict)  # since previous_version

    @property
    def all_passed(self) -> bool:
        return bool(self.tests) and all(s.passed for s in self.tests.values())

    def dumps(self) -> str:
        return self.model_dump_json(indent=2) + "\n"


def parse_manifest(source: Path | bytes, where: str | None = None) -> Manifest:
    """A manifest from a file or from bytes read elsewhere (the registry); bad input names its place."""
    where = where or str(source)
    try:
        raw = source.read_bytes() if isinstance(source, Path) else source
        return Manifest.model_validate(json.loads(raw.decode("utf-8")))
    except FileNotFoundError:
        raise UserError("no manifest; build it with `builder vm`", file=where) from None
    except (ValueError, TypeError) as e:
        raise UserError(f"not a valid manifest: {str(e).splitlines()[0]}", file=where) from None


def load(directory: Path) -> Manifest:
    return parse_manifest(directory / MANIFEST)
