"""`builder pipeline generate|validate`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import pipeline as pl
from ..console import emit_json, err
from ..core.errors import BuildFailed
from ..yamlio import read_text
from .options import current_project


@click.group(name="pipeline", epilog="""\b
Examples:
  builder pipeline generate --output child-pipeline.yml
  builder pipeline validate .gitlab-ci.yml""")
def group() -> None:
    """GitLab CI pipelines for the image matrix."""


@group.command(
    name="generate",
    epilog="""\b
Examples:
  builder pipeline generate --output child-pipeline.yml        every image
  IMAGES=ceph-training builder pipeline generate -o child.yml  what a schedule asks for
  builder pipeline generate --images ceph-training --tag kvm --timeout 2h
  builder pipeline generate --nightly -o child.yml            a schedule's: with the 3-node labs""",
)
@click.option("--images", envvar="IMAGES", default="", help="comma/space separated names (default: $IMAGES, else all)")
@click.option("--tag", "tags", multiple=True, help="runner tag selecting nested-KVM runners (repeatable)")
@click.option("--virtualbox-tag", "vbox_tags", multiple=True,
              help="runner tag selecting the VirtualBox runners of the OVA test (repeatable)")
@click.option("--nightly", is_flag=True, help="add the slow jobs of a schedule: each lab's multi-node run")
@click.option("--timeout", default=pl.PipelineOptions.timeout, show_default=True, help="per build job")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="write here, not stdout")
def generate(images: str, tags: tuple[str, ...], vbox_tags: tuple[str, ...], nightly: bool, timeout: str,
             output: Path | None) -> None:
    """Write the child pipeline: build, VirtualBox test and publish jobs per image of this project.

    Jobs run the commands of builder.toml's [pipeline] table first (e.g. an install step),
    then `builder`; they hand over nothing but GitLab job artifacts and the package registry.
    """
    project = current_project()
    opts = pl.PipelineOptions.for_project(project, tags=tags or pl.PipelineOptions.tags, timeout=timeout,
                                          virtualbox_tags=vbox_tags or pl.PipelineOptions.virtualbox_tags,
                                          nightly=nightly)
    text = pl.dump(pl.child_pipeline(pl.resolve_images(pl.parse_image_list(images), project.images_dir), opts))
    if output:
        output.write_text(text)
        err.print(f"wrote {output}")
    else:
        sys.stdout.write(text)


@group.command(
    name="validate",
    epilog="""\b
Examples:
  builder pipeline validate .gitlab-ci.yml
  builder pipeline validate child.yml --json
  builder pipeline validate .gitlab-ci.yml --schema my-gitlab-ci-schema.json""",
)
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--schema", type=click.Path(path_type=Path, dir_okay=False),
              help="GitLab's CI JSON schema (default: the one check-jsonschema vendors)")
@click.option("--json", "as_json", is_flag=True)
def validate(files: tuple[Path, ...], schema: Path | None, as_json: bool) -> None:
    """Check CI YAML files against GitLab's own CI schema."""
    loaded = pl.load_schema(schema)
    report = {str(f): pl.validate_ci(read_text(f), loaded, str(f)) for f in files}
    if as_json:
        emit_json(report)
    for f, problems in report.items():
        for p in problems:
            err.print(f"{f}: {p}", markup=False, soft_wrap=True)
    if bad := [f for f, p in report.items() if p]:
        raise BuildFailed(f"{', '.join(bad)}: does not match GitLab's CI schema")
    if not as_json:
        err.print(f"{len(files)} file(s) valid")


COMMANDS = [group]
