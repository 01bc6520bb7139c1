"""`builder pipeline generate|validate`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import pipeline as pl
from ..console import emit_json, err
from ..errors import BuildFailed
from ..spec import IMAGES_DIR
from ..yamlio import read_text


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
  builder pipeline generate --images ceph-training --tag kvm --timeout 2h""",
)
@click.option("--images", envvar="IMAGES", default="", help="comma/space separated names (default: $IMAGES, else all)")
@click.option("--images-dir", type=click.Path(path_type=Path, file_okay=False), default=IMAGES_DIR, show_default=True)
@click.option("--tag", "tags", multiple=True, help="runner tag selecting nested-KVM runners (repeatable)")
@click.option("--timeout", default=pl.PipelineOptions.timeout, show_default=True, help="per build job")
@click.option("--store", default=pl.PipelineOptions.store, show_default=True, help="default $BUILDER_STORE")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="write here, not stdout")
def generate(images: str, images_dir: Path, tags: tuple[str, ...], timeout: str, store: str, output: Path | None) -> None:
    """Write the child pipeline: a build job and a publish job per image."""
    opts = pl.PipelineOptions(tags=tags or pl.PipelineOptions.tags, timeout=timeout, store=store)
    text = pl.dump(pl.child_pipeline(pl.resolve_images(pl.parse_image_list(images), images_dir), opts))
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
  builder pipeline validate child.yml --schema ../shared/gitlab-ci-schema/ci.json --json""",
)
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--schema", type=click.Path(path_type=Path), default=pl.DEFAULT_SCHEMA, show_default=True,
              help="GitLab's CI JSON schema (ci.json)")
@click.option("--json", "as_json", is_flag=True)
def validate(files: tuple[Path, ...], schema: Path, as_json: bool) -> None:
    """Check CI YAML files against GitLab's own CI schema."""
    report = {str(f): pl.validate_ci(read_text(f), schema, str(f)) for f in files}
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
