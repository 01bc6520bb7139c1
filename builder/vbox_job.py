"""The child pipeline's `virtualbox:NAME` job: prove in VirtualBox the OVA a build job uploaded.

Runners share nothing but GitLab. The build job (on a KVM runner) uploaded the image files to
the package registry and handed on its small proof (manifest.json, SHA256SUMS) as job
artifacts. This job runs on a runner tagged `virtualbox` (where VBoxManage works: VirtualBox
cannot run where KVM holds the CPU's virtualisation, which `builder doctor` reports): it
downloads the OVA the manifest names, checks its digest, and runs the virtualbox suite on it.
The publish job needs this one, so no version is released that VirtualBox did not boot. A
version that is released already was proven when it was: on a night the build job found the
image current, there is nothing new to test.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from . import vbox_suite
from .core.errors import UserError
from .core.results import Suite
from .project import Project
from .publish import gitlab
from .publish.gitlab_target import GitLabTarget
from .publish.manifest import MANIFEST, parse_manifest
from .publish.verify import require_passing
from .spec import load_image


@dataclass(frozen=True)
class VboxJobResult:
    name: str
    version: str
    state: Literal["tested", "released"]
    suite: Suite | None = None


def test_uploaded(proof: Path, target: GitLabTarget, project: Project, *, workdir: Path | None = None,
                  boot_timeout: float = 600, progress: Callable[[str], None] = lambda line: None) -> VboxJobResult:
    m = parse_manifest(proof / MANIFEST)
    require_passing(m, proof / MANIFEST)
    if gitlab.release_exists(target, m.name, m.version):
        return VboxJobResult(m.name, m.version, "released")
    ova = next((f for f in m.files if f.format == "ova"), None)
    if ova is None:
        raise UserError(f"{m.name} {m.version} has no OVA", file=str(proof / MANIFEST), field="files")
    user = vbox_suite.login_user(load_image(m.name, project.images_dir))
    if user is None:
        raise UserError(f"{m.name} has no user with a password to log in with", field="users")
    with tempfile.TemporaryDirectory(dir=workdir, prefix="builder-ova-") as d:
        progress(f"downloading {ova.name} ({ova.size / 2**20:.0f} MiB) from the registry")
        path = gitlab.download_file(target, m.name, m.version, ova, Path(d) / ova.name)
        suite = vbox_suite.run_suite(path, user=user.name, password=user.password, version=m.version,
                                     boot_timeout=boot_timeout, workdir=Path(d))
    return VboxJobResult(m.name, m.version, "tested", suite)
