"""Child pipeline generation (golden files) and GitLab-schema validity of every CI YAML we ship."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from builder import pipeline as pl
from builder.cli import main
from builder.errors import UserError
from builder.spec import REPO_ROOT
from tests.goldens import assert_golden



@pytest.fixture
def images_dir(tmp_path) -> Path:
    for name, version in (("ceph-training", "1.2.0"), ("net-lab", "0.3.1")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "image.yaml").write_text(f"name: {name}\nversion: {version}\n")
    return tmp_path


def check_golden(name: str, text: str) -> None:
    assert_golden(f"pipeline/{name}", text)


def test_child_pipeline_all_images(images_dir):
    text = pl.dump(pl.child_pipeline(pl.resolve_images([], images_dir)))
    check_golden("child-all.yml", text)
    assert pl.validate_ci(text) == []


def test_child_pipeline_one_image_custom_runner(images_dir):
    opts = pl.PipelineOptions(tags=("nested-kvm",), timeout="90m")
    text = pl.dump(pl.child_pipeline(pl.resolve_images(["ceph-training"], images_dir), opts))
    check_golden("child-ceph-training.yml", text)
    assert pl.validate_ci(text) == []


def test_child_pipeline_shape(images_dir):
    doc = pl.child_pipeline(pl.resolve_images(["net-lab"], images_dir))
    build, publish = doc["build:net-lab"], doc["publish:net-lab"]
    assert build["retry"] == {"max": 2, "when": ["runner_system_failure"]}
    assert build["artifacts"]["reports"]["junit"] == "reports/net-lab/junit.xml" and build["artifacts"]["expire_in"]
    assert publish["needs"] == [{"job": "build:net-lab", "artifacts": True}]
    assert publish["resource_group"] == "publish-net-lab"
    assert "publish net-lab 0.3.1 --to gitlab" in publish["script"][-1]


def test_image_list_from_schedule_variable():
    assert pl.parse_image_list("ceph-training, net-lab  other") == ["ceph-training", "net-lab", "other"]
    assert pl.parse_image_list("") == []


def test_unknown_image_is_bad_input(images_dir):
    with pytest.raises(UserError, match="unknown image"):
        pl.resolve_images(["nope"], images_dir)
    with pytest.raises(UserError, match="no images"):
        pl.resolve_images([], images_dir / "ceph-training")


def test_generate_cli_honours_images_env(images_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("IMAGES", "net-lab")
    out = tmp_path / "child.yml"
    assert main(["pipeline", "generate", "--images-dir", str(images_dir), "-o", str(out)]) == 0
    assert [k for k in yaml.safe_load(out.read_text()) if ":" in k] == ["build:net-lab", "publish:net-lab"]
    assert main(["pipeline", "validate", str(out)]) == 0


def test_project_gitlab_ci_is_valid_and_wires_the_child():
    text = (REPO_ROOT / ".gitlab-ci.yml").read_text()
    assert pl.validate_ci(text) == []
    doc = yaml.safe_load(text)
    rules = [r["if"] for r in doc["workflow"]["rules"]]
    assert '$CI_PIPELINE_SOURCE == "merge_request_event"' in rules
    assert '$CI_PIPELINE_SOURCE == "schedule"' in rules
    assert doc["images"]["trigger"]["include"] == [{"artifact": "child-pipeline.yml", "job": "generate"}]
    for job in ("unit", "integration"):
        assert "--junitxml=" in doc[job]["script"][-1] and doc[job]["artifacts"]["reports"]["junit"]


def test_validate_reports_schema_errors(tmp_path, capsys):
    bad = tmp_path / "bad.yml"
    bad.write_text("job:\n  script: [true]\n  retry: {max: 9}\n")
    assert pl.validate_ci(bad.read_text()) != []
    assert main(["pipeline", "validate", str(bad)]) == 1
