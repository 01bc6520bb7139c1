"""Child pipeline generation (golden files) and GitLab-schema validity of every CI YAML we ship."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from builder import pipeline as pl
from builder.cli import main
from builder.core.errors import UserError
from tests.goldens import assert_golden
from tests.repo import REPO


@pytest.fixture
def images_dir(tmp_path) -> Path:
    for name, version in (("ceph-training", "1.2.0"), ("net-lab", "0.3.1")):
        (tmp_path / "images" / name).mkdir(parents=True)
        (tmp_path / "images" / name / "image.yaml").write_text(f"name: {name}\nversion: {version}\n")
    return tmp_path / "images"


def check_golden(name: str, text: str) -> None:
    assert_golden(f"pipeline/{name}", text)


def test_child_pipeline_all_images(images_dir):
    text = pl.dump(pl.child_pipeline(pl.resolve_images([], images_dir)))
    check_golden("child-all.yml", text)
    assert pl.validate_ci(text, pl.vendored_schema()) == []


def test_child_pipeline_one_image_custom_runner(images_dir):
    opts = pl.PipelineOptions(tags=("nested-kvm",), timeout="90m")
    text = pl.dump(pl.child_pipeline(pl.resolve_images(["ceph-training"], images_dir), opts))
    check_golden("child-ceph-training.yml", text)
    assert pl.validate_ci(text, pl.vendored_schema()) == []


def test_child_pipeline_shape(images_dir):
    doc = pl.child_pipeline(pl.resolve_images(["net-lab"], images_dir))
    build, publish = doc["build:net-lab"], doc["publish:net-lab"]
    assert build["retry"] == {"max": 2, "when": ["runner_system_failure"]}
    assert build["artifacts"]["reports"]["junit"] == "reports/net-lab/junit.xml" and build["artifacts"]["expire_in"]
    assert publish["needs"] == [{"job": "build:net-lab", "artifacts": True}]
    assert publish["resource_group"] == "publish-net-lab"
    assert publish["script"] == ["builder publish net-lab --to gitlab --release-only --from reports/net-lab"]
    assert build["script"] == ["builder vm net-lab --publish gitlab --no-release --reports reports/net-lab"]
    assert "BUILDER_STORE" not in str(doc)  # runners share nothing but GitLab


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
    (tmp_path / "builder.toml").write_text('[project]\nimages = "' + images_dir.name + '"\n'
                                           '[pipeline]\nsetup = ["ci/setup.sh"]\nbuilder = ".venv/bin/builder"\n')
    assert main(["-C", str(tmp_path), "pipeline", "generate", "-o", str(out)]) == 0
    doc = yaml.safe_load(out.read_text())
    assert [k for k in doc if ":" in k] == ["build:net-lab", "publish:net-lab"]
    assert doc["build:net-lab"]["script"][:2] == ["ci/setup.sh", ".venv/bin/builder vm net-lab --publish gitlab "
                                                  "--no-release --reports reports/net-lab"]
    assert main(["pipeline", "validate", str(out)]) == 0


def test_project_gitlab_ci_is_valid_and_wires_the_child():
    text = (REPO / ".gitlab-ci.yml").read_text()
    assert pl.validate_ci(text, pl.vendored_schema()) == []
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
    assert pl.validate_ci(bad.read_text(), pl.vendored_schema()) != []
    assert main(["pipeline", "validate", str(bad)]) == 1
