"""`builder schedule sync`: the plan (pure) and its application against the fake GitLab."""

from __future__ import annotations

import json

import pytest

from builder.cli import main
from builder.core.errors import UserError
from builder.schedules import load, plan
from tests.fakes.gitlab_server import gitlab_server  # noqa: F401  (fixture)
from tests.repo import REPO

FILE = """\
schedules:
  - description: weekly
    cron: "0 3 * * 1"
    cron_timezone: Europe/Berlin
    ref: main
    variables: {IMAGES: ""}
  - description: nightly ceph
    cron: "30 1 * * *"
    ref: main
    active: false
    variables: {IMAGES: ceph-training}
"""


@pytest.fixture
def env(monkeypatch, gitlab_server):
    for k in ("CI_SERVER_URL", "CI_JOB_TOKEN", "CI_PROJECT_ID"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("GITLAB_URL", gitlab_server.url)
    monkeypatch.setenv("GITLAB_PRIVATE_TOKEN", gitlab_server.token)
    monkeypatch.setenv("CI_PROJECT_ID", "training/images")
    return monkeypatch


@pytest.fixture
def sched_file(tmp_path):
    p = tmp_path / "schedules.yaml"
    p.write_text(FILE)
    return p


def sync(capsys, *args) -> tuple[int, dict]:
    code = main(["schedule", "sync", "--json", *args])
    out = capsys.readouterr().out
    return code, json.loads(out) if out else {}


def server_view(server) -> dict:
    return {s["description"]: ({k: s[k] for k in ("ref", "cron", "cron_timezone", "active")},
                                {v["key"]: v["value"] for v in s["variables"]})
            for s in server.project.schedules.values()}


def test_project_schedule_file_is_valid():
    assert len(load(REPO / "ci" / "schedules.yaml").schedules) >= 1


def test_create_then_idempotent(env, gitlab_server, sched_file, capsys):
    code, out = sync(capsys, "--file", str(sched_file))
    assert code == 0 and [c["action"] for c in out["changes"]] == ["create", "create"]
    assert server_view(gitlab_server) == {
        "weekly": ({"ref": "main", "cron": "0 3 * * 1", "cron_timezone": "Europe/Berlin", "active": True}, {"IMAGES": ""}),
        "nightly ceph": ({"ref": "main", "cron": "30 1 * * *", "cron_timezone": "UTC", "active": False},
                         {"IMAGES": "ceph-training"}),
    }
    code, out = sync(capsys, "--file", str(sched_file))
    assert code == 0 and [c["action"] for c in out["changes"]] == ["unchanged", "unchanged"]


def test_update_dry_run_then_apply(env, gitlab_server, sched_file, capsys):
    assert sync(capsys, "--file", str(sched_file))[0] == 0
    sched_file.write_text(FILE.replace('"30 1 * * *"', '"0 2 * * *"').replace("{IMAGES: ceph-training}",
                                                                              "{IMAGES: net-lab, EXTRA: x}"))
    before = server_view(gitlab_server)
    code, out = sync(capsys, "--file", str(sched_file), "--dry-run")
    nightly = out["changes"][1]
    assert code == 0 and out["dry_run"] and nightly["action"] == "update"
    assert nightly["fields"] == {"cron": ["30 1 * * *", "0 2 * * *"]}
    assert nightly["variables"] == {"EXTRA": "new", "IMAGES": "changed"}  # never the values
    assert server_view(gitlab_server) == before
    assert sync(capsys, "--file", str(sched_file))[0] == 0
    assert server_view(gitlab_server)["nightly ceph"] == (
        {"ref": "main", "cron": "0 2 * * *", "cron_timezone": "UTC", "active": False},
        {"IMAGES": "net-lab", "EXTRA": "x"},
    )
    # a variable the file drops is removed
    sched_file.write_text(FILE)
    assert sync(capsys, "--file", str(sched_file))[0] == 0
    assert server_view(gitlab_server)["nightly ceph"][1] == {"IMAGES": "ceph-training"}


def test_unnamed_schedules_kept_unless_prune(env, gitlab_server, sched_file, capsys):
    assert sync(capsys, "--file", str(sched_file))[0] == 0
    sched_file.write_text(FILE.split("  - description: nightly")[0])
    code, out = sync(capsys, "--file", str(sched_file))
    assert [c["action"] for c in out["changes"]] == ["unchanged", "keep"]
    assert "nightly ceph" in server_view(gitlab_server)
    code, out = sync(capsys, "--file", str(sched_file), "--prune")
    assert [c["action"] for c in out["changes"]] == ["unchanged", "delete"]
    assert list(server_view(gitlab_server)) == ["weekly"]


def test_many_schedules_paginate(env, gitlab_server, tmp_path, capsys):
    lines = ["schedules:"] + [f"  - {{description: s{i:02}, cron: '0 {i % 24} * * *', ref: main}}" for i in range(45)]
    f = tmp_path / "many.yaml"
    f.write_text("\n".join(lines) + "\n")
    assert sync(capsys, "--file", str(f))[0] == 0
    code, out = sync(capsys, "--file", str(f))
    assert len(out["changes"]) == 45 and {c["action"] for c in out["changes"]} == {"unchanged"}


def test_refs_heads_prefix_is_the_same_branch():
    wanted = load_text("schedules:\n  - {description: a, cron: '0 1 * * *', ref: main}\n")
    current = [{"id": 1, "description": "a", "ref": "refs/heads/main", "cron": "0 1 * * *",
                "cron_timezone": "UTC", "active": True, "variables": []}]
    assert [c.action for c in plan(wanted, current)] == ["unchanged"]


def load_text(text: str, tmp=None):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "s.yaml"
        p.write_text(text)
        return load(p)


@pytest.mark.parametrize("text,field", [
    ("schedules:\n  - {description: a, cron: 'every day', ref: main}\n", "schedules[0].cron"),
    ("schedules:\n  - {description: a, cron: '0 1 * * *', ref: main, colour: red}\n", "schedules[0].colour"),
    ("schedules:\n  - {description: a, cron: '0 1 * * *', ref: main}\n  - {description: a, cron: '0 1 * * *', ref: main}\n",
     "schedules"),
])
def test_bad_file_is_one_line_naming_field(text, field):
    with pytest.raises(UserError) as e:
        load_text(text)
    assert e.value.field == field


def test_job_token_refused(gitlab_server, sched_file, monkeypatch, capsys):
    monkeypatch.delenv("GITLAB_PRIVATE_TOKEN", raising=False)
    monkeypatch.setenv("CI_SERVER_URL", gitlab_server.url)
    monkeypatch.setenv("CI_JOB_TOKEN", gitlab_server.job_token)
    monkeypatch.setenv("CI_PROJECT_ID", "training/images")
    assert main(["schedule", "sync", "--file", str(sched_file)]) == 2
    assert "access token" in capsys.readouterr().err
