"""The project's pipelines as GitLab would run them, under gitlab-ci-local (shell executor) in a plain
clone: the parent pipeline's lint and generate jobs, then the generated child pipeline for
IMAGES=minimal as a schedule, two nights in a row, against the fake GitLab. Both nights are green;
the first proves the uploaded OVA in "VirtualBox" (the stateful VBoxManage stand-in, which boots it
with QEMU) before the release; the second finds the content unchanged, uploads nothing and does not
test the released OVA again."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.fakes.gitlab_server import gitlab_server  # noqa: F401  (fixture)
from tests.fakes.vbox_fixture import FAKE as VBOXMANAGE
from tests.repo import REPO

pytestmark = [pytest.mark.slow, pytest.mark.root]

GCL = Path(os.environ.get("GITLAB_CI_LOCAL", "gitlab-ci-local"))


def gcl(clone: Path, *args: str, env: dict | None = None, timeout: float = 1800) -> subprocess.CompletedProcess:
    r = subprocess.run([str(GCL), "--no-color", *args], cwd=clone, capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, **(env or {})})
    print(r.stdout[-6000:], r.stderr[-2000:])
    return r


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    if shutil.which(GCL) is None:
        pytest.skip("gitlab-ci-local is not installed (ci/test.sh installs it and sets $GITLAB_CI_LOCAL)")
    d = tmp_path_factory.mktemp("gcl") / "images"
    subprocess.run(["git", "clone", "-q", str(REPO), str(d)], check=True)
    # gitlab-ci-local derives CI_PROJECT_* from a parseable origin
    subprocess.run(["git", "-C", str(d), "remote", "set-url", "origin", "https://gitlab.example.com/training/images.git"],
                   check=True)
    subprocess.run(["sh", "ci/setup.sh"], cwd=d, check=True, timeout=1200)  # what every job's before_script does
    return d


def test_parent_pipeline_lint_and_generate_pass_in_a_plain_clone(clone: Path):
    r = gcl(clone, "lint", "generate", env={"IMAGES": "minimal"})
    assert r.returncode == 0 and "PASS  lint" in r.stdout and "PASS  generate" in r.stdout
    child = yaml.safe_load((clone / "child-pipeline.yml").read_text())
    assert set(child) == {"stages", "build:minimal", "virtualbox:minimal", "publish:minimal"}


def test_child_pipeline_is_green_two_nights_in_a_row(clone: Path, minimal_release: Path, test_cache: Path,
                                                      gitlab_server, tmp_path):
    """`minimal_release` warmed the stage cache the runner keeps; the child jobs share nothing else."""
    subprocess.run([str(clone / ".venv/bin/builder"), "pipeline", "generate", "-o", "child.yml"], cwd=clone,
                   env={**os.environ, "IMAGES": "minimal"}, check=True)
    variables = {"CI_PIPELINE_SOURCE": "schedule", "GITLAB_URL": gitlab_server.url,
                 "GITLAB_PRIVATE_TOKEN": gitlab_server.token, "CI_PROJECT_ID": str(gitlab_server.project.id),
                 "BUILDER_CACHE": str(test_cache)}
    # the runner tagged virtualbox: the VBoxManage stand-in on PATH, with its own state
    bindir, vbox_state = tmp_path / "bin", tmp_path / "vbox"
    bindir.mkdir()
    vbox_state.mkdir()
    (bindir / "VBoxManage").symlink_to(VBOXMANAGE)
    (vbox_state / "version").write_text("7.0.20r163906\n")
    variables["FAKE_VBOX_STATE"] = str(vbox_state)
    env = {"PATH": f"{bindir}:{os.environ['PATH']}", "FAKE_VBOX_STATE": str(vbox_state)}
    argv = ["--file", "child.yml", *(a for k, v in variables.items() for a in ("--variable", f"{k}={v}"))]

    night1 = gcl(clone, *argv, env=env)
    assert night1.returncode == 0 and "PASS  build:minimal" in night1.stdout and "PASS  publish:minimal" in night1.stdout
    assert "PASS  virtualbox:minimal" in night1.stdout
    calls = (vbox_state / "calls.log").read_text()
    assert "import" in calls and "startvm" in calls  # the downloaded OVA really went through VirtualBox
    assert (clone / "reports" / "minimal" / "virtualbox.xml").is_file()
    project = gitlab_server.project
    assert "minimal-0.1.0" in project.releases
    names = {f["file_name"] for files in project.files.values() for f in files}
    assert {"minimal-0.1.0.qcow2", "minimal-0.1.0.ova", "manifest.json", "SHA256SUMS", "junit.xml"} <= names
    assert (clone / "reports" / "minimal" / "junit.xml").is_file()

    puts = sum(1 for m, _ in gitlab_server.requests if m == "PUT")
    night2 = gcl(clone, *argv, env=env)
    assert night2.returncode == 0 and "PASS  build:minimal" in night2.stdout and "PASS  publish:minimal" in night2.stdout
    assert "is current" in night2.stdout + night2.stderr
    assert "is released already" in night2.stdout + night2.stderr
    assert (vbox_state / "calls.log").read_text().count("startvm") == calls.count("startvm")
    assert sum(1 for m, _ in gitlab_server.requests if m == "PUT") == puts  # nothing uploaded again
    assert list(project.releases) == ["minimal-0.1.0"]
