"""`builder schedule sync`."""

from __future__ import annotations

from pathlib import Path

import click

from ..console import emit_json, err
from .options import current_project


@click.group(name="schedule", epilog="""\b
Examples:
  builder schedule sync --project training/images --dry-run
  builder schedule sync --project training/images --prune""")
def group() -> None:
    """GitLab pipeline schedules for rebuilds."""


@group.command(
    name="sync",
    epilog="""\b
Examples:
  builder schedule sync --project training/images --dry-run   show the diff only
  builder schedule sync --project training/images             make the server match the file
  builder schedule sync --file ci/schedules.yaml --prune --json
\b
Needs a personal or project access token (GITLAB_URL + GITLAB_PRIVATE_TOKEN, or --gitlab NAME).""",
)
@click.option("--file", "path", type=click.Path(path_type=Path, dir_okay=False),
              help="schedules file (default: the project's ci/schedules.yaml)")
@click.option("--project", help="GitLab project ID or path (default: $CI_PROJECT_ID)")
@click.option("--gitlab", "gitlab_name", metavar="NAME", help="python-gitlab config section to use")
@click.option("--dry-run", is_flag=True, help="show what would change, change nothing")
@click.option("--prune", is_flag=True, help="delete schedules the file does not name")
@click.option("--json", "as_json", is_flag=True)
def sync(path: Path | None, project: str | None, gitlab_name: str | None, dry_run: bool, prune: bool,
         as_json: bool) -> None:
    """Create or update pipeline schedules so the server matches the file."""
    path = path or current_project().schedules_file
    from ..publish.gitlab_target import resolve_target
    from ..schedules import load, sync_file

    load(path)  # a bad file is bad input before any credential is looked at
    changes = sync_file(path, resolve_target(project=project, gitlab_name=gitlab_name), prune=prune, dry_run=dry_run)
    if as_json:
        emit_json({"dry_run": dry_run, "changes": [c.as_dict() for c in changes]})
        return
    for c in changes:
        err.print(c.line(), markup=False, soft_wrap=True)
    done = sum(c.action in ("create", "update", "delete") for c in changes)
    err.print(f"{done} change(s) {'would be made' if dry_run else 'made'}")


COMMANDS = [group]
