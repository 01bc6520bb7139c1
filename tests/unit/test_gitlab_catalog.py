"""The Vagrant box catalog in GitLab's registry: every released version appended, old ones kept,
the CI publish job's --release-only path included."""

from __future__ import annotations

import json

from builder.publish.gitlab import CATALOG_VERSION, publish_gitlab, release_uploaded
from tests.fakes.gitlab_helpers import fast_policy, make_version, target
from tests.fakes.gitlab_server import gitlab_server  # noqa: F401  (fixture)


def catalog(server) -> dict:
    files = server.package_files(server.project, "ceph-training", CATALOG_VERSION)
    return json.loads(server.blob(files[-1]).read_bytes())


def test_each_release_merges_its_boxes_into_the_catalog(gitlab_server, tmp_path):
    publish_gitlab(make_version(tmp_path / "a", boxes=True), target(gitlab_server), policy=fast_policy())
    cat = catalog(gitlab_server)
    assert cat["name"] == "ceph-training" and [v["version"] for v in cat["versions"]] == ["1.2.0"]
    providers = {p["name"]: p for p in cat["versions"][0]["providers"]}
    assert set(providers) == {"libvirt", "virtualbox"}
    assert providers["libvirt"]["url"].endswith("/packages/generic/ceph-training/1.2.0/ceph-training-1.2.0.libvirt.box")
    assert providers["libvirt"]["checksum_type"] == "sha256" and len(providers["libvirt"]["checksum"]) == 64

    # the CI way: a build job uploads without releasing, the publish job releases from the proof
    d = make_version(tmp_path / "b", version="1.2.0.1", boxes=True)
    publish_gitlab(d, target(gitlab_server), release=False, policy=fast_policy())
    assert [v["version"] for v in catalog(gitlab_server)["versions"]] == ["1.2.0"]  # not released yet
    proof = tmp_path / "proof"
    proof.mkdir()
    for f in ("manifest.json", "SHA256SUMS"):
        (proof / f).write_bytes((d / f).read_bytes())
    res = release_uploaded(proof, target(gitlab_server), policy=fast_policy())
    assert res.release == "created"
    assert [v["version"] for v in catalog(gitlab_server)["versions"]] == ["1.2.0", "1.2.0.1"]


def test_images_without_boxes_leave_no_catalog(gitlab_server, tmp_path):
    publish_gitlab(make_version(tmp_path), target(gitlab_server), policy=fast_policy())
    assert gitlab_server.package_files(gitlab_server.project, "ceph-training", CATALOG_VERSION) == []
