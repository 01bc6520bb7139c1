"""The images project builder works on: the directory it runs in, never its own install location.

Like git finds `.git`, builder walks up from the working directory to the nearest directory that
holds `builder.toml` or an `images/` folder (`-C DIR` starts the walk elsewhere). Everything a
command reads or writes by default — image templates, fabrics, schedules, runner specs, the local
store, the git revision recorded in manifests — is resolved against that root.

`builder.toml` is optional; where present it may move the well-known paths:

    [project]
    images = "images"              # one folder per image: <images>/<name>/image.yaml
    artifacts = "artifacts"        # default local store
    schedules = "ci/schedules.yaml"

    [pipeline]                     # what generated CI jobs run (default: `builder` on PATH, no set-up)
    setup = ["ci/setup.sh"]        # commands before builder in every job
    builder = ".venv/bin/builder"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from .core import proc
from .core.errors import UserError

MARKER = "builder.toml"
MAX_CONFIG_BYTES = 64 << 10
PATH_KEYS = {"images": "images", "artifacts": "artifacts", "schedules": "ci/schedules.yaml"}
PIPELINE_KEYS = {"setup", "builder"}


@dataclass(frozen=True)
class Project:
    root: Path
    images_dir: Path
    artifacts_dir: Path
    schedules_file: Path
    pipeline_setup: tuple[str, ...] = ()
    pipeline_builder: str = "builder"

    def git_revision(self) -> str | None:
        """HEAD of the project's checkout, `-dirty` when tracked files differ; None outside git."""
        head = _git(self.root, "rev-parse", "HEAD")
        if head is None:
            return None
        dirty = _git(self.root, "status", "--porcelain", "--untracked-files=no")
        return head + ("-dirty" if dirty else "")

    def relative(self, path: Path) -> str:
        """How a path is shown to the user: relative to the project where it lies inside it."""
        try:
            return str(path.resolve().relative_to(self.root))
        except ValueError:
            return str(path)


def _git(root: Path, *args: str) -> str | None:
    try:
        p = proc.run(["git", "-C", str(root), *args], timeout=30, check=False, merge_stderr=False)
    except (OSError, proc.ToolTimeout):
        return None
    return p.output.strip() if p.returncode == 0 else None


def _read_config(f: Path) -> dict:
    if f.stat().st_size > MAX_CONFIG_BYTES:
        raise UserError(f"larger than {MAX_CONFIG_BYTES} bytes", file=str(f))
    try:
        data = tomllib.loads(f.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise UserError(f"not valid TOML: {e}", file=str(f)) from None
    for table in data:
        if table not in ("project", "pipeline") or not isinstance(data[table], dict):
            raise UserError("unknown table (want [project] or [pipeline])", file=str(f), field=table)
    return data


def _load(root: Path) -> Project:
    paths = {k: root / v for k, v in PATH_KEYS.items()}
    f = root / MARKER
    data = _read_config(f) if f.is_file() else {}
    for key, value in data.get("project", {}).items():
        if key not in PATH_KEYS:
            raise UserError("unknown key", file=str(f), field=f"project.{key}")
        rel = Path(value) if isinstance(value, str) and value else None
        if rel is None or rel.is_absolute() or ".." in rel.parts:
            raise UserError("want a relative path inside the project", file=str(f), field=f"project.{key}")
        paths[key] = root / rel
    pipeline = data.get("pipeline", {})
    if unknown := set(pipeline) - PIPELINE_KEYS:
        raise UserError("unknown key", file=str(f), field=f"pipeline.{sorted(unknown)[0]}")
    setup = pipeline.get("setup", [])
    if not isinstance(setup, list) or not all(isinstance(c, str) and c.strip() and "\n" not in c for c in setup):
        raise UserError("want a list of one-line commands", file=str(f), field="pipeline.setup")
    builder = pipeline.get("builder", "builder")
    if not isinstance(builder, str) or not builder.strip() or "\n" in builder:
        raise UserError("want a one-line command", file=str(f), field="pipeline.builder")
    return Project(root, paths["images"], paths["artifacts"], paths["schedules"], tuple(setup), builder)


def is_root(d: Path) -> bool:
    return (d / MARKER).is_file() or (d / "images").is_dir()


def find(start: Path | None = None) -> Project:
    """The nearest project root at or above `start` (default: the working directory)."""
    here = (start or Path.cwd()).resolve()
    if not here.is_dir():
        raise UserError("not a directory", field="-C", file=str(here))
    for d in (here, *here.parents):
        if is_root(d):
            return _load(d)
    raise UserError(
        f"no builder project in {here} or above it (a project has an images/ folder or a {MARKER}); "
        "run builder inside one or pass -C DIR",
        field="-C",
    )
