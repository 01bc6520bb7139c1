"""The child pipeline's virtualbox job against the fake GitLab, through the real python-gitlab
client: the OVA the build job uploaded comes back bounded and digest-checked, a released version
is not tested again, and the suite runs on the downloaded file (VBoxManage stand-in, no boot)."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder import vbox_job, vbox_suite
from builder.core.errors import BuildFailed
from builder.core.results import Suite
from builder.project import Project, find
from builder.publish import gitlab
from builder.publish.manifest import FileEntry, parse_manifest
from tests.fakes.gitlab_helpers import fast_policy, make_version, target
from tests.fakes.gitlab_server import gitlab_server  # noqa: F401  (fixture)


@pytest.fixture
def uploaded(gitlab_server, tmp_path):
    """ceph-training 1.2.0 uploaded as a build job does (no release), and its proof directory."""
    d = make_version(tmp_path / "store")
    gitlab.publish_gitlab(d, target(gitlab_server), release=False, policy=fast_policy())
    return d


@pytest.fixture
def project(tmp_path) -> Project:
    img = tmp_path / "project" / "images" / "ceph-training"
    img.mkdir(parents=True)
    (img / "image.yaml").write_text("name: ceph-training\nversion: 1.2.0\n"
                                    "users: [{name: student, password: student, sudo: true}]\n")
    return find(tmp_path / "project")


@pytest.fixture
def download(gitlab_server, uploaded):
    """The uploaded OVA's manifest entry, and download_file of ceph-training 1.2.0 for (entry, dest)."""
    entry = next(f for f in parse_manifest(uploaded / "manifest.json").files if f.format == "ova")

    def get(e: FileEntry, dest: Path) -> Path:
        return gitlab.download_file(target(gitlab_server), "ceph-training", "1.2.0", e, dest, policy=fast_policy())

    return entry, get


def test_download_streams_the_ova_and_checks_its_digest(download, uploaded, tmp_path):
    entry, get = download
    assert get(entry, tmp_path / entry.name).read_bytes() == (uploaded / entry.name).read_bytes()
    assert not list(tmp_path.glob("*.part"))


def test_download_refuses_a_file_other_than_the_manifest_says(download, tmp_path):
    entry, get = download
    dest = tmp_path / entry.name
    with pytest.raises(BuildFailed, match="sha256"):
        get(entry.model_copy(update={"sha256": "0" * 64}), dest)
    with pytest.raises(BuildFailed, match="more than the 3 bytes"):
        get(entry.model_copy(update={"size": 3}), dest)
    assert not dest.exists() and not list(tmp_path.glob("*.part"))  # nothing half-written left


def test_uploaded_ova_is_tested_with_the_image_user(gitlab_server, uploaded, project, tmp_path, monkeypatch):
    seen = {}

    def run_suite(path, **kw):
        seen.update(kw, data=path.read_bytes())
        return Suite(passed=True)

    monkeypatch.setattr(vbox_suite, "run_suite", run_suite)
    work = tmp_path / "work"
    work.mkdir()
    res = vbox_job.test_uploaded(uploaded, target(gitlab_server), project, workdir=work)
    assert res.state == "tested" and res.suite and res.suite.passed
    assert seen["data"] == (uploaded / "ceph-training-1.2.0.ova").read_bytes()
    assert (seen["user"], seen["password"], seen["version"]) == ("student", "student", "1.2.0")
    assert not list(work.iterdir())  # the downloaded OVA is gone with the job's temp dir


def test_released_version_is_not_tested_again(gitlab_server, uploaded, project, monkeypatch):
    gitlab.release_uploaded(uploaded, target(gitlab_server), policy=fast_policy())
    monkeypatch.setattr(vbox_suite, "run_suite", lambda *a, **k: pytest.fail("tested a released version"))
    res = vbox_job.test_uploaded(uploaded, target(gitlab_server), project)
    assert res.state == "released" and res.suite is None


def test_a_failed_build_proof_is_refused(gitlab_server, tmp_path, project):
    d = make_version(tmp_path, tests={"boot": Suite(passed=False)})
    with pytest.raises(BuildFailed, match="tests.boot: did not pass"):
        vbox_job.test_uploaded(d, target(gitlab_server), project)
