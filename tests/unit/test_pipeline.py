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
    build, vbox, publish = doc["build:net-lab"], doc["virtualbox:net-lab"], doc["publish:net-lab"]
    assert doc["stages"] == ["build", "virtualbox", "publish"]
    assert build["retry"] == {"max": 2, "when": ["runner_system_failure"]}
    assert build["artifacts"]["reports"]["junit"] == "reports/net-lab/junit.xml" and build["artifacts"]["expire_in"]
    assert build["artifacts"]["expose_as"] == "net-lab build report"  # report.html one click from the MR
    # the OVA is proven in VirtualBox on its own runners before the release
    assert vbox["tags"] == ["builder", "virtualbox"] and vbox["needs"] == [{"job": "build:net-lab", "artifacts": True}]
    assert vbox["script"] == ["builder ova test --from reports/net-lab --junit reports/net-lab/virtualbox.xml"]
    assert vbox["artifacts"]["reports"]["junit"] == "reports/net-lab/virtualbox.xml"
    assert publish["needs"] == [{"job": "build:net-lab", "artifacts": True},
                                {"job": "virtualbox:net-lab", "artifacts": False}]
    assert publish["resource_group"] == "publish-net-lab"
    assert publish["script"] == ["builder publish net-lab --to gitlab --release-only --from reports/net-lab"]
    assert build["script"] == ["builder vm net-lab --publish gitlab --no-release --reports reports/net-lab"]
    assert "BUILDER_STORE" not in str(doc)  # runners share nothing but GitLab


def test_nightly_pipeline_runs_the_multi_node_lab_of_images_with_a_lab(images_dir):
    lab = images_dir / "ceph-training" / "lab"
    lab.mkdir()
    (lab / "lab.yaml").write_text("steps: [10-config.sh.j2]\nceph_conf: ceph.conf.j2\n")
    refs = pl.resolve_images([], images_dir)
    assert [r.lab for r in refs] == [True, False]
    assert "lab:ceph-training" not in pl.child_pipeline(refs)  # every push: not the slow lab
    doc = pl.child_pipeline(refs, pl.PipelineOptions(nightly=True))
    job = doc["lab:ceph-training"]
    assert doc["stages"][-1] == "lab" and "lab:net-lab" not in doc
    assert job["script"] == ["builder lab test ceph-training --nodes 3 --junit reports/ceph-training/lab-3-nodes.xml"]
    assert job["needs"] == [] and job["artifacts"]["reports"]["junit"] == "reports/ceph-training/lab-3-nodes.xml"
    assert pl.validate_ci(pl.dump(doc), pl.vendored_schema()) == []


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
    assert [k for k in doc if ":" in k] == ["build:net-lab", "virtualbox:net-lab", "publish:net-lab"]
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
    generate = doc["generate"]
    assert generate["rules"][0] == {"if": '$CI_PIPELINE_SOURCE == "schedule"', "variables": {"GENERATE_FLAGS": "--nightly"}}
    assert generate["script"][0].endswith("$GENERATE_FLAGS")
    for job in ("unit", "integration"):
        assert "--junitxml=" in doc[job]["script"][-1] and doc[job]["artifacts"]["reports"]["junit"]


def test_validate_reports_schema_errors(tmp_path, capsys):
    bad = tmp_path / "bad.yml"
    bad.write_text("job:\n  script: [true]\n  retry: {max: 9}\n")
    assert pl.validate_ci(bad.read_text(), pl.vendored_schema()) != []
    assert main(["pipeline", "validate", str(bad)]) == 1
