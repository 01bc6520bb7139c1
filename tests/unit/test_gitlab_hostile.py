"""Issue 13 (and issue 10's schedule ownership): GitLab-facing inputs and waits are bounded,
secrets are never printed, schedules owned by someone else are taken over before an edit."""

from __future__ import annotations

import json
import time

import pytest

from builder.cli import main
from builder.core.errors import BuildFailed, UserError
from builder.publish.gitlab import check_names, publish_gitlab
from builder.publish.gitlab_target import GitLabTarget, mask_userinfo, resolve_target
from builder.schedules import load
from tests.fakes.gitlab_helpers import fast_policy, make_version, target
from tests.fakes.gitlab_server import gitlab_server  # noqa: F401  (fixture)

SECRET = "hunter2"


# --- version rule ------------------------------------------------------------------------------

@pytest.mark.timeout(10)  # the old pattern took > 30 s on this input: a deadline, not a benchmark
def test_version_rule_is_linear_on_the_backtracking_case():
    t0 = time.perf_counter()
    with pytest.raises(UserError):
        check_names("ceph-training", "1.0.0-" + "a" * 28 + "...")
    with pytest.raises(UserError):
        check_names("ceph-training", "1.0.0-" + "a" * 100000 + "..")
    print(f"two rejections in {1000 * (time.perf_counter() - t0):.2f} ms")


@pytest.mark.parametrize("version, ok", [
    ("1.2.0", True), ("1.2.0-rc1", True), ("1.2.0+build.7", True), ("1_2", True),
    (".1.2", False), ("1.2.", False), ("1..2", False), ("1.2\n", False), ("1 2", False), ("1.2/3", False),
    ("", False), ("é", False),
])
def test_version_rule(version, ok):
    if ok:
        check_names("x", version)
    else:
        with pytest.raises(UserError):
            check_names("x", version)


def test_publish_name_must_be_an_image_name(capsys, tmp_path):
    assert main(["publish", "..", "0.1.0", "--output", str(tmp_path)]) == 2
    assert "NAME" in capsys.readouterr().err


# --- retries -----------------------------------------------------------------------------------

def test_retry_after_beyond_the_budget_gives_up_at_once(gitlab_server, tmp_path):
    gitlab_server.inject("PUT", r"\.vmdk$", status=429, retry_after="3600", times=5)
    lines: list[str] = []
    policy = fast_policy(budget=600.0, progress=lines.append)
    with pytest.raises(BuildFailed) as e:
        publish_gitlab(make_version(tmp_path), target(gitlab_server), policy=policy)
    assert "GitLab asked to wait 3600 s; more than the 600 s budget left; giving up" in str(e.value)
    assert policy.sleep == [] and lines == []


def test_every_retry_is_announced_once(gitlab_server, tmp_path):
    gitlab_server.inject("PUT", r"\.qcow2$", status=503, times=2)
    lines: list[str] = []
    policy = fast_policy(progress=lines.append)
    publish_gitlab(make_version(tmp_path), target(gitlab_server), policy=policy)
    assert len(lines) == len(policy.sleep) == 2
    assert all("HTTP 503" in line and "retry" in line for line in lines)


def test_backoff_waits_fit_in_the_budget(gitlab_server, tmp_path):
    gitlab_server.inject("PUT", r"\.qcow2$", status=503, times=50)
    policy = fast_policy(initial=5.0, maximum=60.0, budget=8.0, attempts=10, progress=lambda _: None)
    with pytest.raises(BuildFailed):
        publish_gitlab(make_version(tmp_path), target(gitlab_server), policy=policy)
    assert sum(policy.sleep) <= 8.0


# --- URLs and credentials ----------------------------------------------------------------------

@pytest.mark.parametrize("url", ["file:///etc/passwd", "notaurl", "https://", "ftp://gitlab.example.com",
                                 "https://gitlab.example.com/\nX-Injected: 1", "http://[::1"])
def test_gitlab_url_checked_before_any_request(url):
    env = {"GITLAB_URL": url, "GITLAB_PRIVATE_TOKEN": "glpat-x", "CI_PROJECT_ID": "1"}
    with pytest.raises(UserError) as e:
        resolve_target(env=env)
    assert e.value.field == "GITLAB_URL"


def test_userinfo_is_masked_everywhere(gitlab_server, tmp_path, capsys, monkeypatch):
    assert mask_userinfo("see https://user:pass@h/x and http://a@b") == "see https://[MASKED]@h/x and http://[MASKED]@b"
    url = gitlab_server.url.replace("http://", f"http://user:{SECRET}@")
    # the URL is refused by the server (500): the message names it, masked
    gitlab_server.inject("GET", r"/packages$", status=500, times=5)
    t = GitLabTarget(url, gitlab_server.project.path_with_namespace, gitlab_server.token)
    with pytest.raises(BuildFailed) as e:
        publish_gitlab(make_version(tmp_path), t, policy=fast_policy())
    assert SECRET not in str(e.value) and "HTTP 500" in str(e.value)
    # unreachable, through the CLI, with a bad URL in GITLAB_URL
    monkeypatch.setenv("GITLAB_URL", f"https://user:{SECRET}@")
    monkeypatch.setenv("GITLAB_PRIVATE_TOKEN", "glpat-x")
    make_version(tmp_path / "out")
    assert main(["publish", "ceph-training", "1.2.0", "--to", "gitlab", "--project", "1",
                 "--output", str(tmp_path / "out")]) == 2
    assert SECRET not in capsys.readouterr().err


def test_release_links_carry_no_credentials(gitlab_server, tmp_path):
    url = gitlab_server.url.replace("http://", f"http://user:{SECRET}@")
    t = GitLabTarget(url, gitlab_server.project.path_with_namespace, gitlab_server.token)
    publish_gitlab(make_version(tmp_path), t, policy=fast_policy())
    release = next(iter(gitlab_server.project.releases.values()))
    assert release["links"] and all(SECRET not in link["url"] for link in release["links"])


# --- runner register ---------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["file:///x", "notaurl"])
def test_runner_register_url_is_bad_input(monkeypatch, capsys, url):
    monkeypatch.setenv("GITLAB_TOKEN", "glpat-x")
    assert main(["runner", "register", "--local", "--url", url, "--runner-type", "instance_type"]) == 2
    assert "--url" in capsys.readouterr().err


@pytest.mark.timeout(60)  # python-gitlab used to retry for ~100 s here
def test_runner_register_unreachable_fails_in_one_line(monkeypatch, capsys):
    monkeypatch.setenv("GITLAB_TOKEN", "glpat-x")
    code = main(["runner", "register", "--local", "--url", f"http://user:{SECRET}@127.0.0.1:9",
                 "--runner-type", "instance_type"])
    err = capsys.readouterr().err
    assert code == 1 and "cannot reach GitLab" in err and SECRET not in err and "Traceback" not in err


@pytest.mark.parametrize("host", ["-oProxyCommand=touch /tmp/p", "-oProxyCommand", "-v", "a b", "user@-x",
                                  "x;id", "@host"])
def test_ssh_host_never_starts_an_option(capsys, host):
    assert main(["runner", "install-virtualbox", "--host", host]) == 2
    assert "--host" in capsys.readouterr().err


# --- schedules ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text, field", [
    ("cron: '99 99 * * *'", "schedules[0].cron"),
    ("cron: '0 3 * * 8'", "schedules[0].cron"),
    ("cron: '0 3 * * *', cron_timezone: Mars/Olympus_Mons", "schedules[0].cron_timezone"),
    ("cron: '0 3 * * *', cron_timezone: ../../etc/passwd", "schedules[0].cron_timezone"),
])
def test_schedule_cron_and_timezone_validated(tmp_path, text, field):
    f = tmp_path / "s.yaml"
    f.write_text(f"schedules:\n  - {{description: a, ref: main, {text}}}\n")
    with pytest.raises(UserError) as e:
        load(f)
    assert e.value.field == field


@pytest.fixture
def env(monkeypatch, gitlab_server):
    for k in ("CI_SERVER_URL", "CI_JOB_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("GITLAB_URL", gitlab_server.url)
    monkeypatch.setenv("GITLAB_PRIVATE_TOKEN", gitlab_server.token)
    monkeypatch.setenv("CI_PROJECT_ID", "training/images")


def sched_file(tmp_path, variables: str) -> str:
    f = tmp_path / "s.yaml"
    f.write_text(f"schedules:\n  - {{description: weekly, cron: '0 3 * * 1', ref: main, variables: {variables}}}\n")
    return str(f)


def test_schedule_variable_values_are_never_printed(env, gitlab_server, tmp_path, capsys):
    gitlab_server.add_schedule(gitlab_server.project, "weekly", owner="root", variables=[
        {"key": "DEPLOY_PASSWORD", "value": SECRET, "variable_type": "env_var"},
        {"key": "OLD", "value": SECRET + "-old", "variable_type": "env_var"}])
    f = sched_file(tmp_path, "{DEPLOY_PASSWORD: s3cr3t-new, NEW: also-secret}")
    for extra in ([], ["--json"]):
        assert main(["schedule", "sync", "--file", f, "--dry-run", *extra]) == 0
        out, err = capsys.readouterr()
        for value in (SECRET, "s3cr3t-new", "also-secret"):
            assert value not in out + err
        assert "DEPLOY_PASSWORD" in out + err
    assert main(["schedule", "sync", "--file", f, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["changes"][0]["variables"] == {"DEPLOY_PASSWORD": "changed", "NEW": "new", "OLD": "removed"}


def test_schedule_owned_by_someone_else_is_taken_over(env, gitlab_server, tmp_path, capsys):
    sch = gitlab_server.add_schedule(gitlab_server.project, "weekly", owner="alice")
    f = sched_file(tmp_path, "{IMAGES: ceph-training}")
    assert main(["schedule", "sync", "--file", f, "--dry-run"]) == 0
    assert "taking ownership from alice" in capsys.readouterr().err
    assert sch["owner"]["username"] == "alice"  # a dry run changes nothing
    assert main(["schedule", "sync", "--file", f, "--json"]) == 0
    change = json.loads(capsys.readouterr().out)["changes"][0]
    assert change["take_ownership_from"] == "alice" and change["action"] == "update"
    assert sch["owner"]["username"] == "root" and sch["variables"][0]["value"] == "ceph-training"
    posts = [p.rsplit("/pipeline_schedules/", 1)[-1] for m, p in gitlab_server.requests if m == "POST"]
    assert posts.index(f"{sch['id']}/take_ownership") < posts.index(f"{sch['id']}/variables")


def test_fake_refuses_edits_by_a_non_owner(gitlab_server):
    import gitlab

    sch = gitlab_server.add_schedule(gitlab_server.project, "weekly", owner="alice")
    gl = gitlab.Gitlab(gitlab_server.url, private_token=gitlab_server.token)
    s = gl.projects.get(gitlab_server.project.id, lazy=True).pipelineschedules.get(sch["id"])
    assert s.owner["username"] == "alice"
    with pytest.raises(gitlab.GitlabUpdateError) as e:
        s.cron = "0 4 * * *"
        s.save()
    assert e.value.response_code == 403
    s.take_ownership()
    assert s.owner["username"] == "root"
    s.save()


def test_duplicate_descriptions_reported_and_pruned(env, gitlab_server, tmp_path, capsys):
    old = gitlab_server.add_schedule(gitlab_server.project, "weekly", owner="alice")
    mine = gitlab_server.add_schedule(gitlab_server.project, "weekly", owner="root")
    extra = gitlab_server.add_schedule(gitlab_server.project, "weekly", owner="bob")
    f = sched_file(tmp_path, "{}")
    assert main(["schedule", "sync", "--file", f, "--json"]) == 0
    changes = json.loads(capsys.readouterr().out)["changes"]
    dups = [c for c in changes if c["duplicate_of"] is not None]
    assert {c["id"] for c in dups} == {old["id"], extra["id"]} and {c["action"] for c in dups} == {"keep"}
    assert all(c["duplicate_of"] == mine["id"] for c in dups)
    assert main(["schedule", "sync", "--file", f, "--prune"]) == 0
    assert "a duplicate of" in capsys.readouterr().err
    assert list(gitlab_server.project.schedules) == [mine["id"]]
