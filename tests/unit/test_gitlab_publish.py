"""publish_gitlab against the fake GitLab, through the real python-gitlab client."""

from __future__ import annotations

import tracemalloc

import pytest

from builder.core.errors import BuildFailed, UserError
from builder.core.results import CaseResult, Suite
from builder.publish.gitlab import check_names, publish_gitlab
from tests.fakes.gitlab_helpers import fast_policy, make_version, target
from tests.fakes.gitlab_server import gitlab_server  # noqa: F401  (fixture)

FILES = [
    "SHA256SUMS", "ceph-training-1.2.0.ova", "ceph-training-1.2.0.qcow2", "ceph-training-1.2.0.vmdk",
    "junit.xml", "manifest.json",
]


def puts(server) -> list[str]:
    return [p for m, p in server.requests if m == "PUT" and "/packages/generic/" in p]


def test_publish_uploads_every_file_and_creates_release(gitlab_server, tmp_path):
    d = make_version(tmp_path)
    result = publish_gitlab(d, target(gitlab_server), policy=fast_policy())
    assert result.uploaded == FILES and result.unchanged == [] and result.release == "created"
    stored = gitlab_server.package_files(gitlab_server.project, "ceph-training", "1.2.0")
    assert sorted(f["file_name"] for f in stored) == FILES
    qcow = next(f for f in stored if f["file_name"].endswith(".qcow2"))
    assert gitlab_server.blob(qcow).read_bytes() == (d / qcow["file_name"]).read_bytes()
    rel = gitlab_server.project.releases["ceph-training-1.2.0"]
    assert "| boot | passed | 1/1 |" in rel["description"]
    assert sorted(link["name"] for link in rel["links"]) == FILES
    ova = next(link for link in rel["links"] if link["name"].endswith(".ova"))
    assert ova["link_type"] == "image"
    assert ova["url"].endswith("/projects/training%2Fimages/packages/generic/ceph-training/1.2.0/ceph-training-1.2.0.ova")


def test_republish_identical_uploads_nothing(gitlab_server, tmp_path):
    d = make_version(tmp_path)
    publish_gitlab(d, target(gitlab_server), policy=fast_policy())
    before = len(puts(gitlab_server))
    again = publish_gitlab(d, target(gitlab_server), policy=fast_policy())
    assert again.uploaded == [] and again.unchanged == FILES and again.release == "unchanged"
    assert len(puts(gitlab_server)) == before


def test_republish_different_content_is_refused_before_any_upload(gitlab_server, tmp_path):
    publish_gitlab(make_version(tmp_path / "a"), target(gitlab_server), policy=fast_policy())
    before = len(puts(gitlab_server))
    with pytest.raises(BuildFailed, match="already published with different content"):
        publish_gitlab(make_version(tmp_path / "b", payload=b"other"), target(gitlab_server), policy=fast_policy())
    assert len(puts(gitlab_server)) == before


def test_existing_release_is_updated_not_duplicated(gitlab_server, tmp_path):
    gitlab_server.project.tags.add("ceph-training-1.2.0")
    gitlab_server.project.releases["ceph-training-1.2.0"] = {
        "tag_name": "ceph-training-1.2.0", "name": "old", "description": "old", "links": [],
        "created_at": "x", "released_at": "x", "upcoming_release": False, "author": {}, "commit": {},
    }
    result = publish_gitlab(make_version(tmp_path), target(gitlab_server), policy=fast_policy())
    assert result.release == "updated"
    rel = gitlab_server.project.releases["ceph-training-1.2.0"]
    assert rel["name"] == "ceph-training 1.2.0" and len(rel["links"]) == len(FILES)
    assert ("POST", "/api/v4/projects/training%2Fimages/releases") in gitlab_server.requests  # answered 409


@pytest.mark.parametrize("suite", ["boot", "fabric"])
def test_refuses_without_passing_suite(gitlab_server, tmp_path, suite):
    tests = {
        "boot": Suite(passed=True, cases=[CaseResult(name="up", passed=True)]),
        "fabric": Suite(passed=True, cases=[CaseResult(name="ping", passed=True)]),
    }
    tests[suite] = Suite(passed=False, cases=[CaseResult(name="broken", passed=False)])
    with pytest.raises(BuildFailed, match=f"tests.{suite}: did not pass"):
        publish_gitlab(make_version(tmp_path, tests=tests), target(gitlab_server), policy=fast_policy())
    del tests[suite]
    with pytest.raises(BuildFailed, match=f"tests.{suite}: not recorded"):
        publish_gitlab(make_version(tmp_path / "x", tests=tests), target(gitlab_server), policy=fast_policy())
    assert gitlab_server.requests == []


def test_bad_names_rejected_before_any_request():
    with pytest.raises(UserError, match="package names"):
        check_names("ceph training", "1.0")
    with pytest.raises(UserError, match="version"):
        check_names("ceph", "1.0 beta")
    with pytest.raises(UserError, match="file names"):
        check_names("ceph", "1.0", ["disk~1.qcow2"])
    check_names("ceph-training", "1.2.0-rc1", ["ceph-training-1.2.0-rc1.qcow2", "SHA256SUMS"])


def test_tampered_file_is_not_published(gitlab_server, tmp_path):
    d = make_version(tmp_path)
    (d / "ceph-training-1.2.0.vmdk").write_bytes(b"tampered")
    with pytest.raises(BuildFailed, match="does not match SHA256SUMS"):
        publish_gitlab(d, target(gitlab_server), policy=fast_policy())
    assert gitlab_server.requests == []


def test_429_honours_retry_after(gitlab_server, tmp_path):
    gitlab_server.inject("PUT", r"\.vmdk$", status=429, retry_after="7", times=2)
    policy = fast_policy()
    result = publish_gitlab(make_version(tmp_path), target(gitlab_server), policy=policy)
    assert "ceph-training-1.2.0.vmdk" in result.uploaded
    assert policy.sleep == [7.0, 7.0]


def test_5xx_burst_is_retried_with_backoff(gitlab_server, tmp_path):
    for status in (502, 503, 504):
        gitlab_server.inject("PUT", r"\.qcow2$", status=status)
    gitlab_server.inject("GET", r"/packages$", status=503)
    policy = fast_policy()
    result = publish_gitlab(make_version(tmp_path), target(gitlab_server), policy=policy)
    assert result.uploaded == FILES
    assert len(policy.sleep) == 4 and all(0 < s <= 0.05 for s in policy.sleep)


def test_retry_budget_runs_out(gitlab_server, tmp_path):
    gitlab_server.inject("PUT", r"\.ova$", status=503, times=100)
    with pytest.raises(BuildFailed, match="HTTP 503"):
        publish_gitlab(make_version(tmp_path), target(gitlab_server), policy=fast_policy(attempts=3))


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_no_retry_on_client_errors(gitlab_server, tmp_path, status):
    gitlab_server.inject("PUT", r"\.ova$", status=status, times=10)
    policy = fast_policy()
    with pytest.raises((BuildFailed, UserError)):
        publish_gitlab(make_version(tmp_path), target(gitlab_server), policy=policy)
    assert policy.sleep == []
    assert len([p for p in puts(gitlab_server) if p.endswith(".ova")]) == 1


@pytest.mark.parametrize("kind", ["drop_mid_upload", "drop_after_store"])
def test_interrupted_upload_leaves_exactly_one_copy(gitlab_server, tmp_path, kind):
    gitlab_server.inject("PUT", r"\.qcow2$", kind=kind)
    d = make_version(tmp_path, sparse_size=4 << 20)
    policy = fast_policy()
    publish_gitlab(d, target(gitlab_server), policy=policy)
    assert len(policy.sleep) == 1
    stored = gitlab_server.package_files(gitlab_server.project, "ceph-training", "1.2.0")
    assert sorted(f["file_name"] for f in stored) == FILES


def test_interrupted_publish_rerun_completes(gitlab_server, tmp_path):
    """A publish that gives up halfway, run again, ends with every file exactly once."""
    gitlab_server.inject("PUT", r"\.qcow2$", kind="drop_mid_upload", times=10)
    d = make_version(tmp_path, sparse_size=1 << 20)
    with pytest.raises(BuildFailed):
        publish_gitlab(d, target(gitlab_server), policy=fast_policy(attempts=2))
    gitlab_server.faults.clear()
    result = publish_gitlab(d, target(gitlab_server), policy=fast_policy())
    assert "ceph-training-1.2.0.qcow2" in result.uploaded and result.release == "created"
    stored = gitlab_server.package_files(gitlab_server.project, "ceph-training", "1.2.0")
    assert sorted(f["file_name"] for f in stored) == FILES


def test_duplicates_disallowed_400_with_same_content_is_success(gitlab_server, tmp_path):
    gitlab_server.project.duplicates_allowed = False
    gitlab_server.inject("PUT", r"\.vmdk$", kind="drop_after_store")
    result = publish_gitlab(make_version(tmp_path), target(gitlab_server), policy=fast_policy())
    assert "ceph-training-1.2.0.vmdk" in result.unchanged  # the lost upload landed: found on retry


def test_upload_streams_from_disk(gitlab_server, tmp_path):
    """A 64 MiB image goes up without being read into memory (fake stores to disk too)."""
    d = make_version(tmp_path, sparse_size=64 << 20)
    tracemalloc.start()
    try:
        publish_gitlab(d, target(gitlab_server), policy=fast_policy())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"peak Python allocation {peak >> 20} MiB"


def test_pagination_is_followed(gitlab_server, tmp_path):
    """More packages than a page: the matching one sits on a later page."""
    p = gitlab_server.project
    for i in range(45):
        p.packages.append({"id": 10_000 + i, "name": f"ceph-training-old{i}", "version": "0.1", "package_type": "generic"})
        p.files[10_000 + i] = []
    d = make_version(tmp_path)
    publish_gitlab(d, target(gitlab_server), policy=fast_policy())
    again = publish_gitlab(d, target(gitlab_server), policy=fast_policy())
    assert again.uploaded == []
    listings = [path for m, path in gitlab_server.requests if m == "GET" and path.endswith("/packages")]
    assert len(listings) >= 3 * 2  # 46 packages, 20 a page, followed twice per publish at least


def test_job_token_publishes(gitlab_server, tmp_path):
    result = publish_gitlab(
        make_version(tmp_path), target(gitlab_server, gitlab_server.job_token, "job"), policy=fast_policy()
    )
    assert result.uploaded == FILES


def test_release_description_is_the_manifest_summary(tmp_path):
    import json

    from builder import templates
    from builder.publish.manifest import load

    d = make_version(tmp_path)
    text = templates.render("publish/release.md.j2", m=load(d))
    assert text.startswith("ceph-training 1.2.0, built 2024-05-01T10:00:00Z from `0123abcd` (accelerator: tcg).")
    assert "| fabric | passed | 1/1 |" in text and "| ceph-training-1.2.0.qcow2 |" in text
    data = json.loads((d / "manifest.json").read_text())
    (d / "manifest.json").write_text(json.dumps({**data, "summary": "Ceph Reef lab VM, 3 OSDs."}))
    assert templates.render("publish/release.md.j2", m=load(d)).startswith("Ceph Reef lab VM, 3 OSDs.\n\nceph-training")


def test_release_ref_prefers_explicit_then_pipeline_commit(monkeypatch):
    from builder.publish.gitlab import release_ref

    monkeypatch.delenv("CI_COMMIT_SHA", raising=False)
    assert release_ref(None, "abc123") == "abc123"
    assert release_ref(None, "abc123-dirty") is None
    monkeypatch.setenv("CI_COMMIT_SHA", "feed42")
    assert release_ref(None, "abc123") == "feed42"
    assert release_ref("main", "abc123") == "main"
