"""builder as its users meet it: a wheel installed into a fresh venv, run in another git repository
of images — never reading its own source tree or anything beside the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.repo import REPO

pytestmark = pytest.mark.slow  # builds a wheel and a venv (~1 min with a warm pip cache)


def sh(argv: list[str], cwd: Path, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, **kw)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """`builder` from a wheel of this checkout, in a fresh venv outside it."""
    d = tmp_path_factory.mktemp("wheel")
    r = sh([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(d / "dist"), str(REPO)], d)
    assert r.returncode == 0, r.stderr
    wheel = next((d / "dist").glob("builder-*.whl"))
    r = sh([sys.executable, "-m", "venv", str(d / "venv")], d)
    assert r.returncode == 0, r.stderr
    r = sh([str(d / "venv/bin/pip"), "install", "-q", "--disable-pip-version-check", str(wheel)], d, timeout=900)
    assert r.returncode == 0, r.stderr
    return d / "venv" / "bin" / "builder"


@pytest.fixture
def images_repo(tmp_path) -> Path:
    """Another images project: one image `lab-a` (builder's minimal, renamed) in its own git repo."""
    root = tmp_path / "my-images"
    shutil.copytree(REPO / "images" / "minimal", root / "images" / "lab-a")
    shutil.copytree(REPO / "fabrics", root / "fabrics")
    spec = root / "images" / "lab-a" / "image.yaml"
    spec.write_text(spec.read_text().replace("name: minimal", "name: lab-a").replace("version: 0.1.0",
                                                                                     "version: 3.1.4"))
    (root / "ci").mkdir()
    for argv in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                 ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "images"]):
        assert sh(argv, root).returncode == 0
    return root


def test_wheel_has_its_templates_and_no_source_tree(installed: Path):
    site = next(installed.parent.parent.glob("lib/python*/site-packages"))
    assert (site / "builder" / "templates" / "image" / "customize.sh.j2").is_file()
    assert (site / "builder" / "templates" / "report" / "report.html.j2").is_file()
    assert not (site / "images").exists() and not (site / "tests").exists()


def test_installed_builder_works_on_another_repository(installed: Path, images_repo: Path):
    env = {**os.environ, "PATH": f"{installed.parent}:{os.environ['PATH']}"}
    sub = images_repo / "images" / "lab-a"  # found upward, like git
    r = sh([str(installed), "image", "list", "--json"], sub, env=env)
    assert r.returncode == 0, r.stderr
    assert [(i["name"], i["version"]) for i in yaml.safe_load(r.stdout)] == [("lab-a", "3.1.4")]

    r = sh([str(installed), "image", "check", "lab-a", "--offline", "--render", "rendered"], images_repo, env=env)
    assert r.returncode == 0, r.stderr
    scripts = images_repo / "rendered" / "provision" / "scripts"
    # builder's GRUB step first, the project's own script, builder's cleanup last
    assert sorted(p.name for p in scripts.iterdir()) == ["00-builder-grub.sh", "01-10-motd.sh", "02-builder-cleanup.sh"]
    assert "image lab-a 3.1.4" in (scripts / "01-10-motd.sh").read_text()

    r = sh([str(installed), "pipeline", "generate", "-o", "child.yml"], images_repo, env={**env, "IMAGES": ""})
    assert r.returncode == 0, r.stderr
    child = yaml.safe_load((images_repo / "child.yml").read_text())
    assert child["build:lab-a"]["script"] == ["builder vm lab-a --publish gitlab --no-release --reports reports/lab-a"]
    r = sh([str(installed), "pipeline", "validate", "child.yml"], images_repo, env=env)
    assert r.returncode == 0, r.stderr  # GitLab's schema comes with the install (check-jsonschema)

    r = sh([str(installed), "-C", str(images_repo), "image", "list", "--json"], Path("/"), env=env)
    assert r.returncode == 0 and "lab-a" in r.stdout


def test_bad_spec_in_another_repository_fails_in_seconds(installed: Path, images_repo: Path):
    spec = images_repo / "images" / "lab-a" / "image.yaml"
    spec.write_text(spec.read_text().replace("cpus: 2", "cpus: many"))
    r = sh([str(installed), "vm", "lab-a", "--cache-dir", "cache"], images_repo)
    assert r.returncode == 2 and "image.yaml" in r.stderr and "cpus" in r.stderr and "Traceback" not in r.stderr
    assert not (images_repo / "artifacts").exists() and not (images_repo / "cache").exists()  # no stage began


def test_outside_any_project_is_bad_input(installed: Path, tmp_path: Path):
    r = sh([str(installed), "image", "list"], tmp_path)
    assert r.returncode == 2 and "no builder project" in r.stderr
