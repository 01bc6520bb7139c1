"""The child pipeline for the image matrix, and validation of CI YAML against GitLab's schema.

GitLab CI is the distributed engine: one build job per image lands on whichever nested-KVM
runner is free; the builder never schedules across hosts itself. Between build and publish, a
`virtualbox` job on a runner tagged `virtualbox` imports and boots the uploaded OVA in
VirtualBox itself; the publish job needs it. Nightly (scheduled) pipelines also run each
image's multi-node lab, which is too slow for every push. Plan only: `child_pipeline` turns
image references and options into a dict; `dump` makes the YAML text.

Runners share nothing but GitLab. The build job builds, tests and uploads the image files to
the project's package registry (`builder vm --publish gitlab --no-release`); its small proof
(manifest, SHA256SUMS, JUnit — written whether tests pass or fail) travels as job artifacts to
the later jobs; the publish job checks the registry holds exactly those files and creates the
release. Each runner keeps its own stage cache.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from . import yamlio
from .core.errors import UserError
from .lab.plan import has_lab
from .project import Project
from .spec import image_names, load_image

REPORTS_DIR = "reports"
MAX_SCHEMA_BYTES = 8 << 20


@dataclass(frozen=True)
class ImageRef:
    name: str
    version: str
    lab: bool = False  # the image has a course lab (lab/ beside image.yaml)


@dataclass(frozen=True)
class PipelineOptions:
    tags: tuple[str, ...] = ("builder", "kvm")
    virtualbox_tags: tuple[str, ...] = ("builder", "virtualbox")
    nightly: bool = False  # add the slow jobs a schedule runs: the multi-node lab
    lab_nodes: int = 3
    timeout: str = "3h"
    retries: int = 2
    expire_in: str = "30 days"
    setup: tuple[str, ...] = ()  # commands before builder in every job (builder.toml [pipeline])
    builder: str = "builder"

    @classmethod
    def for_project(cls, project: Project, **kw) -> PipelineOptions:
        return cls(setup=project.pipeline_setup, builder=project.pipeline_builder, **kw)


def parse_image_list(value: str | None) -> list[str]:
    """`IMAGES=ceph-training,other` or space separated, as schedules set it; empty means all."""
    return [n for n in (value or "").replace(",", " ").split() if n]


def resolve_images(names: list[str], images_dir: Path) -> list[ImageRef]:
    names = names or image_names(images_dir)
    if not names:
        raise UserError("no images to build", file=str(images_dir))
    return [ImageRef(s.name, s.version, has_lab(s)) for s in (load_image(n, images_dir) for n in dict.fromkeys(names))]


def _retry(opts: PipelineOptions) -> dict:
    # Retry a lost or broken runner, never a failing build or test.
    return {"max": opts.retries, "when": ["runner_system_failure"]}


def _junit_artifacts(opts: PipelineOptions, path: str) -> dict:
    return {"when": "always", "expire_in": opts.expire_in, "paths": [path], "reports": {"junit": path}}


def _jobs(img: ImageRef, opts: PipelineOptions) -> dict[str, dict]:
    reports = f"{REPORTS_DIR}/{img.name}"
    build, vbox = f"build:{img.name}", f"virtualbox:{img.name}"
    name = shlex.quote(img.name)
    jobs: dict[str, dict] = {
        build: {
            "stage": "build",
            "tags": list(opts.tags),
            "timeout": opts.timeout,
            "interruptible": True,
            "retry": _retry(opts),
            "script": [
                *opts.setup,
                # A rebuild with unchanged content exits 0 ("current"); changed content gets a new
                # version derived from image.yaml's, so a nightly schedule never fails on an existing one.
                f"{opts.builder} vm {name} --publish gitlab --no-release --reports {reports}",
            ],
            "artifacts": {
                **_junit_artifacts(opts, f"{reports}/junit.xml"),
                "paths": [f"{reports}/"],
                # report.html, manifest.json, SHA256SUMS linked from merge requests and the pipeline
                "expose_as": f"{img.name} build report",
            },
        },
        vbox: {
            "stage": "virtualbox",
            "tags": list(opts.virtualbox_tags),
            "timeout": opts.timeout,
            "interruptible": True,
            "needs": [{"job": build, "artifacts": True}],
            "retry": _retry(opts),
            "script": [*opts.setup,
                       f"{opts.builder} ova test --from {reports} --junit {reports}/virtualbox.xml"],
            "artifacts": _junit_artifacts(opts, f"{reports}/virtualbox.xml"),
        },
        f"publish:{img.name}": {
            "stage": "publish",
            "tags": list(opts.tags),
            "needs": [{"job": build, "artifacts": True}, {"job": vbox, "artifacts": False}],
            # Two pipelines never release the same image at once.
            "resource_group": f"publish-{img.name}",
            "retry": _retry(opts),
            "script": [*opts.setup, f"{opts.builder} publish {name} --to gitlab --release-only --from {reports}"],
        },
    }
    if opts.nightly and img.lab:
        junit = f"{reports}/lab-{opts.lab_nodes}-nodes.xml"
        jobs[f"lab:{img.name}"] = {
            "stage": "lab",
            "tags": list(opts.tags),
            "timeout": opts.timeout,
            "interruptible": True,
            "needs": [],  # builds (or reuses) the image on its own runner, beside the build job
            "retry": _retry(opts),
            "script": [*opts.setup, f"{opts.builder} lab test {name} --nodes {opts.lab_nodes} --junit {junit}"],
            "artifacts": _junit_artifacts(opts, junit),
        }
    return jobs


def child_pipeline(images: list[ImageRef], opts: PipelineOptions = PipelineOptions()) -> dict:
    lab = opts.nightly and any(img.lab for img in images)
    doc: dict = {"stages": ["build", "virtualbox", "publish", *(["lab"] if lab else [])]}
    for img in images:
        doc.update(_jobs(img, opts))
    return doc


def dump(doc: dict) -> str:
    header = "# Generated by `builder pipeline generate`; do not edit.\n"
    return header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=1 << 16)


class _CILoader(yamlio.Loader):
    pass


# GitLab's `!reference [job, key]` tag: read as the list it names, which is what the schema expects.
def _reference(loader: yaml.SafeLoader, node: yaml.Node) -> list:
    if not isinstance(node, yaml.SequenceNode):
        raise yaml.constructor.ConstructorError(None, None, "!reference takes a list [job, key, ...]", node.start_mark)
    return loader.construct_sequence(node, deep=True)


_CILoader.add_constructor("!reference", _reference)


def vendored_schema() -> dict:
    """GitLab's CI schema as check-jsonschema (a runtime dependency) vendors and maintains it."""
    text = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("gitlab-ci.json").read_text("utf-8")
    return json.loads(text)


def load_schema(path: Path | None) -> dict:
    if path is None:
        return vendored_schema()
    if path.is_file() and path.stat().st_size > MAX_SCHEMA_BYTES:
        raise UserError(f"larger than {MAX_SCHEMA_BYTES} bytes", file=str(path), field="--schema")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError("GitLab CI schema not found", file=str(path), field="--schema") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise UserError(f"not a JSON schema: {e}", file=str(path), field="--schema") from None


def validate_ci(text: str, schema: dict, file: str | None = None) -> list[str]:
    """Problems GitLab's own CI JSON schema finds in a YAML text (every document of it)."""
    from jsonschema import Draft7Validator

    validator = Draft7Validator(schema)
    problems = []
    for doc in yamlio.load_all(text, file, loader=_CILoader):
        for e in validator.iter_errors(doc or {}):
            problems.append(f"{e.json_path}: {e.message[:300]}")
    return problems
