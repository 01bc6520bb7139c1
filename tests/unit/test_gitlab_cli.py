"""`builder publish` end to end through the CLI: exit codes, output, and no token anywhere."""

from __future__ import annotations

import json
import logging

import pytest

from builder.cli import main
from builder.publish.gitlab_target import GitLabTarget, resolve_target
from tests.fakes.gitlab_helpers import make_version
from tests.fakes.gitlab_server import gitlab_server  # noqa: F401  (fixture)


@pytest.fixture
def env(monkeypatch, gitlab_server):
    for k in ("CI_SERVER_URL", "CI_JOB_TOKEN", "CI_PROJECT_ID", "GITLAB_URL", "GITLAB_PRIVATE_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("GITLAB_URL", gitlab_server.url)
    monkeypatch.setenv("GITLAB_PRIVATE_TOKEN", gitlab_server.token)
    return monkeypatch


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_publish_gitlab_json_then_idempotent(env, gitlab_server, tmp_path, capsys):
    make_version(tmp_path)
    argv = ["publish", "ceph-training", "1.2.0", "--to", "gitlab", "--output", str(tmp_path),
            "--project", "training/images", "--json"]
    code, out, _ = run(capsys, *argv)
    assert code == 0 and len(json.loads(out)["uploaded"]) == 6
    code, out, _ = run(capsys, *argv)
    assert code == 0 and json.loads(out)["uploaded"] == [] and json.loads(out)["release"] == "unchanged"


def test_publish_different_content_exits_1(env, gitlab_server, tmp_path, capsys):
    make_version(tmp_path / "a")
    make_version(tmp_path / "b", payload=b"changed")
    base = ["publish", "ceph-training", "1.2.0", "--to", "gitlab", "--project", "training/images"]
    assert run(capsys, *base, "--output", str(tmp_path / "a"))[0] == 0
    code, _, err = run(capsys, *base, "--output", str(tmp_path / "b"))
    assert code == 1 and "different content" in err


def test_publish_local_verifies(tmp_path, capsys):
    make_version(tmp_path)
    code, out, _ = run(capsys, "publish", "ceph-training", "1.2.0", "--output", str(tmp_path), "--json")
    assert code == 0 and json.loads(out)["tests"] == {"boot": True, "fabric": True}
    (tmp_path / "ceph-training/1.2.0/ceph-training-1.2.0.ova").write_bytes(b"x")
    assert run(capsys, "publish", "ceph-training", "1.2.0", "--output", str(tmp_path))[0] == 1


def test_missing_version_and_bad_version_exit_2(tmp_path, capsys):
    code, _, err = run(capsys, "publish", "ceph-training", "9.9.9", "--output", str(tmp_path))
    assert code == 2 and "no such version directory" in err
    assert run(capsys, "publish", "ceph-training", "latest", "--output", str(tmp_path))[0] == 2


def test_token_never_leaks(env, gitlab_server, tmp_path, capsys, caplog):
    """Wrong token, a server echoing the token in its error, an exhausted retry budget:
    the token appears in no output, log record or exception message."""
    caplog.set_level(logging.DEBUG)
    make_version(tmp_path)
    secret = gitlab_server.token
    base = ["publish", "ceph-training", "1.2.0", "--to", "gitlab", "--output", str(tmp_path),
            "--project", "training/images"]
    texts = []
    env.setenv("GITLAB_PRIVATE_TOKEN", "glpat-WRONG-secret-zzzz")
    code, out, err = run(capsys, *base)
    assert code == 2 and "401" in err
    texts += [out, err]
    env.setenv("GITLAB_PRIVATE_TOKEN", secret)
    gitlab_server.inject("GET", r"/packages$", status=500, body={"message": f"boom for {secret}"})
    code, out, err = run(capsys, *base)
    assert code == 1 and "[MASKED]" in err
    texts += [out, err]
    target = resolve_target(project="1", env={"GITLAB_URL": gitlab_server.url, "GITLAB_PRIVATE_TOKEN": secret})
    texts += [repr(target), str(target)]
    texts += [r.getMessage() for r in caplog.records]
    assert all(secret not in t and "glpat-WRONG" not in t for t in texts)


def test_resolve_target_conventions(gitlab_server):
    ci = {"CI_SERVER_URL": "https://gl.example", "CI_JOB_TOKEN": "jt", "CI_PROJECT_ID": "7"}
    t = resolve_target(env=ci)
    assert (t.url, t.project, t.token_kind) == ("https://gl.example", "7", "job")
    t = resolve_target(project="g/p", env={**ci, "GITLAB_URL": "https://other", "GITLAB_PRIVATE_TOKEN": "pt"})
    assert (t.url, t.project, t.token_kind) == ("https://other", "g/p", "private")
    from builder.core.errors import UserError

    with pytest.raises(UserError, match="--project"):
        resolve_target(env={})
    with pytest.raises(UserError, match="no GitLab credentials"):
        resolve_target(project="1", env={})


def test_python_gitlab_config_section(gitlab_server, tmp_path, monkeypatch):
    cfg = tmp_path / "python-gitlab.cfg"
    cfg.write_text(f"[global]\ndefault = lab\n\n[lab]\nurl = {gitlab_server.url}\nprivate_token = {gitlab_server.token}\n")
    monkeypatch.setenv("PYTHON_GITLAB_CFG", str(cfg))
    t = resolve_target(project="training/images", gitlab_name="lab", env={})
    assert isinstance(t, GitLabTarget) and t.url == gitlab_server.url
    gl = t.connect()
    assert gl.projects.get("training/images").path_with_namespace == "training/images"
